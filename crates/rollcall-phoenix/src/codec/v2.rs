//! vsn 2.0.0 text frames: `[join_ref, ref, topic, event, payload]` (protocol §2.2).

use super::{Inbound, Payload, decode_ref, decode_string};
use crate::json;
use crate::{DecodeError, Field};

/// Decodes a client array frame of exactly 5 elements. RT (and Phoenix) silently ignore
/// elements past the fifth; Rollcall refuses them as malformed, since no client sends them
/// and a frame the server reads differently from its sender is a smuggling vector.
pub(super) fn decode(text: &str) -> Result<Inbound<'_>, DecodeError> {
    if json::first_byte(text) != Some(b'[') {
        return Err(json::syntax_error_or(text, DecodeError::NotAnArray));
    }
    let (len, head) = json::array_head::<5>(text).map_err(|e| DecodeError::from_json(&e))?;
    if len != 5 {
        return Err(DecodeError::Arity(len));
    }
    let [
        Some(join_ref),
        Some(msg_ref),
        Some(topic),
        Some(event),
        Some(payload),
    ] = head
    else {
        return Err(DecodeError::Arity(len));
    };
    Ok(Inbound {
        join_ref: decode_ref(join_ref, Field::JoinRef)?,
        msg_ref: decode_ref(msg_ref, Field::Ref)?,
        topic: decode_string(topic, Field::Topic)?,
        event: decode_string(event, Field::Event)?,
        payload: Payload::Json(payload),
    })
}

/// Appends `[JR,R,T,E,P]`; `payload` writes P.
pub(super) fn write(
    join_ref: Option<&str>,
    msg_ref: Option<&str>,
    topic: &str,
    event: &str,
    out: &mut Vec<u8>,
    payload: impl FnOnce(&mut Vec<u8>),
) {
    out.push(b'[');
    json::write_opt_str(out, join_ref);
    out.push(b',');
    json::write_opt_str(out, msg_ref);
    out.push(b',');
    json::write_str(out, topic);
    out.push(b',');
    json::write_str(out, event);
    out.push(b',');
    payload(out);
    out.push(b']');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_elements_are_refused() {
        assert_eq!(
            decode(r#"["1","2","t","e",{"a":1},"extra"]"#).unwrap_err(),
            DecodeError::Arity(6)
        );
        assert_eq!(
            decode(r#"["1","2","t","e",{"a":1},"extra",[]]"#).unwrap_err(),
            DecodeError::Arity(7)
        );
    }

    #[test]
    fn numeric_refs_are_kept_as_their_text() {
        let m = decode(r#"[6,8,"t","e",{}]"#).unwrap();
        assert_eq!(
            (m.join_ref.as_deref(), m.msg_ref.as_deref()),
            (Some("6"), Some("8"))
        );
    }

    #[test]
    fn short_arrays_report_their_length() {
        assert_eq!(decode("[]").unwrap_err(), DecodeError::Arity(0));
        assert_eq!(
            decode(r#"[null,"1","t","e"]"#).unwrap_err(),
            DecodeError::Arity(4)
        );
    }

    #[test]
    fn written_frames_are_five_element_arrays() {
        let mut out = Vec::new();
        write(None, Some("3"), "phoenix", "phx_reply", &mut out, |o| {
            o.extend(b"{}")
        });
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"[null,"3","phoenix","phx_reply",{}]"#
        );
    }
}
