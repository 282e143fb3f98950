//! The connection task: owns the socket, heartbeats, reconnects with backoff, re-joins and
//! re-tracks, routes replies and channel messages. Commands from the handles arrive on one
//! queue; outgoing frames are queued in `out` and flushed after each step.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use indexmap::IndexMap;
use rollcall_phoenix::event;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, sleep_until, timeout};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

use crate::client::{Connection, Meta, Shared};
use crate::config::{ChannelConfig, ClientConfig, backoff};
use crate::error::ChannelError;
use crate::event::{ChannelEvent, Status, StatusChange};
use crate::watchers::Watchers;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Reply = oneshot::Sender<Result<(), ChannelError>>;

/// A request from a handle.
pub(crate) enum Command {
    Join {
        topic: String,
        config: ChannelConfig,
        shared: Arc<Shared>,
        reply: Reply,
    },
    Track {
        topic: String,
        meta: Meta,
        reply: Reply,
    },
    Untrack {
        topic: String,
        reply: Reply,
    },
    Broadcast {
        topic: String,
        event: String,
        payload: Value,
        reply: Reply,
    },
    Leave {
        topic: String,
        reply: Reply,
    },
    Watch {
        keys: Vec<String>,
        tx: mpsc::UnboundedSender<StatusChange>,
        reply: oneshot::Sender<HashMap<String, Status>>,
    },
    Disconnect {
        reply: oneshot::Sender<()>,
    },
}

/// What a sent push's reply resolves.
enum Pending {
    Heartbeat,
    Join { topic: String, join_ref: String },
    Push { replies: Vec<Reply> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChanState {
    /// Waiting for the socket to open, or for `retry_at`.
    Waiting,
    /// `phx_join` sent, no reply yet.
    Joining,
    Joined,
}

struct Chan {
    config: ChannelConfig,
    shared: Arc<Shared>,
    state: ChanState,
    join_ref: Option<String>,
    /// True once any join succeeded; a refused first join fails `join()` instead of retrying.
    ever_joined: bool,
    rejoin_attempt: usize,
    retry_at: Option<Instant>,
    join_deadline: Option<Instant>,
    join_waiters: Vec<Reply>,
    /// The meta to (re-)track after each join; None when untracked.
    meta: Option<Meta>,
    /// `track()` calls made while not joined, answered by the track sent after the join.
    track_waiters: Vec<Reply>,
}

pub(crate) struct Driver {
    cfg: ClientConfig,
    url: String,
    cmds: mpsc::UnboundedReceiver<Command>,
    conn_tx: watch::Sender<Connection>,
    channels: IndexMap<String, Chan>,
    pending: HashMap<String, (Pending, Instant)>,
    next_ref: u64,
    heartbeat_ref: Option<String>,
    next_heartbeat: Instant,
    out: Vec<Message>,
    watchers: Watchers,
    stop: Option<oneshot::Sender<()>>,
    /// Channels the server sent `phx_close` for, closed for good at the deadline unless the
    /// socket closes first (a server shutdown closes every channel, then the socket: that is a
    /// reconnect, not the end of the channels).
    closing: Vec<(String, Instant)>,
}

/// How long a `phx_close` waits for the socket to close before it closes the channel for good.
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_millis(300);

/// Why the connected loop ended.
enum Ended {
    Lost,
    Stop,
}

impl Driver {
    pub(crate) fn new(
        cfg: ClientConfig,
        url: String,
        cmds: mpsc::UnboundedReceiver<Command>,
        conn_tx: watch::Sender<Connection>,
    ) -> Driver {
        Driver {
            cfg,
            url,
            cmds,
            conn_tx,
            channels: IndexMap::new(),
            pending: HashMap::new(),
            next_ref: 0,
            heartbeat_ref: None,
            next_heartbeat: Instant::now(),
            out: Vec::new(),
            watchers: Watchers::default(),
            stop: None,
            closing: Vec::new(),
        }
    }

    /// Connects, serves, and reconnects until stopped.
    pub(crate) async fn run(mut self) {
        let mut attempt = 0usize;
        let mut retry_at = Instant::now();
        loop {
            // Disconnected: serve commands until the next attempt is due.
            tokio::select! {
                _ = sleep_until(retry_at) => {}
                cmd = self.cmds.recv() => {
                    match cmd {
                        Some(cmd) => self.handle_command(cmd, false),
                        None => return,
                    }
                    self.out.clear();
                    if self.stop.is_some() { return self.finish(); }
                    continue;
                }
            }
            let ws = match timeout(self.cfg.push_timeout, connect_async(&self.url)).await {
                Ok(Ok((ws, _))) => ws,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, attempt, "connect failed");
                    retry_at = Instant::now() + backoff(&self.cfg.reconnect_after, attempt);
                    attempt += 1;
                    continue;
                }
                Err(_) => {
                    tracing::debug!(attempt, "connect timed out");
                    retry_at = Instant::now() + backoff(&self.cfg.reconnect_after, attempt);
                    attempt += 1;
                    continue;
                }
            };
            attempt = 0;
            match self.serve(ws).await {
                Ended::Stop => return self.finish(),
                Ended::Lost => {
                    self.on_lost();
                    retry_at = Instant::now() + backoff(&self.cfg.reconnect_after, attempt);
                    attempt += 1;
                }
            }
        }
    }

