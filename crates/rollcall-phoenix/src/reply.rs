//! Reply and system payload bodies, and the exact reason and message strings clients see.
//! This is the only place an error becomes wire text.

use crate::PresenceError;
use crate::json;

/// Reply status for success.
pub const STATUS_OK: &str = "ok";
/// Reply status for failure.
pub const STATUS_ERROR: &str = "error";

/// Join refused: the topic is not `realtime:*` (Phoenix's own reply).
pub const UNMATCHED_TOPIC: &str = "unmatched topic";
/// Join refused: `realtime:` with an empty subtopic.
pub const TOPIC_NAME_REQUIRED: &str = "TopicNameRequired: You must provide a topic name";
/// Join refused: too many channels on this socket.
pub const CHANNEL_RATE_LIMIT_REACHED: &str = "ChannelRateLimitReached: Too many channels";
/// Join refused: too many joins per second; RT also disconnects the socket.
pub const CLIENT_JOIN_RATE_LIMIT_REACHED: &str =
    "ClientJoinRateLimitReached: Too many joins per second";
/// Heartbeat refused: more heartbeats per second than the server allows (ours; RT has no
/// heartbeat limit). A client sends one every 25 s, so only a flood sees this.
pub const CLIENT_HEARTBEAT_RATE_LIMIT_REACHED: &str =
    "ClientHeartbeatRateLimitReached: Too many heartbeats per second";
/// Join refused: too many connected users.
pub const CONNECTION_RATE_LIMIT_REACHED: &str =
    "ConnectionRateLimitReached: Too many connected users";
/// Join refused: `config.broadcast.replay` on a public channel.
pub const UNABLE_TO_REPLAY_MESSAGES: &str =
    "UnableToReplayMessages: Replay is not allowed for public channels";
/// Join refused: `postgres_changes` bindings, which this server does not provide (ours).
pub const POSTGRES_CHANGES_NOT_SUPPORTED: &str = "PostgresChangesNotSupported: postgres_changes is not supported, this server provides presence and broadcast only";
/// Track refused: the meta is not an object.
pub const PRESENCE_PAYLOAD_NOT_A_MAP: &str = "Presence track payload must be a map";
/// Broadcast with `ack` refused for size; sent as the bare response string (protocol §5.1).
pub const PAYLOAD_SIZE_EXCEEDED: &str = "payload_size_exceeded";

/// System message before closing: the channel exceeded its presence calls per window.
pub const CLIENT_PRESENCE_RATE_LIMIT_EXCEEDED: &str = "Client presence rate limit exceeded";
/// System message before closing: the tenant exceeded presence events per second.
pub const TOO_MANY_PRESENCE_MESSAGES: &str = "Too many presence messages per second";
/// System message before closing: a track meta over the payload limit.
pub const TRACK_MESSAGE_SIZE_EXCEEDED: &str = "Track message size exceeded";
/// System message before closing: the tenant exceeded events per second.
pub const TOO_MANY_MESSAGES: &str = "Too many messages per second";
/// System message to every channel before an operator drain (sent without `channel`).
pub const SERVER_REQUESTED_DISCONNECT: &str = "Server requested disconnect";

/// The `phx_error` payload Phoenix ≥ 1.8.11 sends for a crashed channel.
pub const CHANNEL_CRASH: &str = r#"{"reason":"channel_crash"}"#;

/// The empty response `{}`, for `ok` replies and reason-less `error` replies.
pub const fn ok_empty() -> &'static str {
    "{}"
}

/// An error response `{"reason":"..."}`.
///
/// ```
/// use rollcall_phoenix::reply::{error_reason, UNMATCHED_TOPIC};
/// assert_eq!(error_reason(UNMATCHED_TOPIC), r#"{"reason":"unmatched topic"}"#);
/// ```
pub fn error_reason(reason: &str) -> String {
    let mut out = Vec::with_capacity(reason.len() + 13);
    out.extend_from_slice(b"{\"reason\":");
    json::write_str(&mut out, reason);
    out.push(b'}');
    into_string(out)
}

/// A `system` push payload (protocol §3.6):
/// `{"extension":"system","status":S,"message":M,"channel":C}`, without `channel` when None.
/// `channel` is the subtopic (`room1`, not `realtime:room1`).
pub fn system_message(status: &str, message: &str, channel: Option<&str>) -> String {
    let mut out = Vec::with_capacity(64 + message.len());
    out.extend_from_slice(b"{\"extension\":\"system\",\"status\":");
    json::write_str(&mut out, status);
    out.extend_from_slice(b",\"message\":");
    json::write_str(&mut out, message);
    if let Some(channel) = channel {
        out.extend_from_slice(b",\"channel\":");
        json::write_str(&mut out, channel);
    }
    out.push(b'}');
    into_string(out)
}

impl PresenceError {
    /// The reason of the error reply, or None for an error reply with response `{}`.
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            PresenceError::MetaNotAMap => Some(PRESENCE_PAYLOAD_NOT_A_MAP),
            PresenceError::NotAnObject | PresenceError::EventNotAString => None,
        }
    }

    /// The full error response body: `{"reason":..}` or `{}`.
    pub fn response(&self) -> String {
        self.reason()
            .map_or_else(|| ok_empty().to_owned(), error_reason)
    }
}

fn into_string(out: Vec<u8>) -> String {
    String::from_utf8(out).expect("serde_json writes valid utf-8 around utf-8 input")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_escaped_json() {
        assert_eq!(error_reason("a \"b\""), r#"{"reason":"a \"b\""}"#);
        let reason: serde_json::Value =
            serde_json::from_str(&error_reason(TOPIC_NAME_REQUIRED)).unwrap();
        assert_eq!(reason["reason"], TOPIC_NAME_REQUIRED);
    }

    #[test]
    fn system_messages_match_the_spec_shape() {
        assert_eq!(
            system_message(STATUS_ERROR, TOO_MANY_MESSAGES, Some("room1")),
            r#"{"extension":"system","status":"error","message":"Too many messages per second","channel":"room1"}"#
        );
        assert_eq!(
            system_message(STATUS_OK, SERVER_REQUESTED_DISCONNECT, None),
            r#"{"extension":"system","status":"ok","message":"Server requested disconnect"}"#
        );
    }

    #[test]
    fn every_presence_error_maps_to_its_reply() {
        let cases = [
            (
                PresenceError::MetaNotAMap,
                r#"{"reason":"Presence track payload must be a map"}"#,
            ),
            (PresenceError::NotAnObject, "{}"),
            (PresenceError::EventNotAString, "{}"),
        ];
        for (err, want) in cases {
            assert_eq!(err.response(), want, "{err:?}");
        }
    }
}
