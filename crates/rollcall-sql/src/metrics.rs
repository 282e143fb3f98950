//! Counters of the persistence layer, rendered into the server's `/metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Write-side counters (relaxed atomics).
#[derive(Debug, Default)]
pub struct DbMetrics {
    /// Write statements executed for status events (`rollcall_db_writes_total`); node beats,
    /// recovery and shutdown statements are not counted here.
    pub writes: AtomicU64,
    /// Rows inserted or updated by those statements.
    pub rows_written: AtomicU64,
    /// Status events made durable.
    pub events_written: AtomicU64,
    /// Transactions committed for status events.
    pub batches: AtomicU64,
    /// Failed write attempts (each is retried).
    pub write_errors: AtomicU64,
    /// Node beat statements executed.
    pub beats: AtomicU64,
    /// Rows moved to the spill file.
    pub spilled: AtomicU64,
    /// Rows waiting (in memory or spilled).
    pub queued: AtomicU64,
    /// Queries answered at once with "unavailable" because the database was known down.
    pub queries_refused: AtomicU64,
    /// Times the write-behind window forced queued rows to the spill file.
    pub window_syncs: AtomicU64,
}

impl DbMetrics {
    /// Reads a counter.
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    pub(crate) fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    /// Appends the Prometheus text for these counters to `out`.
    pub fn render(&self, out: &mut String) {
        let rows: [(&str, &str, &str, &AtomicU64); 10] = [
            (
                "rollcall_db_writes_total",
                "counter",
                "SQL write statements executed for status events.",
                &self.writes,
            ),
            (
                "rollcall_db_rows_written_total",
                "counter",
                "Rows inserted or updated for status events.",
                &self.rows_written,
            ),
            (
                "rollcall_db_events_written_total",
                "counter",
                "Status events made durable.",
                &self.events_written,
            ),
            (
                "rollcall_db_batches_total",
                "counter",
                "Write transactions committed.",
                &self.batches,
            ),
            (
                "rollcall_db_write_errors_total",
                "counter",
                "Failed write attempts (retried).",
                &self.write_errors,
            ),
            (
                "rollcall_db_node_beats_total",
                "counter",
                "Node liveness beats written.",
                &self.beats,
            ),
            (
                "rollcall_db_spilled_total",
                "counter",
                "Rows spilled to the overflow file.",
                &self.spilled,
            ),
            (
                "rollcall_db_queries_refused_total",
                "counter",
                "Queries refused at once while the database was down.",
                &self.queries_refused,
            ),
            (
                "rollcall_db_window_syncs_total",
                "counter",
                "Times rows older than the write-behind window were synced to the spill file.",
                &self.window_syncs,
            ),
            (
                "rollcall_db_queued",
                "gauge",
                "Rows waiting to be written.",
                &self.queued,
            ),
        ];
        for (name, kind, help, c) in rows {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                Self::get(c)
            );
        }
    }
}
