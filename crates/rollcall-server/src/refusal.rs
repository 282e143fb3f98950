//! Every "no" the server says to a client, in one enum. A [`Refusal`] knows its wire text
//! (Supabase's reason strings where Supabase has one, see docs/protocol.md), its metric label
//! (`rollcall_errors_total{reason=...}`) and its HTTP status. Nowhere else is an error turned
//! into wire text: the session, the WebSocket upgrade and the REST API all render from here.

use std::borrow::Cow;

use rollcall_phoenix::reply;

use crate::auth::AuthError;

/// A refused request, connection or channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// A push to a topic this socket has not joined, or not under `realtime:`.
    UnmatchedTopic,
    /// `realtime:` with nothing after it.
    TopicNameRequired,
    /// A topic longer than `max_topic_bytes`.
    TopicTooLong {
        /// The limit.
        max: usize,
    },
    /// More joins per second than `max_joins_per_second` (the socket is closed too).
    JoinRate,
    /// A join payload that does not parse.
    InvalidJoinPayload(String),
    /// `postgres_changes` asked for (Rollcall has presence and broadcast only).
    PostgresChanges,
    /// Replay asked for on a public channel.
    ReplayPublic,
    /// A token refused at join (reply) or on connect (HTTP 401).
    Token(AuthError),
    /// A joined channel's new or expiring token failed: the channel ends.
    TokenRevoked(AuthError),
    /// A token that expired while the channel was joined.
    TokenExpired {
        /// How long ago, in seconds.
        secs_ago: u64,
    },
    /// A token refresh for another user while keys are token subs: the channel stays on its
    /// current token (a `system` error, not an end).
    RefreshToOtherUser,
    /// The access rules refuse this private topic.
    PrivateTopic {
        /// The topic without `realtime:`.
        topic: String,
    },
    /// A refreshed token no longer passes the private topic's rules: the channel ends.
    PrivateTopicRevoked {
        /// The topic without `realtime:`.
        topic: String,
    },
    /// The presence key disagrees with the token (`presence_key = sub`).
    PresenceKeyMismatch(&'static str),
    /// A presence or watched key longer than `max_key_bytes`.
    KeyTooLong {
        /// The key's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// More channels than `max_channels_per_connection`.
    TooManyChannels,
    /// A presence push whose payload is not JSON or does not parse.
    InvalidPresence(Cow<'static, str>),
    /// A track whose meta is not a JSON object.
    PresenceNotAMap,
    /// A track in `presence_key = sub` mode without a `sub` claim.
    PresenceWithoutSub,
    /// A track over the channel's presence-call budget: the channel ends.
    PresenceRate,
    /// A track whose meta is over `max_meta_bytes`: the channel ends.
    TrackTooLarge,
    /// A track over `max_keys_per_topic` (the engine's text).
    TooManyKeys(String),
    /// A track over `max_presences_per_key` (the engine's text).
    TooManyPresences(String),
    /// Another engine refusal of a track.
    TrackRefused(String),
    /// A broadcast push that does not parse.
    InvalidBroadcast(String),
    /// More heartbeats per second than `max_heartbeats_per_second`.
    HeartbeatRate,
    /// More messages per second than `max_events_per_second`.
    EventRate,
    /// An event this server does not handle.
    UnknownEvent(String),
    /// An event on the `phoenix` topic other than `heartbeat`.
    UnknownPhoenixEvent(String),
    /// An event on the status topic other than `watch` and `unwatch`.
    UnknownStatusEvent(String),
    /// `status_read = service_role` and the token is not one.
    StatusRead,
    /// A refreshed token may no longer watch statuses: the channel ends.
    StatusReadRevoked,
    /// A `watch`/`unwatch` payload that does not parse.
    InvalidWatch(String),
    /// A watched key over `max_key_bytes` (the engine's text).
    WatchKeyTooLong(String),
    /// More watched keys than allowed on one socket.
    TooManyWatchedKeys {
        /// The limit.
        max: usize,
        /// Keys watched already.
        watched: usize,
        /// Keys in the request.
        asked: usize,
    },
    /// An upgrade whose `Sec-WebSocket-Key` is not 16 base64 bytes.
    BadHandshake,
    /// More sockets than `max_connections`.
    TooManyConnections,
}

impl Refusal {
    /// The text the client sees: the join/push reply's `reason`, the `system` message, or the
    /// HTTP error body.
    pub(crate) fn reason(&self) -> Cow<'static, str> {
        use Refusal::*;
        match self {
            UnmatchedTopic => reply::UNMATCHED_TOPIC.into(),
            TopicNameRequired => reply::TOPIC_NAME_REQUIRED.into(),
            TopicTooLong { max } => {
                format!("TopicNameTooLong: topic names are at most {max} bytes").into()
            }
            JoinRate => reply::CLIENT_JOIN_RATE_LIMIT_REACHED.into(),
            InvalidJoinPayload(why) => format!("InvalidJoinPayload: {why}").into(),
            PostgresChanges => reply::POSTGRES_CHANGES_NOT_SUPPORTED.into(),
            ReplayPublic => reply::UNABLE_TO_REPLAY_MESSAGES.into(),
            Token(e) => token_reason(e).into(),
            TokenRevoked(AuthError::Expired(s)) | TokenExpired { secs_ago: s } => {
                format!("Token has expired {s} seconds ago").into()
            }
            TokenRevoked(e) => token_text(e).into(),
            RefreshToOtherUser => "Token refresh refused: the new token is for another user \
                                   (sub); the channel keeps its current token, rejoin to change \
                                   user"
                .into(),
            PrivateTopic { topic } => format!(
                "Unauthorized: You do not have permissions to read from this Channel topic: {topic}"
            )
            .into(),
            PrivateTopicRevoked { topic } => {
                format!("You no longer have permission to read from this Channel topic: {topic}")
                    .into()
            }
            PresenceKeyMismatch(why) => (*why).into(),
            KeyTooLong { len, max } => {
                format!("PresenceKeyTooLong: presence key is {len} bytes, the limit is {max}")
                    .into()
            }
            TooManyChannels => reply::CHANNEL_RATE_LIMIT_REACHED.into(),
            InvalidPresence(why) => why.clone(),
            PresenceNotAMap => reply::PRESENCE_PAYLOAD_NOT_A_MAP.into(),
            PresenceWithoutSub => {
                "Unauthorized: presence_key = sub needs a token with a sub claim".into()
            }
            PresenceRate => reply::CLIENT_PRESENCE_RATE_LIMIT_EXCEEDED.into(),
            TrackTooLarge => reply::TRACK_MESSAGE_SIZE_EXCEEDED.into(),
            TooManyKeys(e) => format!("TooManyPresenceKeys: {e}").into(),
            TooManyPresences(e) => format!("TooManyPresences: {e}").into(),
            TrackRefused(e) => e.clone().into(),
            InvalidBroadcast(e) => format!("invalid broadcast: {e}").into(),
            HeartbeatRate => reply::CLIENT_HEARTBEAT_RATE_LIMIT_REACHED.into(),
            EventRate => reply::TOO_MANY_MESSAGES.into(),
            UnknownEvent(e) => format!("UnknownEvent: {e} is not handled by this server").into(),
            UnknownPhoenixEvent(e) => format!("unknown event on phoenix: {e}").into(),
            UnknownStatusEvent(e) => format!(
                "UnknownEvent: {e} is not handled on {} (watch, unwatch)",
                crate::session::STATUS_TOPIC
            )
            .into(),
            StatusRead => "Unauthorized: status_read = service_role: only service_role tokens \
                           may watch statuses"
                .into(),
            StatusReadRevoked => {
                "status_read = service_role: the new token may not watch statuses".into()
            }
            InvalidWatch(e) => e.clone().into(),
            WatchKeyTooLong(e) => format!("WatchKeyTooLong: {e}").into(),
            TooManyWatchedKeys {
                max,
                watched,
                asked,
            } => format!(
                "TooManyWatchedKeys: a socket watches at most {max} keys ({watched} watched, {asked} asked)"
            )
            .into(),
            BadHandshake => {
                "Sec-WebSocket-Key must be the base64 encoding of 16 bytes (RFC 6455 section 4.1)"
                    .into()
            }
            TooManyConnections => "Too many connected users".into(),
        }
    }

    /// The `rollcall_errors_total` label.
    pub(crate) fn metric(&self) -> &'static str {
        use Refusal::*;
        match self {
            UnmatchedTopic => "unmatched_topic",
            TopicNameRequired => "topic_name_required",
            TopicTooLong { .. } => "topic_too_long",
            JoinRate => "joins_rate",
            InvalidJoinPayload(_) => "invalid_join_payload",
            PostgresChanges => "postgres_changes",
            ReplayPublic => "replay_public",
            Token(_) | TokenRevoked(_) => "auth_refused",
            TokenExpired { .. } => "token_expired",
            RefreshToOtherUser => "refresh_other_sub",
            PrivateTopic { .. } | PrivateTopicRevoked { .. } => "private_refused",
            PresenceKeyMismatch(_) => "presence_key_mismatch",
            KeyTooLong { .. } | WatchKeyTooLong(_) => "key_too_long",
            TooManyChannels => "too_many_channels",
            InvalidPresence(_) | PresenceNotAMap => "invalid_presence",
            PresenceWithoutSub => "presence_without_sub",
            PresenceRate => "presence_rate",
            TrackTooLarge => "track_too_large",
            TooManyKeys(_) => "too_many_keys",
            TooManyPresences(_) => "too_many_presences",
            TrackRefused(_) => "track_refused",
            InvalidBroadcast(_) => "invalid_broadcast",
            HeartbeatRate => "heartbeats_rate",
            EventRate => "events_rate",
            UnknownEvent(_) | UnknownPhoenixEvent(_) | UnknownStatusEvent(_) => "unknown_event",
            StatusRead | StatusReadRevoked => "status_read_refused",
            InvalidWatch(_) => "invalid_watch",
            TooManyWatchedKeys { .. } => "too_many_watched_keys",
            BadHandshake => "bad_handshake",
            TooManyConnections => "too_many_connections",
        }
    }

    /// The HTTP status when the refusal answers an HTTP request (the upgrade or the REST API).
    pub(crate) fn http_status(&self) -> axum::http::StatusCode {
        use Refusal::*;
        match self {
            Token(_) | TokenRevoked(_) | TokenExpired { .. } | RefreshToOtherUser => {
                axum::http::StatusCode::UNAUTHORIZED
            }
            PrivateTopic { .. } | PrivateTopicRevoked { .. } | StatusRead | StatusReadRevoked => {
                axum::http::StatusCode::FORBIDDEN
            }
            JoinRate | HeartbeatRate | EventRate | PresenceRate | TooManyConnections => {
                axum::http::StatusCode::TOO_MANY_REQUESTS
            }
            TrackTooLarge => axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            _ => axum::http::StatusCode::BAD_REQUEST,
        }
    }

    /// The text of an HTTP error body: for tokens, Supabase's 401 text without the code
    /// prefix; otherwise the reason.
    pub(crate) fn http_message(&self) -> Cow<'static, str> {
        match self {
            Refusal::Token(e) => token_text(e).into(),
            other => other.reason(),
        }
    }
}

