//! The two ways the adapter reaches Redis: one server (or a proxy) through a reconnecting
//! multiplexed connection, or a Redis Cluster through the client's cluster connection. Both
//! are wrapped in [`Con`], which the rest of the crate uses like any connection. On a cluster a
//! pipeline may only hold keys of one slot, so [`Con`] splits each pipeline into one pipeline
//! per slot, runs them concurrently and puts the answers back in order: the order of the
//! commands of one slot (one topic's hash, node set and channel share a slot) is kept.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::FutureExt;
use redis::aio::ConnectionManager;
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

use crate::slot;

/// How to connect: one server, or the seed nodes of a Redis Cluster.
#[derive(Clone)]
pub(crate) enum Backend {
    /// A single server (`redis://...`).
    Single(redis::Client),
    /// A Redis Cluster: its client for commands and the seed URLs (the pub/sub task builds a
    /// RESP3 client of its own from them).
    Cluster {
        client: Box<ClusterClient>,
        seeds: Vec<String>,
    },
}

impl Backend {
    /// Parses `url`: one URL, or in cluster mode comma-separated seed URLs.
    pub(crate) fn open(url: &str, cluster: bool) -> Result<Backend, redis::RedisError> {
        if !cluster {
            return Ok(Backend::Single(redis::Client::open(url)?));
        }
        let seeds: Vec<String> = url
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        if seeds.is_empty() {
            return Err((
                redis::ErrorKind::InvalidClientConfig,
                "no seed URL for the Redis Cluster",
            )
                .into());
        }
        for s in &seeds {
            // The builder accepts anything it cannot connect to; parse each seed here.
            redis::Client::open(s.as_str())?;
        }
        let client = ClusterClientBuilder::new(seeds.clone())
            .connection_timeout(Duration::from_secs(2))
            .response_timeout(Duration::from_secs(5))
            .retries(3)
            .build()?;
        Ok(Backend::Cluster {
            client: Box::new(client),
            seeds,
        })
    }

    /// Opens a data connection.
    pub(crate) async fn connect(&self) -> Result<Con, redis::RedisError> {
        match self {
            Backend::Single(client) => {
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(2)))
                    .set_response_timeout(Some(Duration::from_secs(5)))
                    .set_number_of_retries(1);
                let c = client.get_connection_manager_with_config(config).await?;
                Ok(Con::Single(c))
            }
            Backend::Cluster { client, .. } => {
                Ok(Con::Cluster(client.get_async_connection().await?))
            }
        }
    }

    /// The command that publishes on a topic channel: sharded pub/sub on a cluster (the
    /// message goes to the shard owning the channel's slot, not to every node), classic
    /// pub/sub on one server.
    pub(crate) fn publish_cmd(&self) -> &'static str {
        match self {
            Backend::Single(_) => "PUBLISH",
            Backend::Cluster { .. } => "SPUBLISH",
        }
    }
}

/// A connection to Redis: one server or a cluster. Cheap to clone (both are multiplexed).
#[derive(Clone)]
pub(crate) enum Con {
    /// One server, reconnecting.
    Single(ConnectionManager),
    /// A Redis Cluster.
    Cluster(ClusterConnection),
}

impl redis::aio::ConnectionLike for Con {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Con::Single(c) => c.req_packed_command(cmd),
            Con::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let c = match self {
            Con::Single(c) => return c.req_packed_commands(pipeline, offset, count),
            Con::Cluster(c) => c,
        };
        let groups = split_by_slot(pipeline);
        // A transaction (offset > 0) must be one slot anyway; one group needs no splitting.
        if offset != 0 || groups.len() <= 1 {
            return c.req_packed_commands(pipeline, offset, count);
        }
        let c = c.clone();
        async move {
            let parts = groups.into_iter().map(|(at, part)| {
                let mut c = c.clone();
                async move {
                    let values = c.req_packed_commands(&part, 0, at.len()).await?;
                    Ok::<_, redis::RedisError>((at, values))
                }
            });
            let answers = futures_util::future::try_join_all(parts).await?;
            let mut out = vec![Value::Nil; pipeline.len()];
            for (at, values) in answers {
                for (i, v) in at.into_iter().zip(values) {
                    out[i] = v;
                }
            }
            Ok(out)
        }
        .boxed()
    }

    fn get_db(&self) -> i64 {
        match self {
            Con::Single(c) => c.get_db(),
            Con::Cluster(c) => c.get_db(),
        }
    }
}

/// The commands of `pipeline` grouped by slot, each group with the positions of its commands
/// in the pipeline, in order. Commands without a key form one group of their own.
fn split_by_slot(pipeline: &Pipeline) -> Vec<(Vec<usize>, Pipeline)> {
    let mut groups: HashMap<Option<u16>, (Vec<usize>, Pipeline)> = HashMap::new();
    for (i, cmd) in pipeline.cmd_iter().enumerate() {
        let g = groups
            .entry(slot::of_command(cmd))
            .or_insert_with(|| (Vec::new(), redis::pipe()));
        g.0.push(i);
        g.1.add_command(cmd.clone());
    }
    groups.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipeline_splits_by_slot_and_keeps_each_slot_s_order() {
        let mut p = redis::pipe();
        p.cmd("HSET")
            .arg("rc:{a}:node:n")
            .arg("f")
            .arg("v")
            .ignore();
        p.cmd("SADD").arg("rc:node:{n}:topics").arg("a").ignore();
        p.cmd("SPUBLISH").arg("rc:{a}:ch").arg("m").ignore();
        p.cmd("HDEL").arg("rc:{b}:node:n").arg("f").ignore();
        p.cmd("PING");
        let mut groups = split_by_slot(&p);
        groups.sort_by_key(|(at, _)| at[0]);
        let at: Vec<Vec<usize>> = groups.iter().map(|(at, _)| at.clone()).collect();
        assert_eq!(at, vec![vec![0, 2], vec![1], vec![3], vec![4]]);
        assert!(groups.iter().all(|(at, p)| p.len() == at.len()));
    }

    #[test]
    fn cluster_seeds_are_parsed_one_by_one() {
        let b = Backend::open("redis://127.0.0.1:7000, redis://127.0.0.1:7001", true).unwrap();
        assert!(matches!(&b, Backend::Cluster { seeds, .. } if seeds.len() == 2));
        assert_eq!(b.publish_cmd(), "SPUBLISH");
        assert!(Backend::open("redis://127.0.0.1:7000,http://x", true).is_err());
        assert!(Backend::open("", true).is_err());
        assert_eq!(
            Backend::open("redis://127.0.0.1", false)
                .unwrap()
                .publish_cmd(),
            "PUBLISH"
        );
    }
}
