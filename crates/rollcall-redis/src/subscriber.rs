//! The pub/sub task (on a Redis Cluster, `sharded.rs` instead): one connection subscribed to
//! the channel of every topic with local subscribers. Pub/sub delivers at most once, so every (re)connection resubscribes all
//! topics and reloads their views (see `view.rs`): whatever was missed while disconnected
//! shows up as the difference between the old view and the reloaded one.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::cluster::{Cluster, SubCmd, lock};
use crate::conn::Backend;
use crate::metrics::ClusterMetrics;

pub(crate) async fn run(cluster: Arc<Cluster>, cmds: mpsc::UnboundedReceiver<SubCmd>) {
    match cluster.backend.clone() {
        Backend::Single(client) => run_single(cluster, client, cmds).await,
        Backend::Cluster { seeds, .. } => crate::sharded::run(cluster, seeds, cmds).await,
    }
}

async fn run_single(
    cluster: Arc<Cluster>,
    client: redis::Client,
    mut cmds: mpsc::UnboundedReceiver<SubCmd>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let pubsub = match client.get_async_pubsub().await {
            Ok(p) => p,
            Err(e) => {
                cluster.failed();
                tracing::debug!(error = %e, "pub/sub connection failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        ClusterMetrics::inc(&cluster.metrics.pubsub_connects);
        let (mut sink, mut stream) = pubsub.split();
        let topics: Vec<String> = lock(&cluster.views).topics.keys().cloned().collect();
        let channels: Vec<String> = topics.iter().map(|t| cluster.keys.channel(t)).collect();
        if !channels.is_empty() && sink.subscribe(&channels).await.is_err() {
            cluster.failed();
            continue;
        }
        for t in &topics {
            start_load(&cluster, t, true);
        }
        loop {
            tokio::select! {
                cmd = cmds.recv() => {
                    let Some(cmd) = cmd else { return };
                    let ok = match cmd {
                        SubCmd::Subscribe(topic) => {
                            let ok = sink.subscribe(cluster.keys.channel(&topic)).await.is_ok();
                            if ok {
                                start_load(&cluster, &topic, true);
                            }
                            ok
                        }
                        SubCmd::Unsubscribe(topic) => {
                            // Re-subscribed meanwhile: keep the subscription.
                            if lock(&cluster.views).topics.contains_key(&topic) {
                                true
                            } else {
                                sink.unsubscribe(cluster.keys.channel(&topic)).await.is_ok()
                            }
                        }
                    };
                    if !ok {
                        break;
                    }
                }
                msg = stream.next() => {
                    let Some(msg) = msg else { break };
                    cluster.on_message(msg.get_channel_name(), msg.get_payload_bytes());
                }
            }
        }
        cluster.failed();
        tracing::warn!("redis pub/sub connection lost; reconnecting");
    }
}

/// Starts loading `topic`'s view. `fresh`: a new subscription, so messages buffered by an
/// earlier load are dropped (some may be missing between them and the new ones).
pub(crate) fn start_load(cluster: &Arc<Cluster>, topic: &str, fresh: bool) {
    let token = uuid::Uuid::new_v4().simple().to_string();
    {
        let mut v = lock(&cluster.views);
        let Some(tv) = v.topics.get_mut(topic) else {
            return;
        };
        tv.begin_load(token.clone(), fresh);
    }
    let cluster = cluster.clone();
    let topic = topic.to_string();
    tokio::spawn(async move {
        match cluster.read_topic(&topic, Some(&token)).await {
            Ok(snap) => cluster.on_snapshot(&topic, &token, snap),
            Err(e) => {
                tracing::debug!(error = %e, topic, "loading a topic view failed; retrying");
                tokio::time::sleep(Duration::from_millis(250)).await;
                let still_loading = lock(&cluster.views)
                    .topics
                    .get(&topic)
                    .and_then(|tv| tv.loading.as_ref())
                    .is_some_and(|l| l.token == token);
                // Same subscription: keep the buffer, but a new token, so a marker from the
                // failed attempt cannot end the retry early.
                if still_loading {
                    start_load(&cluster, &topic, false);
                }
            }
        }
    });
}
