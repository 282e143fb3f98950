//! Frame codecs: text frames of vsn 1.0.0 (`v1.rs`) and 2.0.0 (`v2.rs`) and the Supabase binary
//! frames (`binary.rs`), decoded into a borrowed [`Inbound`] and encoded into caller buffers
//! (`encode.rs`).
//!
//! Decoders borrow from the frame wherever they can and never panic, whatever the input.

mod binary;
mod encode;
mod heartbeat;
mod v1;
mod v2;

use std::borrow::Cow;

use serde_json::value::RawValue;

pub use encode::{
    encode_broadcast, encode_channel_error, encode_close, encode_message, encode_push,
    encode_reply, encode_user_broadcast,
};
pub use heartbeat::plain_heartbeat_ref;

use crate::json::{self, Kind};
use crate::{DecodeError, Field, Vsn};

/// A decoded client frame, borrowing from the frame's bytes.
#[derive(Debug, Clone)]
pub struct Inbound<'a> {
    /// The channel's join ref; None when null, absent, or empty in a binary frame.
    pub join_ref: Option<Cow<'a, str>>,
    /// The message ref the reply must echo; None when null, absent, or empty in binary.
    /// Numeric refs are accepted and kept as their JSON text.
    pub msg_ref: Option<Cow<'a, str>>,
    /// The topic, e.g. `realtime:room1` or `phoenix`.
    pub topic: Cow<'a, str>,
    /// The Phoenix event, e.g. `phx_join`; `broadcast` for a binary user broadcast.
    pub event: Cow<'a, str>,
    /// The payload.
    pub payload: Payload<'a>,
}

/// The payload of an [`Inbound`] frame.
#[derive(Debug, Clone)]
pub enum Payload<'a> {
    /// A text frame's payload: any JSON value, exactly as sent.
    Json(&'a RawValue),
    /// A Supabase user broadcast push (binary kind 3): what realtime-js sends for
    /// `channel.send({type: 'broadcast', ..})` on vsn 2.0.0.
    UserBroadcast {
        /// The user's event name (`payload.event` on the client).
        event: Cow<'a, str>,
        /// The metadata object; None when the frame carried none (length 0).
        metadata: Option<&'a RawValue>,
        /// The user's payload.
        body: UserBroadcastBody<'a>,
    },
    /// The raw payload bytes of a Phoenix binary push (kind 0).
    Binary(&'a [u8]),
}

/// The user payload of a user broadcast, in either direction.
#[derive(Debug, Clone, Copy)]
pub enum UserBroadcastBody<'a> {
    /// Payload encoding 1: JSON, validated on decode.
    Json(&'a RawValue),
    /// Payload encoding 0: opaque bytes (an `ArrayBuffer` on the client).
    Binary(&'a [u8]),
}

/// The WebSocket frame type an encoder produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// A text frame (JSON).
    Text,
    /// A binary frame.
    Binary,
}

/// Decodes a client text frame in the socket's serializer.
///
/// vsn 1.0.0 is an object with required `topic`, `event`, `payload` and `ref` (ref may be
/// null) and an optional `join_ref`; vsn 2.0.0 is an array of exactly 5 elements
/// `[join_ref, ref, topic, event, payload]` (RT ignores extra elements; Rollcall refuses them).
///
/// # Errors
/// [`DecodeError`] naming what is wrong; RT ignores such frames and keeps the socket open.
///
/// ```
/// use rollcall_phoenix::{decode_text, Vsn};
/// let m = decode_text(Vsn::V2, r#"[null,"1","phoenix","heartbeat",{}]"#).unwrap();
/// assert_eq!((m.topic.as_ref(), m.event.as_ref()), ("phoenix", "heartbeat"));
/// ```
pub fn decode_text(vsn: Vsn, text: &str) -> Result<Inbound<'_>, DecodeError> {
    match vsn {
        Vsn::V1 => v1::decode(text),
        Vsn::V2 => v2::decode(text),
    }
}

/// Decodes a client binary frame: kind 3 (user broadcast push) or kind 0 (Phoenix push).
///
/// Empty refs (realtime-js writes `""` for null) decode as None.
///
/// # Errors
/// [`DecodeError`]; any other kind is [`DecodeError::UnknownKind`].
pub fn decode_binary(frame: &[u8]) -> Result<Inbound<'_>, DecodeError> {
    binary::decode_client(frame)
}

/// Decodes a server binary frame of kind 4 (user broadcast), as realtime-js does.
///
/// The server never receives these; this is for Rust clients and round-trip tests. Refs are
/// None and the event is `broadcast`, matching realtime-js's decoding.
///
/// # Errors
/// [`DecodeError`]; any kind but 4 is [`DecodeError::UnknownKind`].
pub fn decode_server_binary(frame: &[u8]) -> Result<Inbound<'_>, DecodeError> {
    binary::decode_server(frame)
}

/// A ref: null is None, a string is itself, a number is its JSON text.
fn decode_ref(raw: &RawValue, field: Field) -> Result<Option<Cow<'_, str>>, DecodeError> {
    match json::kind(raw) {
        Kind::Null => Ok(None),
        Kind::String => json::as_str(raw)
            .map(Some)
            .ok_or(DecodeError::WrongType(field)),
        Kind::Number => Ok(Some(Cow::Borrowed(raw.get()))),
        _ => Err(DecodeError::WrongType(field)),
    }
}

/// A required string field.
fn decode_string(raw: &RawValue, field: Field) -> Result<Cow<'_, str>, DecodeError> {
    json::as_str(raw).ok_or(DecodeError::WrongType(field))
}
