//! Test helpers shared by Rollcall's crates. A dev-dependency only; nothing ships with it.

mod redis_cluster;

pub use redis_cluster::{RedisCluster, cli as redis_cli, client_ids_where};

/// The URL in environment variable `var`, for tests that need a real service.
///
/// `None` (the caller skips, printing why) when it is unset, unless
/// `ROLLCALL_REQUIRE_SERVICES=1`, in which case a missing URL fails the test: CI sets that, so
/// a skipped Redis or Postgres test can never pass silently there.
pub fn service_url(var: &str) -> Option<String> {
    let required = std::env::var("ROLLCALL_REQUIRE_SERVICES").as_deref() == Ok("1");
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if required => panic!("{var} must be set when ROLLCALL_REQUIRE_SERVICES=1"),
        _ => {
            eprintln!("skipped: {var} is unset (set it, or ROLLCALL_REQUIRE_SERVICES=1 to fail)");
            None
        }
    }
}

/// A name unique to this process and call, for per-test schemas, databases and key prefixes.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}
