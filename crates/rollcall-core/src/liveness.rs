//! Connection liveness: last heartbeat per connection and bucketed expiry deadlines.
//!
//! A heartbeat only overwrites `last_beat` (O(1), no timer moves). Each connection has one
//! entry in the deadline buckets; when it pops, the connection either expired
//! (`last_beat + timeout ≤ now`) or is re-armed at its true deadline. So a connection costs at
//! most one timer operation per timeout period, and a tick costs O(entries due).

use std::collections::HashMap;

use foldhash::fast::RandomState;
use smallvec::SmallVec;

use crate::config::Config;
use crate::error::ConnectError;
use crate::ids::{ConnId, Key, Topic};
use crate::time::Millis;
use crate::timer::Deadlines;

/// One open connection.
#[derive(Debug)]
pub(crate) struct ConnRecord {
    pub(crate) last_beat: Millis,
    bucket: u64,
    /// Every (topic, key) this connection tracks, so closing it finds its presences.
    pub(crate) tracks: SmallVec<[(Topic, Key); 1]>,
}

/// One shard's connections.
#[derive(Debug)]
pub(crate) struct ConnShard {
    conns: HashMap<ConnId, ConnRecord, RandomState>,
    deadlines: Deadlines<ConnId>,
}

impl ConnShard {
    pub(crate) fn new(cfg: &Config) -> Self {
        ConnShard {
            conns: HashMap::default(),
            deadlines: Deadlines::new(cfg.timer_granularity),
        }
    }

    pub(crate) fn connect(
        &mut self,
        conn: ConnId,
        now: Millis,
        cfg: &Config,
    ) -> Result<(), ConnectError> {
        if self.conns.contains_key(&conn) {
            return Err(ConnectError::AlreadyConnected(conn));
        }
        let bucket = self.deadlines.schedule(now + cfg.expiry_timeout(), conn);
        self.conns.insert(
            conn,
            ConnRecord {
                last_beat: now,
                bucket,
                tracks: SmallVec::new(),
            },
        );
        Ok(())
    }

    /// Records inbound traffic; false if the connection is unknown (closed or expired).
    pub(crate) fn heartbeat(&mut self, conn: ConnId, now: Millis) -> bool {
        match self.conns.get_mut(&conn) {
            Some(r) => {
                if now > r.last_beat {
                    r.last_beat = now;
                }
                true
            }
            None => false,
        }
    }

    pub(crate) fn get_mut(&mut self, conn: ConnId) -> Option<&mut ConnRecord> {
        self.conns.get_mut(&conn)
    }

    pub(crate) fn remove(&mut self, conn: ConnId) -> Option<ConnRecord> {
        self.conns.remove(&conn)
    }

    /// Removes and returns connections silent for the expiry timeout at `now`.
    pub(crate) fn pop_expired(
        &mut self,
        now: Millis,
        cfg: &Config,
        out: &mut Vec<(ConnId, ConnRecord)>,
    ) {
        let mut due = Vec::new();
        self.deadlines.pop_due(now, &mut due);
        let timeout = cfg.expiry_timeout();
        for (bucket, conn) in due {
            let Some(record) = self.conns.get_mut(&conn) else {
                continue; // closed since it was scheduled
            };
            if record.bucket != bucket {
                continue;
            }
            let deadline = record.last_beat + timeout;
            if deadline <= now {
                let record = self.conns.remove(&conn).expect("looked up above");
                out.push((conn, record));
            } else {
                record.bucket = self.deadlines.schedule(deadline, conn);
            }
        }
    }

    pub(crate) fn next_due(&self) -> Option<Millis> {
        self.deadlines.next_due()
    }

    pub(crate) fn len(&self) -> usize {
        self.conns.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        Config {
            heartbeat_interval: Millis(10),
            missed_heartbeats: 3,
            timer_granularity: Millis(1),
            ..Config::default()
        }
    }

    #[test]
    fn a_silent_connection_expires_at_interval_times_missed() {
        let cfg = cfg();
        let mut s = ConnShard::new(&cfg);
        s.connect(ConnId(1), Millis(0), &cfg).unwrap();
        let mut out = Vec::new();
        s.pop_expired(Millis(29), &cfg, &mut out);
        assert!(out.is_empty());
        s.pop_expired(Millis(30), &cfg, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn heartbeats_push_the_deadline_back() {
        let cfg = cfg();
        let mut s = ConnShard::new(&cfg);
        s.connect(ConnId(1), Millis(0), &cfg).unwrap();
        assert!(s.heartbeat(ConnId(1), Millis(20)));
        let mut out = Vec::new();
        s.pop_expired(Millis(30), &cfg, &mut out);
        assert!(out.is_empty());
        assert_eq!(s.next_due(), Some(Millis(50)));
        s.pop_expired(Millis(50), &cfg, &mut out);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn duplicate_connect_is_refused_and_unknown_heartbeat_reported() {
        let cfg = cfg();
        let mut s = ConnShard::new(&cfg);
        s.connect(ConnId(1), Millis(0), &cfg).unwrap();
        assert_eq!(
            s.connect(ConnId(1), Millis(0), &cfg),
            Err(ConnectError::AlreadyConnected(ConnId(1)))
        );
        assert!(!s.heartbeat(ConnId(2), Millis(1)));
    }
}
