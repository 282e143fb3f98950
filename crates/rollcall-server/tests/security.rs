//! Auth, limits and slow consumers: every rule has a test that fails without it.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::{EncodingKey, Header, encode};
use rollcall_core::Millis;
use rollcall_server::ServerConfig;
use rollcall_server::config::{AccessRule, Auth, PresenceKeySource};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
const SECRET: &str = "rollcall-test-secret";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn jwt(claims: Value, secret: &str) -> String {
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()).unwrap(),
    )
    .unwrap()
}

fn user(sub: &str, exp_in: i64) -> String {
    jwt(
        json!({"role": "authenticated", "sub": sub, "exp": now() as i64 + exp_in, "family_id": 1}),
        SECRET,
    )
}

fn secured(f: impl FnOnce(&mut Auth)) -> ServerConfig {
    let mut cfg = support::fast_config(1000, 3);
    let mut auth = Auth::new(Some(SECRET), None, None).unwrap();
    f(&mut auth);
    cfg.auth = Arc::new(auth);
    cfg
}

async fn connect_with(addr: std::net::SocketAddr, apikey: &str) -> Result<Ws, (u16, String)> {
    let url = format!("ws://{addr}/realtime/v1/websocket?apikey={apikey}&vsn=2.0.0");
    match connect_async(url.into_client_request().unwrap()).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let body = resp
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).to_string())
                .unwrap_or_default();
            Err((resp.status().as_u16(), body))
        }
        Err(e) => panic!("unexpected error {e}"),
    }
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
}

async fn until(ws: &mut Ws, secs: u64, pred: impl Fn(&Value) -> bool) -> Value {
    tokio::time::timeout(Duration::from_secs(secs), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if pred(&v) {
                        return v;
                    }
                }
                Some(Ok(_)) => {}
                other => panic!("socket ended: {other:?}"),
            }
        }
    })
    .await
    .expect("expected frame in time")
}

/// Waits for the server to close the socket; returns the close code.
async fn closed(ws: &mut Ws, secs: u64) -> Option<u16> {
    tokio::time::timeout(Duration::from_secs(secs), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(f))) => return f.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    })
    .await
    .expect("socket closed in time")
}

fn join(topic: &str, jr: &str, key: &str, extra: Value) -> Value {
    let mut payload = json!({"config": {"broadcast": {"ack": false, "self": false},
        "presence": {"key": key, "enabled": true}, "postgres_changes": [], "private": false}});
    if let (Some(p), Some(e)) = (payload.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            if k == "private" {
                p["config"]["private"] = v.clone();
            } else {
                p.insert(k.clone(), v.clone());
            }
        }
    }
    json!([jr, jr, topic, "phx_join", payload])
}

fn track(topic: &str, jr: &str, r: &str, meta: Value) -> Value {
    json!([jr, r, topic, "presence", {"type": "presence", "event": "track", "payload": meta}])
}

