//! An async (tokio) client for Rollcall and Supabase Realtime: the Phoenix channels protocol as
//! `@supabase/realtime-js` speaks it (`docs/realtime-spec.md`; § numbers below
//! refer to it).
//!
//! * [`Client::connect`] opens one WebSocket (`apikey`, optional user token, vsn 1.0.0 or 2.0.0)
//!   and keeps it open: heartbeats every [`ClientConfig::heartbeat_interval`] (60 s by default),
//!   reconnects with backoff, re-joins every channel and re-tracks every tracked meta.
//! * [`Client::join`] joins a channel with Supabase's config (presence key/enabled, broadcast
//!   self/ack) and returns a [`Channel`]: [`Channel::track`], [`Channel::untrack`],
//!   [`Channel::broadcast`], [`Channel::presence_state`], and [`ChannelEvent`]s (presence
//!   join/leave/sync with realtime-js's exact sync semantics, §4.6; broadcasts; system).
//! * [`Client::watch`] yields only real online/offline changes of some keys, derived from the
//!   presence maps of the joined channels.
//!
//! Depends on rollcall-phoenix (codecs), tokio and tokio-tungstenite; `wss://` needs the `tls`
//! feature. Usage, and how it differs from realtime-js: `docs/clients.md`.
//!
//! # Layout
//! * `client.rs`: the handles. `driver.rs` (+ `driver/`): the task that owns the socket.
//! * [`presence`]: the sans-IO presence map. `watchers.rs`: watch sets.
//! * `config.rs`, `event.rs`, `error.rs`: the types above.

mod client;
mod config;
mod driver;
mod error;
mod event;
pub mod presence;
mod watchers;

pub use client::{Channel, ChannelEvents, Client, Connection, Watch};
pub use config::{ChannelConfig, ClientConfig};
pub use error::{ChannelError, ConfigError};
pub use event::{Broadcast, BroadcastBody, ChannelEvent, Status, StatusChange};
pub use presence::{Presence, PresenceEvent, PresenceState};
pub use rollcall_phoenix::Vsn;
