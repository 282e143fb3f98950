//! Runs the realtime-js conformance suite (`tests/realtime-js`, `node --test`) with the real,
//! pinned `@supabase/realtime-js` against a server started here on a free port, with a 1 s
//! heartbeat × 3 so timeout cases take seconds.

mod support;

use std::path::PathBuf;
use std::process::Stdio;

fn suite_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/realtime-js")
}

/// Both tests of this binary install into the same folder: one `npm ci` at a time (two at
/// once race on `node_modules` and one fails with ENOTEMPTY).
static NPM_CI: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn npm_ci(dir: &PathBuf) {
    let _one_at_a_time = NPM_CI.lock().await;
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

/// Runs `node --test <args>` in the suite directory against `server`; panics with the output
/// when the suite fails.
async fn run_node(server: &support::TestServer, args: &[&str], what: &str) {
    let output = tokio::process::Command::new("node")
        .args(["--test", "--test-reporter=spec"])
        .args(args)
        .current_dir(suite_dir())
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
        "{what} failed:\n{stdout}\n{stderr}"
    );
    println!("{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realtime_js_conformance_suite_passes() {
    npm_ci(&suite_dir()).await;
    let server = support::start(support::fast_config(1000, 3)).await;
    run_node(&server, &[], "realtime-js conformance suite").await;
    server.shutdown().await.unwrap();
}

/// Cases 25–30 (auth and limits) against a server with a JWT secret, 3 channels per
/// connection and Supabase's presence rate (5 calls per 30 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realtime_js_auth_and_limit_cases_pass() {
    npm_ci(&suite_dir()).await;
    let mut cfg = support::fast_config(1000, 3);
    cfg.max_channels_per_connection = 3;
    cfg.limits.presence_calls = 5;
    cfg.limits.presence_window = rollcall_core::Millis::from_secs(30);
    cfg.auth = std::sync::Arc::new(
        rollcall_server::config::Auth::new(Some("rollcall-test-secret"), None, None).unwrap(),
    );
    let server = support::start(cfg).await;
    run_node(
        &server,
        &["auth.suite.mjs"],
        "realtime-js auth and limit cases",
    )
    .await;
    server.shutdown().await.unwrap();
}
