//! `phx_join`: topic checks, limits, token verification, access rules, presence key,
//! subscription and the `presence_state` push.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use rollcall_core::{Key, Topic};
use rollcall_phoenix::{
    Inbound, JoinConfig, Payload, encode_close, encode_push, event, parse_join,
};

use super::{Channel, Session};
use crate::auth::{Claims, PresenceKeySource};
use crate::hub::{KillReason, Subscriber, TopicSubs};
use crate::limits::RateWindow;
use crate::metrics::Metrics;
use crate::refusal::Refusal;

/// Internal topic name: public and private channels with one name are separate rooms.
fn internal_topic(external: &str, private: bool) -> Topic {
    if private {
        Topic::from(format!("private|{external}"))
    } else {
        Topic::new(external)
    }
}

/// The internal topic REST broadcasts and HTTP queries address for a subtopic.
pub(crate) fn topic_for(subtopic: &str, private: bool) -> Topic {
    let external = if subtopic.starts_with(event::TOPIC_PREFIX) {
        subtopic.to_string()
    } else {
        format!("{}{subtopic}", event::TOPIC_PREFIX)
    };
    internal_topic(&external, private)
}

impl Session {
    /// The token a join (or refresh) is judged by: the join's own, else the socket's apikey;
    /// `sb_…` publishable keys stand for the apikey, as in Supabase.
    pub(super) fn effective_token(&self, given: Option<&str>) -> Option<String> {
        match given {
            Some(t) if !t.is_empty() && !t.starts_with("sb_") => Some(t.to_string()),
            _ => self.apikey.as_ref().map(|(t, _)| t.clone()),
        }
    }

    /// Verifies `token` when auth is on. `Ok(None)`: auth is off.
    pub(super) fn verify(
        &self,
        token: Option<&str>,
    ) -> Result<Option<Claims>, crate::auth::AuthError> {
        let auth = &self.hub.cfg.auth;
        if !auth.enabled() {
            return Ok(None);
        }
        let token = token.ok_or(crate::auth::AuthError::Missing)?;
        auth.verify(token, self.unix_secs()).map(Some)
    }

