//! Core engine benchmarks: track throughput, heartbeats, expiry ticks, list and batch status.
//!
//! Run with: `cargo bench -p rollcall-benches --bench core`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use rollcall_benches::Workload;
use rollcall_core::{Config, ConnId, Engine, Key, Meta, Millis, Outputs, Topic};

fn big_engine() -> Engine {
    Engine::new(Config {
        max_keys_per_topic: usize::MAX,
        timer_granularity: Millis(1000),
        ..Config::default()
    })
    .expect("valid config")
}

/// 1M presences over 1,000 topics, one thread; reported per track.
fn track_1m(c: &mut Criterion) {
    let work = Workload::new(1_000_000, 1000);
    let mut g = c.benchmark_group("track");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.throughput(criterion::Throughput::Elements(1_000_000));
    g.bench_function("1M_presences_1000_topics", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let engine = big_engine();
                work.connect_all(&engine);
                let mut out = Outputs::default();
                let t = Instant::now();
                work.track_all(&engine, &mut out);
                total += t.elapsed();
                drop(engine);
            }
            total
        })
    });
    g.finish();
}

/// Heartbeats on 1M open connections, and expiry ticks.
fn liveness(c: &mut Criterion) {
    let engine = big_engine();
    let n = 1_000_000u64;
    for i in 0..n {
        engine.connect(ConnId(i), Millis(0)).expect("fresh id");
    }
    let mut g = c.benchmark_group("liveness");
    g.throughput(criterion::Throughput::Elements(1000));
    let mut next = 0u64;
    let mut now = 1u64;
    g.bench_function("heartbeat_x1000_of_1M_conns", |b| {
        b.iter(|| {
            for _ in 0..1000 {
                // a stride that visits connections in scattered order
                next = (next + 7_919) % n;
                black_box(engine.heartbeat(ConnId(next), Millis(now)));
            }
            now += 1;
        })
    });
    g.throughput(criterion::Throughput::Elements(1));
    let mut out = Outputs::default();
    g.bench_function("tick_1M_live_0_due", |b| {
        b.iter(|| {
            engine.tick(Millis(10_000), &mut out);
            assert!(out.expired.is_empty());
        })
    });
    g.sample_size(10);
    g.bench_function("expire_100k_due_in_one_tick", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let e = big_engine();
                let w = Workload::new(100_000, 1000);
                w.connect_all(&e);
                let mut out = Outputs::default();
                w.track_all(&e, &mut out);
                let t = Instant::now();
                e.tick(Millis(200_000), &mut out);
                total += t.elapsed();
                assert_eq!(out.expired.len(), 100_000);
            }
            total
        })
    });
    g.finish();
}

/// `list` / `presence_state` of a 1,000-member topic and a 10,000-key status query.
fn queries(c: &mut Criterion) {
    let engine = big_engine();
    let topic = Topic::new("realtime:big-room");
    let mut out = Outputs::default();
    let keys: Vec<Key> = (0..10_000)
        .map(|i| Key::from(format!("user-{i}")))
        .collect();
    for (i, key) in keys.iter().enumerate() {
        let c = ConnId(i as u64);
        engine.connect(c, Millis(0)).expect("fresh id");
        let t = if i < 1000 {
            topic.clone()
        } else {
            Topic::from(format!("realtime:r{}", i % 100))
        };
        let meta =
            Meta::parse(&format!(r#"{{"status":"online","online_at":{i}}}"#)).expect("valid");
        engine
            .track(c, &t, key, meta, Millis(1), &mut out)
            .expect("within limits");
        out.clear();
    }
    let mut g = c.benchmark_group("queries");
    g.bench_function("list_1000_member_topic", |b| {
        b.iter(|| black_box(engine.list("realtime:big-room")))
    });
    let mut buf = Vec::new();
    g.bench_function("presence_state_json_1000_member_topic", |b| {
        b.iter(|| {
            buf.clear();
            engine.write_state_json("realtime:big-room", &mut buf);
            black_box(buf.len())
        })
    });
    g.bench_function("batch_status_10000_keys", |b| {
        b.iter(|| black_box(engine.statuses(&keys, Millis(2)).expect("within limit")))
    });
    g.finish();
}

criterion_group!(benches, track_1m, liveness, queries);
criterion_main!(benches);
