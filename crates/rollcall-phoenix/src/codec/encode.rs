//! Server frame encoders. Each appends one frame to a caller buffer, so the server can encode a
//! fan-out once per topic and serializer and send the same bytes to every subscriber.
//!
//! Payloads come in already serialized: `&str` arguments named `*_json` must hold valid JSON
//! (checked in debug builds only) and are copied verbatim. Topic, event, ref and status strings
//! are escaped by serde_json, so any string is safe.

use serde_json::value::RawValue;

use super::{FrameKind, UserBroadcastBody, binary, v1, v2};
use crate::event::{BROADCAST, PHX_CLOSE, PHX_ERROR, PHX_REPLY};
use crate::json;
use crate::{EncodeError, Vsn};

/// Appends a frame with every field given; the other encoders are shorthands for it.
///
/// vsn 2.0.0 writes `[join_ref, msg_ref, topic, event, payload]`; vsn 1.0.0 writes
/// `{"topic","event","payload","ref"}` and drops `join_ref`, as Phoenix does.
pub fn encode_message(
    vsn: Vsn,
    join_ref: Option<&str>,
    msg_ref: Option<&str>,
    topic: &str,
    event: &str,
    payload_json: &str,
    out: &mut Vec<u8>,
) {
    debug_assert_json(payload_json);
    let payload = |o: &mut Vec<u8>| o.extend_from_slice(payload_json.as_bytes());
    match vsn {
        Vsn::V1 => v1::write(msg_ref, topic, event, out, payload),
        Vsn::V2 => v2::write(join_ref, msg_ref, topic, event, out, payload),
    }
}

/// Appends a `phx_reply`: payload `{"status":S,"response":R}`.
///
/// ```
/// use rollcall_phoenix::{encode_reply, Vsn};
/// let mut out = Vec::new();
/// encode_reply(Vsn::V2, None, Some("1"), "phoenix", "ok", "{}", &mut out);
/// assert_eq!(out, br#"[null,"1","phoenix","phx_reply",{"status":"ok","response":{}}]"#);
/// ```
pub fn encode_reply(
    vsn: Vsn,
    join_ref: Option<&str>,
    msg_ref: Option<&str>,
    topic: &str,
    status: &str,
    response_json: &str,
    out: &mut Vec<u8>,
) {
    debug_assert_json(response_json);
    let payload = |o: &mut Vec<u8>| {
        o.extend_from_slice(b"{\"status\":");
        json::write_str(o, status);
        o.extend_from_slice(b",\"response\":");
        o.extend_from_slice(response_json.as_bytes());
        o.push(b'}');
    };
    match vsn {
        Vsn::V1 => v1::write(msg_ref, topic, PHX_REPLY, out, payload),
        Vsn::V2 => v2::write(join_ref, msg_ref, topic, PHX_REPLY, out, payload),
    }
}

/// Appends a channel push (`presence_state`, `system`): `[join_ref, null, topic, event, P]`.
pub fn encode_push(
    vsn: Vsn,
    join_ref: Option<&str>,
    topic: &str,
    event: &str,
    payload_json: &str,
    out: &mut Vec<u8>,
) {
    encode_message(vsn, join_ref, None, topic, event, payload_json, out);
}

/// Appends `phx_close` with `ref` = `join_ref` and payload `{}` (PHX `socket.ex encode_close`).
pub fn encode_close(vsn: Vsn, join_ref: Option<&str>, topic: &str, out: &mut Vec<u8>) {
    encode_message(vsn, join_ref, join_ref, topic, PHX_CLOSE, "{}", out);
}

/// Appends `phx_error` with `ref` = `join_ref`; Phoenix ≥ 1.8.11 sends the payload
/// `{"reason":"channel_crash"}` (protocol §3.5).
pub fn encode_channel_error(
    vsn: Vsn,
    join_ref: Option<&str>,
    topic: &str,
    payload_json: &str,
    out: &mut Vec<u8>,
) {
    encode_message(vsn, join_ref, join_ref, topic, PHX_ERROR, payload_json, out);
}

/// Appends a fan-out broadcast (`presence_diff`, text `broadcast`): both refs null.
pub fn encode_broadcast(vsn: Vsn, topic: &str, event: &str, payload_json: &str, out: &mut Vec<u8>) {
    encode_message(vsn, None, None, topic, event, payload_json, out);
}

