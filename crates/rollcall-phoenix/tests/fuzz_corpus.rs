//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`) through the functions the
//! `fuzz/` targets call, so plain `cargo test` on stable covers every seed and every crash
//! input kept as a regression. See `docs/fuzzing.md`.

use std::path::PathBuf;

use rollcall_phoenix::fuzzing;

/// Runs `f` on every file of `fuzz/corpus/<target>/`; fails if there is none.
fn replay(target: &str, f: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut n = 0;
    for entry in entries {
        let path = entry.expect("a readable corpus dir").path();
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let outcome = std::panic::catch_unwind(|| f(&data));
        assert!(outcome.is_ok(), "{target}: {} fails", path.display());
        n += 1;
    }
    assert!(n > 0, "{}: the corpus is empty", dir.display());
}

#[test]
fn decode_v1_corpus_replays() {
    replay("decode_v1", fuzzing::decode_v1);
}

#[test]
fn decode_v2_corpus_replays() {
    replay("decode_v2", fuzzing::decode_v2);
}

#[test]
fn decode_binary_corpus_replays() {
    replay("decode_binary", fuzzing::decode_binary_frame);
}

#[test]
fn join_config_corpus_replays() {
    replay("join_config", fuzzing::join_config);
}
