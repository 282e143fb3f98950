//! Whether the database is usable right now, as the writer last saw it.
//!
//! The writer task owns the truth: it marks the database up once migrations, the replay of a
//! leftover spill file and crash recovery are done, down when a write, a probe or a step of
//! that start-up fails, and up again when a later attempt succeeds. Queries read the state
//! first and fail at once while it is not up, instead of waiting for a pool timeout.

use tokio::sync::watch;

/// The database as last seen by the writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbState {
    /// The first connection attempt has not finished yet.
    Starting,
    /// Migrated, recovered and taking writes.
    Up,
    /// The last attempt failed (the message says why); rows spill to disk and the writer
    /// retries in the background.
    Down(String),
}

/// Shared, observable [`DbState`].
#[derive(Debug)]
pub(crate) struct Health {
    tx: watch::Sender<DbState>,
}

impl Health {
    /// A state that starts as `initial`.
    pub(crate) fn new(initial: DbState) -> Health {
        Health {
            tx: watch::Sender::new(initial),
        }
    }

    /// The current state.
    pub(crate) fn get(&self) -> DbState {
        self.tx.borrow().clone()
    }

    /// True when the database is up.
    pub(crate) fn is_up(&self) -> bool {
        *self.tx.borrow() == DbState::Up
    }

    /// Marks the database up; logs the transition.
    pub(crate) fn set_up(&self) {
        self.tx.send_if_modified(|s| {
            if *s == DbState::Up {
                return false;
            }
            if matches!(s, DbState::Down(_)) {
                tracing::info!("database reachable again");
            }
            *s = DbState::Up;
            true
        });
    }

    /// Marks the database down with `why`; logs the first failure of an outage.
    pub(crate) fn set_down(&self, why: &str) {
        self.tx.send_if_modified(|s| {
            if !matches!(s, DbState::Down(_)) {
                tracing::warn!(
                    error = why,
                    "database unavailable: rows spill to disk until it is back"
                );
            }
            let new = DbState::Down(why.to_string());
            if *s == new {
                return false;
            }
            *s = new;
            true
        });
    }

    /// A receiver that sees every later change.
    pub(crate) fn subscribe(&self) -> watch::Receiver<DbState> {
        self.tx.subscribe()
    }
}
