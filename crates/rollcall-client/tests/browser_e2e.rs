//! Runs the browser end-to-end test (`clients/e2e`): the server's demo page in headless Debian
//! Chromium, driven by playwright-core, against a server started here (1 s heartbeat × 3).
//!
//! Without `/usr/bin/chromium` (or `CHROMIUM_PATH`) the test prints "skipped" and passes,
//! unless `ROLLCALL_REQUIRE_SERVICES=1`, where it fails: CI installs Chromium.

mod support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_browser_pages_see_each_other_and_a_closed_page_goes_offline() {
    let chromium = std::env::var("CHROMIUM_PATH").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !std::path::Path::new(&chromium).exists() {
        let required = std::env::var("ROLLCALL_REQUIRE_SERVICES").as_deref() == Ok("1");
        assert!(
            !required,
            "Chromium is missing at {chromium}: run `apt-get install -y chromium` \
             (required because ROLLCALL_REQUIRE_SERVICES=1)"
        );
        eprintln!("skipped: no Chromium at {chromium} (apt-get install -y chromium)");
        return;
    }
    let dir = support::clients_dir("e2e");
    support::npm_ci(&dir).await;
    let server = support::start(support::fast_config(1000, 3)).await;
    support::run_node_suite(&dir, "node", &["--test"], &server).await;
    server.shutdown().await;
}
