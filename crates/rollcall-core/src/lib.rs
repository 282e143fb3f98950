//! # rollcall-core
//!
//! The sans-IO presence engine behind Rollcall. It answers *who is present in which topic,
//! on how many connections, and whether each user is online, idle or offline*, and it says
//! what changed so adapters can tell clients and databases. It does no I/O: no sockets, no
//! async runtime, no clock. Every time-dependent call takes `now` ([`Millis`]), so tests
//! control time exactly.
//!
//! ## Model
//! * **Presence table**: topic → key → presences. A presence is one connection's track of a
//!   key in a topic: a [`PresenceRef`] and a JSON [`Meta`]. One key may have many presences
//!   (devices, tabs). A second track by the same connection is an update.
//! * **Diffs**: every change yields a [`Diff`] (`joins`, `leaves`) per topic, shaped like
//!   Supabase's `presence_diff` ([`Diff::write_json`]); with `diff_batch_window` > 0 the diffs
//!   of a topic are coalesced over the window.
//! * **Liveness**: connections heartbeat; one silent for `heartbeat_interval ×
//!   missed_heartbeats` is expired by [`Engine::tick`] at a cost of O(expired).
//! * **Status**: per key across everything: [`Status::Online`], [`Status::Idle`],
//!   [`Status::Offline`], with `last_seen`, and [`StatusEvent`]s `Login`/`Logout` (debounced
//!   by `offline_grace`) and `Idle`/`Active`.
//! * **Watch sets**: [`Engine::watch`] a set of keys and receive only real status changes;
//!   [`Engine::statuses`] answers a batch query.
//!
//! ## Call order
//! See [`Engine`]. Outputs accumulate in a caller-owned [`Outputs`].
//!
//! ## Concurrency
//! [`Engine`] is `Sync`: connections are split into shards behind short-held
//! `std::sync::Mutex`es, and presences, topics and key statuses form one table behind one
//! more (lock order connection shard → table). A heartbeat takes exactly one shard lock; a
//! track takes its connection's shard and the table for a few hundred nanoseconds. See the
//! `engine` module source for the full story.
//!
//! ## Memory
//! Topics and keys are interned to `u32` ids (key text once, in an arena); connections,
//! presences and key statuses are fixed-size records in slabs that refer to each other by id
//! (24, 40 and 32 bytes), found through hash indexes that hold bare ids. A presence shares its
//! [`Meta`] (reference-counted JSON text) with every diff it appears in.
//!
//! ## Dependencies
//! serde_json (meta validation and string escaping), thiserror, smallvec, foldhash. Nothing
//! async and no I/O: adapters depend on this crate, never the reverse.
//!
//! ```
//! use rollcall_core::{Config, ConnId, Engine, Key, Meta, Millis, Outputs, Topic};
//! let engine = Engine::new(Config::default()).unwrap();
//! let mut out = Outputs::default();
//! engine.connect(ConnId(1), Millis(0)).unwrap();
//! let meta = Meta::parse(r#"{"status":"online"}"#).unwrap();
//! engine.track(ConnId(1), &Topic::new("realtime:room1"), &Key::new("alice"), meta, Millis(0), &mut out).unwrap();
//! assert_eq!(out.diffs.len(), 1);          // alice joined realtime:room1
//! assert_eq!(out.events.len(), 1);         // Login { key: alice }
//! ```

mod config;
mod diff;
mod engine;
mod error;
mod ids;
mod index;
mod intern;
mod json;
mod keys;
mod liveness;
mod meta;
mod output;
mod query;
mod slab;
mod status;
mod table;
mod time;
mod timer;
mod topics;

pub use config::Config;
pub use diff::{Diff, DiffEntry, PresenceView};
pub use engine::{DiffSink, Engine, Stats, Tracked};
pub use error::{ConfigError, ConnectError, MetaError, QueryError, TrackError};
pub use ids::{ConnId, Key, PRESENCE_REF_LEN, PresenceRef, Topic, WatchId};
pub use json::{write_presence, write_presence_text, write_state};
pub use meta::Meta;
pub use output::{KeyStatus, LeaveReason, Outputs, Status, StatusEvent, TopicDiff, WatchEvent};
pub use table::TrackChange;
pub use time::Millis;
