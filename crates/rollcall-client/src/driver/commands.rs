//! Commands from the handles.

use rollcall_phoenix::event;
use tokio::time::Instant;

use super::{Chan, ChanState, Command, Driver};
use crate::error::ChannelError;
use crate::event::Status;

impl Driver {
    /// Handles one command; `open` says whether the socket is open (frames go to `out`).
    pub(super) fn handle_command(&mut self, cmd: Command, open: bool) {
        match cmd {
            Command::Join {
                topic,
                config,
                shared,
                reply,
            } => {
                if self.channels.contains_key(&topic) {
                    let _ = reply.send(Err(ChannelError::AlreadyJoined(topic)));
                    return;
                }
                self.channels.insert(
                    topic.clone(),
                    Chan {
                        config,
                        shared,
                        state: ChanState::Waiting,
                        join_ref: None,
                        ever_joined: false,
                        rejoin_attempt: 0,
                        retry_at: None,
                        // Bounds the wait for an open socket too.
                        join_deadline: Some(Instant::now() + self.cfg.push_timeout),
                        join_waiters: vec![reply],
                        meta: None,
                        track_waiters: Vec::new(),
                    },
                );
                if open {
                    self.send_join(&topic);
                }
            }
            Command::Track { topic, meta, reply } => {
                let Some(chan) = self.channels.get_mut(&topic) else {
                    let _ = reply.send(Err(ChannelError::NotJoined(topic)));
                    return;
                };
                chan.meta = Some(meta.clone());
                if open && chan.state == ChanState::Joined {
                    self.send_track(&topic, &meta, vec![reply]);
                } else {
                    chan.track_waiters.push(reply);
                }
            }
            Command::Untrack { topic, reply } => {
                let Some(chan) = self.channels.get_mut(&topic) else {
                    let _ = reply.send(Err(ChannelError::NotJoined(topic)));
                    return;
                };
                chan.meta = None;
                chan.track_waiters
                    .drain(..)
                    .for_each(|t| drop(t.send(Ok(()))));
                if open && chan.state == ChanState::Joined {
                    let jr = chan.join_ref.clone();
                    let payload = r#"{"type":"presence","event":"untrack"}"#;
                    let r = self.push(jr.as_deref(), &topic, event::PRESENCE, payload);
                    self.await_reply(r, vec![reply]);
                } else {
                    // Not joined: the server holds no presence of this join to remove.
                    let _ = reply.send(Ok(()));
                }
            }
            Command::Broadcast {
                topic,
                event: user_event,
                payload,
                reply,
            } => {
                let joined = self
                    .channels
                    .get(&topic)
                    .filter(|c| open && c.state == ChanState::Joined);
                let Some(chan) = joined else {
                    let _ = reply.send(Err(ChannelError::NotJoined(topic)));
                    return;
                };
                let (jr, ack) = (chan.join_ref.clone(), chan.config.broadcast_ack);
                let body = serde_json::json!({"type": "broadcast", "event": user_event, "payload": payload});
                let r = self.push(jr.as_deref(), &topic, event::BROADCAST, &body.to_string());
                if ack {
                    self.await_reply(r, vec![reply]);
                } else {
                    let _ = reply.send(Ok(()));
                }
            }
            Command::Leave { topic, reply } => {
                let Some(chan) = self.channels.get(&topic) else {
                    let _ = reply.send(Ok(()));
                    return;
                };
                if open && chan.join_ref.is_some() {
                    let jr = chan.join_ref.clone();
                    let r = self.push(jr.as_deref(), &topic, event::PHX_LEAVE, "{}");
                    self.await_reply(r, vec![reply]);
                } else {
                    let _ = reply.send(Ok(()));
                }
                self.close_channel(&topic);
            }
            Command::Watch { keys, tx, reply } => {
                let channels = &self.channels;
                let initial = self.watchers.add(keys, tx, |k| status_of(channels, k));
                let _ = reply.send(initial);
            }
            Command::Disconnect { reply } => self.stop = Some(reply),
        }
    }

    /// Re-evaluates watched `keys` (None: all) against every channel's presence map.
    pub(super) fn update_watchers(&mut self, keys: Option<Vec<String>>) {
        if keys.as_ref().is_some_and(Vec::is_empty) {
            return;
        }
        let channels = &self.channels;
        self.watchers
            .update(keys.as_deref(), |k| status_of(channels, k));
    }
}

fn status_of(channels: &indexmap::IndexMap<String, Chan>, key: &str) -> Status {
    let online = channels.values().any(|c| {
        c.shared
            .presence
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(key)
    });
    if online {
        Status::Online
    } else {
        Status::Offline
    }
}
