//! Runs the `@rollcall/react` vitest suite (`clients/react`): the hooks on the real, pinned
//! `@supabase/realtime-js` against a server started here (1 s heartbeat × 3).

mod support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn react_hooks_suite_passes_against_a_real_server() {
    let dir = support::clients_dir("react");
    support::npm_ci(&dir).await;
    let server = support::start(support::fast_config(1000, 3)).await;
    support::run_node_suite(&dir, "npx", &["vitest", "run"], &server).await;
    server.shutdown().await;
}
