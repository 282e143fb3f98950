//! Topic and event names of the protocol, spelled once.

/// The socket-level topic heartbeats use.
pub const PHOENIX_TOPIC: &str = "phoenix";
/// The prefix of every channel topic realtime-js joins (`realtime:room1`).
pub const TOPIC_PREFIX: &str = "realtime:";

/// Client joins a channel.
pub const PHX_JOIN: &str = "phx_join";
/// Client leaves a channel.
pub const PHX_LEAVE: &str = "phx_leave";
/// Server replies to a push that carried a ref.
pub const PHX_REPLY: &str = "phx_reply";
/// Server closed a channel (`ref` = `join_ref`, payload `{}`).
pub const PHX_CLOSE: &str = "phx_close";
/// Server reports a crashed channel (`ref` = `join_ref`).
pub const PHX_ERROR: &str = "phx_error";
/// Client keep-alive on [`PHOENIX_TOPIC`].
pub const HEARTBEAT: &str = "heartbeat";
/// Client track/untrack push.
pub const PRESENCE: &str = "presence";
/// Server's full presence list after a join.
pub const PRESENCE_STATE: &str = "presence_state";
/// Server's presence joins and leaves fan-out.
pub const PRESENCE_DIFF: &str = "presence_diff";
/// User broadcast, both directions.
pub const BROADCAST: &str = "broadcast";
/// Server system message (protocol §3.6).
pub const SYSTEM: &str = "system";
/// Client token refresh (protocol §3.9); never replied to.
pub const ACCESS_TOKEN: &str = "access_token";
