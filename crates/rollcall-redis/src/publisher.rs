//! The publisher task: writes local diffs to the node's per-topic hashes and publishes them,
//! many diffs per pipeline (one round trip). After any failure, or when the liveness task finds
//! the node's record gone (Redis restarted, or survivors reaped this node), the mirror is
//! *dirty*: the next round replaces everything this node has in Redis with the mirror and
//! publishes a reset per topic, so no presence is lost and none lingers.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::cluster::{Cluster, PubOp, lock};
use crate::error::RedisOpError;
use crate::metrics::ClusterMetrics;
use crate::wire::{self, Frame};

/// One topic of the mirror, ready to write: topic, hash fields, encoded reset message.
type TopicState = (String, Vec<(String, Vec<u8>)>, Vec<u8>);

/// Most diffs written in one pipeline.
const BATCH: usize = 512;

pub(crate) async fn run(cluster: Arc<Cluster>, mut rx: mpsc::UnboundedReceiver<PubOp>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        if lock(&cluster.mirror).dirty {
            match reset(&cluster, &mut rx).await {
                Ok(()) => {
                    backoff = Duration::from_millis(100);
                    ClusterMetrics::inc(&cluster.metrics.resets);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "re-publishing local presences failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
            }
        }
        let first = tokio::select! {
            op = rx.recv() => match op {
                Some(op) => op,
                None => return,
            },
            _ = cluster.dirty_kick.notified() => continue,
        };
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let result = publish(&cluster, &batch).await;
        cluster.pending.fetch_sub(batch.len(), Ordering::Relaxed);
        if let Err(e) = result {
            tracing::warn!(error = %e, "publishing presence diffs failed; will re-publish");
            cluster.mark_dirty();
        }
    }
}

async fn publish(cluster: &Cluster, batch: &[PubOp]) -> Result<(), RedisOpError> {
    let keys = &cluster.keys;
    let me = cluster.cfg.node_id.as_str();
    let mut pipe = redis::pipe();
    for op in batch {
        let hash = keys.topic_hash(&op.topic, me);
        if !op.leaves.is_empty() {
            pipe.cmd("HDEL").arg(&hash).arg(&op.leaves).ignore();
        }
        if op.empty {
            pipe.cmd("DEL").arg(&hash).ignore();
            pipe.cmd("SREM")
                .arg(keys.topic_nodes(&op.topic))
                .arg(me)
                .ignore();
            pipe.cmd("SREM")
                .arg(keys.node_topics(me))
                .arg(&op.topic)
                .ignore();
        } else {
            if !op.joins.is_empty() {
                pipe.cmd("HSET").arg(&hash).arg(&op.joins).ignore();
            }
            pipe.cmd("SADD")
                .arg(keys.topic_nodes(&op.topic))
                .arg(me)
                .ignore();
            pipe.cmd("SADD")
                .arg(keys.node_topics(me))
                .arg(&op.topic)
                .ignore();
        }
        pipe.cmd(cluster.backend.publish_cmd())
            .arg(keys.channel(&op.topic))
            .arg(&op.message)
            .ignore();
    }
    let mut con = cluster.con().await?;
    pipe.query_async::<()>(&mut con)
        .await
        .inspect_err(|_| cluster.failed())?;
    cluster.succeeded();
    ClusterMetrics::add(&cluster.metrics.diffs_published, batch.len() as u64);
    Ok(())
}

/// Replaces this node's Redis state with the mirror.
async fn reset(
    cluster: &Cluster,
    rx: &mut mpsc::UnboundedReceiver<PubOp>,
) -> Result<(), RedisOpError> {
    let keys = &cluster.keys;
    let me = cluster.cfg.node_id.as_str();
    let mut con = cluster.con().await?;
    // A survivor that found this node dead may still be removing its keys; wait until done.
    let (reaping, old_topics): (bool, Vec<String>) = redis::pipe()
        .cmd("EXISTS")
        .arg(keys.node_reap(me))
        .cmd("SMEMBERS")
        .arg(keys.node_topics(me))
        .query_async(&mut con)
        .await
        .inspect_err(|_| cluster.failed())?;
    if reaping {
        return Err(RedisOpError::Redis("this node is being reaped".into()));
    }
    // Everything queued so far is already in the mirror: drop it, and snapshot.
    let snapshot: Vec<TopicState> = {
        let mut m = lock(&cluster.mirror);
        while rx.try_recv().is_ok() {
            cluster.pending.fetch_sub(1, Ordering::Relaxed);
        }
        m.dirty = false;
        m.topics
            .iter()
            .map(|(t, presences)| {
                let fields = presences
                    .iter()
                    .map(|(r, p)| (r.to_string(), wire::encode_hash_value(&p.entry())))
                    .collect();
                let reset = Frame::Reset {
                    node: me,
                    presences: presences.values().map(|p| p.entry()).collect(),
                };
                (t.clone(), fields, reset.encode())
            })
            .collect()
    };
    let live: HashSet<&str> = snapshot.iter().map(|(t, _, _)| t.as_str()).collect();
    let mut pipe = redis::pipe();
    for t in old_topics.iter().filter(|t| !live.contains(t.as_str())) {
        pipe.cmd("DEL").arg(keys.topic_hash(t, me)).ignore();
        pipe.cmd("SREM").arg(keys.topic_nodes(t)).arg(me).ignore();
        pipe.cmd("SREM").arg(keys.node_topics(me)).arg(t).ignore();
        pipe.cmd(cluster.backend.publish_cmd())
            .arg(keys.channel(t))
            .arg(Frame::Gone { node: me }.encode())
            .ignore();
    }
    for (t, fields, reset) in &snapshot {
        let hash = keys.topic_hash(t, me);
        pipe.cmd("DEL").arg(&hash).ignore();
        pipe.cmd("HSET").arg(&hash).arg(fields).ignore();
        pipe.cmd("SADD").arg(keys.topic_nodes(t)).arg(me).ignore();
        pipe.cmd("SADD").arg(keys.node_topics(me)).arg(t).ignore();
        pipe.cmd(cluster.backend.publish_cmd())
            .arg(keys.channel(t))
            .arg(reset)
            .ignore();
    }
    // Nothing to write (no presences, no stale topics): an empty pipeline is an error to the
    // client, which would keep this node dirty and retrying until its first presence.
    let r = if pipe.is_empty() {
        Ok(())
    } else {
        pipe.query_async::<()>(&mut con).await
    };
    if let Err(e) = r {
        cluster.failed();
        lock(&cluster.mirror).dirty = true;
        return Err(e.into());
    }
    cluster.succeeded();
    tracing::info!(
        topics = snapshot.len(),
        "local presences published to redis"
    );
    Ok(())
}
