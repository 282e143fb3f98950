//! The timer task: drives the engine's `tick` (expiry, logout grace, idle, forgetting, diff
//! batches), sleeping until the engine's next deadline instead of waking on a fixed period.
//!
//! The engine does not announce timers armed while the task sleeps, so the task never sleeps
//! longer than [`max_sleep`]: the shortest delay any engine timer is armed with. A timer armed
//! at or after the moment the task asked `poll_timeout` is due at least that long after it, so
//! waking by then never misses one.

use std::sync::Arc;

use rollcall_core::{Config, Millis, Outputs};
use tokio::sync::watch;

use crate::hub::Hub;

/// The shortest delay the engine arms a timer with under `cfg` (at least one granule).
pub(crate) fn max_sleep(cfg: &Config) -> Millis {
    let nonzero = |m: Millis| (m > Millis::ZERO).then_some(m);
    [
        nonzero(cfg.expiry_timeout()),
        nonzero(cfg.offline_grace),
        cfg.idle_after.and_then(nonzero),
        nonzero(cfg.forget_offline_after),
        nonzero(cfg.diff_batch_window),
    ]
    .into_iter()
    .flatten()
    .min()
    .unwrap_or(cfg.timer_granularity)
    .max(cfg.timer_granularity)
}

/// Ticks the engine at each deadline it reports until shutdown.
pub(crate) async fn run(hub: Arc<Hub>, mut shutdown: watch::Receiver<bool>) {
    let cap = max_sleep(&hub.cfg.core);
    let mut out = Outputs::default();
    let mut last_tick = Millis::ZERO;
    loop {
        let now = hub.now();
        let latest = now + cap;
        let next = hub.engine.poll_timeout().map_or(latest, |t| t.min(latest));
        // Something due at the time just ticked is the next granule's work: no spinning.
        let next = if next <= last_tick {
            last_tick + Millis(1)
        } else {
            next
        };
        tokio::select! {
            _ = tokio::time::sleep_until(hub.clock.deadline(next)) => {
                let now = hub.now();
                hub.engine.tick(now, &mut out);
                hub.handle_events(&mut out);
                last_tick = now;
            }
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_task_never_sleeps_past_the_shortest_timer_delay() {
        let mut cfg = Config {
            heartbeat_interval: Millis(30_000),
            missed_heartbeats: 3,
            offline_grace: Millis(10_000),
            idle_after: None,
            forget_offline_after: Millis(3_600_000),
            diff_batch_window: Millis::ZERO,
            timer_granularity: Millis(100),
            ..Config::default()
        };
        assert_eq!(max_sleep(&cfg), Millis(10_000), "the logout grace");
        cfg.diff_batch_window = Millis(50);
        assert_eq!(max_sleep(&cfg), Millis(100), "never below one granule");
        cfg.diff_batch_window = Millis::ZERO;
        cfg.offline_grace = Millis::ZERO;
        cfg.idle_after = Some(Millis(60_000));
        assert_eq!(max_sleep(&cfg), Millis(60_000), "idle before expiry");
    }
}
