use proptest::prelude::*;
use rollcall_core::{Diff, DiffEntry, Key, Meta, PresenceView};

use super::*;
use crate::fuzzing;

fn r(n: u64) -> PresenceRef {
    PresenceRef::new(n).unwrap()
}

fn one_join() -> Frame<'static> {
    Frame::Diff {
        node: "node-1f3a9c2e",
        joins: vec![Entry {
            key: "b7e2c1d4-5a1e-4f0b-9c3d-2e8f6a7b1c90",
            presence_ref: r(0x00ab_cd00_0000_0001),
            prev_ref: None,
            meta: r#"{"online_at":"2026-12-02T02:50:00.000Z","status":"online"}"#,
        }],
        leaves: vec![],
    }
}

#[test]
fn every_kind_round_trips() {
    for seed in fuzzing::seeds() {
        fuzzing::decode(&seed);
        let ok = Frame::decode(&seed).is_ok() || decode_hash_value(&seed).is_ok();
        assert!(ok, "seed {seed:?} decodes");
    }
    let f = one_join();
    assert_eq!(Frame::decode(&f.encode()), Ok(f));
}

#[test]
fn a_message_truncated_at_any_byte_is_refused() {
    for seed in fuzzing::seeds() {
        for n in 0..seed.len() {
            let cut = &seed[..n];
            assert!(Frame::decode(cut).is_err(), "{cut:?}");
            assert!(decode_hash_value(cut).is_err(), "{cut:?}");
        }
    }
    assert_eq!(Frame::decode(&[]), Err(WireError::Truncated));
}

#[test]
fn another_version_is_refused_by_number() {
    let mut m = one_join().encode();
    for v in [0, 2, 255] {
        m[0] = v;
        assert_eq!(Frame::decode(&m), Err(WireError::UnknownVersion(v)));
    }
    let mut h = encode_hash_value(&Entry {
        key: "a",
        presence_ref: r(1),
        prev_ref: None,
        meta: "{}",
    });
    h[0] = 2;
    assert_eq!(decode_hash_value(&h), Err(WireError::UnknownVersion(2)));
    // the text format before version 1: messages `D node {..}`, values `<len>:<key><json>`
    let old = br#"D node-a {"joins":{},"leaves":{}}"#;
    assert_eq!(Frame::decode(old), Err(WireError::UnknownVersion(b'D')));
    let old = br#"5:alice{"phx_ref":"AAAAAAAAAAE"}"#;
    assert_eq!(decode_hash_value(old), Err(WireError::UnknownVersion(b'5')));
}

#[test]
fn lengths_and_counts_past_the_end_are_refused_before_allocating() {
    // node length u32::MAX
    let m = [VERSION, kind::GONE, 0xff, 0xff, 0xff, 0xff, 0x0f];
    assert_eq!(Frame::decode(&m), Err(WireError::Truncated));
    // a varint over 32 bits, and one that never ends
    let m = [VERSION, kind::GONE, 0xff, 0xff, 0xff, 0xff, 0x1f];
    assert!(matches!(Frame::decode(&m), Err(WireError::Malformed(_))));
    let m = [VERSION, kind::GONE, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01];
    assert!(matches!(Frame::decode(&m), Err(WireError::Malformed(_))));
    // 2^28 joins in a 10-byte message
    let m = [
        VERSION,
        kind::DIFF,
        1,
        b'a',
        0x80,
        0x80,
        0x80,
        0x80,
        0x01,
        0,
    ];
    assert_eq!(Frame::decode(&m), Err(WireError::Truncated));
    // an overlong (non-minimal) length: 0 written in two bytes
    let m = [VERSION, kind::GONE, 0x80, 0x00];
    assert!(matches!(Frame::decode(&m), Err(WireError::Malformed(_))));
}

