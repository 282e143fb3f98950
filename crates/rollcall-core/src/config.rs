//! Engine configuration: every limit and timing is here, each with its default.

use crate::error::ConfigError;
use crate::time::Millis;

/// Settings of an [`crate::Engine`]. Build with `Config::default()` and adjust fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// How often clients are expected to send something (any inbound message counts).
    /// Default 60 s. Must be > 0.
    pub heartbeat_interval: Millis,
    /// A connection silent for `heartbeat_interval × missed_heartbeats` is expired.
    /// Default 3. Must be ≥ 1.
    pub missed_heartbeats: u32,
    /// A key whose presences show no activity (track, update, broadcast; not heartbeats) for
    /// this long becomes `Idle`. Default 5 min; `None` disables idle detection.
    pub idle_after: Option<Millis>,
    /// After a key's last presence leaves, `Logout` waits this long; a re-track within it
    /// cancels the logout, so a page reload is not a logout/login pair. Default 10 s.
    pub offline_grace: Millis,
    /// Diffs of one topic are coalesced over this window; 0 emits each diff at once.
    /// Default 0 (as Phoenix does for local changes).
    pub diff_batch_window: Millis,
    /// Resolution of every timer (expiry, grace, idle, batch flush): deadlines are rounded up
    /// to a multiple of it. Default 100 ms. Must be > 0.
    pub timer_granularity: Millis,
    /// Largest meta JSON text accepted by `track`. Default 32 KiB.
    pub max_meta_bytes: usize,
    /// Longest presence key accepted by `track`, `statuses` and `watch`, in UTF-8 bytes.
    /// Keys are stored once per presence and once per status record, so an unbounded key is
    /// unbounded memory. Default 255 (Supabase's topic limit). Must be ≥ 1.
    pub max_key_bytes: usize,
    /// Most presences one key may hold in one topic (devices/tabs). Default 256. ≥ 1.
    pub max_presences_per_key: usize,
    /// Most distinct keys in one topic. Default 100,000. ≥ 1.
    pub max_keys_per_topic: usize,
    /// Most keys in one status query or watch set. Default 10,000. ≥ 1.
    pub max_batch_keys: usize,
    /// An offline key's `last_seen` is kept this long, then forgotten (unless watched), so
    /// memory does not grow with every key ever seen. Default 1 h.
    pub forget_offline_after: Millis,
    /// Most offline keys remembered at once (their `last_seen`), so churn of unique keys
    /// cannot grow memory without bound within `forget_offline_after`; over it the oldest
    /// offline key is forgotten first. Watched keys are never forgotten and are not evicted.
    /// Default 1,000,000: a full `forget_offline_after` hour of churn at ~280 new keys/s,
    /// while capping that memory at ~60 MB (a remembered key costs its 32-byte record, an
    /// index slot, a deadline entry and its text: about 60 B for a 12-byte key).
    /// 0 forgets each key as soon as it goes offline.
    pub max_offline_keys: usize,
    /// Number of lock shards of the connection map (heartbeats take one shard lock); more
    /// shards, less contention. Presences, topics and keys share one table lock. Default 64.
    /// 1..=4096.
    pub shards: usize,
    /// Mixed into presence refs so refs differ across restarts and nodes. Default 0; the server
    /// passes a random value.
    pub ref_seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            heartbeat_interval: Millis::from_secs(60),
            missed_heartbeats: 3,
            idle_after: Some(Millis::from_secs(300)),
            offline_grace: Millis::from_secs(10),
            diff_batch_window: Millis::ZERO,
            timer_granularity: Millis(100),
            max_meta_bytes: 32 * 1024,
            max_key_bytes: 255,
            max_presences_per_key: 256,
            max_keys_per_topic: 100_000,
            max_batch_keys: 10_000,
            forget_offline_after: Millis::from_secs(3600),
            max_offline_keys: 1_000_000,
            shards: 64,
            ref_seed: 0,
        }
    }
}

impl Config {
    /// Silence after which a connection expires: `heartbeat_interval × missed_heartbeats`.
    pub fn expiry_timeout(&self) -> Millis {
        Millis(
            self.heartbeat_interval
                .0
                .saturating_mul(u64::from(self.missed_heartbeats)),
        )
    }

    /// Checks every field's constraint.
    ///
    /// # Errors
    /// The first field out of range, named as in this struct.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |key, allowed| Err(ConfigError { key, allowed });
        if self.heartbeat_interval == Millis::ZERO {
            return fail("heartbeat_interval", "a duration greater than 0");
        }
        if self.missed_heartbeats == 0 {
            return fail("missed_heartbeats", "an integer of at least 1");
        }
        if self.idle_after == Some(Millis::ZERO) {
            return fail(
                "idle_after",
                "a duration greater than 0, or none to disable",
            );
        }
        if self.timer_granularity == Millis::ZERO {
            return fail("timer_granularity", "a duration greater than 0");
        }
        if self.max_presences_per_key == 0 {
            return fail("max_presences_per_key", "an integer of at least 1");
        }
        if self.max_keys_per_topic == 0 {
            return fail("max_keys_per_topic", "an integer of at least 1");
        }
        if self.max_batch_keys == 0 {
            return fail("max_batch_keys", "an integer of at least 1");
        }
        if self.max_key_bytes == 0 {
            return fail("max_key_bytes", "an integer of at least 1");
        }
        if self.max_meta_bytes < 2 {
            return fail(
                "max_meta_bytes",
                "an integer of at least 2 (the size of {})",
            );
        }
        if self.shards == 0 || self.shards > 4096 {
            return fail("shards", "an integer from 1 to 4096");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_expire_after_three_minutes() {
        let c = Config::default();
        c.validate().unwrap();
        assert_eq!(c.expiry_timeout(), Millis::from_secs(180));
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let c = Config {
            missed_heartbeats: 0,
            ..Config::default()
        };
        let err = c.validate().unwrap_err();
        assert_eq!(err.key, "missed_heartbeats");
        assert!(err.to_string().contains("missed_heartbeats"));
        let c = Config {
            shards: 0,
            ..Config::default()
        };
        assert_eq!(c.validate().unwrap_err().key, "shards");
        let c = Config {
            max_key_bytes: 0,
            ..Config::default()
        };
        assert_eq!(c.validate().unwrap_err().key, "max_key_bytes");
    }
}