    /// The connected loop.
    async fn serve(&mut self, mut ws: Ws) -> Ended {
        self.conn_tx.send_modify(|c| {
            c.open = true;
            c.opens += 1;
        });
        self.next_heartbeat = Instant::now() + self.cfg.heartbeat_interval;
        let topics: Vec<String> = self.channels.keys().cloned().collect();
        for topic in topics {
            self.send_join(&topic);
        }
        loop {
            if flush(&mut ws, &mut self.out).await.is_err() {
                return Ended::Lost;
            }
            if self.stop.is_some() {
                let _ = ws.close(None).await;
                return Ended::Stop;
            }
            let wake = self.next_wake();
            tokio::select! {
                msg = ws.next() => match msg {
                    Some(Ok(Message::Text(t))) => self.handle_text(t.as_str()),
                    Some(Ok(Message::Binary(b))) => self.handle_binary(&b),
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return Ended::Lost,
                    Some(Ok(_)) => {}
                },
                cmd = self.cmds.recv() => match cmd {
                    Some(cmd) => self.handle_command(cmd, true),
                    None => {
                        let _ = ws.close(None).await;
                        return Ended::Stop;
                    }
                },
                _ = sleep_until(wake) => {
                    if !self.handle_timeout(Instant::now()) {
                        tracing::debug!("heartbeat timeout");
                        return Ended::Lost;
                    }
                }
            }
        }
    }

    /// Queues a frame and returns its ref.
    fn push(&mut self, join_ref: Option<&str>, topic: &str, ev: &str, payload: &str) -> String {
        self.next_ref += 1;
        let r = self.next_ref.to_string();
        let mut buf = Vec::with_capacity(64 + payload.len());
        rollcall_phoenix::encode_message(
            self.cfg.vsn,
            join_ref,
            Some(&r),
            topic,
            ev,
            payload,
            &mut buf,
        );
        // encode_message writes JSON, which is UTF-8.
        self.out.push(Message::text(
            String::from_utf8(buf).expect("JSON is UTF-8"),
        ));
        r
    }

    fn send_join(&mut self, topic: &str) {
        let Some(chan) = self.channels.get(topic) else {
            return;
        };
        let c = &chan.config;
        let mut payload = serde_json::json!({"config": {
            "broadcast": {"ack": c.broadcast_ack, "self": c.broadcast_self},
            "presence": {"key": c.presence_key, "enabled": c.presence_enabled},
            "postgres_changes": [],
            "private": c.private,
        }});
        if let Some(token) = &self.cfg.token {
            payload["access_token"] = Value::String(token.clone());
        }
        self.next_ref += 1;
        let r = self.next_ref.to_string();
        let mut buf = Vec::new();
        let body = payload.to_string();
        rollcall_phoenix::encode_message(
            self.cfg.vsn,
            Some(&r),
            Some(&r),
            topic,
            event::PHX_JOIN,
            &body,
            &mut buf,
        );
        self.out.push(Message::text(
            String::from_utf8(buf).expect("JSON is UTF-8"),
        ));
        let deadline = Instant::now() + self.cfg.push_timeout;
        let chan = &mut self.channels[topic];
        chan.state = ChanState::Joining;
        chan.join_ref = Some(r.clone());
        chan.join_deadline = Some(deadline);
        chan.retry_at = None;
        self.pending.insert(
            r.clone(),
            (
                Pending::Join {
                    topic: topic.to_owned(),
                    join_ref: r,
                },
                deadline,
            ),
        );
    }

    /// Sends `meta` as a track on a joined channel, answering `replies` with the reply.
    fn send_track(&mut self, topic: &str, meta: &Meta, replies: Vec<Reply>) {
        let jr = self.channels[topic].join_ref.clone();
        let payload = serde_json::json!({"type": "presence", "event": "track", "payload": meta});
        let r = self.push(jr.as_deref(), topic, event::PRESENCE, &payload.to_string());
        self.await_reply(r, replies);
    }

    /// Waits (until `push_timeout`) for the reply to push `r`, then answers `replies`.
    fn await_reply(&mut self, r: String, replies: Vec<Reply>) {
        let deadline = Instant::now() + self.cfg.push_timeout;
        self.pending
            .insert(r, (Pending::Push { replies }, deadline));
    }

    fn join_failed(&mut self, topic: &str, err: ChannelError) {
        let Some(chan) = self.channels.get_mut(topic) else {
            return;
        };
        let _ = chan
            .shared
            .events
            .send(ChannelEvent::Error(err.to_string()));
        chan.join_deadline = None;
        chan.join_ref = None;
        chan.state = ChanState::Waiting;
        if !chan.ever_joined {
            let chan = self.channels.shift_remove(topic).expect("present above");
            chan.join_waiters
                .into_iter()
                .for_each(|t| drop(t.send(Err(err.clone()))));
            chan.track_waiters
                .into_iter()
                .for_each(|t| drop(t.send(Err(err.clone()))));
            return;
        }
        chan.retry_at = Some(Instant::now() + backoff(&self.cfg.rejoin_after, chan.rejoin_attempt));
        chan.rejoin_attempt += 1;
    }
}

mod commands;
mod inbound;
mod timers;

async fn flush(
    ws: &mut Ws,
    out: &mut Vec<Message>,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    if out.is_empty() {
        return Ok(());
    }
    for m in out.drain(..) {
        ws.feed(m).await?;
    }
    ws.flush().await
}
