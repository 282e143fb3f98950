//! Payloads of the channel events `presence` (track/untrack, protocol §4.1–§4.2) and text
//! `broadcast` (protocol §5.1).

use std::borrow::Cow;

use serde_json::value::RawValue;

use crate::json::{self, Kind};
use crate::{BroadcastError, PresenceError};

/// What a `presence` push asks for.
#[derive(Debug, Clone)]
pub enum PresenceCommand<'a> {
    /// Track (or update) this channel's presence with `meta`, a JSON object; `{}` when the
    /// payload had no `payload` key.
    Track {
        /// The meta object, exactly as sent.
        meta: &'a RawValue,
    },
    /// Untrack this channel's presence.
    Untrack,
    /// No `event` key: RT replies `ok` and does nothing.
    NoOp,
    /// An event other than track/untrack, lower-cased: RT replies error `{}`.
    Unknown(String),
}

/// A text `broadcast` push: `{"type":"broadcast","event":E,"payload":P}`.
#[derive(Debug, Clone)]
pub struct BroadcastMessage<'a> {
    /// The user's event name.
    pub event: Cow<'a, str>,
    /// The user's payload, if any.
    pub payload: Option<&'a RawValue>,
    /// The whole push payload as sent: what a text fan-out forwards unchanged.
    pub raw: &'a RawValue,
}

/// Parses a `presence` push payload. The event is matched case-insensitively (RT lower-cases
/// it), so `TRACK` tracks.
///
/// # Errors
/// [`PresenceError::MetaNotAMap`] for a track whose `payload` is present but not an object
/// (null included); [`PresenceError::NotAnObject`] and [`PresenceError::EventNotAString`] for
/// payloads realtime-js never sends.
///
/// ```
/// use rollcall_phoenix::presence_msg::{parse_presence, PresenceCommand};
/// let raw = serde_json::from_str(r#"{"type":"presence","event":"untrack"}"#).unwrap();
/// assert!(matches!(parse_presence(raw), Ok(PresenceCommand::Untrack)));
/// ```
pub fn parse_presence(payload: &RawValue) -> Result<PresenceCommand<'_>, PresenceError> {
    let [event, meta] =
        json::object_of(payload, &["event", "payload"]).ok_or(PresenceError::NotAnObject)?;
    let Some(event) = event else {
        return Ok(PresenceCommand::NoOp);
    };
    let event = json::as_str(event).ok_or(PresenceError::EventNotAString)?;
    if event.eq_ignore_ascii_case("track") {
        let meta = meta.unwrap_or(json::empty_object());
        if json::kind(meta) != Kind::Object {
            return Err(PresenceError::MetaNotAMap);
        }
        Ok(PresenceCommand::Track { meta })
    } else if event.eq_ignore_ascii_case("untrack") {
        Ok(PresenceCommand::Untrack)
    } else {
        Ok(PresenceCommand::Unknown(event.to_lowercase()))
    }
}

/// Meta keys the server writes into every presence it lists (`phx_ref`, and `phx_ref_prev` on
/// an update; protocol §4.5). A client's own values would appear next to the server's, a
/// duplicate key in `presence_state`, so a tracked meta loses them.
pub const SERVER_META_KEYS: [&str; 2] = ["phx_ref", "phx_ref_prev"];

/// Removes the [`SERVER_META_KEYS`] from a client's meta object; true when any was there.
///
/// ```
/// use rollcall_phoenix::presence_msg::strip_server_meta_keys;
/// let mut meta = serde_json::json!({"status": "online", "phx_ref": "forged"});
/// assert!(strip_server_meta_keys(meta.as_object_mut().unwrap()));
/// assert_eq!(meta, serde_json::json!({"status": "online"}));
/// ```
pub fn strip_server_meta_keys(meta: &mut serde_json::Map<String, serde_json::Value>) -> bool {
    let mut stripped = false;
    for key in SERVER_META_KEYS {
        stripped |= meta.remove(key).is_some();
    }
    stripped
}

