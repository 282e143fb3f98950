//! Fuzz entry points: the `fuzz/` targets call these in one line each, and unit tests replay
//! seeds through them on stable.
//!
//! Each runs every decoder and payload parser over arbitrary bytes. Decoding must never panic;
//! wherever an encoder exists, the decoded message must survive encode → decode unchanged.
//! A failed round-trip property panics, which is what the fuzzer looks for.

use crate::codec::{Inbound, Payload, UserBroadcastBody};
use crate::{
    DecodeError, FrameKind, Vsn, decode_binary, decode_server_binary, decode_text,
    encode_broadcast, encode_message, encode_user_broadcast, join, json, presence_msg,
};

/// Runs every decoder on `data` and checks the round-trip properties.
///
/// # Panics
/// When a round-trip property fails: that is a codec bug.
pub fn decode_any(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Vsn::from_query(Some(text));
        for vsn in [Vsn::V1, Vsn::V2] {
            if let Ok(message) = decode_text(vsn, text) {
                check_text_round_trip(vsn, &message);
            }
        }
        if let Some(raw) = json::raw(text) {
            parse_payload(raw);
        }
    }
    if let Ok(message) = decode_binary(data) {
        check_user_broadcast_round_trip(&message);
    }
    if let Ok(message) = decode_server_binary(data) {
        check_user_broadcast_round_trip(&message);
    }
}

/// The `decode_v1` target: a vsn 1.0.0 text frame must decode without panicking and, when it
/// decodes, round-trip through the encoders.
///
/// # Panics
/// When a round-trip property fails.
pub fn decode_v1(data: &[u8]) {
    decode_text_as(Vsn::V1, data);
}

/// The `decode_v2` target: as [`decode_v1`] for vsn 2.0.0 arrays.
///
/// # Panics
/// When a round-trip property fails.
pub fn decode_v2(data: &[u8]) {
    decode_text_as(Vsn::V2, data);
}

/// The `decode_binary` target: the client (kinds 0, 3) and server (kind 4) binary decoders;
/// a decoded user broadcast must survive encode → decode on both serializers.
///
/// # Panics
/// When a round-trip property fails.
pub fn decode_binary_frame(data: &[u8]) {
    if let Ok(message) = decode_binary(data) {
        check_user_broadcast_round_trip(&message);
    }
    if let Ok(message) = decode_server_binary(data) {
        check_user_broadcast_round_trip(&message);
    }
}

/// The `join_config` target: `parse_join`, `parse_presence` and `parse_broadcast` on any JSON
/// value. They must not panic, and a parsed join must be self-consistent.
///
/// # Panics
/// When a parser panics or a parsed join breaks its documented invariants.
pub fn join_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some(raw) = json::raw(text) else {
        return;
    };
    if let Ok(join) = join::parse_join(raw) {
        // "None when missing, null or \"\"": an empty key never comes out.
        assert_ne!(join.presence_key.as_deref(), Some(""));
        let mut sorted = join.warnings.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), join.warnings.len(), "a warning repeats");
    }
    let _ = presence_msg::parse_presence(raw);
    let _ = presence_msg::parse_broadcast(raw);
}

fn decode_text_as(vsn: Vsn, data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(message) = decode_text(vsn, text) {
        check_text_round_trip(vsn, &message);
    }
}

/// Runs the payload parsers (join, presence, broadcast); they must not panic.
fn parse_payload(raw: &serde_json::value::RawValue) {
    let _ = join::parse_join(raw);
    let _ = presence_msg::parse_presence(raw);
    let _ = presence_msg::parse_broadcast(raw);
}

fn check_text_round_trip(vsn: Vsn, message: &Inbound<'_>) {
    let Payload::Json(payload) = message.payload else {
        panic!("a text frame decoded to a non-json payload");
    };
    parse_payload(payload);
    let (join_ref, msg_ref) = (message.join_ref.as_deref(), message.msg_ref.as_deref());
    let mut out = Vec::new();
    encode_message(
        vsn,
        join_ref,
        msg_ref,
        &message.topic,
        &message.event,
        payload.get(),
        &mut out,
    );
    let again = decode_encoded(vsn, &out);
    assert_eq!(again.topic, message.topic);
    assert_eq!(again.event, message.event);
    assert_eq!(again.msg_ref.as_deref(), msg_ref);
    let want_join_ref = if vsn == Vsn::V2 { join_ref } else { None };
    assert_eq!(again.join_ref.as_deref(), want_join_ref);
    assert_eq!(json_payload(&again), payload.get());

    out.clear();
    encode_broadcast(vsn, &message.topic, &message.event, payload.get(), &mut out);
    let again = decode_encoded(vsn, &out);
    assert_eq!(
        (&again.topic, &again.event),
        (&message.topic, &message.event)
    );
    assert_eq!((&again.join_ref, &again.msg_ref), (&None, &None));
    assert_eq!(json_payload(&again), payload.get());
}

