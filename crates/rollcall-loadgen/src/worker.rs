//! One worker: its share of the connections, each a task that joins, tracks, heartbeats,
//! churns on command and times the `presence_diff`s it receives.
//!
//! Latency is track → diff: every track carries `t`, the sender's wall clock in µs; a receiver
//! records `now - t` for each join in a diff. All workers run on one machine, so the clocks
//! agree across processes and across server nodes.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::net::TcpSocket;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::opts::{Group, Placement, WorkerPlan, groups, room_members, seat};
use crate::probe::wall_micros;

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// What a worker measured in the steady phase (counters are deltas over that phase).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WorkerReport {
    /// Worker index.
    pub index: usize,
    /// Connections up after the ramp.
    pub connected: u64,
    /// Connections that failed to open, join or track.
    pub errors: u64,
    /// Connections the server closed during the run.
    pub closed: u64,
    /// Frames sent in the steady phase.
    pub sent: u64,
    /// Frames received in the steady phase.
    pub received: u64,
    /// Heartbeat replies received in the steady phase.
    pub heartbeats: u64,
    /// `presence_diff` frames received in the steady phase.
    pub diffs: u64,
    /// Churn operations (leave + join + track) performed in the steady phase.
    pub churns: u64,
    /// Length of the steady phase, seconds.
    pub seconds: f64,
    /// Track → diff latency histogram in µs, as `(value, count)` pairs.
    pub latency_us: Vec<(u64, u64)>,
    /// Heartbeat → reply round trips in µs, as `(value, count)` pairs.
    #[serde(default)]
    pub heartbeat_rtt_us: Vec<(u64, u64)>,
}

/// What a worker saw after a node was killed: the `tally <dead>` answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Worker index.
    pub index: usize,
    /// Connections the servers closed since the ramp.
    pub closed: u64,
    /// Of those, connections back up on another server.
    pub reconnected: u64,
    /// Reconnections that failed on every other server.
    pub reconnect_errors: u64,
    /// This worker's connections that were on the dead node.
    pub on_dead: u64,
    /// Presences the surviving connections saw leave (diff leaves) since `count-leaves`.
    pub leaves_seen: u64,
    /// Presences they should have seen leave: their room-mates on the dead node.
    pub leaves_expected: u64,
    /// Surviving connections whose count differs from their expectation (0 = exactly once).
    pub leave_mismatches: u64,
}

/// A coordinator's order to a worker once its steady phase is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ctl {
    /// From now on, count the presences each connection sees leave.
    CountLeaves,
    /// Report a [`Tally`] as if node `dead` was killed.
    Tally(usize),
    /// Closed connections come back on a server other than `dead`.
    Reconnect(usize),
}

impl Ctl {
    /// The stdin line of this order (`rollcall-loadgen worker`).
    pub fn line(self) -> String {
        match self {
            Ctl::CountLeaves => "count-leaves".into(),
            Ctl::Tally(d) => format!("tally {d}"),
            Ctl::Reconnect(d) => format!("reconnect {d}"),
        }
    }

    /// Parses [`Ctl::line`]'s output.
    pub fn parse(line: &str) -> Option<Ctl> {
        let mut w = line.split_whitespace();
        let verb = w.next()?;
        let arg = w.next().and_then(|v| v.parse().ok());
        match (verb, arg) {
            ("count-leaves", None) => Some(Ctl::CountLeaves),
            ("tally", Some(d)) => Some(Ctl::Tally(d)),
            ("reconnect", Some(d)) => Some(Ctl::Reconnect(d)),
            _ => None,
        }
    }
}

#[derive(Default)]
struct Counters {
    connected: AtomicU64,
    reconnected: AtomicU64,
    reconnect_errors: AtomicU64,
    errors: AtomicU64,
    closed: AtomicU64,
    sent: AtomicU64,
    received: AtomicU64,
    heartbeats: AtomicU64,
    diffs: AtomicU64,
    churns: AtomicU64,
}

