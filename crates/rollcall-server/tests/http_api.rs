//! The HTTP API under token auth: every endpoint × {no token, bad signature, expired, another
//! user's token, own token, service_role}, what a refusal delivers or discloses (nothing),
//! CORS, body and rate limits, slow and idle connections, and the shutdown deadline.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::{EncodingKey, Header, encode};
use rollcall_core::Millis;
use rollcall_server::ServerConfig;
use rollcall_server::config::{AccessRule, Auth};
use rollcall_server::config::{MetricsAuth, StatusRead};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "rollcall-http-secret";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn jwt(claims: Value, secret: &str) -> String {
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()).unwrap(),
    )
    .unwrap()
}

/// The six callers of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    NoToken,
    BadSignature,
    Expired,
    OtherUser,
    OwnUser,
    Service,
}

const EVERYONE: [Who; 6] = [
    Who::NoToken,
    Who::BadSignature,
    Who::Expired,
    Who::OtherUser,
    Who::OwnUser,
    Who::Service,
];

/// The token of `who`; "own" is alice of family 1, "other" is bob of family 2.
fn token(who: Who) -> Option<String> {
    let exp = now() + 3600;
    Some(match who {
        Who::NoToken => return None,
        Who::BadSignature => jwt(
            json!({"role": "authenticated", "sub": "alice", "exp": exp, "family_id": 1}),
            "not-the-secret",
        ),
        Who::Expired => jwt(
            json!({"role": "authenticated", "sub": "alice", "exp": now() - 120, "family_id": 1}),
            SECRET,
        ),
        Who::OtherUser => jwt(
            json!({"role": "authenticated", "sub": "bob", "exp": exp, "family_id": 2}),
            SECRET,
        ),
        Who::OwnUser => jwt(
            json!({"role": "authenticated", "sub": "alice", "exp": exp, "family_id": 1}),
            SECRET,
        ),
        Who::Service => jwt(json!({"role": "service_role", "exp": exp}), SECRET),
    })
}

fn secured(f: impl FnOnce(&mut ServerConfig)) -> ServerConfig {
    let mut cfg = support::fast_config(1000, 3);
    let mut auth = Auth::new(Some(SECRET), None, None).unwrap();
    auth.rules = vec![AccessRule {
        topic: "family:{claims.family_id}".into(),
        roles: vec!["authenticated".into()],
    }];
    cfg.auth = Arc::new(auth);
    f(&mut cfg);
    cfg
}

/// One HTTP/1.1 exchange with explicit headers; returns (status, lower-case headers, body).
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &str,
) -> (u16, Vec<(String, String)>, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("response in time")
        .unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status: u16 = head[9..12].parse().unwrap();
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    // Chunked bodies: good enough to search in; JSON answers here are sent with a length.
    (status, headers, body.to_string())
}

/// A request as `who`, the token in `Authorization: Bearer` (or `apikey` when `as_apikey`).
async fn call(addr: SocketAddr, who: Who, method: &str, path: &str, body: &str) -> (u16, String) {
    let headers: Vec<(&str, String)> = match token(who) {
        None => vec![],
        Some(t) if who == Who::OtherUser => vec![("apikey", t)],
        Some(t) => vec![("Authorization", format!("Bearer {t}"))],
    };
    let (status, _, body) = request(addr, method, path, &headers, body).await;
    (status, body)
}

/// The status `who` must get, given the answers for the three valid tokens.
fn expect(who: Who, other: u16, own: u16, service: u16) -> u16 {
    match who {
        Who::NoToken | Who::BadSignature | Who::Expired => 401,
        Who::OtherUser => other,
        Who::OwnUser => own,
        Who::Service => service,
    }
}

async fn assert_matrix(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
    (other, own, service): (u16, u16, u16),
) {
    for who in EVERYONE {
        let (status, text) = call(addr, who, method, path, body).await;
        let want = expect(who, other, own, service);
        assert_eq!(status, want, "{method} {path} as {who:?}: {text}");
        if status == 401 {
            let v: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["message"], "Unauthorized", "{text}");
            assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{text}");
        }
        if status == 403 {
            let v: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["message"], "Forbidden", "{text}");
        }
    }
}

