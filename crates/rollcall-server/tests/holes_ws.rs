//! Regression tests for the WebSocket, protocol and token holes of issue 11, each over real
//! sockets against an in-process server:
//! * a validly signed token with a huge `exp` panicked the socket task when its deadline was
//!   computed, and the cleanup after the loop never ran: a ghost presence until the heartbeat
//!   timeout, gauges that never went down, a `max_connections` slot lost for good;
//! * a claim value substituted into an access rule acted as a wildcard (`family_id: "*"`);
//! * `nbf` in the future was accepted, and so was a refresh to another user's token;
//! * invalid UTF-8 and RFC 6455 violations dropped TCP without a close frame, a bogus
//!   `Sec-WebSocket-Key` was upgraded, a 6-element v2 frame was accepted, a client meta's
//!   `phx_ref` was duplicated in `presence_state`, and heartbeats and malformed frames escaped
//!   every rate limit.

mod support;

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::{EncodingKey, Header, encode};
use rollcall_server::ServerConfig;
use rollcall_server::config::Auth;
use serde_json::{Value, json};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

use support::{TestServer, Ws, send};

const SECRET: &str = "rollcall-holes-secret";
/// A validly signed `exp` far beyond any clock: 1e19 seconds.
const HUGE_EXP: u64 = 10_000_000_000_000_000_000;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn jwt(claims: Value) -> String {
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()).unwrap(),
    )
    .unwrap()
}

fn user(sub: &str, exp: u64) -> String {
    jwt(json!({"role": "authenticated", "sub": sub, "exp": exp}))
}

fn secured(heartbeat_ms: u64, f: impl FnOnce(&mut ServerConfig, &mut Auth)) -> ServerConfig {
    let mut cfg = support::fast_config(heartbeat_ms, 3);
    let mut auth = Auth::new(Some(SECRET), None, None).unwrap();
    f(&mut cfg, &mut auth);
    cfg.auth = Arc::new(auth);
    cfg
}

/// Opens a socket with `apikey`; Err(status, body) when the upgrade is refused.
async fn open(s: &TestServer, apikey: &str) -> Result<Ws, (u16, String)> {
    let url = format!(
        "ws://{}/realtime/v1/websocket?apikey={apikey}&vsn=2.0.0",
        s.addr
    );
    match connect_async(url).await {
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

/// The first text frame matching `pred` within `secs`, or None (timeout or socket end).
async fn wait_for(ws: &mut Ws, secs: u64, pred: impl Fn(&Value) -> bool) -> Option<Value> {
    tokio::time::timeout(Duration::from_secs(secs), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if pred(&v) {
                        return Some(v);
                    }
                }
                Some(Ok(_)) => {}
                _ => return None,
            }
        }
    })
    .await
    .ok()
    .flatten()
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

/// Polls until `f` holds, for at most `secs`.
async fn eventually(secs: u64, f: impl Fn() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}

