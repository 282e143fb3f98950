//! Which master of a Redis Cluster serves each hash slot, read with `CLUSTER SLOTS`, so the
//! connection can send one pipeline per master instead of one per slot (a status flush of
//! 10,000 keys is then three requests on three masters, not 10,000). The map is only a hint:
//! a command sent to a master that no longer owns its slot is answered `MOVED` and resent
//! through the client's own routing, and the map is read again (at most once a second).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::Value;
use redis::cluster_async::ClusterConnection;

use crate::cluster::lock;

/// Slot ranges and their masters.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct OwnerMap {
    /// `(first slot, last slot, index into addrs)`, sorted by first slot.
    ranges: Vec<(u16, u16, usize)>,
    /// Each master's host and port.
    pub(crate) addrs: Vec<(String, u16)>,
}

impl OwnerMap {
    /// Parses a `CLUSTER SLOTS` reply: `[[first, last, [host, port, id, ...], replicas...], ...]`.
    /// `None` if it is not one, or names a master without a host.
    pub(crate) fn parse(v: &Value) -> Option<OwnerMap> {
        let Value::Array(entries) = v else {
            return None;
        };
        let int = |v: &Value| match v {
            Value::Int(i) => u16::try_from(*i).ok(),
            _ => None,
        };
        let text = |v: &Value| match v {
            Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
            Value::SimpleString(s) => Some(s.clone()),
            _ => None,
        };
        let mut map = OwnerMap {
            ranges: Vec::new(),
            addrs: Vec::new(),
        };
        for e in entries {
            let Value::Array(fields) = e else {
                return None;
            };
            let (first, last) = (int(fields.first()?)?, int(fields.get(1)?)?);
            let Value::Array(master) = fields.get(2)? else {
                return None;
            };
            let host = text(master.first()?).filter(|h| !h.is_empty())?;
            let port = int(master.get(1)?)?;
            let addr = (host, port);
            let n = match map.addrs.iter().position(|a| *a == addr) {
                Some(n) => n,
                None => {
                    map.addrs.push(addr);
                    map.addrs.len() - 1
                }
            };
            map.ranges.push((first, last, n));
        }
        map.ranges.sort_unstable();
        Some(map)
    }

    /// The master serving `slot`, as an index into `addrs`.
    pub(crate) fn owner(&self, slot: u16) -> Option<usize> {
        let i = self
            .ranges
            .partition_point(|r| r.0 <= slot)
            .checked_sub(1)?;
        let (first, last, n) = self.ranges[i];
        (first..=last).contains(&slot).then_some(n)
    }
}

/// The current map, shared by every clone of a cluster connection.
#[derive(Debug, Default)]
pub(crate) struct SlotOwners {
    state: Mutex<(Option<Arc<OwnerMap>>, Option<Instant>)>,
}

impl SlotOwners {
    /// The map, read from the cluster if missing and not tried within the last second.
    pub(crate) async fn get(&self, c: &mut ClusterConnection) -> Option<Arc<OwnerMap>> {
        {
            let mut s = lock(&self.state);
            if let Some(m) = &s.0 {
                return Some(m.clone());
            }
            if s.1.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
                return None;
            }
            s.1 = Some(Instant::now());
        }
        let reply: Value = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(c)
            .await
            .ok()?;
        let map = Arc::new(OwnerMap::parse(&reply)?);
        lock(&self.state).0 = Some(map.clone());
        Some(map)
    }

    /// Drops the map (a redirect showed it stale); the next [`SlotOwners::get`] reads it again.
    pub(crate) fn invalidate(&self) {
        lock(&self.state).0 = None;
    }

    /// Whether a map is held.
    #[cfg(test)]
    pub(crate) fn is_known(&self) -> bool {
        lock(&self.state).0.is_some()
    }

    /// Replaces the map with one that sends every slot to `addr` (stale on purpose).
    #[cfg(test)]
    pub(crate) fn set_all_to(&self, addr: (String, u16)) {
        let map = OwnerMap {
            ranges: vec![(0, crate::slot::SLOTS - 1, 0)],
            addrs: vec![addr],
        };
        lock(&self.state).0 = Some(Arc::new(map));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master(first: i64, last: i64, port: i64) -> Value {
        Value::Array(vec![
            Value::Int(first),
            Value::Int(last),
            Value::Array(vec![
                Value::BulkString(b"127.0.0.1".to_vec()),
                Value::Int(port),
                Value::BulkString(b"id".to_vec()),
            ]),
        ])
    }

    #[test]
    fn a_cluster_slots_reply_maps_every_slot_to_its_master() {
        let reply = Value::Array(vec![
            master(5461, 10922, 7001),
            master(0, 5460, 7000),
            master(10923, 16383, 7002),
        ]);
        let m = OwnerMap::parse(&reply).unwrap();
        let port = |slot| m.addrs[m.owner(slot).unwrap()].1;
        assert_eq!((port(0), port(5460), port(5461)), (7000, 7000, 7001));
        assert_eq!((port(10922), port(10923), port(16383)), (7001, 7002, 7002));
    }

    #[test]
    fn gaps_and_malformed_replies_are_not_guessed() {
        let m = OwnerMap::parse(&Value::Array(vec![master(0, 100, 7000)])).unwrap();
        assert_eq!(m.owner(101), None);
        assert!(OwnerMap::parse(&Value::Nil).is_none());
        let no_host = Value::Array(vec![Value::Array(vec![
            Value::Int(0),
            Value::Int(10),
            Value::Array(vec![Value::BulkString(vec![]), Value::Int(7000)]),
        ])]);
        assert!(OwnerMap::parse(&no_host).is_none());
    }
}
