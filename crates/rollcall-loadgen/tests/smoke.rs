//! Smoke test: an in-process server, 50 loadgen connections for 2 s with churn; the summary
//! must be sane. No timing assertions (the machine is shared).

use std::time::Duration;

use rollcall_loadgen::{Mode, Placement, RunArgs, run};
use rollcall_server::{Hub, ServerConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_connections_hold_and_time_their_diffs() {
    let cfg = ServerConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        ..ServerConfig::default()
    };
    let listener = tokio::net::TcpListener::bind(cfg.bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hub = Hub::new(cfg).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(rollcall_server::serve(listener, hub, async move {
        let _ = stopped.await;
    }));

    let args = RunArgs {
        servers: vec![addr],
        connections: 50,
        workers: 1,
        rooms: "10".into(),
        heartbeat: Duration::from_millis(500),
        churn: 20.0,
        duration: Duration::from_secs(2),
        settle: Duration::from_millis(100),
        ramp_concurrency: 16,
        server_pids: vec![std::process::id()],
        redis_url: None,
        topic_prefix: "smoke".into(),
        label: "smoke".into(),
        note: String::new(),
        out: None,
        quiet: true,
        placement: Placement::Modulo,
        reconnect: false,
    };
    let s = run(args, Mode::InProcess).await.unwrap();
    assert_eq!(s.connections_held, 50, "{s:?}");
    assert_eq!(s.connect_errors, 0);
    assert!(s.latency.samples > 0, "{s:?}");
    assert!(s.latency.p50_ms <= s.latency.p99_ms && s.latency.p99_ms <= s.latency.max_ms);
    assert!(s.heartbeats_per_s > 0.0 && s.diff_deliveries_per_s > 0.0);
    assert!(s.server.rss_kib_after_ramp > 0);

    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
}
