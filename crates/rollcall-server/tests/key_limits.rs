//! Memory bounds from presence keys: over-long keys are refused (join, track, status) and the
//! offline keys remembered for `last_seen` are capped, oldest forgotten first.

mod support;

use rollcall_core::Millis;
use serde_json::{Value, json};

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} missing"))
}

#[tokio::test]
async fn an_over_long_presence_key_is_refused_everywhere() {
    let s = support::start(support::fast_config(1000, 3)).await;
    let mut ws = support::connect(&s.ws_url("2.0.0")).await;
    let huge = "k".repeat(500_000);
    let join = json!(["1", "1", "realtime:room", "phx_join",
        {"config": {"presence": {"key": huge, "enabled": true}, "broadcast": {"self": false}}}]);
    support::send(&mut ws, join).await;
    let reply = support::until(&mut ws, 5, |v| v[3] == "phx_reply").await;
    assert_eq!(reply[4]["status"], "error", "{}", &reply.to_string()[..200]);
    let reason = reply[4]["response"]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("PresenceKeyTooLong: presence key is 500000 bytes, the limit is 255"),
        "{reason}"
    );
    // At the limit is fine.
    let ok_key = "k".repeat(255);
    let join = json!(["2", "2", "realtime:room", "phx_join",
        {"config": {"presence": {"key": ok_key, "enabled": true}, "broadcast": {"self": false}}}]);
    support::send(&mut ws, join).await;
    let reply = support::until(&mut ws, 5, |v| v[3] == "phx_reply" && v[1] == "2").await;
    assert_eq!(reply[4]["status"], "ok", "{reply}");
    assert_eq!(s.hub.metrics().errors_of("key_too_long"), 1);
    let body = format!(r#"{{"keys":["{}"]}}"#, "x".repeat(1000));
    let (status, text) = support::http(&s.http_url(), "POST", "/api/presence/status", &body).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("255"), "{text}");
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn remembered_offline_keys_are_capped_oldest_first() {
    let mut cfg = support::fast_config(1000, 3);
    cfg.core.max_offline_keys = 3;
    cfg.core.shards = 1;
    cfg.core.offline_grace = Millis(0);
    let s = support::start(cfg).await;
    for i in 0..10 {
        let mut ws = support::connect(&s.ws_url("2.0.0")).await;
        let join = json!(["1", "1", "realtime:churn", "phx_join",
            {"config": {"presence": {"key": format!("u{i}"), "enabled": true}}}]);
        support::send(&mut ws, join).await;
        support::until(&mut ws, 5, |v| v[3] == "phx_reply").await;
        support::send(
            &mut ws,
            json!(["1", "2", "realtime:churn", "presence",
            {"type": "presence", "event": "track", "payload": {"i": i}}]),
        )
        .await;
        support::until(&mut ws, 5, |v| v[3] == "phx_reply" && v[1] == "2").await;
        drop(ws);
        // Keys going offline within one timer bucket (20 ms here) have no order among
        // themselves: wait for this one to leave, then a bucket more.
        for _ in 0..100 {
            if s.hub.engine().stats().presences == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    }
    // Every key leaves; at most 3 stay remembered, the rest were evicted and counted.
    let mut remembered = u64::MAX;
    for _ in 0..100 {
        let (_, text) = support::http(&s.http_url(), "GET", "/metrics", "").await;
        remembered = metric(&text, "rollcall_offline_keys_remembered");
        let evicted = metric(&text, "rollcall_offline_keys_evicted_total");
        if metric(&text, "rollcall_presences") == 0 && evicted >= 7 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(remembered <= 3, "remembered {remembered}");
    // The newest key still has its last_seen; the oldest was forgotten.
    let (_, text) = support::http(
        &s.http_url(),
        "POST",
        "/api/presence/status",
        r#"{"keys":["u0","u9"]}"#,
    )
    .await;
    let v: Value = serde_json::from_str(&text).unwrap();
    assert!(v["statuses"]["u0"]["last_seen"].is_null(), "{v}");
    assert!(v["statuses"]["u9"]["last_seen"].is_u64(), "{v}");
    assert_eq!(s.hub.open_sockets(), 0);
    s.shutdown().await.unwrap();
}
