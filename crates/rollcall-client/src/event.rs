//! What a channel and a watch deliver.

use serde_json::Value;

use crate::presence::PresenceEvent;

/// Something that happened on a joined channel, in arrival order.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ChannelEvent {
    /// The server accepted a join: once after the first join, again after every rejoin (the
    /// client re-tracks its meta right after).
    Subscribed,
    /// A presence join, leave or sync (protocol §4.6).
    Presence(PresenceEvent),
    /// A user broadcast.
    Broadcast(Broadcast),
    /// A `system` message, e.g. `{"extension":"system","status":"error","message":..}`.
    System(Value),
    /// The channel errored (`phx_error`, a refused or timed-out rejoin); it rejoins with backoff.
    Error(String),
    /// The channel is closed for good: the server sent `phx_close`, or it was left. No rejoin.
    Closed,
}

/// A user broadcast received on a channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Broadcast {
    /// The user event name (`payload.event` in realtime-js).
    pub event: String,
    /// The user payload.
    pub payload: BroadcastBody,
    /// Metadata the sender or server attached (`meta`), if any.
    pub meta: Option<Value>,
}

/// A broadcast's user payload.
#[derive(Debug, Clone, PartialEq)]
pub enum BroadcastBody {
    /// JSON (every text broadcast; binary frames with encoding 1).
    Json(Value),
    /// Opaque bytes (binary frames with encoding 0, an `ArrayBuffer` in realtime-js).
    Binary(Vec<u8>),
}

/// Whether a key has a presence in any channel this client has joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// At least one presence under the key in a joined channel's presence map.
    Online,
    /// No presence under the key.
    Offline,
}

/// A real change of a watched key's [`Status`]: never the status it already had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    /// The presence key.
    pub key: String,
    /// Its new status.
    pub status: Status,
}