struct Ctx {
    servers: Vec<SocketAddr>,
    placement: Placement,
    reconnect: bool,
    start: usize,
    counting_leaves: AtomicBool,
    /// Presences seen leaving, per local connection, while `counting_leaves`.
    leaves: Vec<AtomicU32>,
    /// The dead node once the coordinator orders reconnection.
    back: watch::Receiver<Option<usize>>,
    groups: Vec<Group>,
    prefix: String,
    heartbeat: Duration,
    recording: AtomicBool,
    c: Counters,
    hist: Mutex<Histogram<u64>>,
    beat_hist: Mutex<Histogram<u64>>,
}

enum Cmd {
    Churn,
}

/// The connections of a finished worker; dropping it closes them.
pub struct Held {
    tasks: Vec<JoinHandle<()>>,
    ctx: Arc<Ctx>,
    back: watch::Sender<Option<usize>>,
    index: usize,
}

impl Held {
    /// Carries out a coordinator's order; [`Ctl::Tally`] returns the tally.
    pub fn control(&self, ctl: Ctl) -> Option<Tally> {
        match ctl {
            Ctl::CountLeaves => {
                for l in &self.ctx.leaves {
                    l.store(0, Relaxed);
                }
                self.ctx.counting_leaves.store(true, Relaxed);
                None
            }
            Ctl::Reconnect(dead) => {
                self.ctx.counting_leaves.store(false, Relaxed);
                let _ = self.back.send(Some(dead));
                None
            }
            Ctl::Tally(dead) => Some(self.tally(dead)),
        }
    }

