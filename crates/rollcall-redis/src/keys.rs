//! The Redis key layout. Every key of one topic shares the hash tag `{topic}` and every key of
//! one node the tag `{node}`, so the layout works on Redis Cluster unchanged: commands that
//! touch several keys (pipelines per topic, per node) stay within one slot.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `P:{topic}:node:N` | hash | node N's presences in topic: `phx_ref` → a versioned entry (`wire/`) |
//! | `P:{topic}:nodes` | set | nodes with a hash for topic |
//! | `P:{topic}:ch` | channel | diffs, resets, node-gone notices, broadcasts, load markers |
//! | `P:node:{N}` | string, TTL | node N is alive |
//! | `P:node:{N}:topics` | set | topics where node N has presences |
//! | `P:node:{N}:reap` | string, TTL | lock held by the survivor that removes dead node N |
//! | `P:{nodes}` | set | every node that registered |
//! | `P:status:{key}` | hash, TTL | per node: deadline, status, last seen, connections (bar-separated) |

/// Builds key and channel names under one prefix (`P` above; default `rc`).
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_string(),
        }
    }

    pub(crate) fn topic_hash(&self, topic: &str, node: &str) -> String {
        format!("{}:{{{topic}}}:node:{node}", self.prefix)
    }

    pub(crate) fn topic_nodes(&self, topic: &str) -> String {
        format!("{}:{{{topic}}}:nodes", self.prefix)
    }

    pub(crate) fn channel(&self, topic: &str) -> String {
        format!("{}:{{{topic}}}:ch", self.prefix)
    }

    /// The topic a channel name belongs to (None for foreign channels).
    pub(crate) fn topic_of_channel<'a>(&self, channel: &'a str) -> Option<&'a str> {
        channel
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix(":{")?
            .strip_suffix("}:ch")
    }

    pub(crate) fn node_alive(&self, node: &str) -> String {
        format!("{}:node:{{{node}}}", self.prefix)
    }

    pub(crate) fn node_topics(&self, node: &str) -> String {
        format!("{}:node:{{{node}}}:topics", self.prefix)
    }

    pub(crate) fn node_reap(&self, node: &str) -> String {
        format!("{}:node:{{{node}}}:reap", self.prefix)
    }

    pub(crate) fn nodes(&self) -> String {
        format!("{}:{{nodes}}", self.prefix)
    }

    pub(crate) fn status(&self, key: &str) -> String {
        format!("{}:status:{{{key}}}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_channel_name_maps_back_to_its_topic_even_with_braces() {
        let k = Keys::new("rc");
        for topic in ["realtime:room", "private|realtime:a}b{c", ""] {
            assert_eq!(k.topic_of_channel(&k.channel(topic)), Some(topic));
        }
        assert_eq!(k.topic_of_channel("other:{x}:ch"), None);
    }

    #[test]
    fn every_key_of_a_topic_shares_its_hash_tag() {
        let k = Keys::new("rc");
        assert!(k.topic_hash("t", "n1").contains("{t}"));
        assert!(k.topic_nodes("t").contains("{t}"));
        assert!(k.node_topics("n1").contains("{n1}"));
        assert!(k.node_reap("n1").contains("{n1}"));
    }
}