#[test]
fn fields_the_encoder_never_writes_are_refused() {
    let good = one_join().encode();
    let malformed = |m: &[u8]| matches!(Frame::decode(m), Err(WireError::Malformed(_)));
    // unknown kind
    let mut m = good.clone();
    m[1] = b'Q';
    assert!(malformed(&m));
    // trailing byte
    let mut m = good.clone();
    m.push(0);
    assert!(malformed(&m));
    // node name not UTF-8
    let mut m = good.clone();
    m[3] = 0xff;
    assert!(malformed(&m));
    // zero ref, unknown flags, a meta that is not an object
    let e = |presence_ref, prev_ref, meta| {
        let mut w = Writer::new(kind::RESET, "n");
        w.entries(std::iter::once(Entry {
            key: "k",
            presence_ref,
            prev_ref,
            meta,
        }));
        w.finish()
    };
    let m = e(r(0x0101_0101_0101_0101), None, "{}");
    // version, kind, node "n", count, key "k": the ref starts at byte 7
    let at = 7;
    assert_eq!(m[at..at + 8], [1; 8]);
    let mut zero = m.clone();
    zero[at..at + 8].fill(0);
    assert!(malformed(&zero));
    let mut flags = m.clone();
    flags[at + 8] = 2;
    assert!(malformed(&flags));
    assert!(malformed(&e(r(1), None, "[]")));
    assert!(malformed(&e(r(1), None, "{")));
    assert!(Frame::decode(&e(r(1), Some(r(2)), r#"{"a":1}"#)).is_ok());
}

/// Sizes of the same diffs (a UUID key, a two-field meta, a node id as the server makes them)
/// in the text format before version 1 (`D <node> <presence_diff JSON>`) and in version 1:
/// a join, an update (join with `phx_ref_prev` plus the leave), a leave. Run with
/// `--nocapture` to see them.
#[test]
fn diffs_are_smaller_than_their_client_json() {
    let Frame::Diff { node, joins, .. } = one_join() else {
        unreachable!()
    };
    let join = joins[0];
    let update = Entry {
        presence_ref: r(join.presence_ref.raw() + 1),
        prev_ref: Some(join.presence_ref),
        ..join
    };
    let cases = [
        ("join", vec![join], vec![]),
        ("update", vec![update], vec![join]),
        ("leave", vec![], vec![join]),
    ];
    let core = |e: &Entry<'_>| DiffEntry {
        key: Key::new(e.key),
        presence: PresenceView {
            presence_ref: e.presence_ref,
            prev_ref: e.prev_ref,
            meta: Meta::parse(e.meta).unwrap(),
        },
    };
    for (name, joins, leaves) in cases {
        let diff = Diff {
            joins: joins.iter().map(core).collect(),
            leaves: leaves.iter().map(core).collect(),
        };
        let mut payload = Vec::new();
        diff.write_json(&mut payload);
        let before = format!("D {node} {}", std::str::from_utf8(&payload).unwrap()).len();
        let after = Frame::Diff {
            node,
            joins,
            leaves,
        }
        .encode()
        .len();
        eprintln!("{name} diff message: {before} bytes as text JSON, {after} in version 1");
        assert!(after < before);
    }
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![".{0,12}", "[a-z\"{}\\\\\u{e9}\u{1f600}]{0,200}"]
}

fn entry() -> impl Strategy<Value = (String, u64, Option<u64>, String)> {
    (
        text(),
        1..u64::MAX,
        proptest::option::of(1..u64::MAX),
        text().prop_map(|t| format!("{{{t}}}")),
    )
}

type Owned = (String, u64, Option<u64>, String);

fn borrow(v: &[Owned]) -> Vec<Entry<'_>> {
    v.iter()
        .map(|(key, p, prev, meta)| Entry {
            key,
            presence_ref: r(*p),
            prev_ref: prev.map(r),
            meta,
        })
        .collect()
}

proptest! {
    #[test]
    fn any_diff_round_trips(
        node in text(),
        joins in proptest::collection::vec(entry(), 0..5),
        leaves in proptest::collection::vec(entry(), 0..5),
    ) {
        let f = Frame::Diff { node: &node, joins: borrow(&joins), leaves: borrow(&leaves) };
        let bytes = f.encode();
        prop_assert_eq!(Frame::decode(&bytes), Ok(f));
        for e in borrow(&joins) {
            let v = encode_hash_value(&e);
            prop_assert_eq!(decode_hash_value(&v), Ok(e));
        }
    }

    #[test]
    fn any_broadcast_round_trips(node in text(), event in text(), payload in text()) {
        let f = Frame::Broadcast { node: &node, event: &event, payload: &payload };
        let bytes = f.encode();
        prop_assert_eq!(Frame::decode(&bytes), Ok(f));
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..64)) {
        fuzzing::decode(&data);
        let mut versioned = vec![VERSION];
        versioned.extend_from_slice(&data);
        fuzzing::decode(&versioned);
    }
}