fn check_user_broadcast_round_trip(message: &Inbound<'_>) {
    let Payload::UserBroadcast {
        event,
        metadata,
        body,
    } = &message.payload
    else {
        return;
    };
    for vsn in [Vsn::V1, Vsn::V2] {
        let mut out = Vec::new();
        let kind = encode_user_broadcast(vsn, &message.topic, event, *metadata, *body, &mut out);
        match (kind, body) {
            (Ok(FrameKind::Text), UserBroadcastBody::Json(payload)) => {
                // The text frame nests the body two levels deeper; past serde_json's depth
                // limit only our decoder refuses it, JSON.parse on the client does not.
                let again = match decode_text(vsn, as_text(&out)) {
                    Err(DecodeError::InvalidJson { .. }) if nesting(payload.get()) > 120 => {
                        continue;
                    }
                    other => other.expect("an encoded frame decodes"),
                };
                assert_eq!(again.topic, message.topic);
                let Payload::Json(raw) = again.payload else {
                    panic!("text decodes to json")
                };
                let sent = presence_msg::parse_broadcast(raw).expect("a broadcast object");
                assert_eq!(sent.event, *event);
                assert_eq!(sent.payload.map(|p| p.get()), Some(payload.get()));
            }
            (Ok(FrameKind::Binary), UserBroadcastBody::Binary(bytes)) => {
                assert_eq!(vsn, Vsn::V2);
                let again = decode_server_binary(&out).expect("an encoded kind-4 frame decodes");
                assert_eq!(again.topic, message.topic);
                let Payload::UserBroadcast {
                    event: e,
                    metadata: m,
                    body,
                } = again.payload
                else {
                    panic!("kind 4 decodes to a user broadcast");
                };
                assert_eq!(e, *event);
                assert_eq!(m.map(|m| m.get()), metadata.map(|m| m.get()));
                assert!(matches!(body, UserBroadcastBody::Binary(b) if b == *bytes));
            }
            (Err(crate::EncodeError::BinaryOnV1), UserBroadcastBody::Binary(_)) => {
                assert_eq!(vsn, Vsn::V1);
            }
            (other, _) => panic!("unexpected encoding result {other:?} for {message:?}"),
        }
    }
}

fn decode_encoded(vsn: Vsn, out: &[u8]) -> Inbound<'_> {
    decode_text(vsn, as_text(out)).expect("an encoded frame decodes")
}

fn as_text(out: &[u8]) -> &str {
    std::str::from_utf8(out).expect("encoders write utf-8")
}

fn json_payload<'a>(message: &Inbound<'a>) -> &'a str {
    match message.payload {
        Payload::Json(raw) => raw.get(),
        _ => panic!("text decodes to json"),
    }
}

/// The deepest bracket nesting of a JSON text, ignoring brackets inside strings.
fn nesting(text: &str) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0, false, false);
    for b in text.bytes() {
        match (in_string, escaped, b) {
            (true, true, _) => escaped = false,
            (true, false, b'\\') => escaped = true,
            (true, false, b'"') | (false, _, b'"') => in_string = !in_string,
            (false, _, b'[' | b'{') => {
                depth += 1;
                max = max.max(depth);
            }
            (false, _, b']' | b'}') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seeds a fuzzer would start from: every frame shape the protocol notes record.
    const SEEDS: &[&[u8]] = &[
        br#"[null,"1","phoenix","heartbeat",{}]"#,
        br#"{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"10"}"#,
        br#"["6","6","realtime:room1","phx_join",{"config":{"broadcast":{"ack":false,"self":false},"presence":{"key":"","enabled":false},"postgres_changes":[],"private":false},"access_token":"<jwt>"}]"#,
        br#"["6","9","realtime:room1","presence",{"type":"presence","event":"track","payload":{"a":1}}]"#,
        b"\x03\x01\x01\x0e\x05\x00\x01" as &[u8],
        b"\x03\x01\x01\x0e\x05\x00\x0168realtime:room1hello{\"msg\":\"hi\"}",
        b"\x03\x00\x00\x01\x01\x08\x00te{\"x\":[]}\x00\xff",
        b"\x04\x01\x01\x00\x00te\x00\x01",
        b"\x00\x01\x01\x01\x01jrte\xff",
        br#"[1,2.5e3,"t","e",[[[[]]]]]"#,
        b"",
        b"\xff\xfe",
    ];

    #[test]
    fn seeds_decode_without_panicking_and_round_trip() {
        for seed in SEEDS {
            decode_any(seed);
        }
    }

    #[test]
    fn deeply_nested_bodies_do_not_break_the_round_trip_check() {
        let body = format!("{}{}", "[".repeat(127), "]".repeat(127));
        let mut frame = vec![3, 0, 0, 1, 1, 0, 1, b't', b'e'];
        frame.extend_from_slice(body.as_bytes());
        decode_any(&frame);
    }

    #[test]
    fn nesting_ignores_brackets_in_strings() {
        assert_eq!(nesting(r#"[{"a":"[[[\"{"}]"#), 2);
        assert_eq!(nesting("1"), 0);
    }
}
