//! The database unreachable at start and while serving: the server starts and serves anyway
//! (logins spill to disk), `/readyz` says `database: down` (503), the history and status
//! endpoints answer 503 with a JSON error at once (refused without touching the pool), and
//! everything comes back (reconnect, replay of the spill, readiness ok) when the database
//! does. `require_database` keeps the fail-fast start.

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use rollcall_server::config::LoginDurability;
use rollcall_server::{Hub, Server, ServerConfig, Settings};
use rollcall_sql::{DbConfig, DbMetrics, Persistence};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use support::online;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(rollcall_testkit::unique_name(name));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, Value) {
    let (status, body) = support::http(&addr.to_string(), method, path, body).await;
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

async fn ready(addr: SocketAddr) -> bool {
    http(addr, "GET", "/readyz", "").await.0 == 200
}

async fn wait_ready(addr: SocketAddr) {
    for _ in 0..1_500 {
        if ready(addr).await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("/readyz never became 200");
}

/// What every outage check asserts, while the database is down: readiness 503 naming the
/// database, the history and status endpoints 503 with a JSON error, refused without a query.
async fn assert_down(server: &support::TestServer, online_key: &str) {
    let addr = server.addr;
    let (status, body) = http(addr, "GET", "/readyz", "").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["checks"]["database"], "down", "{body}");
    let p = server.hub.persistence().unwrap();
    let refused = DbMetrics::get(&p.metrics().queries_refused);
    let t = Instant::now();
    let (status, body) = http(
        addr,
        "GET",
        &format!("/api/presence/{online_key}/sessions"),
        "",
    )
    .await;
    let took = t.elapsed();
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("database unavailable"),
        "{body}"
    );
    // A key never seen needs the database for its last_seen: 503 too.
    let (status, body) = http(
        addr,
        "POST",
        "/api/presence/status",
        r#"{"keys":["never-seen"]}"#,
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert!(body["error"].is_string(), "{body}");
    // Answered without a query: both were refused up front, not after a pool timeout.
    assert_eq!(DbMetrics::get(&p.metrics().queries_refused), refused + 2);
    eprintln!("sessions answered 503 in {took:?} while the database was down");
    // An online key is answered from memory.
    let (status, body) = http(
        addr,
        "POST",
        "/api/presence/status",
        &format!(r#"{{"keys":["{online_key}"]}}"#),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["statuses"][online_key]["online"], true, "{body}");
}

/// After recovery: ready, and the login recorded while down is in the history.
async fn assert_recovered(server: &support::TestServer, key: &str) {
    wait_ready(server.addr).await;
    server
        .hub
        .persistence()
        .unwrap()
        .writer()
        .flush()
        .await
        .unwrap();
    let (status, body) = http(
        server.addr,
        "GET",
        &format!("/api/presence/{key}/sessions"),
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let s = body["sessions"].as_array().unwrap();
    assert_eq!(s.len(), 1, "{body}");
    assert!(s[0]["logout_at"].is_null(), "{body}");
}

/// SQLite: the database file cannot be opened at start (its path is a directory). The
/// server serves, tracks work, and the login spills beside it; once the path is freed the
/// writer creates the database, replays the login and `/readyz` turns 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_down_at_start_serves_then_recovers() {
    let dir = temp_dir("down_sqlite");
    let db_path = dir.join("rollcall.db");
    std::fs::create_dir_all(&db_path).unwrap(); // not a file: SQLite cannot open it
    let mut cfg = support::fast_config(60_000, 3);
    cfg.database_url = Some(format!("sqlite://{}", db_path.display()));
    cfg.node_id = "node-down".into();
    let server = support::start(cfg).await;
    let _amy = online(&server.ws_url("2.0.0"), "amy").await;
    let spill = dir.join("rollcall.db-spill-node-down.jsonl");
    let p = server.hub.persistence().unwrap().clone();
    p.writer().durable().await.unwrap();
    assert!(spill.exists(), "the login is synced to the spill file");
    assert_down(&server, "amy").await;
    std::fs::remove_dir(&db_path).unwrap();
    assert_recovered(&server, "amy").await;
    assert!(!spill.exists(), "the spill file is consumed");
    server.shutdown().await.unwrap();
}

/// A TCP proxy that can refuse connections and cut open ones (a Postgres outage).
struct Proxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
}

impl Proxy {
    async fn start(target: SocketAddr, up: bool) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(up));
        let (cut, _) = watch::channel(0u64);
        let (up2, cut2) = (up.clone(), cut.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped: connection closed at once
                }
                let mut rx = cut2.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = rx.changed() => {}
                    }
                });
            }
        });
        Proxy { addr, up, cut }
    }

    fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
        if !up {
            self.cut.send_modify(|n| *n += 1);
        }
    }
}

