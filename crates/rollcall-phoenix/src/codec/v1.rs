//! vsn 1.0.0 text frames: JSON objects (protocol §2.1).
//!
//! Clients send `{"topic","event","payload","ref","join_ref"}`; the server writes only
//! `topic`, `event`, `payload` and `ref`, never `join_ref` (PHX `v1_json_serializer.ex`).

use serde_json::value::RawValue;

use super::{Inbound, Payload, decode_ref, decode_string};
use crate::json;
use crate::{DecodeError, Field};

/// Decodes a client object frame.
pub(super) fn decode(text: &str) -> Result<Inbound<'_>, DecodeError> {
    if json::first_byte(text) != Some(b'{') {
        return Err(json::syntax_error_or(text, DecodeError::NotAnObject));
    }
    let [topic, event, payload, msg_ref, join_ref] =
        json::object_fields(text, &["topic", "event", "payload", "ref", "join_ref"])
            .map_err(|e| DecodeError::from_json(&e))?;
    let topic = required(topic, Field::Topic)?;
    let event = required(event, Field::Event)?;
    let payload = required(payload, Field::Payload)?;
    let msg_ref = required(msg_ref, Field::Ref)?;
    Ok(Inbound {
        join_ref: match join_ref {
            Some(raw) => decode_ref(raw, Field::JoinRef)?,
            None => None,
        },
        msg_ref: decode_ref(msg_ref, Field::Ref)?,
        topic: decode_string(topic, Field::Topic)?,
        event: decode_string(event, Field::Event)?,
        payload: Payload::Json(payload),
    })
}

fn required(value: Option<&RawValue>, field: Field) -> Result<&RawValue, DecodeError> {
    value.ok_or(DecodeError::MissingField(field))
}

/// Appends `{"topic":T,"event":E,"payload":P,"ref":R}`; `payload` writes P. The join ref is
/// not written: v1 server frames carry none.
pub(super) fn write(
    msg_ref: Option<&str>,
    topic: &str,
    event: &str,
    out: &mut Vec<u8>,
    payload: impl FnOnce(&mut Vec<u8>),
) {
    out.extend_from_slice(b"{\"topic\":");
    json::write_str(out, topic);
    out.extend_from_slice(b",\"event\":");
    json::write_str(out, event);
    out.extend_from_slice(b",\"payload\":");
    payload(out);
    out.extend_from_slice(b",\"ref\":");
    json::write_opt_str(out, msg_ref);
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_join_ref_is_none_and_null_ref_is_allowed() {
        let m = decode(r#"{"topic":"t","event":"e","payload":{},"ref":null}"#).unwrap();
        assert_eq!((m.join_ref, m.msg_ref), (None, None));
    }

    #[test]
    fn each_required_field_is_named_when_missing() {
        let cases = [
            (r#"{"event":"e","payload":{},"ref":"1"}"#, Field::Topic),
            (r#"{"topic":"t","payload":{},"ref":"1"}"#, Field::Event),
            (r#"{"topic":"t","event":"e","ref":"1"}"#, Field::Payload),
            (r#"{"topic":"t","event":"e","payload":{}}"#, Field::Ref),
        ];
        for (text, field) in cases {
            assert_eq!(
                decode(text).unwrap_err(),
                DecodeError::MissingField(field),
                "{text}"
            );
        }
    }

    #[test]
    fn written_frames_have_no_join_ref() {
        let mut out = Vec::new();
        write(Some("7"), "realtime:a", "phx_reply", &mut out, |o| {
            o.extend_from_slice(b"{}")
        });
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"topic":"realtime:a","event":"phx_reply","payload":{},"ref":"7"}"#
        );
    }
}
