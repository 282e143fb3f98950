//! The two ways the adapter reaches Redis: one server (or a proxy) through a reconnecting
//! multiplexed connection, or a Redis Cluster through the client's cluster connection. Both
//! are wrapped in [`Con`], which the rest of the crate uses like any connection. On a cluster
//! the client routes a pipeline by its first key only, so [`Con`] splits each pipeline: one
//! pipeline per master when the slot map is known (`shards.rs`), else one per slot; they run
//! concurrently and the answers are put back in order. The order of the commands of one slot
//! (one topic's hash, node set and channel share a slot) is kept either way.
//!
//! A stale map (a slot moved) sends some commands to a master that no longer owns them. The
//! client then retries that master's whole pipeline and fails with the redirect; the map is
//! dropped and that master's commands go out again through the per-slot path, whose client
//! follows redirects. Commands of that pipeline that had run may so run twice: every command
//! the adapter sends is idempotent (`HSET`, `HDEL`, `SADD`, `SREM`, `DEL`, `PEXPIRE`, reads)
//! except `SPUBLISH`, whose repeat is the same diff again right after the first, which views
//! drop (a join already known, a leave of an unknown ref).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use redis::aio::ConnectionManager;
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::SingleNodeRoutingInfo;
use redis::{Cmd, Pipeline, RedisFuture, Value};

use crate::shards::{OwnerMap, SlotOwners};
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
        owners: Arc<SlotOwners>,
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
            owners: Arc::default(),
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
            Backend::Cluster { client, owners, .. } => Ok(Con::Cluster(
                client.get_async_connection().await?,
                owners.clone(),
            )),
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
    /// A Redis Cluster, and which master serves each slot.
    Cluster(ClusterConnection, Arc<SlotOwners>),
}

impl redis::aio::ConnectionLike for Con {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Con::Single(c) => c.req_packed_command(cmd),
            Con::Cluster(c, _) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let (c, owners) = match self {
            Con::Single(c) => return c.req_packed_commands(pipeline, offset, count),
            Con::Cluster(c, owners) => (c, owners.clone()),
        };
        let cmds: Vec<&Cmd> = pipeline.cmd_iter().collect();
        let slots: Vec<Option<u16>> = cmds.iter().map(|c| slot::of_command(c)).collect();
        // A transaction (offset > 0) must be one slot anyway; one slot needs no splitting.
        if offset != 0 || slots.windows(2).all(|w| w[0] == w[1]) {
            return c.req_packed_commands(pipeline, offset, count);
        }
        let mut c = c.clone();
        async move {
            let mut out = vec![Value::Nil; cmds.len()];
            let rest = match owners.get(&mut c).await {
                Some(map) => per_master(&c, &owners, &map, &cmds, &slots, &mut out).await?,
                None => (0..cmds.len()).collect(),
            };
            let parts = group_by(&cmds, rest, |i| slots[i])
                .into_iter()
                .map(|(_, at, part)| {
                    let mut c = c.clone();
                    async move {
                        let values = c.req_packed_commands(&part, 0, at.len()).await?;
                        Ok::<_, redis::RedisError>((at, values))
                    }
                });
            for (at, values) in futures_util::future::try_join_all(parts).await? {
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
            Con::Cluster(c, _) => c.get_db(),
        }
    }
}

/// Sends the commands whose slot has a known master as one pipeline per master, writing
/// their answers into `out`; returns the positions left for the per-slot path, in order:
/// commands without a known master, and those a master redirected or could not be sent to.
async fn per_master(
    c: &ClusterConnection,
    owners: &SlotOwners,
    map: &OwnerMap,
    cmds: &[&Cmd],
    slots: &[Option<u16>],
    out: &mut [Value],
) -> Result<Vec<usize>, redis::RedisError> {
    let mut rest = Vec::new();
    let mut sends = Vec::new();
    for (owner, at, part) in group_by(cmds, 0..cmds.len(), |i| slots[i].and_then(|s| map.owner(s)))
    {
        let Some(n) = owner else {
            rest.extend(at);
            continue;
        };
        let (host, port) = map.addrs[n].clone();
        let mut c = c.clone();
        sends.push(async move {
            let to = SingleNodeRoutingInfo::ByAddress { host, port };
            let r = c.route_pipeline(part, 0, at.len(), to).await;
            (at, r)
        });
    }
    let mut stale = false;
    for (at, r) in futures_util::future::join_all(sends).await {
        let values = match r {
            Ok(values) => values,
            // A redirect (stale map), or no connection to that master (any more).
            Err(e)
                if e.is_cluster_error()
                    || e.kind() == redis::ErrorKind::ClusterConnectionNotFound =>
            {
                Vec::new()
            }
            Err(e) => return Err(e),
        };
        for (k, i) in at.into_iter().enumerate() {
            match values.get(k) {
                Some(v) if !redirected(v) => out[i] = v.clone(),
                _ => {
                    stale = true;
                    rest.push(i);
                }
            }
        }
    }
    if stale {
        owners.invalidate();
    }
    rest.sort_unstable();
    Ok(rest)
}

