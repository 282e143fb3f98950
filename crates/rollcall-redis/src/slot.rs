//! Redis Cluster hash slots: which of the 16,384 slots a key lives in (CRC16/XMODEM of the
//! key, or of its `{hash tag}` when it has a non-empty one, modulo 16,384). The connection
//! uses it to split a pipeline into one pipeline per slot, since a cluster node refuses
//! commands for slots it does not own and the client routes a pipeline by its first key.

use redis::{Arg, Cmd};

/// Number of hash slots in a Redis Cluster.
pub(crate) const SLOTS: u16 = 16_384;

/// CRC16, XMODEM variant (polynomial 0x1021, initial value 0), as Redis Cluster specifies.
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in bytes {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The part of `key` that is hashed: the text between the first `{` and the next `}` when
/// that is not empty, else the whole key.
fn hashed_part(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&b| b == b'{')
        && let Some(len) = key[open + 1..].iter().position(|&b| b == b'}')
        && len > 0
    {
        return &key[open + 1..open + 1 + len];
    }
    key
}

/// The hash slot of `key`.
pub(crate) fn of_key(key: &[u8]) -> u16 {
    crc16(hashed_part(key)) % SLOTS
}

/// The slot of a command whose first argument after the name is its key (every command the
/// adapter sends: HSET, SADD, SPUBLISH, ...); `None` for commands without one (PING).
pub(crate) fn of_command(cmd: &Cmd) -> Option<u16> {
    match cmd.args_iter().nth(1)? {
        Arg::Simple(key) => Some(of_key(key)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_matches_the_cluster_specification() {
        // The check value given in the Redis Cluster specification.
        assert_eq!(crc16(b"123456789"), 0x31C3);
    }

    #[test]
    fn slots_match_redis_cluster_keyslot() {
        // Values answered by `CLUSTER KEYSLOT` on Redis 7.
        assert_eq!(of_key(b"foo"), 12182);
        assert_eq!(of_key(b"bar"), 5061);
        assert_eq!(of_key(b"{user1000}.following"), of_key(b"user1000"));
        assert_eq!(of_key(b"{user1000}.followers"), of_key(b"user1000"));
        // An empty tag hashes the whole key; only the first tag counts.
        assert_eq!(of_key(b"foo{}{bar}"), crc16(b"foo{}{bar}") % SLOTS);
        assert_eq!(of_key(b"foo{{bar}}zap"), of_key(b"{bar"));
        assert_eq!(of_key(b"foo{bar}{zap}"), of_key(b"bar"));
    }

    #[test]
    fn a_command_is_placed_by_its_key_and_pings_by_none() {
        let mut c = redis::cmd("HSET");
        c.arg("rc:{room}:node:n1").arg("f").arg("v");
        assert_eq!(of_command(&c), Some(of_key(b"room")));
        assert_eq!(of_command(&redis::cmd("PING")), None);
    }
}
