//! Writer throughput: events/s with batching vs one transaction per event, and statements per
//! 10k logins, on SQLite and (when `DATABASE_URL` is set) PostgreSQL.
//!
//! Run with: `DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!   cargo run --release -p rollcall-sql --example writer_bench`

use std::time::{Duration, Instant};

use rollcall_sql::{DbConfig, DbMetrics, Persistence};

async fn run(label: &str, mut cfg: DbConfig, batch_max: usize, logins: u64) {
    cfg.batch_max = batch_max;
    let p = Persistence::open(cfg).await.expect("open");
    let start = Instant::now();
    for i in 0..logins {
        p.writer().login(&format!("user{i}"), 1_000 + i);
    }
    for i in 0..logins {
        p.writer()
            .logout(&format!("user{i}"), 2_000_000 + i, "closed");
    }
    p.writer().flush().await.expect("flush");
    let secs = start.elapsed().as_secs_f64();
    let m = p.metrics();
    let events = DbMetrics::get(&m.events_written);
    let writes = DbMetrics::get(&m.writes);
    println!(
        "{label:<9} batch_max={batch_max:<5} events={events:<6} {:>9.0} events/s  statements={writes:<6} transactions={}  statements per 10k logins={:.0}",
        events as f64 / secs,
        DbMetrics::get(&m.batches),
        writes as f64 / 2.0 * 10_000.0 / logins as f64
    );
    p.shutdown(Duration::from_secs(10)).await;
}

fn sqlite(tag: &str) -> DbConfig {
    let dir = std::env::temp_dir().join(format!("rollcall-bench-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cfg = DbConfig::new(format!("sqlite://{}", dir.join("b.db").display()), "bench");
    cfg.spill_path = dir.join("spill.jsonl");
    cfg
}

fn pg(tag: &str, url: &str) -> DbConfig {
    let mut cfg = DbConfig::new(url, "bench");
    cfg.pg_schema = Some(format!("rc_bench_{}_{tag}", std::process::id()));
    cfg.spill_path = std::env::temp_dir().join(format!("rollcall-bench-{tag}.jsonl"));
    cfg
}

#[tokio::main]
async fn main() {
    run("sqlite", sqlite("batched"), 1_000, 50_000).await;
    run("sqlite", sqlite("single"), 1, 5_000).await;
    match std::env::var("DATABASE_URL") {
        Ok(url) => {
            run("postgres", pg("batched", &url), 1_000, 50_000).await;
            run("postgres", pg("single", &url), 1, 5_000).await;
        }
        Err(_) => println!("postgres: skipped (DATABASE_URL unset)"),
    }
}