/// Postgres: unreachable at start (the proxy refuses), then up, then cut again mid-run
/// (every backend connection dropped), then back. Each outage: serve, readiness 503, the
/// endpoints 503 at once; each recovery: the logins made meanwhile are written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_at_start_and_mid_run_serves_then_recovers() {
    let Some(url) = rollcall_testkit::service_url("DATABASE_URL") else {
        return;
    };
    let target: SocketAddr = {
        let o: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
        let host = if o.get_host() == "localhost" {
            "127.0.0.1"
        } else {
            o.get_host()
        };
        format!("{host}:{}", o.get_port()).parse().unwrap()
    };
    let proxy = Proxy::start(target, false).await;
    let at = url
        .find('@')
        .map_or_else(|| url.find("://").unwrap() + 3, |i| i + 1);
    let end = url[at..].find('/').map_or(url.len(), |i| at + i);
    let via = format!("{}{}{}", &url[..at], proxy.addr, &url[end..]);
    let dir = temp_dir("down_pg");
    let mut db = DbConfig::new(via.clone(), "node-pgdown");
    db.pg_schema = Some(rollcall_testkit::unique_name("rc_down"));
    db.spill_path = dir.join("spill.jsonl");
    db.retry_max = Duration::from_millis(300);
    db.beat_interval = Duration::from_millis(200);
    let mut cfg = support::fast_config(60_000, 3);
    cfg.database_url = Some(via);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hub = Hub::new(cfg).unwrap();
    hub.attach_persistence(Persistence::start(db.clone()).unwrap())
        .unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(rollcall_server::serve(listener, hub.clone(), async move {
        let _ = rx.await;
    }));
    let server = support::TestServer {
        addr,
        hub,
        stop: Some(tx),
        task,
    };
    let _bea = online(&server.ws_url("2.0.0"), "bea").await;
    let p = server.hub.persistence().unwrap().clone();
    p.writer().durable().await.unwrap();
    assert!(
        db.spill_path.exists(),
        "the login is synced to the spill file"
    );
    assert_down(&server, "bea").await;
    proxy.set_up(true);
    assert_recovered(&server, "bea").await;

    // Mid-run: every connection is cut and new ones refused.
    proxy.set_up(false);
    let _cal = online(&server.ws_url("2.0.0"), "cal").await;
    for _ in 0..1_500 {
        if !ready(addr).await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_down(&server, "cal").await;
    proxy.set_up(true);
    assert_recovered(&server, "cal").await;
    server.shutdown().await.unwrap();
    assert!(!db.spill_path.exists(), "the spill file is consumed");
}

/// `require_database` keeps the fail-fast start: `Server::start` (what `run` and the binary
/// call) fails instead of serving.
#[tokio::test]
async fn require_database_fails_fast() {
    let dir = temp_dir("require_db");
    let db_path = dir.join("rollcall.db");
    std::fs::create_dir_all(&db_path).unwrap();
    let mut cfg = support::fast_config(60_000, 3);
    cfg.database_url = Some(format!("sqlite://{}", db_path.display()));
    cfg.database.require = true;
    let server = Server::builder().config(cfg).build().unwrap();
    let e = server.start().await.unwrap_err().to_string();
    assert!(e.contains("database unavailable"), "{e}");
}

#[test]
fn database_settings_parse_and_name_their_keys() {
    let parse = |args: &[&str]| {
        let mut argv = vec!["rollcall"];
        argv.extend_from_slice(args);
        let s = Settings::try_parse_from(argv).map_err(|e| e.to_string())?;
        ServerConfig::from_settings(s).map_err(|e| e.to_string())
    };
    let c = parse(&[]).unwrap();
    assert!(!c.database.require);
    assert_eq!(c.database.login_durability, LoginDurability::WriteBehind);
    let c = parse(&["--require-database", "--login-durability", "commit"]).unwrap();
    assert!(c.database.require);
    assert_eq!(c.database.login_durability, LoginDurability::Commit);
    let c = parse(&["--require-database=false"]).unwrap();
    assert!(!c.database.require);
    for (args, key) in [
        (&["--require-database=maybe"][..], "--require-database"),
        (&["--login-durability", "fsync"][..], "--login-durability"),
    ] {
        let e = parse(args).unwrap_err();
        assert!(e.contains(key), "{e}");
    }
    let dir = temp_dir("db_toml");
    let path = dir.join("rollcall.toml");
    std::fs::write(
        &path,
        "require_database = true\nlogin_durability = \"commit\"\n",
    )
    .unwrap();
    let c = parse(&["--config", path.to_str().unwrap()]).unwrap();
    assert!(c.database.require);
    assert_eq!(c.database.login_durability, LoginDurability::Commit);
    std::fs::write(&path, "login_durability = \"fsync\"\n").unwrap();
    let e = parse(&["--config", path.to_str().unwrap()]).unwrap_err();
    assert!(e.contains("login_durability"), "{e}");
}