    pub(super) fn join(&mut self, msg: &Inbound<'_>) {
        let topic = &*msg.topic;
        let Some(sub) = topic.strip_prefix(event::TOPIC_PREFIX) else {
            return self.error(msg, Refusal::UnmatchedTopic);
        };
        if sub.is_empty() {
            return self.error(msg, Refusal::TopicNameRequired);
        }
        let limits = &self.hub.cfg.limits;
        if topic.len() > limits.max_topic_bytes {
            let max = limits.max_topic_bytes;
            return self.error(msg, Refusal::TopicTooLong { max });
        }
        let (window, max_joins) = (
            rollcall_core::Millis::from_secs(1),
            limits.max_joins_per_second,
        );
        if !self.joins.allow(self.now, window, max_joins) {
            self.error(msg, Refusal::JoinRate);
            // Supabase also disconnects the socket.
            return self.outbox.kill(KillReason::JoinRate);
        }
        let cfg: JoinConfig = match &msg.payload {
            Payload::Json(raw) => match parse_join(raw) {
                Ok(c) => c,
                Err(e) => {
                    return self.error(msg, Refusal::InvalidJoinPayload(e.to_string()));
                }
            },
            _ => {
                let why = "payload must be a JSON object".to_string();
                return self.error(msg, Refusal::InvalidJoinPayload(why));
            }
        };
        if cfg.postgres_changes > 0 {
            return self.error(msg, Refusal::PostgresChanges);
        }
        if cfg.replay_requested && !cfg.private {
            return self.error(msg, Refusal::ReplayPublic);
        }
        let token = self.effective_token(cfg.access_token.as_deref());
        let claims = match self.verify(token.as_deref()) {
            Ok(c) => c,
            Err(e) => return self.error(msg, Refusal::Token(e)),
        };
        if topic == super::STATUS_TOPIC {
            return self.join_status(msg, claims, token);
        }
        if cfg.private {
            let allowed = match &claims {
                Some(c) => self.hub.cfg.auth.may_join_private(sub, c),
                None => false,
            };
            if !allowed {
                let topic = sub.to_string();
                return self.error(msg, Refusal::PrivateTopic { topic });
            }
        }
        let key = match self.presence_key(&cfg, claims.as_ref()) {
            Ok(k) => k,
            Err(why) => return self.error(msg, Refusal::PresenceKeyMismatch(why)),
        };
        let max_key = self.hub.cfg.core.max_key_bytes;
        if let Some(k) = key.as_ref().filter(|k| k.as_str().len() > max_key) {
            let len = k.as_str().len();
            return self.error(msg, Refusal::KeyTooLong { len, max: max_key });
        }
        // A second join of a joined topic replaces the old channel (Phoenix closes it).
        if let Some(old) = self.channels.get(topic) {
            let mut buf = Vec::new();
            encode_close(self.vsn, Some(&old.join_ref), topic, &mut buf);
            self.send(buf);
            self.leave(topic);
        }
        if self.channels.len() >= self.hub.cfg.max_channels_per_connection {
            return self.error(msg, Refusal::TooManyChannels);
        }
        let join_ref = join_ref_of(msg);
        let internal = internal_topic(topic, cfg.private);
        self.hub
            .registry
            .entry(internal.to_string())
            .or_insert_with(|| TopicSubs {
                external: Arc::from(topic),
                subs: Vec::new(),
            })
            .subs
            .push(Subscriber {
                conn: self.conn,
                join_ref: join_ref.clone(),
                vsn: self.vsn,
                outbox: self.outbox.clone(),
            });
        self.hub.bus.subscribe(internal.as_str());
        self.open_channel(
            msg,
            Channel {
                join_ref: join_ref.clone(),
                internal: internal.clone(),
                key,
                broadcast_self: cfg.broadcast_self,
                broadcast_ack: cfg.broadcast_ack,
                private: cfg.private,
                exp: claims.as_ref().map(|c| c.exp),
                token: claims.as_ref().and(token),
                presence_calls: RateWindow::new(),
            },
        );
        if cfg.presence_enabled {
            let mut state = Vec::with_capacity(256);
            self.hub
                .bus
                .write_presence_state(&self.hub, internal.as_str(), &mut state);
            let state = std::str::from_utf8(&state).unwrap_or("{}");
            let mut buf = Vec::with_capacity(state.len() + 64);
            encode_push(
                self.vsn,
                Some(&join_ref),
                topic,
                event::PRESENCE_STATE,
                state,
                &mut buf,
            );
            self.send(buf);
        }
    }

    /// Records a joined channel on `msg.topic` and acknowledges the join (counted once here
    /// for every kind of channel).
    pub(super) fn open_channel(&mut self, msg: &Inbound<'_>, ch: Channel) {
        self.channels.insert(msg.topic.to_string(), ch);
        self.joined_once = true;
        self.hub.channels.fetch_add(1, Ordering::Relaxed);
        Metrics::inc(&self.hub.metrics.joins);
        self.ok(msg, r#"{"postgres_changes":[]}"#);
    }

    /// The channel's presence key: the client's, a fresh UUID, or the token's `sub`.
    fn presence_key(
        &self,
        cfg: &JoinConfig,
        claims: Option<&Claims>,
    ) -> Result<Option<Key>, &'static str> {
        let given = cfg.presence_key.as_deref().filter(|k| !k.is_empty());
        match self.hub.cfg.auth.presence_key {
            PresenceKeySource::Client => Ok(Some(match given {
                Some(k) => Key::new(k),
                None => Key::from(uuid::Uuid::new_v4().to_string()),
            })),
            PresenceKeySource::Sub => {
                let sub = claims.and_then(|c| c.sub.as_deref());
                match (given, sub) {
                    (Some(k), Some(s)) if k != s => {
                        Err("PresenceKeyMismatch: presence key must equal the token's sub claim")
                    }
                    (_, Some(s)) => Ok(Some(Key::new(s))),
                    // No user: may listen, may not track (refused at track).
                    (_, None) => Ok(None),
                }
            }
        }
    }
}

/// A channel's join ref: the push's `join_ref`, or its `ref` (v1 clients send only that).
pub(super) fn join_ref_of(msg: &Inbound<'_>) -> Arc<str> {
    Arc::from(
        msg.join_ref
            .as_deref()
            .or(msg.msg_ref.as_deref())
            .unwrap_or(""),
    )
}
