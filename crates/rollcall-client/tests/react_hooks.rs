//! Runs the `@rollcall/react` vitest suite (`clients/react`): the hooks on the real, pinned
//! `@supabase/realtime-js` against a server started here (1 s heartbeat × 3, 1 s offline grace).

mod support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn react_hooks_suite_passes_against_a_real_server() {
    let dir = support::clients_dir("react");
    support::npm_ci(&dir).await;
    // A 1 s offline grace: the status-watch tests reload a page within it.
    let mut cfg = support::fast_config(1000, 3);
    cfg.core.offline_grace = rollcall_core::Millis(1000);
    let server = support::start(cfg).await;
    support::run_node_suite(&dir, "npx", &["vitest", "run"], &server).await;
    server.shutdown().await;
}
