//! The persistence suite on PostgreSQL (`DATABASE_URL`; a schema per test), and the outage
//! test: the database vanishes behind a proxy while 1,000 logins/logouts happen.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use rollcall_sql::{DbMetrics, Persistence};

#[tokio::test]
async fn sessions_and_last_seen_are_written() {
    let Some(cfg) = common::pg_config("pg_sessions") else {
        return;
    };
    common::sessions_and_last_seen(cfg).await;
}

#[tokio::test]
async fn a_login_storm_is_batched() {
    let Some(cfg) = common::pg_config("pg_storm") else {
        return;
    };
    common::a_login_storm_is_batched(cfg).await;
}

#[tokio::test]
async fn shutdown_closes_open_sessions() {
    let Some(cfg) = common::pg_config("pg_shutdown") else {
        return;
    };
    common::shutdown_closes_open_sessions(cfg).await;
}

#[test]
fn a_crash_is_recovered_with_node_restart() {
    let Some(cfg) = common::pg_config("pg_crash") else {
        return;
    };
    common::a_crash_is_recovered_with_node_restart(cfg);
}

/// The server is down (a proxy refusing every connection) when the writer starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_while_the_database_is_unreachable_and_catches_up() {
    let Some(mut cfg) = common::pg_config("pg_down_at_start") else {
        return;
    };
    let proxy = common::Proxy::start(pg_addr(&cfg.url)).await;
    proxy.set_up(false);
    cfg.url = common::via(&cfg.url, proxy.addr);
    common::starts_while_down_then_catches_up(cfg, || proxy.set_up(true)).await;
}

fn pg_addr(url: &str) -> SocketAddr {
    let opts: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
    let host = if opts.get_host() == "localhost" {
        "127.0.0.1"
    } else {
        opts.get_host()
    };
    format!("{}:{}", host, opts.get_port()).parse().unwrap()
}

/// Story: Postgres becomes unreachable (every connection cut, new ones refused) while 100 keys
/// each log in and out 5 times. Nothing may be lost or reordered: with a queue bound of 300
/// rows, most of the 1,000 events go through the spill file. Once the proxy lets traffic
/// through, every session is there, closed, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_loses_nothing_and_keeps_order() {
    let Some(mut cfg) = common::pg_config("pg_outage") else {
        return;
    };
    let real = cfg.url.clone();
    let target = pg_addr(&real);
    let proxy = common::Proxy::start(target).await;
    cfg.url = common::via(&real, proxy.addr);
    cfg.queue_capacity = 300;
    cfg.op_timeout = Duration::from_millis(500);
    cfg.retry_max = Duration::from_millis(200);
    let p = Persistence::open(cfg.clone()).await.unwrap();
    proxy.set_up(false);
    let mut t = 10_000u64;
    for round in 0..5 {
        for k in 0..100 {
            p.writer().login(&format!("k{k}"), t);
            t += 1;
        }
        for k in 0..100 {
            p.writer().logout(
                &format!("k{k}"),
                t,
                if round % 2 == 0 { "closed" } else { "timeout" },
            );
            t += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    let m = p.metrics();
    assert!(DbMetrics::get(&m.write_errors) > 0, "the outage was felt");
    assert_eq!(DbMetrics::get(&m.events_written), 0);
    assert!(
        DbMetrics::get(&m.spilled) > 0,
        "the queue bound forced a spill"
    );
    proxy.set_up(true);
    tokio::time::timeout(Duration::from_secs(20), p.writer().flush())
        .await
        .expect("flushed after recovery")
        .unwrap();
    assert_eq!(DbMetrics::get(&m.events_written), 1_000);
    let mut direct = cfg.clone();
    direct.url = real;
    let db = common::db_for(&direct).await;
    for k in 0..100 {
        let key = format!("k{k}");
        let s = db.sessions(&key, 0, i64::MAX, 100).await.unwrap();
        assert_eq!(s.len(), 5, "{key}: {s:?}");
        for (round, sess) in s.iter().enumerate() {
            let login = 10_000 + round as i64 * 200 + k;
            assert_eq!(sess.login_at, login, "{key} round {round}");
            assert_eq!(sess.logout_at, Some(login + 100), "{key} round {round}");
            let reason = if round % 2 == 0 { "closed" } else { "timeout" };
            assert_eq!(sess.logout_reason.as_deref(), Some(reason));
        }
        let seen = db.last_seen(std::slice::from_ref(&key)).await.unwrap();
        assert_eq!(seen[&key].status, "offline");
        assert_eq!(seen[&key].last_seen, 10_000 + 4 * 200 + k + 100);
    }
    p.shutdown(Duration::from_secs(5)).await;
    assert!(!cfg.spill_path.exists(), "the spill file is consumed");
}