/// A master's answer that means "not run here, ask the cluster again".
fn redirected(v: &Value) -> bool {
    matches!(v, Value::ServerError(e)
        if matches!(e.code(), "MOVED" | "ASK" | "TRYAGAIN" | "CLUSTERDOWN"))
}

/// The commands of `cmds` at positions `at` grouped by `key`, each group with its key and the
/// positions of its commands, in the order of `at`.
fn group_by<K: Eq + std::hash::Hash>(
    cmds: &[&Cmd],
    at: impl IntoIterator<Item = usize>,
    key: impl Fn(usize) -> K,
) -> Vec<(K, Vec<usize>, Pipeline)> {
    let mut groups: HashMap<K, (Vec<usize>, Pipeline)> = HashMap::new();
    for i in at {
        let g = groups
            .entry(key(i))
            .or_insert_with(|| (Vec::new(), redis::pipe()));
        g.0.push(i);
        g.1.add_command(cmds[i].clone());
    }
    groups
        .into_iter()
        .map(|(k, (at, part))| (k, at, part))
        .collect()
}

/// The commands of `pipeline` grouped by slot (`None`: commands without a key).
#[cfg(test)]
fn split_by_slot(pipeline: &Pipeline) -> Vec<(Option<u16>, Vec<usize>, Pipeline)> {
    let cmds: Vec<&Cmd> = pipeline.cmd_iter().collect();
    group_by(&cmds, 0..cmds.len(), |i| slot::of_command(cmds[i]))
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
        groups.sort_by_key(|(_, at, _)| at[0]);
        let at: Vec<Vec<usize>> = groups.iter().map(|(_, at, _)| at.clone()).collect();
        assert_eq!(at, vec![vec![0, 2], vec![1], vec![3], vec![4]]);
        assert!(groups.iter().all(|(_, at, p)| p.len() == at.len()));
        assert_eq!(groups[0].0, Some(slot::of_key(b"a")));
        assert_eq!(groups[3].0, None);
    }

    /// A stale slot map (every slot on one master) sends most commands to a master that does
    /// not own them: they go out again by slot, every command runs, and each answer is in its
    /// place.
    #[tokio::test]
    async fn commands_sent_to_the_wrong_master_are_sent_again_by_slot() {
        use redis::aio::ConnectionLike as _;
        let Some(rc) = rollcall_testkit::RedisCluster::start() else {
            return;
        };
        let backend = Backend::open(&rc.seeds(), true).unwrap();
        let mut con = backend.connect().await.unwrap();
        let Con::Cluster(_, owners) = &con else {
            panic!("a cluster connection")
        };
        let owners = owners.clone();
        // The right map first: a pipeline over many slots answers in order.
        let pipe = |op: &str, round: i64| {
            let mut p = redis::pipe();
            for i in 0..60 {
                p.cmd(op).arg(format!("n{{{i}}}")).arg(i * round);
            }
            p
        };
        let read = || {
            let mut p = redis::pipe();
            for i in 0..60 {
                p.cmd("GET").arg(format!("n{{{i}}}"));
            }
            p
        };
        let first: Vec<String> = pipe("SET", 1).query_async(&mut con).await.unwrap();
        assert!(first.iter().all(|a| a == "OK"), "{first:?}");
        let got: Vec<i64> = read().query_async(&mut con).await.unwrap();
        assert_eq!(got, (0..60).collect::<Vec<i64>>());
        assert!(owners.is_known(), "the slot map was read");
        // Now a stale one: everything to the first master.
        owners.set_all_to(("127.0.0.1".to_string(), rc.ports[0]));
        let second: Vec<String> = pipe("SET", 2).query_async(&mut con).await.unwrap();
        assert!(second.iter().all(|a| a == "OK"), "{second:?}");
        assert!(!owners.is_known(), "a redirect drops the stale map");
        let got: Vec<i64> = read().query_async(&mut con).await.unwrap();
        assert_eq!(got, (0..60).map(|i| 2 * i).collect::<Vec<i64>>());
        let keys = rc.key_counts();
        assert!(
            keys.iter().all(|&n| n > 0),
            "keys on every master: {keys:?}"
        );
        assert_eq!(keys.iter().sum::<u64>(), 60);
        let _ = con.get_db();
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
