//! Volatile status in Redis: per key a hash `status:{key}` with one field per node holding
//! `<deadline unix ms>|<status>|<last_seen unix ms>|<connections>`. Redis 7.0 has no per-field
//! expiry, so the deadline is in the value (readers skip passed ones) and the whole hash gets
//! the TTL on every write: it disappears once no node refreshes it. Writes and reads are one
//! pipeline per call, whatever the number of keys.

use rollcall_core::Status;

use crate::cluster::{Cluster, unix_ms};
use crate::error::RedisOpError;
use crate::metrics::ClusterMetrics;

/// What one node says about one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusEntry {
    /// The key.
    pub key: String,
    /// [`Status::Online`] or [`Status::Idle`] (an offline key has no entry).
    pub status: Status,
    /// Last activity, Unix milliseconds.
    pub last_seen_ms: u64,
    /// Connections holding the key on this node.
    pub connections: u32,
}

/// The other nodes' combined view of one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteStatus {
    /// Online if any node says so, else idle.
    pub status: Status,
    /// The latest activity any node reports, Unix milliseconds.
    pub last_seen_ms: u64,
    /// Connections on the other nodes together.
    pub connections: u32,
}

impl Cluster {
    /// Writes this node's entries (and removes its entries of `gone` keys) in one pipeline.
    ///
    /// # Errors
    /// Redis is unreachable.
    pub async fn write_statuses(
        &self,
        entries: &[StatusEntry],
        gone: &[String],
    ) -> Result<(), RedisOpError> {
        if entries.is_empty() && gone.is_empty() {
            return Ok(());
        }
        let me = self.cfg.node_id.as_str();
        let ttl = self.cfg.status_ttl.as_millis() as u64;
        let deadline = unix_ms() + ttl;
        let mut pipe = redis::pipe();
        for e in entries {
            let key = self.keys.status(&e.key);
            let value = format!(
                "{deadline}|{}|{}|{}",
                e.status.as_str(),
                e.last_seen_ms,
                e.connections
            );
            pipe.cmd("HSET").arg(&key).arg(me).arg(value).ignore();
            pipe.cmd("PEXPIRE").arg(&key).arg(ttl).ignore();
        }
        for k in gone {
            pipe.cmd("HDEL").arg(self.keys.status(k)).arg(me).ignore();
        }
        let mut con = self.con().await?;
        pipe.query_async::<()>(&mut con)
            .await
            .inspect_err(|_| self.failed())?;
        self.succeeded();
        ClusterMetrics::add(&self.metrics.status_writes, entries.len() as u64);
        Ok(())
    }

    /// The other nodes' live entries for `keys`, in order: one pipelined round trip.
    ///
    /// # Errors
    /// Redis is unreachable.
    pub async fn statuses(&self, keys: &[&str]) -> Result<Vec<Option<RemoteStatus>>, RedisOpError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for k in keys {
            pipe.cmd("HGETALL").arg(self.keys.status(k));
        }
        let mut con = self.con().await?;
        ClusterMetrics::inc(&self.metrics.status_round_trips);
        let rows: Vec<Vec<(String, String)>> = pipe
            .query_async(&mut con)
            .await
            .inspect_err(|_| self.failed())?;
        self.succeeded();
        let now = unix_ms();
        Ok(rows
            .into_iter()
            .map(|fields| combine(&fields, &self.cfg.node_id, now))
            .collect())
    }
}

fn combine(fields: &[(String, String)], me: &str, now: u64) -> Option<RemoteStatus> {
    let mut out: Option<RemoteStatus> = None;
    for (node, value) in fields {
        if node == me {
            continue;
        }
        let mut parts = value.split('|');
        let (Some(deadline), Some(status), Some(seen), Some(conns)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let (Ok(deadline), Ok(seen), Ok(conns)) = (
            deadline.parse::<u64>(),
            seen.parse::<u64>(),
            conns.parse::<u32>(),
        ) else {
            continue;
        };
        if deadline <= now {
            continue;
        }
        let status = if status == "online" {
            Status::Online
        } else {
            Status::Idle
        };
        let o = out.get_or_insert(RemoteStatus {
            status,
            last_seen_ms: 0,
            connections: 0,
        });
        if status == Status::Online {
            o.status = Status::Online;
        }
        o.last_seen_ms = o.last_seen_ms.max(seen);
        o.connections += conns;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_combine_across_nodes_and_skip_expired_and_own() {
        let f = |n: &str, v: &str| (n.to_string(), v.to_string());
        let fields = [
            f("a", "2000|idle|10|1"),
            f("b", "2000|online|20|2"),
            f("c", "500|online|99|5"),
            f("me", "2000|online|50|1"),
        ];
        assert_eq!(
            combine(&fields, "me", 1000),
            Some(RemoteStatus {
                status: Status::Online,
                last_seen_ms: 20,
                connections: 3
            })
        );
        assert_eq!(combine(&fields[2..], "me", 1000), None);
    }
}
