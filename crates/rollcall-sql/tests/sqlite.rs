//! The persistence suite on SQLite (always runs: a temp file per test).

mod common;

#[tokio::test]
async fn sessions_and_last_seen_are_written() {
    common::sessions_and_last_seen(common::sqlite_config("sessions")).await;
}

#[tokio::test]
async fn a_login_storm_is_batched() {
    common::a_login_storm_is_batched(common::sqlite_config("storm")).await;
}

#[tokio::test]
async fn shutdown_closes_open_sessions() {
    common::shutdown_closes_open_sessions(common::sqlite_config("shutdown")).await;
}

#[test]
fn a_crash_is_recovered_with_node_restart() {
    common::a_crash_is_recovered_with_node_restart(common::sqlite_config("crash"));
}

#[tokio::test]
async fn an_unknown_scheme_is_refused() {
    let cfg = rollcall_sql::DbConfig::new("mysql://x", "n");
    let e = rollcall_sql::Persistence::open(cfg).await.unwrap_err();
    assert!(e.to_string().contains("sqlite://"), "{e}");
}

#[tokio::test]
async fn starts_while_the_database_is_unreachable_and_catches_up() {
    let mut cfg = common::sqlite_config("down_at_start");
    let missing = cfg.spill_path.parent().unwrap().join("not-yet");
    cfg.url = format!("sqlite://{}", missing.join("rollcall.db").display());
    common::starts_while_down_then_catches_up(cfg, || std::fs::create_dir_all(&missing).unwrap())
        .await;
}

#[tokio::test]
async fn open_fails_fast_when_the_database_is_unreachable() {
    let mut cfg = common::sqlite_config("open_fails");
    let missing = cfg.spill_path.parent().unwrap().join("missing");
    cfg.url = format!("sqlite://{}", missing.join("rollcall.db").display());
    let e = rollcall_sql::Persistence::open(cfg).await.unwrap_err();
    assert!(matches!(e, rollcall_sql::SqlError::Unavailable(_)), "{e}");
}
