//! The joined channels of one socket: a small vector, not a hash map.
//!
//! A socket usually joins one to a few channels (at most `max_channels_per_connection`), so a
//! linear scan is as fast as hashing and an idle connection holds one small allocation instead
//! of a hash table's buckets.

use super::Channel;

/// Topic → channel, in join order.
#[derive(Debug, Default)]
pub(super) struct Channels(Vec<(String, Channel)>);

impl Channels {
    pub(super) fn get(&self, topic: &str) -> Option<&Channel> {
        self.0.iter().find(|(t, _)| t == topic).map(|(_, c)| c)
    }

    pub(super) fn get_mut(&mut self, topic: &str) -> Option<&mut Channel> {
        self.0.iter_mut().find(|(t, _)| t == topic).map(|(_, c)| c)
    }

    pub(super) fn contains_key(&self, topic: &str) -> bool {
        self.get(topic).is_some()
    }

    /// Adds a channel; the caller has removed any channel of the same topic first.
    pub(super) fn insert(&mut self, topic: String, channel: Channel) {
        debug_assert!(!self.contains_key(&topic));
        // Exact growth: most sockets join one or two channels, and the default first
        // capacity (4 entries) would hold ~400 unused bytes on every one of them.
        self.0.reserve_exact(1);
        self.0.push((topic, channel));
    }

    pub(super) fn remove(&mut self, topic: &str) -> Option<Channel> {
        let i = self.0.iter().position(|(t, _)| t == topic)?;
        let (_, c) = self.0.swap_remove(i);
        if self.0.is_empty() {
            self.0 = Vec::new(); // release the buffer of a socket that left everything
        }
        Some(c)
    }

    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    pub(super) fn drain(&mut self) -> impl Iterator<Item = (String, Channel)> + '_ {
        self.0.drain(..)
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&String, &Channel)> {
        self.0.iter().map(|(t, c)| (t, c))
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &Channel> {
        self.0.iter().map(|(_, c)| c)
    }
}

impl std::ops::Index<&str> for Channels {
    type Output = Channel;
    fn index(&self, topic: &str) -> &Channel {
        self.get(topic)
            .expect("the caller checked the topic is joined")
    }
}
