//! The handles: [`Client`], [`Channel`], [`ChannelEvents`], [`Watch`]. Each sends commands to
//! the connection task in `driver.rs`, which owns the socket.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::config::{ChannelConfig, ClientConfig};
use crate::driver::{Command, Driver};
use crate::error::{ChannelError, ConfigError};
use crate::event::{ChannelEvent, Status, StatusChange};
use crate::presence::{PresenceMap, PresenceState};

/// The socket's state, observed with [`Client::connection`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Connection {
    /// True while the WebSocket is open.
    pub open: bool,
    /// How many times the socket has opened (1 after the first connect, 2 after a reconnect…).
    pub opens: u64,
}

/// A connection to a Rollcall or Supabase Realtime server.
///
/// Cheap to clone. A background task owns the socket: it heartbeats, reconnects with backoff,
/// re-joins every channel and re-tracks every tracked meta after a reconnect. It stops after
/// [`Client::disconnect`], or when every `Client` and [`Channel`] handle is dropped.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use rollcall_client::{ChannelConfig, Client, ClientConfig};
/// let client = Client::connect(ClientConfig::new("ws://127.0.0.1:4000/realtime/v1", "anon"))?;
/// let mut room = client.join("room1", ChannelConfig::with_key("alice")).await?;
/// room.track(serde_json::json!({"name": "Alice"})).await?;
/// while let Some(event) = room.recv().await {
///     println!("{event:?}");
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    cmds: mpsc::UnboundedSender<Command>,
    connection: watch::Receiver<Connection>,
    event_capacity: usize,
}

impl Client {
    /// Starts the connection task; it connects at once and keeps reconnecting. Must be called
    /// inside a tokio runtime.
    ///
    /// # Errors
    /// [`ConfigError`] for an unusable configuration; connection failures are retried instead.
    pub fn connect(cfg: ClientConfig) -> Result<Client, ConfigError> {
        let url = cfg.socket_url()?;
        let (cmds, rx) = mpsc::unbounded_channel();
        let (conn_tx, connection) = watch::channel(Connection::default());
        let event_capacity = cfg.event_capacity.max(1);
        tokio::spawn(Driver::new(cfg, url, rx, conn_tx).run());
        Ok(Client {
            cmds,
            connection,
            event_capacity,
        })
    }

    /// The socket state; `changed().await` on it to wait for a (re)connect.
    pub fn connection(&self) -> watch::Receiver<Connection> {
        self.connection.clone()
    }

    /// Joins `realtime:<name>` and waits for the server's reply.
    ///
    /// If the socket is not open yet, the join is sent when it opens.
    ///
    /// # Errors
    /// [`ChannelError::Refused`] with the server's reason, [`ChannelError::TimedOut`] after the
    /// push timeout, [`ChannelError::AlreadyJoined`] for a topic this client already has.
    pub async fn join(&self, name: &str, config: ChannelConfig) -> Result<Channel, ChannelError> {
        let topic = format!("{}{name}", rollcall_phoenix::event::TOPIC_PREFIX);
        let (events, rx) = broadcast::channel(self.event_capacity);
        let shared = Arc::new(Shared {
            presence: Mutex::new(PresenceMap::default()),
            events,
        });
        let (reply, done) = oneshot::channel();
        self.send(Command::Join {
            topic: topic.clone(),
            config,
            shared: shared.clone(),
            reply,
        })?;
        done.await.map_err(|_| ChannelError::ClientClosed)??;
        Ok(Channel {
            topic,
            cmds: self.cmds.clone(),
            shared,
            events: ChannelEvents { rx },
        })
    }

    /// Watches `keys`: returns their current statuses and, from then on, yields a
    /// [`StatusChange`] only when a key's status really changes (a second device or channel
    /// joining an online key yields nothing).
    ///
    /// Status is derived from the presence maps of the channels this client has joined with
    /// presence enabled. While the socket is down the maps keep their last state, so a
    /// reconnect does not flap statuses; keys that left meanwhile go offline on re-sync.
    ///
    /// # Errors
    /// [`ChannelError::ClientClosed`] after [`Client::disconnect`].
    pub async fn watch<I, K>(&self, keys: I) -> Result<Watch, ChannelError>
    where
        I: IntoIterator<Item = K>,
        K: Into<String>,
    {
        let (tx, rx) = mpsc::unbounded_channel();
        let (reply, done) = oneshot::channel();
        self.send(Command::Watch {
            keys: keys.into_iter().map(Into::into).collect(),
            tx,
            reply,
        })?;
        let statuses = done.await.map_err(|_| ChannelError::ClientClosed)?;
        Ok(Watch { statuses, rx })
    }

    /// Closes the socket (the server drops this client's presences at once) and stops the
    /// task. Every handle's operations fail with [`ChannelError::ClientClosed`] afterwards.
    pub async fn disconnect(&self) {
        let (reply, done) = oneshot::channel();
        if self.send(Command::Disconnect { reply }).is_ok() {
            let _ = done.await;
        }
    }

    fn send(&self, cmd: Command) -> Result<(), ChannelError> {
        self.cmds.send(cmd).map_err(|_| ChannelError::ClientClosed)
    }
}

