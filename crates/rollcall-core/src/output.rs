//! What the engine hands back: diffs to fan out, status events to persist, watch changes to
//! deliver and connections to close. Callers own one [`Outputs`] and reuse it, so the hot path
//! allocates nothing once its vectors have grown.

use crate::diff::Diff;
use crate::ids::{ConnId, Key, Topic, WatchId};
use crate::time::Millis;

/// A diff for one topic, ready to serialise as `presence_diff`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDiff {
    /// The topic whose subscribers receive it.
    pub topic: Topic,
    /// The joins and leaves.
    pub diff: Diff,
}

/// Why a presence left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LeaveReason {
    /// The client untracked it, or left the channel.
    Untracked,
    /// The connection closed.
    Closed,
    /// The connection missed too many heartbeats.
    Timeout,
    /// The server is shutting down.
    Shutdown,
}

impl LeaveReason {
    /// A stable lowercase name, for logs, metrics and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            LeaveReason::Untracked => "untracked",
            LeaveReason::Closed => "closed",
            LeaveReason::Timeout => "timeout",
            LeaveReason::Shutdown => "shutdown",
        }
    }
}

/// A key's user-level status across all topics and connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// At least one live presence with recent activity.
    Online,
    /// Live presences, but none active for `idle_after`.
    Idle,
    /// No live presence (after `offline_grace`).
    Offline,
}

impl Status {
    /// Lowercase name as used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Online => "online",
            Status::Idle => "idle",
            Status::Offline => "offline",
        }
    }
}

/// A status transition of a key, emitted once per real change, in order per key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusEvent {
    /// Offline → online: the key's first presence appeared.
    Login {
        /// The key.
        key: Key,
        /// When the presence appeared.
        at: Millis,
    },
    /// Online/idle → offline: the last presence left and `offline_grace` passed.
    Logout {
        /// The key.
        key: Key,
        /// When the last presence left (its last heartbeat, for a timeout), not when grace ended.
        at: Millis,
        /// Why the last presence left.
        reason: LeaveReason,
    },
    /// Online → idle.
    Idle {
        /// The key.
        key: Key,
        /// When the key was found idle.
        at: Millis,
    },
    /// Idle → online, on new activity.
    Active {
        /// The key.
        key: Key,
        /// When the activity happened.
        at: Millis,
    },
}

impl StatusEvent {
    /// The key the event is about.
    pub fn key(&self) -> &Key {
        match self {
            StatusEvent::Login { key, .. }
            | StatusEvent::Logout { key, .. }
            | StatusEvent::Idle { key, .. }
            | StatusEvent::Active { key, .. } => key,
        }
    }
}

/// A status change of a watched key, for one watch set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    /// The watch set to notify.
    pub watch: WatchId,
    /// The key that changed.
    pub key: Key,
    /// Its new status (never equal to the previous one).
    pub status: Status,
}

/// The status of one key, as answered by a batch query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyStatus {
    /// The key asked about.
    pub key: Key,
    /// Online, idle or offline.
    pub status: Status,
    /// `now` while the key has presences, else when its last presence left; `None` if the
    /// engine never saw the key (or forgot it after `forget_offline_after`).
    pub last_seen: Option<Millis>,
    /// Distinct connections holding at least one presence of the key.
    pub connections: usize,
}

/// Everything one or more engine calls produced. Drain the vectors, then `clear()` and reuse.
#[derive(Debug, Default)]
pub struct Outputs {
    /// Diffs to send to each topic's subscribers, in order.
    pub diffs: Vec<TopicDiff>,
    /// Status transitions (for persistence and logs), in order per key.
    pub events: Vec<StatusEvent>,
    /// Changes for watch sets.
    pub watch: Vec<WatchEvent>,
    /// Connections the engine expired; the adapter closes their sockets.
    pub expired: Vec<ConnId>,
}

impl Outputs {
    /// Empties every vector, keeping capacity.
    pub fn clear(&mut self) {
        self.diffs.clear();
        self.events.clear();
        self.watch.clear();
        self.expired.clear();
    }

    /// True when nothing was produced.
    pub fn is_empty(&self) -> bool {
        self.diffs.is_empty()
            && self.events.is_empty()
            && self.watch.is_empty()
            && self.expired.is_empty()
    }
}
