//! A single node: no other nodes, so nothing to publish or subscribe, and every read is the
//! engine's own answer.

use std::sync::Weak;

use rollcall_core::{KeyStatus, TopicDiff};

use super::{Bus, BusFuture, Readiness};
use crate::hub::Hub;

/// The bus of a node that runs alone.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LocalBus;

impl Bus for LocalBus {
    fn kind(&self) -> &'static str {
        "local"
    }

    fn start(&self, _hub: Weak<Hub>) {}

    fn publish_diff(&self, _diff: &TopicDiff) {}

    fn publish_broadcast(&self, _topic: &str, _event: &str, _payload: &str) {}

    fn subscribe(&self, _topic: &str) {}

    fn unsubscribe(&self, _topic: &str, _n: usize) {}

    fn write_presence_state(&self, hub: &Hub, topic: &str, out: &mut Vec<u8>) {
        hub.engine.write_state_json(topic, out);
    }

    fn channel_state<'a>(
        &'a self,
        hub: &'a Hub,
        topic: &'a str,
    ) -> BusFuture<'a, Result<Vec<u8>, String>> {
        let mut out = Vec::with_capacity(256);
        hub.engine.write_state_json(topic, &mut out);
        Box::pin(std::future::ready(Ok(out)))
    }

    fn merge_statuses<'a>(
        &'a self,
        _hub: &'a Hub,
        statuses: Vec<KeyStatus>,
    ) -> BusFuture<'a, Vec<KeyStatus>> {
        Box::pin(std::future::ready(statuses))
    }

    fn readiness(&self) -> BusFuture<'_, Readiness> {
        Box::pin(std::future::ready(Readiness::Off))
    }

    fn flush(&self) -> BusFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }

    fn render_metrics(&self, _out: &mut String) {}
}