/// A token refusal as a join reply's reason: Supabase's code, then its text.
fn token_reason(e: &AuthError) -> String {
    let code = match e {
        AuthError::Malformed => "MalformedJWT",
        AuthError::BadSignature => "JwtSignatureError",
        _ => "InvalidJWTToken",
    };
    match e {
        AuthError::Expired(s) => format!("{code}: Token has expired {s} seconds ago"),
        other => format!("{code}: {}", token_text(other)),
    }
}

/// A token refusal's plain text (the 401 body on connect, the `system` message on a channel).
fn token_text(e: &AuthError) -> &'static str {
    match e {
        AuthError::Missing => "API key is missing",
        AuthError::Malformed => "The token provided is not a valid JWT",
        AuthError::BadSignature => "Failed to validate JWT signature",
        AuthError::Expired(_) => "Token has expired",
        AuthError::MissingClaims => "Fields `role` and `exp` are required in JWT",
        AuthError::NotYetValid => "Token is not valid yet",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_texts_follow_supabase() {
        assert_eq!(
            Refusal::Token(AuthError::Expired(5)).reason(),
            "InvalidJWTToken: Token has expired 5 seconds ago"
        );
        assert_eq!(
            Refusal::Token(AuthError::Malformed).reason(),
            "MalformedJWT: The token provided is not a valid JWT"
        );
        assert_eq!(
            Refusal::Token(AuthError::Missing).http_message(),
            "API key is missing"
        );
        assert_eq!(
            Refusal::TokenRevoked(AuthError::Expired(3)).reason(),
            "Token has expired 3 seconds ago"
        );
        assert_eq!(
            Refusal::TokenRevoked(AuthError::BadSignature).reason(),
            "Failed to validate JWT signature"
        );
    }

    #[test]
    fn each_refusal_has_a_label_and_a_status() {
        let r = Refusal::KeyTooLong { len: 300, max: 255 };
        assert_eq!(r.metric(), "key_too_long");
        assert_eq!(r.http_status(), axum::http::StatusCode::BAD_REQUEST);
        assert_eq!(
            r.reason(),
            "PresenceKeyTooLong: presence key is 300 bytes, the limit is 255"
        );
        assert_eq!(
            Refusal::TooManyConnections.http_status(),
            axum::http::StatusCode::TOO_MANY_REQUESTS
        );
    }
}