fn reason(v: &Value) -> String {
    v[4]["response"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn connect_refuses_missing_malformed_forged_expired_and_alg_none_tokens() {
    let s = support::start(secured(|_| {})).await;
    let url = format!("ws://{}/realtime/v1/websocket?vsn=2.0.0", s.addr);
    let err = connect_async(url).await.unwrap_err();
    assert!(matches!(err, tokio_tungstenite::tungstenite::Error::Http(ref r) if r.status() == 401));
    let cases = [
        (
            "not-a-jwt".to_string(),
            "The token provided is not a valid JWT",
        ),
        (
            jwt(json!({"role": "anon", "exp": now() + 60}), "wrong-secret"),
            "Failed to validate JWT signature",
        ),
        (
            jwt(json!({"role": "anon", "exp": now() - 60}), SECRET),
            "Token has expired",
        ),
        (
            jwt(json!({"exp": now() + 60}), SECRET),
            "Fields `role` and `exp` are required in JWT",
        ),
        // alg none is not even a JWT we parse
        (
            "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJyb2xlIjoiYW5vbiIsImV4cCI6OTk5OTk5OTk5OX0."
                .to_string(),
            "The token provided is not a valid JWT",
        ),
    ];
    for (token, message) in cases {
        let (status, body) = connect_with(s.addr, &token).await.expect_err("refused");
        assert_eq!(status, 401, "{message}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"], message);
    }
    assert!(connect_with(s.addr, &user("u1", 60)).await.is_ok());
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn join_with_an_expired_access_token_is_refused_with_supabases_reason() {
    let s = support::start(secured(|_| {})).await;
    let mut ws = connect_with(s.addr, &user("u1", 60)).await.unwrap();
    send(
        &mut ws,
        join(
            "realtime:a",
            "1",
            "",
            json!({"access_token": user("u1", -30)}),
        ),
    )
    .await;
    let r = until(&mut ws, 2, |v| v[1] == "1").await;
    assert!(
        reason(&r).starts_with("InvalidJWTToken: Token has expired"),
        "{r}"
    );
    send(
        &mut ws,
        join("realtime:a", "2", "", json!({"access_token": "garbage"})),
    )
    .await;
    let r = until(&mut ws, 2, |v| v[1] == "2").await;
    assert_eq!(
        reason(&r),
        "MalformedJWT: The token provided is not a valid JWT"
    );
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_token_expiring_while_joined_ends_the_channel_with_a_system_error() {
    let s = support::start(secured(|_| {})).await;
    let mut ws = connect_with(s.addr, &user("u1", 60)).await.unwrap();
    send(
        &mut ws,
        join(
            "realtime:exp",
            "1",
            "",
            json!({"access_token": user("u1", 2)}),
        ),
    )
    .await;
    until(&mut ws, 2, |v| v[1] == "1").await;
    let sys = until(&mut ws, 6, |v| v[3] == "system").await;
    assert_eq!(sys[4]["status"], "error");
    assert!(
        sys[4]["message"]
            .as_str()
            .unwrap()
            .starts_with("Token has expired")
    );
    assert_eq!(sys[4]["channel"], "exp");
    until(&mut ws, 2, |v| v[3] == "phx_close").await;
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_refreshed_token_keeps_the_channel_and_a_bad_one_ends_it() {
    let s = support::start(secured(|_| {})).await;
    let mut ws = connect_with(s.addr, &user("u1", 60)).await.unwrap();
    send(
        &mut ws,
        join(
            "realtime:r",
            "1",
            "",
            json!({"access_token": user("u1", 2)}),
        ),
    )
    .await;
    until(&mut ws, 2, |v| v[1] == "1").await;
    send(
        &mut ws,
        json!(["1", "2", "realtime:r", "access_token", {"access_token": user("u1", 600)}]),
    )
    .await;
    for i in 0..6 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        send(
            &mut ws,
            json!([null, format!("h{i}"), "phoenix", "heartbeat", {}]),
        )
        .await;
    }
    send(&mut ws, track("realtime:r", "1", "3", json!({"a": 1}))).await;
    let r = until(&mut ws, 2, |v| v[1] == "3" || v[3] == "system").await;
    assert_eq!(
        r[4]["status"], "ok",
        "channel survives past the old exp: {r}"
    );
    send(&mut ws, json!(["1", "4", "realtime:r", "access_token", {"access_token": jwt(json!({"role":"x","exp":now()+60}), "forged")}])).await;
    let sys = until(&mut ws, 2, |v| v[3] == "system").await;
    assert_eq!(sys[4]["message"], "Failed to validate JWT signature");
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn presence_key_sub_stops_impersonation() {
    let s = support::start(secured(|a| a.presence_key = PresenceKeySource::Sub)).await;
    let mut ws = connect_with(s.addr, &user("alice", 60)).await.unwrap();
    send(&mut ws, join("realtime:p", "1", "bob", json!({}))).await;
    let r = until(&mut ws, 2, |v| v[1] == "1").await;
    assert_eq!(
        reason(&r),
        "PresenceKeyMismatch: presence key must equal the token's sub claim"
    );
    send(&mut ws, join("realtime:p", "2", "", json!({}))).await;
    until(&mut ws, 2, |v| v[3] == "presence_state").await;
    send(&mut ws, track("realtime:p", "2", "3", json!({"s": 1}))).await;
    let diff = until(&mut ws, 2, |v| v[3] == "presence_diff").await;
    assert!(
        diff[4]["joins"].get("alice").is_some(),
        "tracked under the token's sub: {diff}"
    );
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn private_channels_follow_access_rules() {
    let s = support::start(secured(|a| {
        a.rules = vec![AccessRule {
            topic: "family:{claims.family_id}".into(),
            roles: vec!["authenticated".into()],
        }];
    }))
    .await;
    let mut ws = connect_with(s.addr, &user("u1", 60)).await.unwrap();
    send(
        &mut ws,
        join("realtime:family:2", "1", "", json!({"private": true})),
    )
    .await;
    let r = until(&mut ws, 2, |v| v[1] == "1").await;
    assert_eq!(
        reason(&r),
        "Unauthorized: You do not have permissions to read from this Channel topic: family:2"
    );
    send(
        &mut ws,
        join("realtime:family:1", "2", "", json!({"private": true})),
    )
    .await;
    let r = until(&mut ws, 2, |v| v[1] == "2").await;
    assert_eq!(r[4]["status"], "ok");
    let anon = jwt(
        json!({"role": "anon", "exp": now() + 60, "family_id": 1}),
        SECRET,
    );
    let mut ws2 = connect_with(s.addr, &anon).await.unwrap();
    send(
        &mut ws2,
        join("realtime:family:1", "1", "", json!({"private": true})),
    )
    .await;
    assert!(reason(&until(&mut ws2, 2, |v| v[1] == "1").await).starts_with("Unauthorized"));
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn open_mode_refuses_private_channels() {
    let s = support::start(support::fast_config(1000, 3)).await;
    let mut ws = connect_with(s.addr, "anything").await.unwrap();
    send(
        &mut ws,
        join("realtime:x", "1", "", json!({"private": true})),
    )
    .await;
    assert!(reason(&until(&mut ws, 2, |v| v[1] == "1").await).starts_with("Unauthorized"));
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn every_limit_trips_with_its_reason() {
    let mut cfg = support::fast_config(1000, 3);
    cfg.max_channels_per_connection = 2;
    cfg.limits.presence_calls = 3;
    cfg.limits.max_events_per_second = 1000;
    cfg.limits.max_topic_bytes = 20;
    cfg.core.max_keys_per_topic = 1;
    cfg.limits.max_connections = 3;
    let s = support::start(cfg).await;
    let mut ws = connect_with(s.addr, "k").await.unwrap();
    // topic length
    send(
        &mut ws,
        join("realtime:this-name-is-too-long", "1", "a", json!({})),
    )
    .await;
    assert!(reason(&until(&mut ws, 2, |v| v[1] == "1").await).starts_with("TopicNameTooLong"));
    // channels per connection
    for (i, t) in ["realtime:c1", "realtime:c2", "realtime:c3"]
        .iter()
        .enumerate()
    {
        send(&mut ws, join(t, &format!("j{i}"), "a", json!({}))).await;
    }
    let r = until(&mut ws, 2, |v| v[1] == "j2").await;
    assert_eq!(reason(&r), "ChannelRateLimitReached: Too many channels");
    // presence calls per channel window: the 4th ends the channel
    for i in 0..3 {
        send(
            &mut ws,
            track("realtime:c1", "j0", &format!("t{i}"), json!({"i": i})),
        )
        .await;
        assert_eq!(
            until(&mut ws, 2, |v| v[1] == format!("t{i}")).await[4]["status"],
            "ok"
        );
    }
    send(&mut ws, track("realtime:c1", "j0", "t3", json!({"i": 3}))).await;
    let sys = until(&mut ws, 2, |v| v[3] == "system").await;
    assert_eq!(sys[4]["message"], "Client presence rate limit exceeded");
    until(&mut ws, 2, |v| v[3] == "phx_close" && v[2] == "realtime:c1").await;
    // keys per topic: c2 holds key a; another connection's key b is refused
    send(&mut ws, track("realtime:c2", "j1", "t4", json!({}))).await;
    until(&mut ws, 2, |v| v[1] == "t4").await;
    let mut other = connect_with(s.addr, "k").await.unwrap();
    send(&mut other, join("realtime:c2", "1", "b", json!({}))).await;
    send(&mut other, track("realtime:c2", "1", "2", json!({}))).await;
    assert!(
        reason(&until(&mut other, 2, |v| v[1] == "2").await).starts_with("TooManyPresenceKeys")
    );
    // connections per node
    let _third = connect_with(s.addr, "k").await.unwrap();
    let (status, body) = connect_with(s.addr, "k").await.expect_err("over the limit");
    assert_eq!(
        (status, body.as_str()),
        (429, r#"{"error":"Too many connected users"}"#)
    );
    assert!(s.hub.metrics().errors_of("too_many_connections") >= 1);
    assert!(s.hub.metrics().errors_of("presence_rate") >= 1);
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn join_and_event_rates_are_enforced() {
    let mut cfg = support::fast_config(1000, 3);
    cfg.limits.max_joins_per_second = 2;
    cfg.limits.max_events_per_second = 5;
    let s = support::start(cfg).await;
    let mut ws = connect_with(s.addr, "k").await.unwrap();
    send(&mut ws, join("realtime:e", "1", "a", json!({}))).await;
    until(&mut ws, 2, |v| v[1] == "1").await;
    for i in 0..6 {
        send(&mut ws, json!(["1", format!("b{i}"), "realtime:e", "broadcast", {"type": "broadcast", "event": "x", "payload": {}}])).await;
    }
    let sys = until(&mut ws, 2, |v| v[3] == "system").await;
    assert_eq!(sys[4]["message"], "Too many messages per second");
    let mut ws2 = connect_with(s.addr, "k").await.unwrap();
    for i in 0..3 {
        send(
            &mut ws2,
            join(&format!("realtime:j{i}"), &format!("{i}"), "a", json!({})),
        )
        .await;
    }
    let r = until(&mut ws2, 2, |v| v[1] == "2").await;
    assert_eq!(
        reason(&r),
        "ClientJoinRateLimitReached: Too many joins per second"
    );
    assert_eq!(closed(&mut ws2, 2).await, Some(1008));
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_slowloris_socket_that_never_joins_is_closed() {
    let mut cfg = support::fast_config(10_000, 3);
    cfg.limits.join_timeout = Millis(300);
    let s = support::start(cfg).await;
    let mut ws = connect_with(s.addr, "k").await.unwrap();
    assert_eq!(closed(&mut ws, 3).await, Some(1008));
    assert_eq!(s.hub.open_sockets(), 0);
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_client_that_never_reads_is_closed_and_others_are_unaffected() {
    let mut cfg = support::fast_config(10_000, 3);
    cfg.limits.outbound_queue_bytes = 256 * 1024;
    cfg.limits.presence_calls = 100_000;
    cfg.limits.max_events_per_second = 100_000;
    cfg.core.max_meta_bytes = 64 * 1024;
    let s = support::start(cfg).await;
    let mut stuck = connect_with(s.addr, "k").await.unwrap();
    send(&mut stuck, join("realtime:flood", "1", "stuck", json!({}))).await;
    until(&mut stuck, 2, |v| v[1] == "1").await;
    // From here on `stuck` never reads.
    let mut reader = connect_with(s.addr, "k").await.unwrap();
    send(
        &mut reader,
        join("realtime:flood", "1", "reader", json!({})),
    )
    .await;
    until(&mut reader, 2, |v| v[1] == "1").await;
    let mut writer = connect_with(s.addr, "k").await.unwrap();
    send(
        &mut writer,
        join("realtime:flood", "1", "writer", json!({})),
    )
    .await;
    until(&mut writer, 2, |v| v[1] == "1").await;
    let blob = "x".repeat(8 * 1024);
    let (mut got, mut last_ok) = (0usize, String::new());
    for i in 0..1000 {
        send(
            &mut writer,
            track(
                "realtime:flood",
                "1",
                &format!("w{i}"),
                json!({"i": i, "blob": blob}),
            ),
        )
        .await;
        if i % 50 == 49 {
            let want = format!("w{i}");
            last_ok =
                until(&mut writer, 5, |v| v[1] == want.as_str()).await[4]["status"].to_string();
        }
        // the reader keeps up
        while let Ok(Some(Ok(_))) =
            tokio::time::timeout(Duration::from_millis(1), reader.next()).await
        {
            got += 1;
        }
    }
    assert_eq!(last_ok, "\"ok\"");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while got < 1000 && tokio::time::Instant::now() < deadline {
        if let Ok(Some(Ok(Message::Text(t)))) =
            tokio::time::timeout(Duration::from_millis(200), reader.next()).await
            && t.contains("presence_diff")
        {
            got += 1;
        }
    }
    assert!(got >= 1000, "the reading client got every diff ({got})");
    assert!(s.hub.metrics().slow_consumers.load(Ordering::Relaxed) >= 1);
    // the stuck client is gone: 2 sockets remain and its memory is released
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while s.hub.open_sockets() != 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(s.hub.open_sockets(), 2);
    assert_eq!(s.hub.connections(), 2);
    drop(stuck);
    s.shutdown().await.unwrap();
}
