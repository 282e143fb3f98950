//! Heap bytes per presence at 100k, 1M and 10M presences over 1,000 topics (beyond the metas'
//! own bytes), counted by a global allocator. Also reports track throughput of the same run,
//! per wall-clock second and per CPU second of the tracking thread (the figure to compare
//! when the machine is shared).
//!
//! Run with: `cargo bench -p rollcall-benches --bench core_memory` (add `-- 100000` to pick
//! sizes).

use std::time::Instant;

use rollcall_benches::{CountingAlloc, Workload, live_bytes, thread_cpu_s};
use rollcall_core::{Config, Engine, Outputs};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![100_000, 1_000_000, 10_000_000]
    } else {
        sizes
    };
    println!(
        "presences,topics,engine_bytes,bytes_per_presence,conn_bytes_per_conn,track_bytes_per_presence,meta_bytes_per_presence,connect_s,track_s,tracks_per_s,track_cpu_s,tracks_per_cpu_s"
    );
    for n in sizes {
        let work = Workload::new(n, 1000);
        let before = live_bytes();
        let engine = Engine::new(Config {
            max_keys_per_topic: usize::MAX,
            ..Config::default()
        })
        .expect("valid config");
        let t0 = Instant::now();
        work.connect_all(&engine);
        let connect_s = t0.elapsed().as_secs_f64();
        let after_connect = live_bytes();
        let mut out = Outputs::default();
        let cpu1 = thread_cpu_s();
        let t1 = Instant::now();
        work.track_all(&engine, &mut out);
        let track_s = t1.elapsed().as_secs_f64();
        let track_cpu_s = match (cpu1, thread_cpu_s()) {
            (Some(a), Some(b)) => b - a,
            _ => f64::NAN,
        };
        // The engine copies each key's text into its own arena, so the key bytes are counted
        // here; the metas are shared with the workload (counted in `before`), hence "beyond
        // the meta".
        let engine_bytes = (live_bytes() - before) as usize;
        // Connection records (liveness) vs what tracking adds (table + user status + timers).
        let conn_bytes = (after_connect - before) as f64 / n as f64;
        let track_bytes = (live_bytes() - after_connect) as f64 / n as f64;
        println!(
            "{n},1000,{engine_bytes},{:.1},{conn_bytes:.1},{track_bytes:.1},{:.1},{connect_s:.3},{track_s:.3},{:.0},{track_cpu_s:.2},{:.0}",
            engine_bytes as f64 / n as f64,
            work.meta_bytes() as f64 / n as f64,
            n as f64 / track_s,
            n as f64 / track_cpu_s
        );
        drop(engine);
    }
}
