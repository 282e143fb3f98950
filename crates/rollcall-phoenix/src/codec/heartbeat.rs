//! The heartbeat fast path. Heartbeats are most of a presence server's traffic (every socket,
//! every 25 s with realtime-js), and realtime-js and phoenix.js send them as the same bytes
//! every time: `[null,"REF","phoenix","heartbeat",{}]`. Recognising that exact shape by
//! comparing bytes skips the general JSON decode; anything else (other spacing, escapes in the
//! ref, vsn 1.0.0) takes the general path and gets the same answer.

use crate::Vsn;

const PREFIX: &str = "[null,\"";
const SUFFIX: &str = "\",\"phoenix\",\"heartbeat\",{}]";
/// Longest ref the fast path takes (realtime-js counts up from 1).
const MAX_REF: usize = 32;

/// The ref of a vsn 2.0.0 heartbeat sent in its canonical form with a plain ref (ASCII
/// letters, digits, `-`, `_`, `.`, 1 to 32 bytes); None for anything else, which the caller
/// decodes in full.
///
/// ```
/// use rollcall_phoenix::{plain_heartbeat_ref, Vsn};
/// assert_eq!(plain_heartbeat_ref(Vsn::V2, r#"[null,"42","phoenix","heartbeat",{}]"#), Some("42"));
/// assert_eq!(plain_heartbeat_ref(Vsn::V2, r#"[null, "42","phoenix","heartbeat",{}]"#), None);
/// ```
pub fn plain_heartbeat_ref(vsn: Vsn, text: &str) -> Option<&str> {
    if vsn != Vsn::V2 {
        return None;
    }
    let r = text.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    let plain = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
    (!r.is_empty() && r.len() <= MAX_REF && r.bytes().all(plain)).then_some(r)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::{decode_text, encode_reply, event};

    #[test]
    fn only_the_canonical_vsn2_shape_is_taken() {
        fn v2(t: &str) -> Option<&str> {
            plain_heartbeat_ref(Vsn::V2, t)
        }
        assert_eq!(v2(r#"[null,"1","phoenix","heartbeat",{}]"#), Some("1"));
        assert_eq!(
            v2(r#"[null,"a-b_c.9","phoenix","heartbeat",{}]"#),
            Some("a-b_c.9")
        );
        for other in [
            r#"[null,"","phoenix","heartbeat",{}]"#,
            r#"[null,"\u0031","phoenix","heartbeat",{}]"#,
            r#"[null,"1","phoenix","heartbeat",{"a":1}]"#,
            r#"["1","1","phoenix","heartbeat",{}]"#,
            r#"[null,"1","phoenix","heartbeat",{}] "#,
            r#"[null,"1","phoenix","heartbeat",{},1]"#,
            r#"[null,"1","room","heartbeat",{}]"#,
            r#"[null,"1\",\"x","phoenix","heartbeat",{}]"#,
        ] {
            assert_eq!(v2(other), None, "{other}");
        }
        let long = format!(r#"[null,"{}","phoenix","heartbeat",{{}}]"#, "1".repeat(33));
        assert_eq!(v2(&long), None);
        assert_eq!(
            plain_heartbeat_ref(Vsn::V1, r#"[null,"1","phoenix","heartbeat",{}]"#),
            None
        );
    }

    proptest! {
        /// Whatever the fast path takes, the full decoder reads as the same heartbeat.
        #[test]
        fn what_the_fast_path_takes_decodes_to_the_same_heartbeat(
            r in "[-_.a-zA-Z0-9\"\\\\ ]{0,40}",
            pad in prop::bool::ANY,
        ) {
            let text = if pad {
                format!(r#"[null, "{r}","phoenix","heartbeat",{{}}]"#)
            } else {
                format!(r#"[null,"{r}","phoenix","heartbeat",{{}}]"#)
            };
            if let Some(fast) = plain_heartbeat_ref(Vsn::V2, &text) {
                let m = decode_text(Vsn::V2, &text).expect("a heartbeat the fast path took");
                prop_assert_eq!(m.topic.as_ref(), event::PHOENIX_TOPIC);
                prop_assert_eq!(m.event.as_ref(), event::HEARTBEAT);
                prop_assert!(m.join_ref.is_none());
                prop_assert_eq!(m.msg_ref.as_deref(), Some(fast));
                let mut out = Vec::new();
                encode_reply(Vsn::V2, None, Some(fast), "phoenix", "ok", "{}", &mut out);
                let expected = format!(r#"[null,"{fast}","phoenix","phx_reply",{{"status":"ok","response":{{}}}}]"#);
                prop_assert_eq!(out, expected.into_bytes());
            } else {
                prop_assert!(pad || r.is_empty() || r.len() > MAX_REF || r.contains(['"', '\\', ' ']));
            }
        }
    }
}