/// State shared between a [`Channel`] handle and the connection task.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The synced presence map; locked briefly, never across an `.await`.
    pub(crate) presence: Mutex<PresenceMap>,
    /// Every event of the channel, fanned out to all [`ChannelEvents`].
    pub(crate) events: broadcast::Sender<ChannelEvent>,
}

/// A joined channel. Dropping it does not leave; call [`Channel::leave`].
#[derive(Debug)]
pub struct Channel {
    topic: String,
    cmds: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
    events: ChannelEvents,
}

impl Channel {
    /// The full topic, `realtime:<name>`.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Tracks `meta` (a JSON object) under the channel's presence key, replacing any previous
    /// meta. The meta is remembered and re-tracked after every rejoin. While the channel waits
    /// to (re)join, the track is sent on join and this waits for that reply.
    ///
    /// # Errors
    /// [`ChannelError::InvalidPayload`] for a non-object; the server's refusal; a timeout.
    pub async fn track(&self, meta: Value) -> Result<(), ChannelError> {
        let Value::Object(meta) = meta else {
            return Err(ChannelError::InvalidPayload(
                "a track meta must be a JSON object",
            ));
        };
        self.request(|reply| Command::Track {
            topic: self.topic.clone(),
            meta,
            reply,
        })
        .await
    }

    /// Untracks this channel's presence and forgets the meta (no re-track after rejoin).
    ///
    /// # Errors
    /// The server's refusal; a timeout.
    pub async fn untrack(&self) -> Result<(), ChannelError> {
        self.request(|reply| Command::Untrack {
            topic: self.topic.clone(),
            reply,
        })
        .await
    }

    /// Broadcasts `payload` as user event `event` to the channel's other members (and to this
    /// one with `broadcast_self`). Waits for the server's reply only with `broadcast_ack`.
    ///
    /// # Errors
    /// [`ChannelError::NotJoined`] while the channel is not joined (realtime-js would fall back
    /// to REST); with ack, the server's refusal or a timeout.
    pub async fn broadcast(&self, event: &str, payload: Value) -> Result<(), ChannelError> {
        self.request(|reply| Command::Broadcast {
            topic: self.topic.clone(),
            event: event.to_owned(),
            payload,
            reply,
        })
        .await
    }

    /// Leaves the channel: the server drops its presence; the channel is closed for good.
    ///
    /// # Errors
    /// A timeout waiting for the leave reply (the channel is removed locally anyway).
    pub async fn leave(self) -> Result<(), ChannelError> {
        self.request(|reply| Command::Leave {
            topic: self.topic.clone(),
            reply,
        })
        .await
    }

    /// A copy of the synced presence map (`presenceState()` in realtime-js).
    pub fn presence_state(&self) -> PresenceState {
        self.shared
            .presence
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .state()
            .clone()
    }

    /// The next event from the receiver subscribed before the join was sent, so no event
    /// since the join is missed. None once the client task has stopped.
    pub async fn recv(&mut self) -> Option<ChannelEvent> {
        self.events.recv().await
    }

    /// Another receiver of this channel's events, starting from now.
    pub fn subscribe(&self) -> ChannelEvents {
        ChannelEvents {
            rx: self.shared.events.subscribe(),
        }
    }

    async fn request(
        &self,
        cmd: impl FnOnce(oneshot::Sender<Result<(), ChannelError>>) -> Command,
    ) -> Result<(), ChannelError> {
        let (reply, done) = oneshot::channel();
        self.cmds
            .send(cmd(reply))
            .map_err(|_| ChannelError::ClientClosed)?;
        done.await.map_err(|_| ChannelError::ClientClosed)?
    }
}

/// A receiver of one channel's [`ChannelEvent`]s.
#[derive(Debug)]
pub struct ChannelEvents {
    rx: broadcast::Receiver<ChannelEvent>,
}

impl ChannelEvents {
    /// The next event; None once the client task has stopped. A receiver that fell more than
    /// `event_capacity` events behind skips the oldest (logged) and goes on.
    pub async fn recv(&mut self) -> Option<ChannelEvent> {
        loop {
            match self.rx.recv().await {
                Ok(e) => return Some(e),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(skipped = n, "channel event receiver lagged");
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

/// A stream of real status changes of some keys, from [`Client::watch`].
#[derive(Debug)]
pub struct Watch {
    statuses: HashMap<String, Status>,
    rx: mpsc::UnboundedReceiver<StatusChange>,
}

impl Watch {
    /// The statuses of the watched keys when the watch started.
    pub fn initial(&self) -> &HashMap<String, Status> {
        &self.statuses
    }

    /// The next real status change; None once the client task has stopped.
    pub async fn recv(&mut self) -> Option<StatusChange> {
        self.rx.recv().await
    }

    /// A change already received, without waiting.
    pub fn try_recv(&mut self) -> Option<StatusChange> {
        self.rx.try_recv().ok()
    }
}

/// A meta as sent on the wire: a JSON object.
pub(crate) type Meta = Map<String, Value>;
