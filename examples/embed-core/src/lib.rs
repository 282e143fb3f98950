//! Embedding the sans-IO presence engine behind your own transport.
//!
//! The transport here is a line-based TCP protocol (try it with `nc 127.0.0.1 7000`):
//!
//! ```text
//! track <topic> <key> <json meta>   → every connection gets `join <topic> <key> <meta>`
//! untrack <topic> <key>             → `leave <topic> <key>`
//! ping                              → a heartbeat; silent connections expire
//! ```
//!
//! A new connection is greeted with `hello` once it receives changes. Every connection also receives `status <key> online|offline` when a key's user-level
//! status changes (after the engine's `offline_grace`). The engine does no I/O: this file owns
//! the sockets, the clock (`now`) and the timer that calls [`Engine::tick`].

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rollcall_core::{Config, ConnId, Engine, Key, Meta, Millis, Outputs, StatusEvent, Topic};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::broadcast;

/// The engine, a clock and the fan-out channel every connection listens on.
struct Shared {
    engine: Engine,
    started: Instant,
    lines: broadcast::Sender<String>,
    out: Mutex<Outputs>,
}

impl Shared {
    fn now(&self) -> Millis {
        Millis(self.started.elapsed().as_millis() as u64)
    }

    /// Runs `f` with the shared [`Outputs`], then sends what it produced to every connection.
    fn apply(&self, f: impl FnOnce(&Engine, Millis, &mut Outputs)) {
        let mut out = self.out.lock().expect("outputs lock");
        out.clear();
        f(&self.engine, self.now(), &mut out);
        for td in &out.diffs {
            for j in &td.diff.joins {
                let meta = j.presence.meta.as_json();
                let _ = self
                    .lines
                    .send(format!("join {} {} {meta}", td.topic, j.key));
            }
            for l in &td.diff.leaves {
                let _ = self.lines.send(format!("leave {} {}", td.topic, l.key));
            }
        }
        for e in &out.events {
            let status = match e {
                StatusEvent::Login { .. } => "online",
                StatusEvent::Logout { .. } => "offline",
                _ => continue,
            };
            let _ = self.lines.send(format!("status {} {status}", e.key()));
        }
    }
}

/// Serves the line protocol on `listener` with `cfg` until the task is dropped.
pub async fn serve(listener: TcpListener, cfg: Config) -> std::io::Result<()> {
    let tick_every = Duration::from_millis(cfg.timer_granularity.0.max(10));
    let shared = Arc::new(Shared {
        engine: Engine::new(cfg).map_err(std::io::Error::other)?,
        started: Instant::now(),
        lines: broadcast::channel(1024).0,
        out: Mutex::new(Outputs::default()),
    });
    let timer = shared.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(tick_every);
        loop {
            every.tick().await;
            // Expires silent connections, ends offline grace, flushes batched diffs.
            timer.apply(|engine, now, out| engine.tick(now, out));
        }
    });
    for id in 1u64.. {
        let (socket, _) = listener.accept().await?;
        let shared = shared.clone();
        tokio::spawn(async move {
            let conn = ConnId(id);
            if shared.engine.connect(conn, shared.now()).is_err() {
                return;
            }
            let (read, mut write) = socket.into_split();
            let mut fanout = shared.lines.subscribe();
            // Subscribed: from here on this connection sees every change.
            if write.write_all(b"hello\n").await.is_err() {
                return;
            }
            let mut lines = BufReader::new(read).lines();
            loop {
                tokio::select! {
                    line = lines.next_line() => match line {
                        Ok(Some(line)) => {
                            if let Err(e) = handle(&shared, conn, &line) {
                                let _ = write.write_all(format!("error {e}\n").as_bytes()).await;
                            }
                        }
                        _ => break,
                    },
                    line = fanout.recv() => match line {
                        Ok(line) => {
                            if write.write_all(format!("{line}\n").as_bytes()).await.is_err() {
                                break;
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => break,
                    },
                }
            }
            // Disconnect: the engine removes this connection's presences (leave diffs).
            shared.apply(|engine, now, out| {
                engine.close(conn, now, out);
            });
        });
    }
    Ok(())
}

/// One command line from connection `conn`.
fn handle(shared: &Shared, conn: ConnId, line: &str) -> Result<(), String> {
    let mut parts = line.trim().splitn(4, ' ');
    let mut result = Ok(());
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("ping"), None, None, None) => {
            shared.engine.heartbeat(conn, shared.now());
        }
        (Some("track"), Some(topic), Some(key), meta) => {
            let meta = Meta::parse(meta.unwrap_or("{}")).map_err(|e| e.to_string())?;
            shared.apply(|engine, now, out| {
                result = engine
                    .track(conn, &Topic::new(topic), &Key::new(key), meta, now, out)
                    .map(|_| ())
                    .map_err(|e| e.to_string());
            });
        }
        (Some("untrack"), Some(topic), Some(key), None) => shared.apply(|engine, now, out| {
            result = engine
                .untrack(conn, &Topic::new(topic), &Key::new(key), now, out)
                .map(|_| ())
                .map_err(|e| e.to_string());
        }),
        _ => return Err(format!("unknown command: {line}")),
    }
    result
}