/// Appends a user broadcast for one serializer and returns the frame type to send it as.
///
/// * JSON body, either vsn: a text `broadcast` whose payload is
///   `{"type":"broadcast","event":E,"payload":P}` plus `"meta":M` when there is metadata.
///   realtime-js handles text fan-out on vsn 2.0.0, so JSON never goes out as kind 4.
/// * Binary body, vsn 2.0.0: a kind-4 binary frame (encoding 0).
///
/// # Errors
/// [`EncodeError::BinaryOnV1`] for a binary body on vsn 1.0.0 (undeliverable; RT drops it) and
/// [`EncodeError::TooLong`] when a kind-4 string exceeds 255 bytes. Nothing is appended then.
pub fn encode_user_broadcast(
    vsn: Vsn,
    topic: &str,
    user_event: &str,
    metadata: Option<&RawValue>,
    body: UserBroadcastBody<'_>,
    out: &mut Vec<u8>,
) -> Result<FrameKind, EncodeError> {
    match (vsn, body) {
        (_, UserBroadcastBody::Json(payload)) => {
            let write_payload = |o: &mut Vec<u8>| {
                o.extend_from_slice(b"{\"type\":\"broadcast\",\"event\":");
                json::write_str(o, user_event);
                o.extend_from_slice(b",\"payload\":");
                o.extend_from_slice(payload.get().as_bytes());
                if let Some(meta) = metadata {
                    o.extend_from_slice(b",\"meta\":");
                    o.extend_from_slice(meta.get().as_bytes());
                }
                o.push(b'}');
            };
            match vsn {
                Vsn::V1 => v1::write(None, topic, BROADCAST, out, write_payload),
                Vsn::V2 => v2::write(None, None, topic, BROADCAST, out, write_payload),
            }
            Ok(FrameKind::Text)
        }
        (Vsn::V1, UserBroadcastBody::Binary(_)) => Err(EncodeError::BinaryOnV1),
        (Vsn::V2, body @ UserBroadcastBody::Binary(_)) => {
            binary::write_user_broadcast(
                topic,
                user_event,
                metadata.map(RawValue::get),
                body,
                out,
            )?;
            Ok(FrameKind::Binary)
        }
    }
}

fn debug_assert_json(text: &str) {
    debug_assert!(
        json::raw(text).is_some(),
        "payload is not valid json: {text:?}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(out: &[u8]) -> &str {
        std::str::from_utf8(out).unwrap()
    }

    #[test]
    fn close_uses_the_join_ref_as_ref() {
        let mut out = Vec::new();
        encode_close(Vsn::V2, Some("6"), "realtime:room1", &mut out);
        assert_eq!(text(&out), r#"["6","6","realtime:room1","phx_close",{}]"#);
    }

    #[test]
    fn encoders_append_without_clearing() {
        let mut out = b"x".to_vec();
        encode_broadcast(Vsn::V2, "t", "e", "1", &mut out);
        assert_eq!(text(&out), r#"x[null,null,"t","e",1]"#);
    }

    #[test]
    fn binary_user_broadcast_is_undeliverable_on_v1() {
        let mut out = Vec::new();
        let body = UserBroadcastBody::Binary(b"\x01");
        let err = encode_user_broadcast(Vsn::V1, "t", "e", None, body, &mut out);
        assert_eq!(err, Err(EncodeError::BinaryOnV1));
        assert!(out.is_empty());
    }

    #[test]
    fn json_user_broadcast_with_metadata_carries_meta() {
        let mut out = Vec::new();
        let body = UserBroadcastBody::Json(json::raw(r#"{"a":1}"#).unwrap());
        let meta = json::raw(r#"{"id":"x"}"#);
        let kind = encode_user_broadcast(Vsn::V2, "t", "e\"", meta, body, &mut out).unwrap();
        assert_eq!(kind, FrameKind::Text);
        assert_eq!(
            text(&out),
            r#"[null,null,"t","broadcast",{"type":"broadcast","event":"e\"","payload":{"a":1},"meta":{"id":"x"}}]"#
        );
    }
}