    fn tally(&self, dead: usize) -> Tally {
        let ctx = &self.ctx;
        let n = ctx.servers.len();
        let mut t = Tally {
            index: self.index,
            closed: ctx.c.closed.load(Relaxed),
            reconnected: ctx.c.reconnected.load(Relaxed),
            reconnect_errors: ctx.c.reconnect_errors.load(Relaxed),
            ..Tally::default()
        };
        for (local, seen) in ctx.leaves.iter().enumerate() {
            let i = ctx.start + local;
            if ctx.placement.server_of(i, n) == dead {
                t.on_dead += 1;
                continue;
            }
            let expected = room_members(&ctx.groups, i)
                .filter(|&j| j != i && ctx.placement.server_of(j, n) == dead)
                .count() as u64;
            let seen = u64::from(seen.load(Relaxed));
            t.leaves_seen += seen;
            t.leaves_expected += expected;
            t.leave_mismatches += u64::from(seen != expected);
        }
        t
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Runs one worker: ramps up (calling `progress(connected, errors)` every 200 ms), calls
/// `ready`, waits for `go`, runs the steady phase for `duration` with churn, and returns the
/// report while the connections stay open in [`Held`].
///
/// # Errors
/// The room spec is invalid.
pub async fn run_worker(
    plan: WorkerPlan,
    mut progress: impl FnMut(u64, u64),
    ready: impl FnOnce(u64, u64),
    go: impl Future<Output = ()>,
) -> anyhow::Result<(WorkerReport, Held)> {
    let a = &plan.args;
    let (back_tx, back_rx) = watch::channel(None);
    let ctx = Arc::new(Ctx {
        servers: a.servers.clone(),
        placement: a.placement,
        reconnect: a.reconnect,
        start: plan.start,
        counting_leaves: AtomicBool::new(false),
        leaves: (plan.start..plan.end).map(|_| AtomicU32::new(0)).collect(),
        back: back_rx,
        groups: groups(&a.rooms, a.connections).map_err(anyhow::Error::msg)?,
        prefix: a.topic_prefix.clone(),
        heartbeat: a.heartbeat,
        recording: AtomicBool::new(false),
        c: Counters::default(),
        hist: Mutex::new(Histogram::new_with_bounds(1, 600_000_000, 3)?),
        beat_hist: Mutex::new(Histogram::new_with_bounds(1, 600_000_000, 3)?),
    });
    let gate = Arc::new(Semaphore::new(a.ramp_concurrency.max(1)));
    let count = (plan.end - plan.start) as u64;
    let mut senders = Vec::with_capacity(count as usize);
    let mut tasks = Vec::with_capacity(count as usize);
    for i in plan.start..plan.end {
        let (tx, rx) = mpsc::channel(4);
        senders.push(tx);
        tasks.push(tokio::spawn(conn_task(ctx.clone(), gate.clone(), i, rx)));
    }
    loop {
        let (up, err) = (ctx.c.connected.load(Relaxed), ctx.c.errors.load(Relaxed));
        progress(up, err);
        if up + err >= count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    ready(ctx.c.connected.load(Relaxed), ctx.c.errors.load(Relaxed));
    go.await;

    let before = snapshot(&ctx.c);
    ctx.recording.store(true, Relaxed);
    let t0 = Instant::now();
    let rate = a.churn * count as f64 / a.connections.max(1) as f64;
    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ plan.index as u64;
    let mut owed = 0.0;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    while t0.elapsed() < a.duration {
        tick.tick().await;
        if rate <= 0.0 || senders.is_empty() {
            continue;
        }
        owed += rate * 0.01;
        while owed >= 1.0 {
            owed -= 1.0;
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let _ = senders[(rng % senders.len() as u64) as usize].try_send(Cmd::Churn);
        }
    }
    ctx.recording.store(false, Relaxed);
    let seconds = t0.elapsed().as_secs_f64();
    let after = snapshot(&ctx.c);
    let d = |i: usize| after[i] - before[i];
    let pairs = |h: &Mutex<Histogram<u64>>| -> Vec<(u64, u64)> {
        let h = h.lock().unwrap_or_else(|e| e.into_inner());
        h.iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect()
    };
    let report = WorkerReport {
        index: plan.index,
        connected: ctx.c.connected.load(Relaxed),
        errors: ctx.c.errors.load(Relaxed),
        closed: ctx.c.closed.load(Relaxed),
        sent: d(0),
        received: d(1),
        heartbeats: d(2),
        diffs: d(3),
        churns: d(4),
        seconds,
        latency_us: pairs(&ctx.hist),
        heartbeat_rtt_us: pairs(&ctx.beat_hist),
    };
    drop(senders);
    let held = Held {
        tasks,
        ctx,
        back: back_tx,
        index: plan.index,
    };
    Ok((report, held))
}

fn snapshot(c: &Counters) -> [u64; 5] {
    [
        c.sent.load(Relaxed),
        c.received.load(Relaxed),
        c.heartbeats.load(Relaxed),
        c.diffs.load(Relaxed),
        c.churns.load(Relaxed),
    ]
}

/// Source address of connection `i`: 127.0.x.y, so each (source, server) pair needs few ports.
fn source(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(
        127,
        0,
        (i / 250 % 250) as u8,
        (i % 250 + 2) as u8,
    ))
}

async fn open(server: SocketAddr, i: usize) -> anyhow::Result<Ws> {
    let sock = TcpSocket::new_v4()?;
    sock.bind(SocketAddr::new(source(i), 0))?;
    let stream = sock.connect(server).await?;
    stream.set_nodelay(true)?;
    let url = format!("ws://{server}/realtime/v1/websocket?apikey=loadgen&vsn=2.0.0");
    // Small buffers: tungstenite's default 128 KiB read buffer would cost GiBs at 18k sockets.
    let cfg = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    Ok(
        tokio_tungstenite::client_async_with_config(url, stream, Some(cfg))
            .await?
            .0,
    )
}

fn join_frame(jr: u64, room: &str, key: &str) -> Message {
    Message::text(format!(
        r#"["{jr}","{jr}","realtime:{room}","phx_join",{{"config":{{"broadcast":{{"ack":false,"self":false}},"presence":{{"key":"{key}","enabled":true}},"postgres_changes":[],"private":false}}}}]"#
    ))
}

fn track_frame(jr: u64, r: u64, room: &str) -> Message {
    let t = wall_micros();
    Message::text(format!(
        r#"["{jr}","{r}","realtime:{room}","presence",{{"type":"presence","event":"track","payload":{{"status":"online","t":{t}}}}}]"#
    ))
}

fn is_reply_to(text: &str, r: u64) -> bool {
    text.contains("\"phx_reply\"") && text.contains(&format!(",\"{r}\","))
}

/// The `t` stamps of the joins of a `presence_diff` frame (leaves are old tracks).
fn join_stamps(text: &str, mut each: impl FnMut(u64)) {
    let Some(start) = text.find("{\"joins\":") else {
        return;
    };
    let joins = &text[start..];
    let joins = &joins[..joins.find(",\"leaves\":").unwrap_or(joins.len())];
    let mut rest = joins;
    while let Some(p) = rest.find("\"t\":") {
        rest = &rest[p + 4..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if let Ok(v) = rest[..digits].parse() {
            each(v);
        }
    }
}

/// Opens connection `i` on `server`, joins its room and tracks.
async fn setup(server: SocketAddr, i: usize, room: &str, key: &str) -> anyhow::Result<Ws> {
    let setup = async {
        let mut ws = open(server, i).await?;
        ws.send(join_frame(1, room, key)).await?;
        while let Some(m) = ws.next().await {
            if let Message::Text(t) = m?
                && is_reply_to(&t, 1)
            {
                anyhow::ensure!(t.contains("\"ok\""), "join refused: {t}");
                ws.send(track_frame(1, 2, room)).await?;
                return Ok(ws);
            }
        }
        anyhow::bail!("closed while joining")
    };
    tokio::time::timeout(Duration::from_secs(60), setup).await?
}

async fn conn_task(ctx: Arc<Ctx>, gate: Arc<Semaphore>, i: usize, mut rx: mpsc::Receiver<Cmd>) {
    let (room, key) = seat(&ctx.groups, &ctx.prefix, i);
    let n = ctx.servers.len();
    let home = ctx.placement.server_of(i, n);
    let permit = gate.acquire().await;
    let Ok(mut ws) = setup(ctx.servers[home], i, &room, &key).await else {
        ctx.c.errors.fetch_add(1, Relaxed);
        return;
    };
    drop(permit);
    ctx.c.connected.fetch_add(1, Relaxed);
    loop {
        session(&ctx, &mut ws, i, &room, &key, &mut rx).await;
        ctx.c.closed.fetch_add(1, Relaxed);
        if !ctx.reconnect {
            return;
        }
        let mut back = ctx.back.clone();
        let Ok(dead) = back
            .wait_for(Option::is_some)
            .await
            .map(|d| d.unwrap_or(usize::MAX))
        else {
            return;
        };
        // The dead node's clients spread over every survivor (starting at a fixed hash of
        // `i`), so no single node takes them all and runs into its file-descriptor limit.
        let others: Vec<usize> = (0..n).filter(|&s| s != dead && s != home).collect();
        let first = (crate::opts::mix(i as u64 ^ 0x5EED) % others.len().max(1) as u64) as usize;
        let mut again = None;
        for k in 0..others.len() {
            let s = others[(first + k) % others.len()];
            let _permit = gate.acquire().await;
            if let Ok(w) = setup(ctx.servers[s], i, &room, &key).await {
                again = Some(w);
                break;
            }
        }
        let Some(w) = again else {
            ctx.c.reconnect_errors.fetch_add(1, Relaxed);
            return;
        };
        ws = w;
        ctx.c.reconnected.fetch_add(1, Relaxed);
    }
}

/// Presences (metas) leaving in a `presence_diff` frame.
fn leave_count(text: &str) -> u32 {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(text) else {
        return 0;
    };
    let Some(leaves) = v
        .get(4)
        .and_then(|p| p.get("leaves"))
        .and_then(|l| l.as_object())
    else {
        return 0;
    };
    leaves
        .values()
        .map(|k| {
            k.get("metas")
                .and_then(|m| m.as_array())
                .map_or(0, |m| m.len() as u32)
        })
        .sum()
}

/// One connection's life on one socket: heartbeats, churn, timing; returns when it closes.
async fn session(
    ctx: &Ctx,
    ws: &mut Ws,
    i: usize,
    room: &str,
    key: &str,
    rx: &mut mpsc::Receiver<Cmd>,
) {
    let phase = ctx.heartbeat.mul_f64((i % 997) as f64 / 997.0);
    let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + phase, ctx.heartbeat);
    let (mut jr, mut r) = (1u64, 2u64);
    let mut pending_join = None;
    let mut commands_open = true;
    let mut beat_sent: Option<(u64, Instant)> = None;
    loop {
        let out = tokio::select! {
            m = ws.next() => {
                let Some(Ok(m)) = m else { break };
                ctx.c.received.fetch_add(1, Relaxed);
                let Message::Text(t) = m else { continue };
                if t.contains("\"presence_diff\"") {
                    ctx.c.diffs.fetch_add(1, Relaxed);
                    if ctx.recording.load(Relaxed) {
                        let now = wall_micros();
                        let mut h = ctx.hist.lock().unwrap_or_else(|e| e.into_inner());
                        join_stamps(&t, |s| {
                            let _ = h.record(now.saturating_sub(s).max(1));
                        });
                    }
                    if ctx.counting_leaves.load(Relaxed) {
                        ctx.leaves[i - ctx.start].fetch_add(leave_count(&t), Relaxed);
                    }
                    continue;
                } else if t.contains("\"phoenix\",\"phx_reply\"") {
                    ctx.c.heartbeats.fetch_add(1, Relaxed);
                    if let Some((br, at)) = beat_sent
                        && is_reply_to(&t, br)
                    {
                        beat_sent = None;
                        if ctx.recording.load(Relaxed) {
                            let us = at.elapsed().as_micros() as u64;
                            let mut h = ctx.beat_hist.lock().unwrap_or_else(|e| e.into_inner());
                            let _ = h.record(us.max(1));
                        }
                    }
                    continue;
                } else if pending_join.is_some_and(|p| is_reply_to(&t, p)) {
                    pending_join = None;
                    r += 1;
                    ctx.c.churns.fetch_add(1, Relaxed);
                    vec![track_frame(jr, r, room)]
                } else {
                    continue;
                }
            }
            _ = beat.tick() => {
                r += 1;
                beat_sent = Some((r, Instant::now()));
                vec![Message::text(format!(r#"[null,"{r}","phoenix","heartbeat",{{}}]"#))]
            }
            cmd = rx.recv(), if commands_open => match cmd {
                Some(Cmd::Churn) if pending_join.is_none() => {
                    let leave = format!(r#"["{jr}","{}","realtime:{room}","phx_leave",{{}}]"#, r + 1);
                    jr = r + 2;
                    r = jr;
                    pending_join = Some(jr);
                    vec![Message::text(leave), join_frame(jr, room, key)]
                }
                Some(Cmd::Churn) => continue,
                None => {
                    commands_open = false;
                    continue;
                }
            },
        };
        let n = out.len() as u64;
        let mut failed = false;
        for m in out {
            failed |= ws.send(m).await.is_err();
        }
        if failed {
            break;
        }
        ctx.c.sent.fetch_add(n, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_come_from_joins_only() {
        let diff = r#"[null,null,"realtime:r","presence_diff",{"joins":{"u1":{"metas":[{"phx_ref":"a","status":"online","t":100}]},"u2":{"metas":[{"phx_ref":"b","t":7}]}},"leaves":{"u1":{"metas":[{"phx_ref":"c","t":5}]}}}]"#;
        let mut got = Vec::new();
        join_stamps(diff, |v| got.push(v));
        assert_eq!(got, vec![100, 7]);
    }

    #[test]
    fn leaves_count_metas_and_orders_round_trip() {
        let diff = r#"[null,null,"realtime:r","presence_diff",{"joins":{"u9":{"metas":[{"phx_ref":"z"}]}},"leaves":{"u1":{"metas":[{"phx_ref":"c"},{"phx_ref":"d"}]},"u2":{"metas":[{"phx_ref":"e"}]}}}]"#;
        assert_eq!(leave_count(diff), 3);
        assert_eq!(leave_count("not json"), 0);
        for c in [Ctl::CountLeaves, Ctl::Tally(3), Ctl::Reconnect(0)] {
            assert_eq!(Ctl::parse(&c.line()), Some(c));
        }
        assert_eq!(Ctl::parse("tally"), None);
        assert_eq!(Ctl::parse("reconnect x"), None);
    }

    #[test]
    fn replies_match_their_ref() {
        let t = r#"["1","12","realtime:r","phx_reply",{"status":"ok","response":{}}]"#;
        assert!(is_reply_to(t, 12));
        assert!(!is_reply_to(t, 1));
    }
}
