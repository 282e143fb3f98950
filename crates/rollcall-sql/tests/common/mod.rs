//! The suite every backend passes, and a TCP proxy the outage test switches off and on.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rollcall_sql::{Db, DbConfig, DbMetrics, DbState, Persistence, SqlError};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A fresh temp directory for this test.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(rollcall_testkit::unique_name(name));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A config for a fresh SQLite file.
pub fn sqlite_config(name: &str) -> DbConfig {
    let dir = temp_dir(name);
    let mut cfg = DbConfig::new(
        format!("sqlite://{}", dir.join("rollcall.db").display()),
        "node-a",
    );
    cfg.spill_path = dir.join("spill.jsonl");
    cfg
}

/// A config for a fresh Postgres schema, or None (skip) without `DATABASE_URL`.
pub fn pg_config(name: &str) -> Option<DbConfig> {
    let url = rollcall_testkit::service_url("DATABASE_URL")?;
    let dir = temp_dir(name);
    let mut cfg = DbConfig::new(url, "node-a");
    cfg.pg_schema = Some(rollcall_testkit::unique_name(&format!("rc_{name}")));
    cfg.spill_path = dir.join("spill.jsonl");
    Some(cfg)
}

fn writes(p: &Persistence) -> u64 {
    DbMetrics::get(&p.metrics().writes)
}

/// Logins and logouts land as sessions and last-seen rows.
pub async fn sessions_and_last_seen(cfg: DbConfig) {
    let p = Persistence::open(cfg).await.unwrap();
    let w = p.writer();
    w.login("alice", 1_000);
    w.login("bob", 1_100);
    w.logout("alice", 2_000, "closed");
    w.login("alice", 3_000);
    w.flush().await.unwrap();
    let s = p.db().sessions("alice", 0, i64::MAX, 100).await.unwrap();
    assert_eq!(s.len(), 2, "{s:?}");
    assert_eq!(
        (s[0].login_at, s[0].logout_at, s[0].logout_reason.as_deref()),
        (1_000, Some(2_000), Some("closed"))
    );
    assert_eq!((s[1].login_at, s[1].logout_at), (3_000, None));
    assert_eq!(s[1].node_id, "node-a");
    // The range query keeps only overlapping sessions.
    let s = p.db().sessions("alice", 2_500, 2_900, 100).await.unwrap();
    assert!(s.is_empty(), "{s:?}");
    let s = p.db().sessions("alice", 1_500, 1_600, 100).await.unwrap();
    assert_eq!(s.len(), 1);
    w.logout("bob", 5_000, "timeout");
    w.flush().await.unwrap();
    let seen = p
        .db()
        .last_seen(&["alice".into(), "bob".into(), "carol".into()])
        .await
        .unwrap();
    assert_eq!(seen["alice"].status, "online");
    assert_eq!(seen["bob"].status, "offline");
    assert_eq!(seen["bob"].last_seen, 5_000);
    assert!(!seen.contains_key("carol"));
    p.shutdown(Duration::from_secs(5)).await;
}

/// 10,000 logins become a few dozen statements, not 10,000.
pub async fn a_login_storm_is_batched(cfg: DbConfig) {
    let p = Persistence::open(cfg).await.unwrap();
    for i in 0..10_000u64 {
        p.writer().login(&format!("user{i}"), 1_000 + i);
    }
    p.writer().flush().await.unwrap();
    let m = p.metrics();
    assert_eq!(DbMetrics::get(&m.events_written), 10_000);
    assert!(writes(&p) <= 40, "statements: {}", writes(&p));
    assert_eq!(DbMetrics::get(&m.rows_written), 20_000);
    let keys: Vec<String> = (0..10_000).map(|i| format!("user{i}")).collect();
    assert_eq!(p.db().last_seen(&keys).await.unwrap().len(), 10_000);
    p.shutdown(Duration::from_secs(5)).await;
}

/// Graceful shutdown closes this node's open sessions with `shutdown`.
pub async fn shutdown_closes_open_sessions(cfg: DbConfig) {
    let p = Persistence::open(cfg.clone()).await.unwrap();
    p.writer().login("dave", 1_000);
    p.shutdown(Duration::from_secs(5)).await;
    let p = Persistence::open(cfg).await.unwrap();
    let s = p.db().sessions("dave", 0, i64::MAX, 10).await.unwrap();
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].logout_reason.as_deref(), Some("shutdown"));
    assert!(s[0].logout_at.unwrap() >= 1_000);
    assert_eq!(
        p.db().last_seen(&["dave".into()]).await.unwrap()["dave"].status,
        "offline"
    );
    p.shutdown(Duration::from_secs(5)).await;
}

