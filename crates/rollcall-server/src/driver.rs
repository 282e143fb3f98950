//! The timer task: drives the engine's `tick` (expiry, logout grace, idle, diff batches).

use std::sync::Arc;

use rollcall_core::Outputs;
use tokio::sync::watch;

use crate::hub::Hub;

/// Ticks the engine every `timer_granularity` until shutdown.
pub async fn run(hub: Arc<Hub>, mut shutdown: watch::Receiver<bool>) {
    let period = hub.cfg.core.timer_granularity.as_duration();
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut out = Outputs::default();
    loop {
        tokio::select! {
            _ = interval.tick() => {
                hub.engine.tick(hub.now(), &mut out);
                hub.handle_events(&mut out);
            }
            _ = shutdown.changed() => return,
        }
    }
}
