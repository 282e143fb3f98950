//! The Phoenix channels wire protocol as Supabase Realtime speaks it, without I/O.
//!
//! Rollcall serves unmodified `@supabase/realtime-js` clients; this crate turns their frames into
//! values and the server's answers back into frames. The rules it follows are in
//! `docs/realtime-spec.md` (§ numbers below refer to it). It depends on serde, serde_json and
//! thiserror only: no async runtime, no sockets, no clock. The server feeds it bytes and sends
//! the bytes it returns.
//!
//! # Layout
//! * [`Vsn`] (`vsn.rs`): the serializer a socket negotiated from its `vsn` query (§1.3).
//! * [`codec`]: [`decode_text`] for vsn 1.0.0 objects and 2.0.0 arrays, [`decode_binary`] for
//!   the binary kinds 0 and 3 a client sends, and the `encode_*` functions that append one frame
//!   to a caller buffer so a fan-out is encoded once per topic and serializer (§2).
//! * [`join`]: the `phx_join` payload cast as RT casts it (§3.2).
//! * [`presence_msg`]: the `presence` track/untrack and text `broadcast` payloads (§4, §5).
//! * [`reply`]: reply and `system` bodies and the exact reason strings (§3.3, §3.6, §6).
//! * [`event`]: topic and event names.
//! * [`fuzzing`]: entry points for the fuzz targets.
//!
//! # Example
//! ```
//! use rollcall_phoenix::{decode_text, encode_reply, reply, Vsn};
//!
//! let vsn = Vsn::from_query(Some("2.0.0")).unwrap();
//! let frame = r#"[null,"3","phoenix","heartbeat",{}]"#;
//! let msg = decode_text(vsn, frame).unwrap();
//! let mut out = Vec::new();
//! encode_reply(vsn, None, msg.msg_ref.as_deref(), &msg.topic, reply::STATUS_OK,
//!              reply::ok_empty(), &mut out);
//! assert_eq!(out, br#"[null,"3","phoenix","phx_reply",{"status":"ok","response":{}}]"#);
//! ```

pub mod codec;
mod error;
pub mod event;
#[doc(hidden)]
pub mod fuzzing;
pub mod join;
mod json;
pub mod presence_msg;
pub mod reply;
mod vsn;

pub use codec::{
    FrameKind, Inbound, Payload, UserBroadcastBody, decode_binary, decode_server_binary,
    decode_text, encode_broadcast, encode_channel_error, encode_close, encode_message, encode_push,
    encode_reply, encode_user_broadcast, plain_heartbeat_ref,
};
pub use error::{
    BroadcastError, DecodeError, EncodeError, Field, JoinError, PresenceError, VsnError,
};
pub use join::{JoinConfig, parse_join};
pub use presence_msg::{BroadcastMessage, PresenceCommand, parse_broadcast, parse_presence};
pub use vsn::Vsn;
