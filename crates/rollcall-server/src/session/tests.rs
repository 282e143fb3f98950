//! The session on a manual clock: rate limits, join timeout, token expiry mid-channel and the
//! heartbeat budget, each at the exact millisecond it applies.

use std::sync::Arc;

use rollcall_core::{LeaveReason, Millis};
use rollcall_phoenix::{Vsn, reply};
use serde_json::{Value, json};

use super::Session;
use super::timers::JOIN_TIMEOUT;
use crate::clock::{Clock, ManualClock};
use crate::config::ServerConfig;
use crate::hub::{ConnCtl, Hub, Outbox};

const START_UNIX_MS: u64 = 1_700_000_000_000;
const SECRET: &str = "session-unit-secret";

struct Socket {
    session: Session,
    ctl: Arc<ConnCtl>,
    hub: Arc<Hub>,
    hand: Arc<ManualClock>,
}

impl Socket {
    fn open(f: impl FnOnce(&mut ServerConfig)) -> Socket {
        let mut cfg = ServerConfig::default();
        f(&mut cfg);
        let (clock, hand) = Clock::manual(START_UNIX_MS);
        let hub = Hub::with_clock(cfg, clock).unwrap();
        let conn = hub.next_conn_id();
        hub.engine.connect(conn, hub.now()).unwrap();
        let (outbox, ctl) = Outbox::new(1024, 1 << 20);
        let session = Session::new(hub.clone(), conn, Vsn::V2, outbox, None, hub.now());
        Socket {
            session,
            ctl,
            hub,
            hand,
        }
    }

    fn at(&mut self, t: u64) -> Millis {
        self.hand.set(Millis(t));
        self.hub.now()
    }

    fn send(&mut self, t: u64, frame: Value) {
        let now = self.at(t);
        self.session.handle_text(now, &frame.to_string());
    }

    /// Every frame queued since the last call.
    fn frames(&self) -> Vec<Value> {
        let mut out = Vec::new();
        while let Some(m) = self.ctl.try_recv() {
            if let axum::extract::ws::Message::Text(t) = m {
                out.push(serde_json::from_str(&t).unwrap());
            }
        }
        out
    }

    /// The reply to `msg_ref` among the queued frames: (status, reason).
    fn reply(&self, msg_ref: &str) -> (String, String) {
        let frames = self.frames();
        let r = frames
            .iter()
            .find(|f| f[3] == "phx_reply" && f[1] == msg_ref)
            .unwrap_or_else(|| panic!("a reply to {msg_ref} in {frames:?}"));
        let reason = r[4]["response"]["reason"].as_str().unwrap_or("");
        (
            r[4]["status"].as_str().unwrap().to_string(),
            reason.to_string(),
        )
    }
}

fn join(topic: &str, msg_ref: &str, config: Value) -> Value {
    json!([msg_ref, msg_ref, topic, "phx_join", config])
}

#[test]
fn the_event_budget_refuses_the_extra_message_and_reopens_a_second_later() {
    let mut s = Socket::open(|c| c.limits.max_events_per_second = 3);
    for (i, t) in [0, 10, 999].into_iter().enumerate() {
        s.send(
            t,
            json!([null, i.to_string(), "realtime:x", "broadcast", {}]),
        );
        assert_eq!(s.reply(&i.to_string()).1, reply::UNMATCHED_TOPIC);
    }
    s.send(999, json!([null, "3", "realtime:x", "broadcast", {}]));
    assert_eq!(s.reply("3").1, reply::TOO_MANY_MESSAGES);
    // The window opened at 0 and lasts exactly 1000 ms.
    s.send(1000, json!([null, "4", "realtime:x", "broadcast", {}]));
    assert_eq!(s.reply("4").1, reply::UNMATCHED_TOPIC);
}

#[test]
fn heartbeats_have_their_own_budget() {
    let mut s = Socket::open(|c| {
        c.limits.max_heartbeats_per_second = 2;
        c.limits.max_events_per_second = 1;
    });
    let hb = |r: &str| json!([null, r, "phoenix", "heartbeat", {}]);
    s.send(0, hb("1"));
    s.send(500, hb("2"));
    assert_eq!(s.frames().len(), 2);
    s.send(900, hb("3"));
    assert_eq!(s.reply("3").1, reply::CLIENT_HEARTBEAT_RATE_LIMIT_REACHED);
    s.send(1000, hb("4"));
    assert_eq!(s.reply("4").0, "ok", "a new window");
    // Heartbeats did not use the (smaller) event budget.
    s.send(1000, join("realtime:room", "5", json!({"config": {}})));
    assert_eq!(s.reply("5").0, "ok");
}

