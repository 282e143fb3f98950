//! The exactness check of `million`: the `presence_state` of sampled rooms, read through the
//! HTTP API of random nodes, against the set the load generator tracked.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::nodes::http_get;
use crate::opts::{Group, Placement, mix, room_members, seat};

/// One sampled room: its topic and the connection indices of its members.
#[derive(Debug, Clone)]
pub struct Room {
    /// Topic without `realtime:`.
    pub topic: String,
    /// Member connection indices.
    pub members: std::ops::Range<usize>,
}

/// `count` distinct rooms drawn at random (seeded) from the run's layout.
pub fn pick(groups: &[Group], prefix: &str, total: usize, count: usize, seed: u64) -> Vec<Room> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    let mut x = seed;
    let mut tries = 0;
    while out.len() < count && tries < count * 20 + 100 && total > 0 {
        tries += 1;
        x = mix(x);
        let i = (x % total as u64) as usize;
        let members = room_members(groups, i);
        if seen.insert(members.start) {
            out.push(Room {
                topic: seat(groups, prefix, i).0,
                members,
            });
        }
    }
    out
}

/// How a sample compared.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Check {
    /// Rooms read.
    pub rooms: usize,
    /// Rooms whose presence_state equals the expected set exactly (one presence per key).
    pub exact: usize,
    /// Presences expected over the sample.
    pub presences_expected: usize,
    /// Presences read over the sample.
    pub presences_read: usize,
    /// The first few differences, for the report.
    pub differences: Vec<String>,
}

impl Check {
    /// Every sampled room was exact.
    pub fn ok(&self) -> bool {
        self.rooms > 0 && self.exact == self.rooms
    }
}

/// Reads each room from a random node of `alive` and compares it with the members for which
/// `expect(i)` holds, `u{i}` each with exactly one presence.
pub fn check(
    rooms: &[Room],
    addrs: &[SocketAddr],
    alive: &[usize],
    seed: u64,
    expect: impl Fn(usize) -> bool,
) -> Check {
    let mut c = Check {
        rooms: rooms.len(),
        ..Check::default()
    };
    let mut x = seed;
    for room in rooms {
        x = mix(x);
        let node = alive[(x % alive.len().max(1) as u64) as usize];
        let want: BTreeSet<String> = room
            .members
            .clone()
            .filter(|&i| expect(i))
            .map(|i| format!("u{i}"))
            .collect();
        c.presences_expected += want.len();
        let path = format!("/api/channels/{}/presence", room.topic);
        let got = http_get(addrs[node], &path)
            .map_err(|e| e.to_string())
            .and_then(|(status, body)| {
                if status != 200 {
                    return Err(format!("HTTP {status}: {body}"));
                }
                serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&body)
                    .map_err(|e| format!("bad JSON ({e}): {body}"))
            });
        let diff = match got {
            Err(e) => Some(format!("{} on node {node}: {e}", room.topic)),
            Ok(state) => {
                let metas = |v: &serde_json::Value| {
                    v.get("metas")
                        .and_then(|m| m.as_array())
                        .map_or(0, Vec::len)
                };
                c.presences_read += state.values().map(metas).sum::<usize>();
                let keys: BTreeSet<String> = state.keys().cloned().collect();
                let multi: Vec<&String> = state
                    .iter()
                    .filter(|(_, v)| metas(v) != 1)
                    .map(|(k, _)| k)
                    .collect();
                if keys == want && multi.is_empty() {
                    None
                } else {
                    Some(format!(
                        "{} on node {node}: missing {:?}, unexpected {:?}, not one presence {:?}",
                        room.topic,
                        want.difference(&keys).collect::<Vec<_>>(),
                        keys.difference(&want).collect::<Vec<_>>(),
                        multi
                    ))
                }
            }
        };
        match diff {
            None => c.exact += 1,
            Some(d) if c.differences.len() < 10 => c.differences.push(d),
            Some(_) => {}
        }
    }
    c
}

/// The members expected after node `dead` was killed: those placed elsewhere.
pub fn survivors(placement: Placement, nodes: usize, dead: usize) -> impl Fn(usize) -> bool {
    move |i| placement.server_of(i, nodes) != dead
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::opts::groups;

    #[test]
    fn picks_distinct_whole_rooms() {
        let g = groups("10", 1000).unwrap();
        let rooms = pick(&g, "m", 1000, 50, 7);
        assert_eq!(rooms.len(), 50);
        let firsts: BTreeSet<usize> = rooms.iter().map(|r| r.members.start).collect();
        assert_eq!(firsts.len(), 50);
        for r in &rooms {
            assert_eq!(r.members.len(), 10);
            assert_eq!(seat(&g, "m", r.members.start).0, r.topic);
        }
        // Asking for more rooms than exist returns them all once.
        assert_eq!(pick(&g, "m", 1000, 500, 1).len(), 100);
    }
}
