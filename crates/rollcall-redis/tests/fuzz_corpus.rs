//! Replays the committed `node_wire` fuzz corpus (`fuzz/corpus/node_wire/`) through
//! `rollcall_redis::fuzzing::decode`, the function the `fuzz/` target calls, so plain
//! `cargo test` on stable checks every seed and every crash input kept as a regression.
//! See `docs/fuzzing.md`.

use std::path::PathBuf;

use rollcall_redis::fuzzing;

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/node_wire")
}

#[test]
fn node_wire_corpus_replays() {
    let dir = corpus();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut n = 0;
    for entry in entries {
        let path = entry.expect("a readable corpus dir").path();
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let outcome = std::panic::catch_unwind(|| fuzzing::decode(&data));
        assert!(outcome.is_ok(), "{} fails", path.display());
        n += 1;
    }
    assert!(n > 0, "{}: the corpus is empty", dir.display());
}

/// Writes the seeds (`seed-<n>`, one valid message or value of each kind) into the corpus:
/// `cargo test -p rollcall-redis --test fuzz_corpus -- --ignored`.
#[test]
#[ignore = "writes fuzz/corpus/node_wire/"]
fn write_seeds() {
    let dir = corpus();
    std::fs::create_dir_all(&dir).unwrap();
    for (i, seed) in fuzzing::seeds().iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i}")), seed).unwrap();
    }
}