#[test]
fn heartbeats_in_any_spelling_get_the_same_answer_and_share_one_budget() {
    let mut s = Socket::open(|c| c.limits.max_heartbeats_per_second = 2);
    // The canonical bytes (the fast path) and a spelling only the full decoder reads.
    s.send(0, json!([null, "1", "phoenix", "heartbeat", {}]));
    let now = s.at(10);
    s.session
        .handle_text(now, r#"[ null , "2" , "phoenix" , "heartbeat" , { } ]"#);
    let frames = s.frames();
    assert_eq!(
        frames,
        [
            json!([null, "1", "phoenix", "phx_reply", {"status": "ok", "response": {}}]),
            json!([null, "2", "phoenix", "phx_reply", {"status": "ok", "response": {}}]),
        ]
    );
    s.send(20, json!([null, "3", "phoenix", "heartbeat", {}]));
    assert_eq!(s.reply("3").1, reply::CLIENT_HEARTBEAT_RATE_LIMIT_REACHED);
    assert_eq!(s.hub.metrics.errors_of("heartbeats_rate"), 1);
}

#[test]
fn a_socket_that_joins_nothing_is_closed_exactly_at_join_timeout() {
    let mut s = Socket::open(|c| c.limits.join_timeout = Millis(5_000));
    assert_eq!(s.session.poll_timeout(), Some(Millis(5_000)));
    let now = s.at(4_999);
    assert_eq!(s.session.handle_timeout(now), None);
    // Heartbeats do not count as a join.
    s.send(4_999, json!([null, "1", "phoenix", "heartbeat", {}]));
    let now = s.at(5_000);
    assert_eq!(s.session.handle_timeout(now), Some(JOIN_TIMEOUT));
    assert_eq!(s.hub.metrics.errors_of("join_timeout"), 1);

    let mut joined = Socket::open(|c| c.limits.join_timeout = Millis(5_000));
    joined.send(4_000, join("realtime:room", "1", json!({"config": {}})));
    assert_eq!(joined.session.poll_timeout(), None, "joined: no timer left");
    let now = joined.at(10_000);
    assert_eq!(joined.session.handle_timeout(now), None);
}

#[test]
fn an_expiring_token_ends_its_channel_at_exp_and_its_presence_leaves() {
    let mut s = Socket::open(|c| {
        c.auth = Arc::new(crate::auth::Auth::new(Some(SECRET), None, None).unwrap());
    });
    let exp = START_UNIX_MS / 1000 + 60;
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"role": "authenticated", "sub": "ann", "exp": exp}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()).unwrap(),
    )
    .unwrap();
    s.send(
        1_000,
        join(
            "realtime:room",
            "1",
            json!({"config": {"presence": {"key": "ann"}}, "access_token": token}),
        ),
    );
    assert_eq!(s.reply("1").0, "ok");
    s.send(
        2_000,
        json!(["1", "2", "realtime:room", "presence", {"type": "presence", "event": "track", "payload": {}}]),
    );
    assert_eq!(s.reply("2").0, "ok");
    assert_eq!(s.session.poll_timeout(), Some(Millis(60_000)));
    let now = s.at(59_999);
    assert_eq!(s.session.handle_timeout(now), None);
    assert!(s.frames().is_empty(), "still valid");
    assert_eq!(s.hub.engine.list("realtime:room").len(), 1);
    let now = s.at(60_000);
    assert_eq!(s.session.handle_timeout(now), None, "the socket stays open");
    let frames = s.frames();
    assert_eq!(frames[0][3], "system", "{frames:?}");
    assert_eq!(frames[0][4]["message"], "Token has expired 0 seconds ago");
    assert_eq!(frames.last().unwrap()[3], "phx_close", "{frames:?}");
    assert!(s.hub.engine.list("realtime:room").is_empty());
    assert_eq!(s.session.poll_timeout(), None);
    let now = s.at(61_000);
    s.session.close(now, LeaveReason::Closed);
}

#[test]
fn joins_over_the_rate_are_refused_within_the_window_only() {
    let mut s = Socket::open(|c| c.limits.max_joins_per_second = 2);
    s.send(0, join("realtime:a", "1", json!({"config": {}})));
    s.send(300, join("realtime:b", "2", json!({"config": {}})));
    assert_eq!(s.reply("2").0, "ok");
    s.send(999, join("realtime:c", "3", json!({"config": {}})));
    assert_eq!(s.reply("3").1, reply::CLIENT_JOIN_RATE_LIMIT_REACHED);
}
