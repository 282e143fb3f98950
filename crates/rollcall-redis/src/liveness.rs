//! Node liveness (Phoenix.Tracker's *down* idea on Redis): each node refreshes a record with a
//! TTL; a node whose record stays missing is dead. Every survivor drops the dead node from its
//! own views at once (so its clients get the leaves even if nobody else acts), and one
//! survivor, holding `SET NX PX` lock on the dead node, deletes its keys and publishes a
//! node-gone notice per topic. Deliveries stay exactly-once because a view reports only what
//! it held: a second notice for the same node finds nothing to remove.
//!
//! Timing, with `T = node_timeout` and a check every `T/8`: the record lives `5T/8` after the
//! last refresh, and a node is declared dead once its record was missing at checks at least
//! `2T/8` apart, so death is noticed within about `T` and a Redis restart (every record lost
//! at once) is not mistaken for deaths: live nodes re-create theirs within one period.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cluster::Cluster;
use crate::error::RedisOpError;
use crate::metrics::ClusterMetrics;
use crate::wire::Frame;

/// How long a survivor holds the lock on a dead node.
const REAP_LOCK: Duration = Duration::from_secs(30);

pub(crate) async fn run(cluster: Arc<Cluster>) {
    let period = (cluster.cfg.node_timeout / 8).max(Duration::from_millis(50));
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut missing_since: HashMap<String, Instant> = HashMap::new();
    loop {
        interval.tick().await;
        if let Err(e) = round(&cluster, period, &mut missing_since).await {
            tracing::debug!(error = %e, "liveness round failed");
            // An outage says nothing about other nodes: start their clocks afresh.
            missing_since.clear();
        }
    }
}

async fn round(
    cluster: &Cluster,
    period: Duration,
    missing_since: &mut HashMap<String, Instant>,
) -> Result<(), RedisOpError> {
    let keys = &cluster.keys;
    let me = cluster.cfg.node_id.as_str();
    let ttl = (period * 5).as_millis() as u64;
    let mut con = cluster.con().await?;
    // XX: refresh only; a missing record means Redis lost it or survivors reaped this node.
    let (refreshed, nodes): (Option<String>, Vec<String>) = redis::pipe()
        .cmd("SET")
        .arg(keys.node_alive(me))
        .arg("1")
        .arg("PX")
        .arg(ttl)
        .arg("XX")
        .cmd("SMEMBERS")
        .arg(keys.nodes())
        .query_async(&mut con)
        .await
        .inspect_err(|_| cluster.failed())?;
    if refreshed.is_none() {
        redis::pipe()
            .cmd("SET")
            .arg(keys.node_alive(me))
            .arg("1")
            .arg("PX")
            .arg(ttl)
            .ignore()
            .cmd("SADD")
            .arg(keys.nodes())
            .arg(me)
            .ignore()
            .query_async::<()>(&mut con)
            .await
            .inspect_err(|_| cluster.failed())?;
        cluster.mark_dirty();
    }
    cluster.succeeded();
    let others: Vec<String> = nodes.into_iter().filter(|n| n != me).collect();
    missing_since.retain(|n, _| others.contains(n));
    if others.is_empty() {
        return Ok(());
    }
    let mut pipe = redis::pipe();
    for n in &others {
        pipe.cmd("EXISTS").arg(keys.node_alive(n));
    }
    let alive: Vec<bool> = pipe
        .query_async(&mut con)
        .await
        .inspect_err(|_| cluster.failed())?;
    let now = Instant::now();
    for (n, alive) in others.iter().zip(alive) {
        if alive {
            missing_since.remove(n);
            cluster.node_up(n);
            continue;
        }
        let since = *missing_since.entry(n.clone()).or_insert(now);
        if now.duration_since(since) >= period * 2 {
            cluster.node_down(n);
            reap(cluster, n).await?;
        }
    }
    Ok(())
}

/// Removes dead `node` from Redis if this node wins the lock; publishes its leaves.
async fn reap(cluster: &Cluster, node: &str) -> Result<(), RedisOpError> {
    let keys = &cluster.keys;
    let mut con = cluster.con().await?;
    let won: Option<String> = redis::cmd("SET")
        .arg(keys.node_reap(node))
        .arg(&cluster.cfg.node_id)
        .arg("NX")
        .arg("PX")
        .arg(REAP_LOCK.as_millis() as u64)
        .query_async(&mut con)
        .await?;
    if won.is_none() {
        return Ok(());
    }
    // Checked after taking the lock: a node that comes back re-creates its record first and
    // then waits for the lock to go before re-publishing, so the two cannot interleave.
    // A survivor that listed the node before another one reaped it (and let go of the lock)
    // finds it gone from the node set: nothing left to do, and it is not counted twice.
    let (alive, member, topics): (bool, bool, Vec<String>) = redis::pipe()
        .cmd("EXISTS")
        .arg(keys.node_alive(node))
        .cmd("SISMEMBER")
        .arg(keys.nodes())
        .arg(node)
        .cmd("SMEMBERS")
        .arg(keys.node_topics(node))
        .query_async(&mut con)
        .await?;
    let reap = !alive && member;
    let mut pipe = redis::pipe();
    if reap {
        for t in &topics {
            pipe.cmd("DEL").arg(keys.topic_hash(t, node)).ignore();
            pipe.cmd("SREM").arg(keys.topic_nodes(t)).arg(node).ignore();
            pipe.cmd(cluster.backend.publish_cmd())
                .arg(keys.channel(t))
                .arg(Frame::Gone { node }.encode())
                .ignore();
        }
        pipe.cmd("DEL").arg(keys.node_topics(node)).ignore();
        pipe.cmd("SREM").arg(keys.nodes()).arg(node).ignore();
    }
    pipe.cmd("DEL").arg(keys.node_reap(node)).ignore();
    pipe.query_async::<()>(&mut con).await?;
    if reap {
        ClusterMetrics::inc(&cluster.metrics.nodes_reaped);
        tracing::warn!(
            node,
            topics = topics.len(),
            "removed a dead node from redis"
        );
    }
    Ok(())
}