/// Parses a text `broadcast` push payload.
///
/// # Errors
/// [`BroadcastError`] when the payload is not an object or its `event` is not a string.
pub fn parse_broadcast(payload: &RawValue) -> Result<BroadcastMessage<'_>, BroadcastError> {
    let [event, body] =
        json::object_of(payload, &["event", "payload"]).ok_or(BroadcastError::NotAnObject)?;
    let event = event
        .and_then(json::as_str)
        .ok_or(BroadcastError::EventNotAString)?;
    Ok(BroadcastMessage {
        event,
        payload: body,
        raw: payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn presence(text: &str) -> Result<PresenceCommand<'_>, PresenceError> {
        parse_presence(json::raw(text).unwrap())
    }

    #[test]
    fn track_carries_the_meta_verbatim() {
        let cmd = presence(r#"{"type":"presence","event":"track","payload":{"status":"online"}}"#);
        let Ok(PresenceCommand::Track { meta }) = cmd else {
            panic!("{cmd:?}")
        };
        assert_eq!(meta.get(), r#"{"status":"online"}"#);
    }

    #[test]
    fn track_without_payload_tracks_an_empty_map() {
        let Ok(PresenceCommand::Track { meta }) = presence(r#"{"event":"TRACK"}"#) else {
            panic!()
        };
        assert_eq!(meta.get(), "{}");
    }

    #[test]
    fn track_with_a_non_map_payload_is_refused() {
        for meta in [r#""not a map""#, "null", "[]", "1"] {
            let text = format!(r#"{{"type":"presence","event":"track","payload":{meta}}}"#);
            assert_eq!(
                presence(&text).unwrap_err(),
                PresenceError::MetaNotAMap,
                "{meta}"
            );
        }
    }

    #[test]
    fn events_are_matched_case_insensitively_and_unknown_ones_kept() {
        assert!(matches!(
            presence(r#"{"type":"presence","event":"untrack"}"#),
            Ok(PresenceCommand::Untrack)
        ));
        assert!(matches!(
            presence(r#"{"event":"UnTrack"}"#),
            Ok(PresenceCommand::Untrack)
        ));
        assert!(matches!(
            presence(r#"{"type":"presence"}"#),
            Ok(PresenceCommand::NoOp)
        ));
        let Ok(PresenceCommand::Unknown(name)) = presence(r#"{"event":"Sync"}"#) else {
            panic!()
        };
        assert_eq!(name, "sync");
    }

    #[test]
    fn malformed_presence_payloads_are_refused() {
        assert_eq!(presence("[]").unwrap_err(), PresenceError::NotAnObject);
        assert_eq!(
            presence(r#"{"event":1}"#).unwrap_err(),
            PresenceError::EventNotAString
        );
    }

    #[test]
    fn server_meta_keys_are_stripped_and_others_kept() {
        let mut meta = serde_json::json!({"a": 1, "phx_ref": "x", "phx_ref_prev": "y"});
        assert!(strip_server_meta_keys(meta.as_object_mut().unwrap()));
        assert_eq!(meta, serde_json::json!({"a": 1}));
        assert!(!strip_server_meta_keys(meta.as_object_mut().unwrap()));
    }

    #[test]
    fn broadcast_keeps_event_payload_and_the_whole_object() {
        let text = r#"{"type":"broadcast","event":"hello","payload":{"msg":"hi"}}"#;
        let msg = parse_broadcast(json::raw(text).unwrap()).unwrap();
        assert_eq!(msg.event, "hello");
        assert_eq!(msg.payload.unwrap().get(), r#"{"msg":"hi"}"#);
        assert_eq!(msg.raw.get(), text);
        let err = parse_broadcast(json::raw(r#"{"type":"broadcast"}"#).unwrap()).unwrap_err();
        assert_eq!(err, BroadcastError::EventNotAString);
    }
}