/// A crashed run (its runtime dropped mid-flight, so no shutdown code ran) leaves sessions
/// open; the next start closes them with `node_restart` at the last beat.
pub fn a_crash_is_recovered_with_node_restart(mut cfg: DbConfig) {
    cfg.beat_interval = Duration::from_millis(50);
    let crashed = cfg.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let p = Persistence::open(crashed).await.unwrap();
            p.writer().login("erin", 1_000);
            p.writer().flush().await.unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
            std::mem::forget(p);
        });
        drop(rt); // tasks are dropped without running their shutdown
    })
    .join()
    .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let before = rollcall_sql::unix_now_ms();
        let p = Persistence::open(cfg).await.unwrap();
        let s = p.db().sessions("erin", 0, i64::MAX, 10).await.unwrap();
        assert_eq!(s.len(), 1, "{s:?}");
        assert_eq!(s[0].logout_reason.as_deref(), Some("node_restart"));
        let at = s[0].logout_at.unwrap();
        // Dated by the last beat: after the login, before this start, within a few beats.
        assert!(
            at > 1_000 && at <= before && before - at < 2_000,
            "{at} vs {before}"
        );
        p.shutdown(Duration::from_secs(5)).await;
    });
}

/// Polls `cond` every 20 ms for up to 30 s.
pub async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..1_500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Story: the database is unreachable when the writer starts. `start` returns at once; the
/// state turns `Down`; queries fail at once with `Unavailable` (counted, no pool wait); rows
/// are kept, and `durable` resolves once they are fsynced to the spill file. When the
/// database becomes reachable (`bring_up`), the writer migrates, writes them in order and
/// the state turns `Up`; the spill file is consumed.
pub async fn starts_while_down_then_catches_up(mut cfg: DbConfig, bring_up: impl FnOnce()) {
    cfg.retry_max = Duration::from_millis(200);
    cfg.op_timeout = Duration::from_millis(1_000);
    let p = Persistence::start(cfg.clone()).unwrap();
    let w = p.writer();
    w.login("early", 1_000);
    w.logout("early", 2_000, "closed");
    w.login("late", 3_000);
    w.durable().await.unwrap();
    assert!(cfg.spill_path.exists(), "rows are synced to the spill file");
    let db = p.db().clone();
    wait_for("state down", || matches!(db.state(), DbState::Down(_))).await;
    let e = p.db().sessions("early", 0, i64::MAX, 10).await.unwrap_err();
    assert!(matches!(e, SqlError::Unavailable(_)), "{e}");
    let e = p.db().last_seen(&["early".into()]).await.unwrap_err();
    assert!(matches!(e, SqlError::Unavailable(_)), "{e}");
    assert_eq!(DbMetrics::get(&p.metrics().queries_refused), 2);
    assert_eq!(DbMetrics::get(&p.metrics().events_written), 0);
    bring_up();
    wait_for("state up", || db.is_up()).await;
    w.flush().await.unwrap();
    let s = p.db().sessions("early", 0, i64::MAX, 10).await.unwrap();
    assert_eq!(s.len(), 1, "{s:?}");
    assert_eq!((s[0].login_at, s[0].logout_at), (1_000, Some(2_000)));
    let s = p.db().sessions("late", 0, i64::MAX, 10).await.unwrap();
    assert_eq!((s.len(), s[0].logout_at), (1, None), "{s:?}");
    assert_eq!(DbMetrics::get(&p.metrics().events_written), 3);
    p.shutdown(Duration::from_secs(5)).await;
    assert!(!cfg.spill_path.exists(), "the spill file is consumed");
}

/// Connects the suite's query side for assertions.
pub async fn db_for(cfg: &DbConfig) -> Db {
    Db::connect(cfg, Arc::new(DbMetrics::default()))
        .await
        .unwrap()
}

/// A TCP proxy to `target` that can be switched off: off closes every open connection and
/// refuses new ones (accept, then drop at once).
pub struct Proxy {
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let (cut, _) = watch::channel(0u64);
        let (up2, cut2) = (up.clone(), cut.clone());
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                if !up2.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let mut rx = cut2.subscribe();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (mut c, mut s) = (client, server);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut c, &mut s) => {}
                        _ = rx.changed() => {}
                    }
                });
            }
        });
        Proxy { addr, up, cut }
    }

    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
        if !up {
            self.cut.send_modify(|n| *n += 1);
        }
    }
}

/// `url` with its host:port replaced by `addr`.
pub fn via(url: &str, addr: SocketAddr) -> String {
    let at = url
        .find('@')
        .map_or_else(|| url.find("://").unwrap() + 3, |i| i + 1);
    let end = url[at..].find('/').map_or(url.len(), |i| at + i);
    format!("{}{}{}", &url[..at], addr, &url[end..])
}
