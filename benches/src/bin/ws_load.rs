//! Server load bench: N WebSocket clients in rooms of `room` members join, track once, then
//! heartbeat every `beat_ms` for `secs` seconds; reports the *server's* RSS and CPU (read from
//! /proc of its pid) per connection, per join+track and per heartbeat, plus track→diff latency
//! in a room of `fanout` members. Prints one JSON object.
//!
//! Run with (server started separately, e.g. `target/release/rollcall --bind 127.0.0.1:4000`):
//! `cargo run --release -p rollcall-benches --bin ws_load -- <server_pid> 127.0.0.1:4000 15000`
//! Optional args after that: `room=10 beat_ms=1000 secs=10 fanout=1000`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::Message;

use rollcall_loadgen::probe::proc_usage;

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn open(server: SocketAddr, i: usize) -> Ws {
    // Spread source addresses over 127.0.0.x so ephemeral ports never run out.
    let src = IpAddr::V4(Ipv4Addr::new(
        127,
        0,
        (i / 250 % 250) as u8,
        (i % 250 + 2) as u8,
    ));
    let sock = TcpSocket::new_v4().expect("socket");
    sock.bind(SocketAddr::new(src, 0)).expect("bind source");
    let stream = sock.connect(server).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let url = format!("ws://{server}/realtime/v1/websocket?apikey=bench&vsn=2.0.0");
    tokio_tungstenite::client_async(url, stream)
        .await
        .expect("upgrade")
        .0
}

fn join(room: &str, key: &str) -> Message {
    Message::text(
        serde_json::json!(["1", "1", format!("realtime:{room}"), "phx_join",
            {"config": {"broadcast": {"ack": false, "self": false},
             "presence": {"key": key, "enabled": false}, "postgres_changes": [], "private": false}}])
        .to_string(),
    )
}

fn track(room: &str, n: u128) -> Message {
    Message::text(
        serde_json::json!(["1", "2", format!("realtime:{room}"), "presence",
            {"type": "presence", "event": "track", "payload": {"status": "online", "online_at": n}}])
        .to_string(),
    )
}

/// Waits for the reply with ref `r`.
async fn await_ref(ws: &mut Ws, r: &str) {
    while let Some(Ok(m)) = ws.next().await {
        if let Message::Text(t) = m
            && t.contains(&format!(",\"{r}\","))
            && t.contains("phx_reply")
        {
            return;
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let pid: u32 = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .expect("server pid");
    let server: SocketAddr = args
        .get(2)
        .and_then(|a| a.parse().ok())
        .expect("server addr");
    let n: usize = args
        .get(3)
        .and_then(|a| a.parse().ok())
        .expect("connections");
    let opt = |name: &str, default: u64| -> u64 {
        args.iter()
            .skip(4)
            .find_map(|a| {
                a.strip_prefix(&format!("{name}="))
                    .and_then(|v| v.parse().ok())
            })
            .unwrap_or(default)
    };
    let (room, beat_ms, secs, fanout) = (
        opt("room", 10),
        opt("beat_ms", 1000),
        opt("secs", 10),
        opt("fanout", 1000),
    );

    let (rss0, cpu0) = proc_usage(pid);
    let t0 = Instant::now();
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        let mut ws = open(server, i).await;
        let r = format!("r{}", i as u64 / room);
        ws.send(join(&r, &format!("u{i}"))).await.expect("join");
        await_ref(&mut ws, "1").await;
        ws.send(track(&r, i as u128)).await.expect("track");
        await_ref(&mut ws, "2").await;
        conns.push(ws);
    }
    let ramp_s = t0.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss1, cpu1) = proc_usage(pid);

    // Heartbeat phase: every connection beats every beat_ms, replies are read.
    let beats = Arc::new(AtomicU64::new(0));
    let stop = Instant::now() + Duration::from_secs(secs);
    let (cpu_b0, t_b0) = (proc_usage(pid).1, Instant::now());
    let mut tasks = Vec::with_capacity(n);
    for (i, mut ws) in conns.into_iter().enumerate() {
        let beats = beats.clone();
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(i as u64 * beat_ms / n as u64)).await;
            let mut tick = tokio::time::interval(Duration::from_millis(beat_ms));
            let mut r = 10u64;
            while Instant::now() < stop {
                tick.tick().await;
                r += 1;
                let hb = format!("[null,\"{r}\",\"phoenix\",\"heartbeat\",{{}}]");
                if ws.send(Message::text(hb)).await.is_err() {
                    break;
                }
                await_ref(&mut ws, &r.to_string()).await;
                beats.fetch_add(1, Ordering::Relaxed);
            }
            ws
        }));
    }
    let mut conns = Vec::with_capacity(n);
    for t in tasks {
        conns.push(t.await.expect("task"));
    }
    let (cpu_b1, beat_s) = (proc_usage(pid).1, t_b0.elapsed().as_secs_f64());
    let beats = beats.load(Ordering::Relaxed);
    let (rss2, _) = proc_usage(pid);

    // Fan-out latency: `fanout` members in one room; one tracks, time until all got the diff.
    let mut members = Vec::new();
    for i in 0..fanout as usize {
        let mut ws = open(server, n + i).await;
        let j = Message::text(
            serde_json::json!(["1", "1", "realtime:fanout", "phx_join",
                {"config": {"presence": {"key": format!("f{i}"), "enabled": false}}}])
            .to_string(),
        );
        ws.send(j).await.expect("join");
        await_ref(&mut ws, "1").await;
        members.push(ws);
    }
    let mut lat = Vec::new();
    for round in 0..20u128 {
        let t = Instant::now();
        members[0]
            .send(track("fanout", round))
            .await
            .expect("track");
        let mut waits = Vec::new();
        for ws in members.iter_mut().skip(1) {
            waits.push(async move {
                while let Some(Ok(m)) = ws.next().await {
                    if let Message::Text(txt) = m
                        && txt.contains("presence_diff")
                    {
                        return t.elapsed().as_secs_f64() * 1000.0;
                    }
                }
                f64::NAN
            });
        }
        let got = futures_util::future::join_all(waits).await;
        lat.extend(got.into_iter().filter(|v| v.is_finite()));
    }
    lat.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    drop(members);
    drop(conns);

    let out = serde_json::json!({
        "connections": n,
        "room_size": room,
        "ramp_seconds": ramp_s,
        "joins_per_s": n as f64 / ramp_s,
        "rss_kib_before": rss0,
        "rss_kib_after_join": rss1,
        "rss_kib_after_beats": rss2,
        "rss_bytes_per_conn": (rss1.saturating_sub(rss0) * 1024) as f64 / n as f64,
        "server_cpu_us_per_connect_join_track": (cpu1 - cpu0) * 1e6 / n as f64,
        "heartbeats": beats,
        "heartbeats_per_s": beats as f64 / beat_s,
        "server_cpu_us_per_heartbeat": (cpu_b1 - cpu_b0) * 1e6 / beats.max(1) as f64,
        "fanout_room": fanout,
        "fanout_deliveries": lat.len(),
        "track_to_diff_ms_p50": percentile(&lat, 0.5),
        "track_to_diff_ms_p99": percentile(&lat, 0.99),
        "track_to_diff_ms_max": lat.last().copied().unwrap_or(0.0),
    });
    println!("{}", serde_json::to_string_pretty(&out).expect("json"));
}
