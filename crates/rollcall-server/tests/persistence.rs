//! Login/logout persistence through the whole server: heartbeats write nothing, the status
//! endpoint reads `last_seen` of forgotten keys from the database, the history endpoint, and
//! a `kill -9` of a child `rollcall` whose next start closes the sessions with `node_restart`.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use rollcall_server::{Hub, ServerConfig};
use rollcall_sql::{DbConfig, DbMetrics, Persistence};
use serde_json::{Value, json};
use tokio::net::TcpStream;

use support::{Ws, online, send};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(rollcall_testkit::unique_name(name));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn sqlite_url(dir: &std::path::Path) -> String {
    format!("sqlite://{}", dir.join("rollcall.db").display())
}

/// Starts a server whose persistence is opened by the test (so Postgres can use a schema).
async fn start_with(cfg: ServerConfig, db: DbConfig) -> support::TestServer {
    let listener = tokio::net::TcpListener::bind(cfg.bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hub = Hub::new(cfg).unwrap();
    hub.attach_persistence(Persistence::open(db).await.unwrap())
        .unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(rollcall_server::serve(listener, hub.clone(), async move {
        let _ = rx.await;
    }));
    support::TestServer {
        addr,
        hub,
        stop: Some(tx),
        task,
    }
}

async fn until(ws: &mut Ws, pred: impl Fn(&Value) -> bool) -> Value {
    support::until(ws, 10, pred).await
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..400 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, Value) {
    let (status, body) = support::http(addr, method, path, body).await;
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// 1,000 connections × 20 heartbeats: the database sees the 1,000 logins and 1,000 logouts
/// and nothing else, in a handful of batched statements.
async fn heartbeats_write_nothing(db: DbConfig) {
    const N: usize = 1_000;
    let server = start_with(support::fast_config(60_000, 3), db).await;
    let url = server.ws_url("2.0.0");
    let mut sockets = Vec::with_capacity(N);
    for chunk in (0..N).collect::<Vec<_>>().chunks(100) {
        let url = &url;
        let joins = chunk
            .iter()
            .map(|i| async move { online(url, &format!("user{i}")).await });
        sockets.extend(futures_util::future::join_all(joins).await);
    }
    let hub = server.hub.clone();
    let p = hub.persistence().unwrap().clone();
    p.writer().flush().await.unwrap();
    let m = p.metrics();
    assert_eq!(
        DbMetrics::get(&m.events_written),
        N as u64,
        "logins {:?} logouts {:?}",
        hub.metrics().logins,
        hub.metrics().logouts
    );
    let writes_after_logins = DbMetrics::get(&m.writes);
    let rows_after_logins = DbMetrics::get(&m.rows_written);
    for round in 0..20 {
        for ws in sockets.iter_mut() {
            send(
                ws,
                json!([null, format!("hb{round}"), "phoenix", "heartbeat", {}]),
            )
            .await;
        }
        for ws in sockets.iter_mut() {
            until(ws, |v| v[2] == "phoenix" && v[3] == "phx_reply").await;
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    p.writer().flush().await.unwrap();
    assert_eq!(
        DbMetrics::get(&m.writes),
        writes_after_logins,
        "heartbeats wrote"
    );
    assert_eq!(DbMetrics::get(&m.rows_written), rows_after_logins);
    for mut ws in sockets {
        let _ = ws.close(None).await;
    }
    let logouts = &hub.metrics().logouts;
    wait_for("1,000 logouts", || {
        logouts.load(std::sync::atomic::Ordering::Relaxed) == N as u64
    })
    .await;
    p.writer().flush().await.unwrap();
    let logins = hub
        .metrics()
        .logins
        .load(std::sync::atomic::Ordering::Relaxed);
    let logouts = logouts.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!((logins, logouts), (N as u64, N as u64));
    assert_eq!(DbMetrics::get(&m.events_written), logins + logouts);
    // Each login inserts a session and upserts last_seen; each logout closes one and upserts.
    assert_eq!(DbMetrics::get(&m.rows_written), 2 * (logins + logouts));
    let writes = DbMetrics::get(&m.writes);
    // At most 3 statements per transaction; how many transactions depends on how fast the
    // sockets came and went (the 10k-login storm test in rollcall-sql pins the batching).
    let batches = DbMetrics::get(&m.batches);
    assert!(
        writes <= 3 * batches,
        "{writes} statements in {batches} batches"
    );
    eprintln!(
        "{writes} statements in {batches} transactions for {} events",
        logins + logouts
    );
    let (status, metrics) = {
        let addr = server.addr.to_string();
        let mut s = TcpStream::connect(&addr).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        s.write_all(
            format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
        let mut buf = String::new();
        s.read_to_string(&mut buf).await.unwrap();
        (buf[9..12].to_string(), buf)
    };
    assert_eq!(status, "200");
    assert!(
        metrics.contains(&format!("rollcall_db_writes_total {writes}")),
        "{metrics}"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn heartbeats_write_nothing_sqlite() {
    let dir = temp_dir("hb_sqlite");
    let mut db = DbConfig::new(sqlite_url(&dir), "node-hb");
    db.spill_path = dir.join("spill.jsonl");
    heartbeats_write_nothing(db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn heartbeats_write_nothing_postgres() {
    let Some(url) = rollcall_testkit::service_url("DATABASE_URL") else {
        return;
    };
    let dir = temp_dir("hb_pg");
    let mut db = DbConfig::new(url, "node-hb");
    db.pg_schema = Some(rollcall_testkit::unique_name("rc_hb"));
    db.spill_path = dir.join("spill.jsonl");
    heartbeats_write_nothing(db).await;
}

/// A restarted server has forgotten everyone; the status endpoint still answers last_seen for
/// offline keys from the database, and the history endpoint lists the sessions.
#[tokio::test]
async fn status_and_history_come_from_the_database_after_a_restart() {
    let dir = temp_dir("status_db");
    let mut cfg = support::fast_config(5_000, 3);
    cfg.database_url = Some(sqlite_url(&dir));
    cfg.node_id = "node-s".into();
    let server = support::start(cfg.clone()).await;
    let ws = online(&server.ws_url("2.0.0"), "zed").await;
    drop(ws);
    let hub = server.hub.clone();
    wait_for("zed's logout", || {
        hub.metrics()
            .logouts
            .load(std::sync::atomic::Ordering::Relaxed)
            == 1
    })
    .await;
    server.shutdown().await.unwrap();

    let server = support::start(cfg).await;
    let addr = server.addr.to_string();
    let (status, body) = http(
        &addr,
        "POST",
        "/api/presence/status",
        r#"{"keys":["zed","nobody"]}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let zed = &body["statuses"]["zed"];
    assert_eq!(zed["status"], "offline");
    let last_seen = zed["last_seen"]
        .as_u64()
        .expect("last_seen from the database");
    assert!(body["statuses"]["nobody"]["last_seen"].is_null());

    let (status, body) = http(&addr, "GET", "/api/presence/zed/sessions", "").await;
    assert_eq!(status, 200, "{body}");
    let s = &body["sessions"];
    assert_eq!(s.as_array().unwrap().len(), 1, "{body}");
    assert_eq!(s[0]["logout_reason"], "closed");
    assert_eq!(s[0]["logout_at"].as_u64(), Some(last_seen));
    assert_eq!(s[0]["node_id"], "node-s");
    let to = s[0]["login_at"].as_i64().unwrap();
    let (_, body) = http(
        &addr,
        "GET",
        &format!("/api/presence/zed/sessions?from=0&to={to}"),
        "",
    )
    .await;
    assert_eq!(
        body["sessions"].as_array().unwrap().len(),
        0,
        "[from, to) excludes a login at `to`"
    );
    let (status, body) = http(&addr, "GET", "/api/presence/zed/sessions?from=10&to=5", "").await;
    assert_eq!(status, 200, "an empty range is not an error: {body}");
    assert_eq!(body["sessions"].as_array().unwrap().len(), 0, "{body}");
    for bad in ["?from=yesterday", "?from=-1", "?to=1.5"] {
        let (status, body) = http(
            &addr,
            "GET",
            &format!("/api/presence/zed/sessions{bad}"),
            "",
        )
        .await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["error"].is_string(), "{bad}: {body}");
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn database_url_none_disables_persistence() {
    let cli = rollcall_server::Settings {
        database_url: Some("none".into()),
        ..Default::default()
    };
    assert_eq!(ServerConfig::from_settings(cli).unwrap().database_url, None);
    let d = ServerConfig::from_settings(rollcall_server::Settings::default()).unwrap();
    assert_eq!(d.database_url.as_deref(), Some("sqlite://rollcall.db"));
    let cli = rollcall_server::Settings {
        database_url: Some("mysql://x".into()),
        ..Default::default()
    };
    let e = ServerConfig::from_settings(cli).unwrap_err().to_string();
    assert!(e.contains("database_url"), "{e}");
    let server = support::start(support::fast_config(5_000, 3)).await;
    let (status, body) = http(
        &server.addr.to_string(),
        "GET",
        "/api/presence/a/sessions",
        "",
    )
    .await;
    assert_eq!(status, 404);
    assert!(body["error"].as_str().unwrap().contains("disabled"));
    server.shutdown().await.unwrap();
}

/// Story: the server is killed with SIGKILL while users are online, so their sessions stay
/// open in the database. The next start of the same node must close every one of them with
/// `node_restart`, dated no earlier than the login and no later than the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_then_restart_closes_sessions_with_node_restart() {
    let dir = temp_dir("kill9");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    let spawn = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_rollcall"))
            .args([
                "--bind",
                &addr,
                "--node-id",
                "node-k",
                "--offline-grace",
                "200ms",
            ])
            .args(["--database-url", &sqlite_url(&dir)])
            .current_dir(&dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn rollcall")
    };
    async fn healthy(addr: &str) {
        for _ in 0..200 {
            if TcpStream::connect(addr).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("server did not come up");
    }
    let mut child = spawn();
    healthy(&addr).await;
    let url = format!("ws://{addr}/realtime/v1/websocket?apikey=test&vsn=2.0.0");
    let mut sockets = Vec::new();
    for i in 0..5 {
        sockets.push(online(&url, &format!("k{i}")).await);
    }
    // The writer flushes within milliseconds; wait until all 5 are stored.
    for _ in 0..200 {
        let (_, body) = http(&addr, "GET", "/api/presence/k4/sessions", "").await;
        if body["sessions"].as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    drop(sockets);
    let restarted_at = rollcall_sql::unix_now_ms();
    let mut child = spawn();
    healthy(&addr).await;
    for i in 0..5 {
        let (status, body) = http(&addr, "GET", &format!("/api/presence/k{i}/sessions"), "").await;
        assert_eq!(status, 200, "{body}");
        let s = &body["sessions"];
        assert_eq!(s.as_array().unwrap().len(), 1, "k{i}: {body}");
        assert_eq!(s[0]["logout_reason"], "node_restart", "k{i}: {body}");
        let (login, logout) = (
            s[0]["login_at"].as_i64().unwrap(),
            s[0]["logout_at"].as_i64().unwrap(),
        );
        assert!(login <= logout && logout <= restarted_at, "k{i}: {body}");
    }
    let _ = child.kill();
    let _ = child.wait();
}
