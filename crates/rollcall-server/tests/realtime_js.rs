//! Runs the realtime-js conformance suite (`tests/realtime-js`, `node --test`) with the real,
//! pinned `@supabase/realtime-js` against a server started here on a free port, with a 1 s
//! heartbeat × 3 so timeout cases take seconds.

mod support;

use std::path::PathBuf;
use std::process::Stdio;

fn suite_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/realtime-js")
}

async fn npm_ci(dir: &PathBuf) {
    let marker = dir.join("node_modules/@supabase/realtime-js/package.json");
    let lock = dir.join("node_modules/.package-lock.json");
    if marker.exists() && lock.exists() {
        return;
    }
    let status = tokio::process::Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .status()
        .await
        .expect("npm must be installed to run the realtime-js suite");
    assert!(status.success(), "npm ci failed in {}", dir.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realtime_js_conformance_suite_passes() {
    let dir = suite_dir();
    npm_ci(&dir).await;
    let mut cfg = support::fast_config(1000, 3);
    cfg.max_channels_per_connection = 100;
    let server = support::start(cfg).await;
    let output = tokio::process::Command::new("node")
        .args(["--test", "--test-reporter=spec"])
        .current_dir(&dir)
        .env("ROLLCALL_URL", server.http_url())
        .env("ROLLCALL_HEARTBEAT_MS", "1000")
        .env("ROLLCALL_MISSED_HEARTBEATS", "3")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await
        .expect("node must be installed");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        panic!("realtime-js suite failed:\n{stdout}\n{stderr}");
    }
    println!("{stdout}");
    server.shutdown().await.unwrap();
}

/// Cases 25–30 (auth and limits) against a server with a JWT secret, 3 channels per
/// connection and Supabase's presence rate (5 calls per 30 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realtime_js_auth_and_limit_cases_pass() {
    let dir = suite_dir();
    npm_ci(&dir).await;
    let mut cfg = support::fast_config(1000, 3);
    cfg.max_channels_per_connection = 3;
    cfg.limits.presence_calls = 5;
    cfg.limits.presence_window = rollcall_core::Millis::from_secs(30);
    cfg.auth = std::sync::Arc::new(
        rollcall_server::auth::Auth::new(Some("rollcall-test-secret"), None, None).unwrap(),
    );
    let server = support::start(cfg).await;
    let output = tokio::process::Command::new("node")
        .args(["--test", "--test-reporter=spec", "auth.suite.mjs"])
        .current_dir(&dir)
        .env("ROLLCALL_URL", server.http_url())
        .env("ROLLCALL_HEARTBEAT_MS", "1000")
        .env("ROLLCALL_MISSED_HEARTBEATS", "3")
        .env("ROLLCALL_JWT_SECRET", "rollcall-test-secret")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await
        .expect("node must be installed");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "realtime-js auth cases failed:\n{stdout}\n{stderr}"
    );
    server.shutdown().await.unwrap();
}
