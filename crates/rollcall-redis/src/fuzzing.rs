//! The fuzz target's entry point (`fuzz/fuzz_targets/node_wire.rs`) and its seeds. Not part of
//! the API: hidden from the docs, public only so the `fuzz/` crate and this crate's corpus
//! replay test can reach the decoders.

use rollcall_core::PresenceRef;

use crate::render;
use crate::wire::{self, Entry, Frame, Presence};

/// Decodes `data` as a pub/sub message and as a stored hash value. Decoding must never panic;
/// whatever decodes must re-encode to exactly `data` (the format has one encoding per value),
/// and a decoded diff must render as client JSON.
///
/// # Panics
/// When a property fails: that is a codec bug.
pub fn decode(data: &[u8]) {
    if let Ok(frame) = Frame::decode(data) {
        assert_eq!(
            frame.encode(),
            data,
            "a decoded message re-encodes unchanged"
        );
        if let Frame::Diff { joins, leaves, .. } = &frame {
            let joins: Vec<Presence> = joins.iter().copied().map(Presence::from).collect();
            let leaves: Vec<Presence> = leaves.iter().copied().map(Presence::from).collect();
            let _ = render::diff(&joins, &leaves);
        }
    }
    if let Ok(entry) = wire::decode_hash_value(data) {
        assert_eq!(
            wire::encode_hash_value(&entry),
            data,
            "a decoded value re-encodes unchanged"
        );
    }
}

/// Valid messages and values of every kind, to seed the corpus (`fuzz/corpus/node_wire/`).
pub fn seeds() -> Vec<Vec<u8>> {
    let r = |n| PresenceRef::new(n).expect("seed refs are non-zero");
    let alice = Entry {
        key: "alice",
        presence_ref: r(0x0001_2300_0000_0001),
        prev_ref: None,
        meta: r#"{"online_at":1764643200000,"status":"online"}"#,
    };
    let update = Entry {
        key: "al\"ice\u{e9}",
        presence_ref: r(0x0001_2300_0000_0002),
        prev_ref: Some(r(0x0001_2300_0000_0001)),
        meta: "{}",
    };
    vec![
        Frame::Diff {
            node: "node-a",
            joins: vec![alice],
            leaves: vec![],
        }
        .encode(),
        Frame::Diff {
            node: "node-a",
            joins: vec![update],
            leaves: vec![alice],
        }
        .encode(),
        Frame::Reset {
            node: "node-b",
            presences: vec![alice, update],
        }
        .encode(),
        Frame::Gone { node: "node-c" }.encode(),
        Frame::Broadcast {
            node: "node-a",
            event: "cursor",
            payload: r#"{"x":1,"y":2}"#,
        }
        .encode(),
        Frame::Marker {
            node: "node-a",
            token: "5f0c0ffee",
        }
        .encode(),
        wire::encode_hash_value(&alice),
        wire::encode_hash_value(&update),
    ]
}
