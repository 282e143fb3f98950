//! Replays the committed `session` fuzz corpus (`fuzz/corpus/session/`) through
//! `rollcall_server::fuzzing::session`, the function the `fuzz/` target calls, so plain
//! `cargo test` on stable checks every seed and every crash input kept as a regression against
//! the reference model. See `docs/fuzzing.md`.

use std::path::PathBuf;

#[test]
fn session_corpus_replays() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/session");
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut n = 0;
    for entry in entries {
        let path = entry.expect("a readable corpus dir").path();
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let outcome = std::panic::catch_unwind(|| rollcall_server::fuzzing::session(&data));
        assert!(outcome.is_ok(), "{} fails", path.display());
        n += 1;
    }
    assert!(n > 0, "{}: the corpus is empty", dir.display());
}
