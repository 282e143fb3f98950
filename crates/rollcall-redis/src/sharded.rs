//! The pub/sub task on a Redis Cluster: sharded pub/sub (`SSUBSCRIBE`, Redis 7), so a topic's
//! messages go only to the shard owning its channel's slot instead of every node of the
//! cluster. The cluster client keeps one connection per shard and subscribes again by itself
//! after a reconnection, but says only that *a* connection was lost (not which shard, nor when
//! the subscriptions are back). So after any loss this task subscribes every topic again
//! itself (harmless when already subscribed); once the shard confirms, the subscription is in
//! force and the topic's view reloads, since messages may have been missed in between, as
//! `subscriber.rs` does after a reconnection. Losses are handled once per retry tick, so a
//! burst of them costs one reload per topic.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{ProtocolVersion, PushInfo, PushKind, Value};
use tokio::sync::mpsc;

use crate::cluster::{Cluster, SubCmd, lock};
use crate::metrics::ClusterMetrics;
use crate::subscriber::start_load;

pub(crate) async fn run(
    cluster: Arc<Cluster>,
    seeds: Vec<String>,
    mut cmds: mpsc::UnboundedReceiver<SubCmd>,
) {
    let (tx, mut pushes) = mpsc::unbounded_channel::<PushInfo>();
    let mut con = connect(&cluster, &seeds, tx).await;
    ClusterMetrics::inc(&cluster.metrics.pubsub_connects);
    // Topics joined before the connection was up, and subscriptions to retry.
    let mut pending: HashSet<String> = lock(&cluster.views).topics.keys().cloned().collect();
    let mut retry = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            cmd = cmds.recv() => match cmd {
                None => return,
                Some(SubCmd::Subscribe(topic)) => {
                    pending.insert(topic);
                    subscribe_pending(&cluster, &mut con, &mut pending).await;
                }
                Some(SubCmd::Unsubscribe(topic)) => {
                    pending.remove(&topic);
                    // Re-subscribed meanwhile: keep the subscription.
                    if !lock(&cluster.views).topics.contains_key(&topic)
                        && con.sunsubscribe(cluster.keys.channel(&topic)).await.is_err()
                    {
                        cluster.failed();
                    }
                }
            },
            push = pushes.recv() => match push {
                Some(push) => {
                    if on_push(&cluster, push) {
                        pending.extend(lock(&cluster.views).topics.keys().cloned());
                    }
                }
                None => return,
            },
            _ = retry.tick(), if !pending.is_empty() => {
                subscribe_pending(&cluster, &mut con, &mut pending).await;
            }
        }
    }
}

/// Connects with RESP3 (the cluster client delivers pub/sub messages as pushes only), retrying
/// with a backoff until a seed answers.
async fn connect(
    cluster: &Cluster,
    seeds: &[String],
    tx: mpsc::UnboundedSender<PushInfo>,
) -> ClusterConnection {
    let mut backoff = Duration::from_millis(100);
    loop {
        let client = ClusterClientBuilder::new(seeds.to_vec())
            .use_protocol(ProtocolVersion::RESP3)
            .push_sender(tx.clone())
            .connection_timeout(Duration::from_secs(2))
            .response_timeout(Duration::from_secs(5))
            .build();
        let attempt = match client {
            Ok(client) => client.get_async_connection().await,
            Err(e) => Err(e),
        };
        match attempt {
            Ok(con) => return con,
            Err(e) => {
                cluster.failed();
                tracing::debug!(error = %e, "sharded pub/sub connection failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// Subscribes to every pending topic that still has local subscribers and, once confirmed,
/// (re)loads its view; the ones that fail stay pending for the next retry.
async fn subscribe_pending(
    cluster: &Arc<Cluster>,
    con: &mut ClusterConnection,
    pending: &mut HashSet<String>,
) {
    let topics: Vec<String> = pending.drain().collect();
    for topic in topics {
        if !lock(&cluster.views).topics.contains_key(&topic) {
            continue;
        }
        match con.ssubscribe(cluster.keys.channel(&topic)).await {
            Ok(()) => {
                cluster.succeeded();
                start_load(cluster, &topic, true);
            }
            Err(e) => {
                cluster.failed();
                tracing::debug!(error = %e, topic, "sharded subscribe failed; retrying");
                pending.insert(topic);
            }
        }
    }
}

/// Handles a push from the cluster client; true when a connection was lost, so every topic
/// must be subscribed and loaded again.
fn on_push(cluster: &Cluster, push: PushInfo) -> bool {
    let bytes = |i: usize| match push.data.get(i) {
        Some(Value::BulkString(b)) => Some(b.as_slice()),
        _ => None,
    };
    let channel = bytes(0).and_then(|c| std::str::from_utf8(c).ok());
    match push.kind {
        PushKind::SMessage => {
            if let (Some(channel), Some(payload)) = (channel, bytes(1)) {
                cluster.on_message(channel, payload);
            }
            false
        }
        PushKind::Disconnection => {
            cluster.failed();
            ClusterMetrics::inc(&cluster.metrics.pubsub_connects);
            tracing::warn!("a redis cluster pub/sub connection was lost; resubscribing");
            true
        }
        _ => false,
    }
}
