//! The task's graceful stop: finish the job in flight, write what is queued until the
//! deadline, then either close this node's open sessions or keep the rest in the spill file.

use std::time::Duration;

use tokio::time::Instant;

use super::{Phase, Task};

impl Task {
    /// Finishes the job in flight and writes what is queued until `deadline`; then spills
    /// what is left, or closes this node's open sessions (`shutdown`) if nothing is.
    pub(super) async fn shutdown(&mut self, deadline: Duration) {
        let end = Instant::now() + deadline;
        while let Ok(cmd) = self.rx.try_recv() {
            self.handle(cmd);
        }
        self.rx.close();
        let mut done = false;
        loop {
            if let Some((_, h)) = self.inflight.as_mut() {
                match tokio::time::timeout_at(end, h).await {
                    Ok(res) => self.finish_job(res),
                    Err(_) => {
                        if let Some((_, h)) = self.inflight.take() {
                            h.abort();
                        }
                        break;
                    }
                }
                continue;
            }
            if self.phase == Phase::Running && self.queue.is_empty() {
                done = true;
                break;
            }
            let now = Instant::now();
            match self.retry_at {
                Some(t) if t >= end => break,
                Some(t) if t > now => tokio::time::sleep_until(t).await,
                _ if now >= end => break,
                _ => self.start_job(now, true),
            }
        }
        if !done {
            let left = self.queue.len();
            self.sync_now();
            tracing::warn!(
                rows = left,
                "database unreachable at shutdown: rows kept in the spill file for the next start"
            );
            return;
        }
        let now = crate::unix_now_ms();
        match tokio::time::timeout(
            self.op_timeout,
            self.db.close_open_sessions(now, "shutdown"),
        )
        .await
        {
            Ok(Ok(n)) => tracing::info!(closed = n, "closed open sessions (shutdown)"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "closing sessions at shutdown failed; the next start closes them (node_restart)")
            }
            Err(_) => tracing::warn!(
                "closing sessions at shutdown timed out; the next start closes them (node_restart)"
            ),
        }
        self.db.close().await;
    }
}