#[tokio::test]
async fn huge_exp_sockets_release_their_connection_slots_and_gauges() {
    let s = support::start(secured(1000, |cfg, _| cfg.limits.max_connections = 3)).await;
    let huge = user("u", HUGE_EXP);
    let mut sockets = Vec::new();
    for i in 0..3 {
        let mut ws = open(&s, &huge).await.expect("a slot is free");
        send(&mut ws, join(&format!("realtime:h{i}"), "1", "", json!({}))).await;
        let r = wait_for(&mut ws, 2, |v| v[1] == "1").await;
        assert_eq!(
            r.map(|r| r[4]["status"].clone()),
            Some(json!("ok")),
            "a join with a far-future exp is answered"
        );
        sockets.push(ws);
    }
    assert_eq!(s.hub.joined_channels(), 3);
    for mut ws in sockets {
        ws.close(None).await.unwrap();
    }
    let hub = s.hub.clone();
    assert!(
        eventually(3, || hub.open_sockets() == 0).await,
        "open sockets gauge returns to 0"
    );
    assert_eq!(s.hub.joined_channels(), 0);
    assert!(s.hub.connections() == 0);
    let fourth = open(&s, &user("u", now() + 60)).await;
    assert!(fourth.is_ok(), "a 4th client connects: {:?}", fourth.err());
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_presence_refreshed_to_a_huge_exp_leaves_when_its_socket_closes() {
    // Heartbeat timeout 30 s: a ghost would outlive the test.
    let s = support::start(secured(10_000, |_, _| {})).await;
    let mut observer = open(&s, &user("observer", now() + 60)).await.unwrap();
    send(
        &mut observer,
        join("realtime:p", "1", "observer", json!({})),
    )
    .await;
    wait_for(&mut observer, 2, |v| v[3] == "presence_state")
        .await
        .expect("observer joined");
    let mut ghost = open(&s, &user("ghost", now() + 60)).await.unwrap();
    send(&mut ghost, join("realtime:p", "1", "ghost", json!({}))).await;
    send(&mut ghost, track("realtime:p", "1", "2", json!({"a": 1}))).await;
    wait_for(&mut observer, 2, |v| {
        v[3] == "presence_diff" && v[4]["joins"].get("ghost").is_some()
    })
    .await
    .expect("ghost tracked");
    let refresh = json!({"access_token": user("ghost", HUGE_EXP)});
    send(
        &mut ghost,
        json!(["1", "3", "realtime:p", "access_token", refresh]),
    )
    .await;
    send(&mut ghost, json!([null, "4", "phoenix", "heartbeat", {}])).await;
    let hb = wait_for(&mut ghost, 2, |v| v[1] == "4").await;
    assert_eq!(
        hb.map(|v| v[4]["status"].clone()),
        Some(json!("ok")),
        "the socket survives the refresh"
    );
    ghost.close(None).await.unwrap();
    let leave = wait_for(&mut observer, 3, |v| {
        v[3] == "presence_diff" && v[4]["leaves"].get("ghost").is_some()
    })
    .await;
    assert!(
        leave.is_some(),
        "the presence leaves when its socket closes"
    );
    let hub = s.hub.clone();
    assert!(eventually(2, || hub.open_sockets() == 1).await);
    assert_eq!(s.hub.joined_channels(), 1);
    s.shutdown().await.unwrap();
}

fn reason(v: &Value) -> &str {
    v[4]["response"]["reason"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_star_claim_does_not_open_another_familys_private_channel() {
    let s = support::start(secured(1000, |_, auth| {
        auth.rules = vec![rollcall_server::config::AccessRule {
            topic: "family:{claims.family_id}".into(),
            roles: vec!["authenticated".into()],
        }];
    }))
    .await;
    let star =
        jwt(json!({"role": "authenticated", "sub": "m", "exp": now() + 60, "family_id": "*"}));
    let mut ws = open(&s, &star).await.unwrap();
    send(
        &mut ws,
        join("realtime:family:f1", "1", "", json!({"private": true})),
    )
    .await;
    let r = wait_for(&mut ws, 2, |v| v[1] == "1")
        .await
        .expect("a reply");
    assert_eq!(
        reason(&r),
        "Unauthorized: You do not have permissions to read from this Channel topic: family:f1"
    );
    let own =
        jwt(json!({"role": "authenticated", "sub": "m", "exp": now() + 60, "family_id": "f1"}));
    send(
        &mut ws,
        join(
            "realtime:family:f1",
            "2",
            "",
            json!({"private": true, "access_token": own}),
        ),
    )
    .await;
    let r = wait_for(&mut ws, 2, |v| v[1] == "2")
        .await
        .expect("a reply");
    assert_eq!(r[4]["status"], "ok", "{r}");
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_token_not_valid_yet_is_refused_on_connect_and_on_join() {
    let s = support::start(secured(1000, |_, _| {})).await;
    let later =
        jwt(json!({"role": "authenticated", "sub": "u", "exp": now() + 600, "nbf": now() + 300}));
    let (status, body) = open(&s, &later).await.expect_err("refused");
    assert_eq!(status, 401);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"],
        "Token is not valid yet"
    );
    let mut ws = open(&s, &user("u", now() + 60)).await.unwrap();
    send(
        &mut ws,
        join("realtime:n", "1", "", json!({"access_token": later})),
    )
    .await;
    let r = wait_for(&mut ws, 2, |v| v[1] == "1")
        .await
        .expect("a reply");
    assert_eq!(reason(&r), "InvalidJWTToken: Token is not valid yet");
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_refresh_to_another_users_token_is_refused_and_the_old_token_stays() {
    let s = support::start(secured(1000, |_, auth| {
        auth.presence_key = rollcall_server::config::PresenceKeySource::Sub;
    }))
    .await;
    let mut ws = open(&s, &user("alice", now() + 60)).await.unwrap();
    let short = user("alice", now() + 3);
    send(
        &mut ws,
        join("realtime:r", "1", "", json!({"access_token": short})),
    )
    .await;
    wait_for(&mut ws, 2, |v| v[3] == "presence_state")
        .await
        .expect("joined");
    let bob = json!({"access_token": user("bob", now() + 600)});
    send(
        &mut ws,
        json!(["1", "2", "realtime:r", "access_token", bob]),
    )
    .await;
    let sys = wait_for(&mut ws, 2, |v| v[3] == "system")
        .await
        .expect("the refresh is refused with a system message");
    assert_eq!(sys[4]["status"], "error");
    assert!(
        sys[4]["message"]
            .as_str()
            .unwrap()
            .starts_with("Token refresh refused: the new token is for another user"),
        "{sys}"
    );
    // The channel stays, tracked under the old sub, on the old token.
    send(&mut ws, track("realtime:r", "1", "3", json!({"a": 1}))).await;
    let diff = wait_for(&mut ws, 2, |v| v[3] == "presence_diff")
        .await
        .expect("still joined");
    assert!(diff[4]["joins"].get("alice").is_some(), "{diff}");
    let end = wait_for(&mut ws, 6, |v| v[3] == "system")
        .await
        .expect("the old token still expires");
    assert!(
        end[4]["message"]
            .as_str()
            .unwrap()
            .starts_with("Token has expired"),
        "{end}"
    );
    s.shutdown().await.unwrap();
}

/// A WebSocket spoken byte by byte, to send what no client library will.
mod raw {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// Sends the upgrade request with `key`; returns the stream, the status and the body.
    pub(super) async fn upgrade(addr: std::net::SocketAddr, key: &str) -> (TcpStream, u16, String) {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let req = format!(
            "GET /realtime/v1/websocket?apikey=k&vsn=2.0.0 HTTP/1.1\r\nHost: {addr}\r\n\
             Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(s.read_u8().await.unwrap());
        }
        let head = String::from_utf8(head).unwrap();
        let status: u16 = head[9..12].parse().unwrap();
        let len = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().unwrap())
            })
            .unwrap_or(0);
        let mut body = vec![0; len];
        s.read_exact(&mut body).await.unwrap();
        (s, status, String::from_utf8(body).unwrap())
    }

    /// One masked client frame; `first` is the FIN/RSV/opcode byte.
    pub(super) async fn send_frame(s: &mut TcpStream, first: u8, payload: &[u8]) {
        assert!(payload.len() < 126);
        let mask = [1u8, 2, 3, 4];
        let mut frame = vec![first, 0x80 | payload.len() as u8];
        frame.extend(mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        s.write_all(&frame).await.unwrap();
    }

    /// Reads server frames until a close frame; its code, or None if TCP ends first.
    pub(super) async fn close_code(s: &mut TcpStream) -> Option<u16> {
        tokio::time::timeout(Duration::from_secs(2), async {
            loop {
                let first = s.read_u8().await.ok()?;
                let mut len = u64::from(s.read_u8().await.ok()? & 0x7f);
                if len == 126 {
                    len = u64::from(s.read_u16().await.ok()?);
                } else if len == 127 {
                    len = s.read_u64().await.ok()?;
                }
                let mut payload = vec![0; len as usize];
                s.read_exact(&mut payload).await.ok()?;
                if first & 0x0f == 0x8 {
                    return Some(u16::from_be_bytes([payload[0], payload[1]]));
                }
            }
        })
        .await
        .expect("the server answers within 2 s")
    }
}

#[tokio::test]
async fn invalid_utf8_closes_1007_and_a_protocol_violation_closes_1002() {
    let s = support::start(support::fast_config(1000, 3)).await;
    let key = "dGhlIHNhbXBsZSBub25jZQ==";
    let (mut ws, status, _) = raw::upgrade(s.addr, key).await;
    assert_eq!(status, 101);
    raw::send_frame(&mut ws, 0x81, &[b'[', 0xff, 0xfe, b']']).await;
    assert_eq!(raw::close_code(&mut ws).await, Some(1007));
    let (mut ws, _, _) = raw::upgrade(s.addr, key).await;
    // RSV1 set with no extension negotiated (RFC 6455 §5.2).
    raw::send_frame(&mut ws, 0xC1, b"[]").await;
    assert_eq!(raw::close_code(&mut ws).await, Some(1002));
    assert_eq!(s.hub.metrics().errors_of("invalid_utf8"), 1);
    assert_eq!(s.hub.metrics().errors_of("protocol_error"), 1);
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_bogus_websocket_key_is_refused_with_400_and_a_json_error() {
    let s = support::start(support::fast_config(1000, 3)).await;
    let (_, status, body) = raw::upgrade(s.addr, "abc").await;
    assert_eq!(status, 400);
    let v: Value = serde_json::from_str(&body).expect("a JSON body");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .starts_with("Sec-WebSocket-Key"),
        "{v}"
    );
    assert_eq!(s.hub.open_sockets(), 0);
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_six_element_frame_is_malformed() {
    let s = support::start(support::fast_config(1000, 3)).await;
    let mut ws = support::connect(&s.ws_url("2.0.0")).await;
    send(
        &mut ws,
        json!([null, "1", "phoenix", "heartbeat", {}, "smuggled"]),
    )
    .await;
    let r = support::next_frame(&mut ws, 2).await;
    assert_eq!(r[4]["status"], "error", "{r}");
    assert_eq!(
        reason(&r),
        "malformed message: frame has 6 elements, 5 are required"
    );
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_client_phx_ref_is_stripped_so_presence_state_has_one() {
    let s = support::start(support::fast_config(1000, 3)).await;
    let mut ws = support::connect(&s.ws_url("2.0.0")).await;
    send(&mut ws, join("realtime:m", "1", "k", json!({}))).await;
    let meta = json!({"s": 1, "phx_ref": "forged", "phx_ref_prev": "forged-too"});
    send(&mut ws, track("realtime:m", "1", "2", meta)).await;
    wait_for(&mut ws, 2, |v| v[1] == "2")
        .await
        .expect("tracked");
    let mut other = support::connect(&s.ws_url("2.0.0")).await;
    send(&mut other, join("realtime:m", "1", "o", json!({}))).await;
    // Raw text: a duplicate key would be lost by parsing it into a map.
    let text = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            if let Some(Ok(Message::Text(t))) = other.next().await
                && t.contains("presence_state")
            {
                return t.to_string();
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(text.matches("\"phx_ref\"").count(), 1, "{text}");
    assert!(!text.contains("forged"), "{text}");
    assert!(!text.contains("phx_ref_prev"), "{text}");
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn heartbeat_and_malformed_floods_are_rate_limited() {
    let mut cfg = support::fast_config(1000, 3);
    cfg.limits.max_heartbeats_per_second = 3;
    cfg.limits.max_events_per_second = 3;
    let s = support::start(cfg).await;
    let mut ws = support::connect(&s.ws_url("2.0.0")).await;
    // Heartbeats do not use the events budget and have their own.
    for i in 0..4 {
        send(
            &mut ws,
            json!([null, format!("h{i}"), "phoenix", "heartbeat", {}]),
        )
        .await;
    }
    for i in 0..4 {
        let r = support::next_frame(&mut ws, 2).await;
        assert_eq!(r[1], format!("h{i}"));
        let want = if i < 3 { "ok" } else { "error" };
        assert_eq!(r[4]["status"], want, "{r}");
    }
    for _ in 0..4 {
        ws.send(Message::text("garbage")).await.unwrap();
    }
    let mut reasons = Vec::new();
    for _ in 0..4 {
        reasons.push(reason(&support::next_frame(&mut ws, 2).await).to_string());
    }
    assert!(
        reasons[..3]
            .iter()
            .all(|r| r.starts_with("malformed message")),
        "{reasons:?}"
    );
    assert_eq!(reasons[3], "Too many messages per second");
    assert_eq!(s.hub.metrics().errors_of("heartbeats_rate"), 1);
    assert_eq!(s.hub.metrics().errors_of("events_rate"), 1);
    s.shutdown().await.unwrap();
}