async fn ws_join(addr: SocketAddr, topic: &str, private: bool, key: &str) -> support::Ws {
    let apikey = token(Who::OwnUser).unwrap();
    let mut ws = support::connect(&format!(
        "ws://{addr}/realtime/v1/websocket?apikey={apikey}&vsn=2.0.0"
    ))
    .await;
    let payload = json!({"config": {"broadcast": {"ack": false, "self": false},
        "presence": {"key": key, "enabled": true}, "private": private}, "access_token": apikey});
    support::send(&mut ws, json!(["1", "1", topic, "phx_join", payload])).await;
    let reply = support::until(&mut ws, 5, |v| v[3] == "phx_reply").await;
    assert_eq!(reply[4]["status"], "ok", "{reply}");
    ws
}

#[tokio::test]
async fn every_endpoint_requires_a_token_and_checks_what_it_may_do() {
    let dir = std::env::temp_dir().join(rollcall_testkit::unique_name("http-auth"));
    std::fs::create_dir_all(&dir).unwrap();
    let db = format!("sqlite://{}", dir.join("r.db").display());
    let s = support::start(secured(|c| c.database_url = Some(db))).await;
    let a = s.addr;
    // Someone online in public room and private family:1, so answers have content.
    let mut alice = ws_join(a, "realtime:room", false, "alice").await;
    support::send(
        &mut alice,
        json!(["1", "2", "realtime:room", "presence", {"type": "presence", "event": "track", "payload": {"at": "desk"}}]),
    )
    .await;
    support::until(&mut alice, 5, |v| v[3] == "presence_diff").await;

    assert_matrix(
        a,
        "POST",
        "/api/presence/status",
        r#"{"keys":["alice"]}"#,
        (200, 200, 200),
    )
    .await;
    assert_matrix(a, "GET", "/api/channels/room/presence", "", (200, 200, 200)).await;
    assert_matrix(
        a,
        "GET",
        "/api/channels/family:1/presence?private=true",
        "",
        (403, 200, 200),
    )
    .await;
    // Login history is personal: bob may not read alice's, alice and service_role may.
    assert_matrix(
        a,
        "GET",
        "/api/presence/alice/sessions",
        "",
        (403, 200, 200),
    )
    .await;
    let (_, refused) = call(a, Who::OtherUser, "GET", "/api/presence/alice/sessions", "").await;
    assert!(
        !refused.contains("login_at"),
        "a refusal discloses nothing: {refused}"
    );
    let public = r#"{"messages":[{"topic":"room","event":"e","payload":{"n":1}}]}"#;
    assert_matrix(a, "POST", "/api/broadcast", public, (202, 202, 202)).await;
    assert_matrix(
        a,
        "POST",
        "/realtime/v1/api/broadcast",
        public,
        (202, 202, 202),
    )
    .await;
    // Metrics: open by default (Prometheus convention).
    for who in EVERYONE {
        assert_eq!(call(a, who, "GET", "/metrics", "").await.0, 200, "{who:?}");
    }
    // Health, readiness, the document and the demo page need nothing.
    for path in ["/healthz", "/readyz", "/openapi.json", "/"] {
        assert_eq!(
            call(a, Who::NoToken, "GET", path, "").await.0,
            200,
            "{path}"
        );
    }
    drop(alice);
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn private_broadcasts_reach_members_only_with_a_permitted_token() {
    let s = support::start(secured(|_| {})).await;
    let a = s.addr;
    let mut member = ws_join(a, "realtime:family:1", true, "alice").await;
    let msg = |n: u32| {
        format!(
            r#"{{"messages":[{{"topic":"family:1","event":"e","payload":{{"n":{n}}},"private":true}}]}}"#
        )
    };
    // bob (family 2) is refused, and the batch reports which message and why.
    let (status, body) = call(a, Who::OtherUser, "POST", "/api/broadcast", &msg(1)).await;
    assert_eq!(status, 403, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["refused"][0]["index"], 0, "{body}");
    assert_eq!(v["refused"][0]["topic"], "family:1", "{body}");
    // A mixed batch (public + refused private) delivers nothing at all.
    let mixed = r#"{"messages":[{"topic":"family:1","event":"e","payload":{"n":2}},{"topic":"family:1","event":"e","payload":{"n":3},"private":true}]}"#;
    assert_eq!(
        call(a, Who::OtherUser, "POST", "/api/broadcast", mixed)
            .await
            .0,
        403
    );
    // alice (family 1) may, and the member receives exactly that message.
    let (status, body) = call(a, Who::OwnUser, "POST", "/api/broadcast", &msg(4)).await;
    assert_eq!(status, 202, "{body}");
    let got = support::until(&mut member, 5, |v| v[3] == "broadcast").await;
    assert_eq!(
        got[4]["payload"]["n"], 4,
        "nothing refused arrived first: {got}"
    );
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn status_read_and_metrics_auth_settings_restrict_reads() {
    let s = support::start(secured(|c| {
        c.http.status_read = StatusRead::ServiceRole;
        c.http.metrics_auth = MetricsAuth::Token;
    }))
    .await;
    let a = s.addr;
    assert_matrix(
        a,
        "POST",
        "/api/presence/status",
        r#"{"keys":["x"]}"#,
        (403, 403, 200),
    )
    .await;
    assert_matrix(a, "GET", "/metrics", "", (403, 403, 200)).await;
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn metrics_can_move_to_their_own_address() {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let metrics_addr = probe.local_addr().unwrap();
    drop(probe);
    let s = support::start(secured(|c| c.http.metrics_bind = Some(metrics_addr))).await;
    // serve() binds the metrics address as it starts: wait for it.
    for _ in 0..100 {
        if TcpStream::connect(metrics_addr).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, body) = call(metrics_addr, Who::NoToken, "GET", "/metrics", "").await;
    assert_eq!(status, 200);
    assert!(body.contains("rollcall_http_connections"), "{body}");
    let (status, _) = call(s.addr, Who::Service, "GET", "/metrics", "").await;
    assert_eq!(status, 404, "not on the main address any more");
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn open_mode_keeps_the_api_open() {
    let s = support::start(support::fast_config(1000, 3)).await;
    for who in [Who::NoToken, Who::BadSignature] {
        let (status, _) = call(
            s.addr,
            who,
            "POST",
            "/api/presence/status",
            r#"{"keys":["a"]}"#,
        )
        .await;
        assert_eq!(status, 200, "{who:?}");
    }
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn cors_is_off_by_default_and_answers_preflights_for_configured_origins() {
    let preflight = |origin: &'static str| {
        vec![
            ("Origin", origin.to_string()),
            ("Access-Control-Request-Method", "POST".to_string()),
            (
                "Access-Control-Request-Headers",
                "apikey, authorization, content-type, x-client-info".to_string(),
            ),
        ]
    };
    let header = |h: &[(String, String)], name: &str| {
        h.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    };
    let s = support::start(secured(|_| {})).await;
    let (_, h, _) = request(
        s.addr,
        "OPTIONS",
        "/api/broadcast",
        &preflight("https://app.example.com"),
        "",
    )
    .await;
    assert_eq!(header(&h, "access-control-allow-origin"), None);
    s.shutdown().await.unwrap();

    let s = support::start(secured(|c| {
        c.http.cors_origins = vec!["https://app.example.com".into()];
    }))
    .await;
    let (status, h, _) = request(
        s.addr,
        "OPTIONS",
        "/api/broadcast",
        &preflight("https://app.example.com"),
        "",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&h, "access-control-allow-origin").as_deref(),
        Some("https://app.example.com")
    );
    let allowed = header(&h, "access-control-allow-headers").unwrap_or_default();
    for name in ["apikey", "authorization", "content-type", "x-client-info"] {
        assert!(allowed.contains(name), "{allowed}");
    }
    let (_, h, _) = request(
        s.addr,
        "OPTIONS",
        "/api/broadcast",
        &preflight("https://evil.example"),
        "",
    )
    .await;
    assert_eq!(header(&h, "access-control-allow-origin"), None);
    s.shutdown().await.unwrap();

    let s = support::start(secured(|c| c.http.cors_origins = vec!["*".into()])).await;
    let (_, h, _) = request(
        s.addr,
        "OPTIONS",
        "/api/presence/status",
        &preflight("https://any.example"),
        "",
    )
    .await;
    assert_eq!(
        header(&h, "access-control-allow-origin").as_deref(),
        Some("*")
    );
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_huge_body_gets_a_json_413_before_it_is_sent() {
    let s = support::start(support::fast_config(1000, 3)).await;
    let mut tcp = TcpStream::connect(s.addr).await.unwrap();
    let head = format!(
        "POST /api/broadcast HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        10 * 1024 * 1024
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    // Not one byte of the body is sent: the answer must come anyway.
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
        .await
        .expect("answered without the body")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(
        text.contains("application/json") && text.contains("max_http_body_bytes"),
        "{text}"
    );
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn requests_over_the_rate_get_429() {
    let mut cfg = support::fast_config(1000, 3);
    cfg.http.requests_per_second = 5;
    let s = support::start(cfg).await;
    let mut codes = Vec::new();
    for _ in 0..8 {
        let (status, h, body) = request(
            s.addr,
            "POST",
            "/api/presence/status",
            &[],
            r#"{"keys":["a"]}"#,
        )
        .await;
        if status == 429 {
            assert!(h.iter().any(|(k, v)| k == "retry-after" && v == "1"));
            assert!(body.contains("http_requests_per_second"), "{body}");
        }
        codes.push(status);
    }
    // A window boundary may fall inside the loop; at least 8 - 2×5 are refused then.
    assert!(
        codes.iter().filter(|c| **c == 429).count() >= 1,
        "{codes:?}"
    );
    assert!(
        codes.iter().filter(|c| **c == 200).count() >= 5,
        "{codes:?}"
    );
    s.shutdown().await.unwrap();
}

/// Reads until the server closes the connection; returns what arrived, or None on timeout.
async fn read_until_closed(tcp: &mut TcpStream, secs: u64) -> Option<String> {
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(secs), tcp.read_to_end(&mut buf))
        .await
        .ok()
        .map(|_| String::from_utf8_lossy(&buf).to_string())
}

#[tokio::test]
async fn slow_and_silent_connections_are_closed_and_capped() {
    let mut cfg = support::fast_config(1000, 3);
    cfg.http.header_timeout = Millis(500);
    cfg.http.body_timeout = Millis(800);
    cfg.http.max_connections = 4;
    let s = support::start(cfg).await;
    // Sends nothing at all.
    let mut silent = TcpStream::connect(s.addr).await.unwrap();
    // Trickles a request head and never finishes it.
    let mut trickle = TcpStream::connect(s.addr).await.unwrap();
    trickle
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // Sends a body at a byte per 300 ms.
    let mut slow_body = TcpStream::connect(s.addr).await.unwrap();
    slow_body
        .write_all(b"POST /api/presence/status HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        .await
        .unwrap();
    let writer = tokio::spawn(async move {
        for _ in 0..8 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if slow_body.write_all(b" ").await.is_err() {
                break;
            }
        }
        slow_body
    });
    // One more idle one fills the cap of 4: a fifth is closed at once.
    let _idle = TcpStream::connect(s.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut over = TcpStream::connect(s.addr).await.unwrap();
    let _ = over
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let answer = read_until_closed(&mut over, 2)
        .await
        .expect("closed at once");
    assert!(!answer.contains("200 OK"), "over the cap: {answer}");
    assert!(
        read_until_closed(&mut silent, 3).await.is_some(),
        "silent socket closed"
    );
    assert!(
        read_until_closed(&mut trickle, 3).await.is_some(),
        "trickling head closed"
    );
    let mut slow_body = writer.await.unwrap();
    assert!(
        read_until_closed(&mut slow_body, 3).await.is_some(),
        "slow body closed"
    );
    // Once they are gone, the server serves again.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (status, _, _) = request(s.addr, "GET", "/healthz", &[], "").await;
    assert_eq!(status, 200);
    let (_, _, metrics) = request(s.addr, "GET", "/metrics", &[], "").await;
    let refused: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("rollcall_http_connections_refused_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the refusal counter is exported");
    assert!(refused >= 1, "refusals are counted");
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn shutdown_holds_its_deadline_with_slow_clients_connected() {
    let mut cfg = support::fast_config(1000, 3);
    cfg.http.header_timeout = Millis(60_000);
    cfg.http.body_timeout = Millis(60_000);
    cfg.shutdown_timeout = Millis(1000);
    let s = support::start(cfg).await;
    let mut held = Vec::new();
    for i in 0..5 {
        let mut t = TcpStream::connect(s.addr).await.unwrap();
        if i % 2 == 0 {
            t.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                .await
                .unwrap();
        } else {
            t.write_all(b"POST /api/broadcast HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{")
                .await
                .unwrap();
        }
        held.push(t);
    }
    // A WebSocket client too, which must get its close.
    let (mut ws, _) = tokio_tungstenite::connect_async(s.ws_url("2.0.0"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), s.shutdown())
        .await
        .expect("shutdown within its deadline")
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let mut closed = false;
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(2), ws.next()).await {
        if matches!(m, Ok(Message::Close(_)) | Err(_)) {
            closed = true;
            break;
        }
    }
    assert!(closed, "the WebSocket client was closed");
    let _ = ws.send(Message::text("x")).await;
}
