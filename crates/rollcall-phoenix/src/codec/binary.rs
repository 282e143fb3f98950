//! vsn 2.0.0 binary frames (protocol §2.3). Every length is one byte, every string UTF-8.
//!
//! Clients send kind 0 (Phoenix push) and kind 3 (Supabase user broadcast push). The server
//! sends only kind 4 (user broadcast): realtime-js ≥ 2.100 cannot decode kinds 0, 1 and 2, so
//! this module has no encoder for them.

use std::borrow::Cow;

use super::{Inbound, Payload, UserBroadcastBody};
use crate::event::BROADCAST;
use crate::json;
use crate::{DecodeError, EncodeError, Field};

/// Phoenix push, client to server.
const KIND_PUSH: u8 = 0;
/// Supabase user broadcast push, client to server.
const KIND_USER_BROADCAST_PUSH: u8 = 3;
/// Supabase user broadcast, server to client.
const KIND_USER_BROADCAST: u8 = 4;
/// Payload encoding byte: opaque bytes.
const ENCODING_BINARY: u8 = 0;
/// Payload encoding byte: JSON text.
const ENCODING_JSON: u8 = 1;

/// Decodes a client frame of kind 0 or 3.
pub(super) fn decode_client(frame: &[u8]) -> Result<Inbound<'_>, DecodeError> {
    match frame.first() {
        None => Err(DecodeError::Empty),
        Some(&KIND_PUSH) => decode_push(frame),
        Some(&KIND_USER_BROADCAST_PUSH) => decode_user_broadcast_push(frame),
        Some(&kind) => Err(DecodeError::UnknownKind(kind)),
    }
}

/// Decodes a server frame of kind 4.
pub(super) fn decode_server(frame: &[u8]) -> Result<Inbound<'_>, DecodeError> {
    match frame.first() {
        None => Err(DecodeError::Empty),
        Some(&KIND_USER_BROADCAST) => {
            let mut r = Reader::new(frame);
            let [topic_len, event_len, meta_len, encoding] = r.header()?;
            let topic = r.str(topic_len, Field::Topic)?;
            let event = r.str(event_len, Field::UserEvent)?;
            let metadata = r.metadata(meta_len)?;
            let body = body(encoding, r.rest())?;
            Ok(user_broadcast(None, None, topic, event, metadata, body))
        }
        Some(&kind) => Err(DecodeError::UnknownKind(kind)),
    }
}

/// Appends a kind-4 frame: kind, topic_len, user_event_len, metadata_len, encoding, then the
/// strings and the payload. Nothing is written on error.
pub(super) fn write_user_broadcast(
    topic: &str,
    user_event: &str,
    metadata: Option<&str>,
    body: UserBroadcastBody<'_>,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let metadata = metadata.unwrap_or("");
    let topic_len = len_byte(topic, Field::Topic)?;
    let event_len = len_byte(user_event, Field::UserEvent)?;
    let meta_len = len_byte(metadata, Field::Metadata)?;
    let (encoding, payload) = match body {
        UserBroadcastBody::Json(raw) => (ENCODING_JSON, raw.get().as_bytes()),
        UserBroadcastBody::Binary(bytes) => (ENCODING_BINARY, bytes),
    };
    out.reserve(5 + topic.len() + user_event.len() + metadata.len() + payload.len());
    out.extend_from_slice(&[
        KIND_USER_BROADCAST,
        topic_len,
        event_len,
        meta_len,
        encoding,
    ]);
    out.extend_from_slice(topic.as_bytes());
    out.extend_from_slice(user_event.as_bytes());
    out.extend_from_slice(metadata.as_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

fn len_byte(s: &str, field: Field) -> Result<u8, EncodeError> {
    u8::try_from(s.len()).map_err(|_| EncodeError::TooLong {
        field,
        len: s.len(),
    })
}

/// Kind 0: join_ref_len, ref_len, topic_len, event_len; strings; raw payload bytes.
fn decode_push(frame: &[u8]) -> Result<Inbound<'_>, DecodeError> {
    let mut r = Reader::new(frame);
    let [jr_len, ref_len, topic_len, event_len] = r.header()?;
    Ok(Inbound {
        join_ref: non_empty(r.str(jr_len, Field::JoinRef)?),
        msg_ref: non_empty(r.str(ref_len, Field::Ref)?),
        topic: Cow::Borrowed(r.str(topic_len, Field::Topic)?),
        event: Cow::Borrowed(r.str(event_len, Field::Event)?),
        payload: Payload::Binary(r.rest()),
    })
}

/// Kind 3: join_ref_len, ref_len, topic_len, user_event_len, metadata_len, encoding; strings;
/// the user payload.
fn decode_user_broadcast_push(frame: &[u8]) -> Result<Inbound<'_>, DecodeError> {
    let mut r = Reader::new(frame);
    let [jr_len, ref_len, topic_len, event_len, meta_len, encoding] = r.header()?;
    let join_ref = r.str(jr_len, Field::JoinRef)?;
    let msg_ref = r.str(ref_len, Field::Ref)?;
    let topic = r.str(topic_len, Field::Topic)?;
    let event = r.str(event_len, Field::UserEvent)?;
    let metadata = r.metadata(meta_len)?;
    let body = body(encoding, r.rest())?;
    Ok(user_broadcast(
        non_empty(join_ref),
        non_empty(msg_ref),
        topic,
        event,
        metadata,
        body,
    ))
}

fn user_broadcast<'a>(
    join_ref: Option<Cow<'a, str>>,
    msg_ref: Option<Cow<'a, str>>,
    topic: &'a str,
    event: &'a str,
    metadata: Option<&'a serde_json::value::RawValue>,
    body: UserBroadcastBody<'a>,
) -> Inbound<'a> {
    Inbound {
        join_ref,
        msg_ref,
        topic: Cow::Borrowed(topic),
        event: Cow::Borrowed(BROADCAST),
        payload: Payload::UserBroadcast {
            event: Cow::Borrowed(event),
            metadata,
            body,
        },
    }
}

/// The user payload by its encoding byte; JSON is validated here so that fan-out can embed it
/// in text frames unchecked.
fn body(encoding: u8, bytes: &[u8]) -> Result<UserBroadcastBody<'_>, DecodeError> {
    match encoding {
        ENCODING_BINARY => Ok(UserBroadcastBody::Binary(bytes)),
        ENCODING_JSON => std::str::from_utf8(bytes)
            .ok()
            .and_then(json::raw)
            .map(UserBroadcastBody::Json)
            .ok_or(DecodeError::InvalidJsonIn(Field::Payload)),
        other => Err(DecodeError::UnknownEncoding(other)),
    }
}

/// realtime-js writes a null ref as an empty string.
fn non_empty(s: &str) -> Option<Cow<'_, str>> {
    (!s.is_empty()).then_some(Cow::Borrowed(s))
}

/// A cursor over a frame that checks every length against what remains.
struct Reader<'a> {
    frame: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(frame: &'a [u8]) -> Self {
        Reader { frame, pos: 0 }
    }

    /// The kind byte is skipped; returns the `N` header bytes after it.
    fn header<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let kind = self.frame.first().copied().unwrap_or_default();
        let header = self
            .frame
            .get(1..1 + N)
            .and_then(|h| <[u8; N]>::try_from(h).ok())
            .ok_or(DecodeError::TruncatedHeader {
                kind,
                len: self.frame.len(),
                needed: 1 + N,
            })?;
        self.pos = 1 + N;
        Ok(header)
    }

    fn take(&mut self, len: u8, field: Field) -> Result<&'a [u8], DecodeError> {
        let rest = self.rest();
        let len = usize::from(len);
        let bytes = rest.get(..len).ok_or(DecodeError::LengthPastEnd {
            field,
            len,
            remaining: rest.len(),
        })?;
        self.pos += len;
        Ok(bytes)
    }

    fn str(&mut self, len: u8, field: Field) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.take(len, field)?).map_err(|_| DecodeError::InvalidUtf8(field))
    }

    /// Metadata is JSON text, or absent when its length is 0.
    fn metadata(
        &mut self,
        len: u8,
    ) -> Result<Option<&'a serde_json::value::RawValue>, DecodeError> {
        let text = self.str(len, Field::Metadata)?;
        if text.is_empty() {
            return Ok(None);
        }
        json::raw(text)
            .map(Some)
            .ok_or(DecodeError::InvalidJsonIn(Field::Metadata))
    }

    fn rest(&self) -> &'a [u8] {
        self.frame.get(self.pos..).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_zero_payload_is_raw_bytes() {
        let frame = b"\x00\x01\x01\x01\x02" as &[u8];
        let frame = [frame, b"12tev\xff\x00"].concat();
        let m = decode_client(&frame).unwrap();
        assert_eq!(
            (m.join_ref.as_deref(), m.msg_ref.as_deref()),
            (Some("1"), Some("2"))
        );
        assert_eq!((m.topic.as_ref(), m.event.as_ref()), ("t", "ev"));
        assert!(matches!(m.payload, Payload::Binary(b"\xff\x00")));
    }

    #[test]
    fn empty_refs_are_none() {
        let frame = [&[3u8, 0, 0, 1, 1, 0, 0][..], b"te\x01"].concat();
        let m = decode_client(&frame).unwrap();
        assert_eq!((m.join_ref, m.msg_ref), (None, None));
    }

    #[test]
    fn malformed_frames_name_the_fault() {
        let cases: &[(&[u8], DecodeError)] = &[
            (b"", DecodeError::Empty),
            (
                b"\x03\x01\x01",
                DecodeError::TruncatedHeader {
                    kind: 3,
                    len: 3,
                    needed: 7,
                },
            ),
            (
                b"\x00\x01",
                DecodeError::TruncatedHeader {
                    kind: 0,
                    len: 2,
                    needed: 5,
                },
            ),
            (
                b"\x03\x01\x01\x0e\x05\x00\x01" as &[u8],
                DecodeError::LengthPastEnd {
                    field: Field::JoinRef,
                    len: 1,
                    remaining: 0,
                },
            ),
            (
                b"\x03\x00\x00\x01\x00\x00\x01\xff",
                DecodeError::InvalidUtf8(Field::Topic),
            ),
            (
                b"\x03\x00\x00\x01\x00\x00\x01t{",
                DecodeError::InvalidJsonIn(Field::Payload),
            ),
            (
                b"\x03\x00\x00\x01\x00\x00\x01t",
                DecodeError::InvalidJsonIn(Field::Payload),
            ),
            (
                b"\x03\x00\x00\x01\x00\x01\x01tx{}",
                DecodeError::InvalidJsonIn(Field::Metadata),
            ),
            (
                b"\x03\x00\x00\x01\x00\x00\x02t{}",
                DecodeError::UnknownEncoding(2),
            ),
            (b"\x01\x00\x00\x00\x00", DecodeError::UnknownKind(1)),
            (b"\x02", DecodeError::UnknownKind(2)),
            (b"\x04\x00\x00\x00\x00", DecodeError::UnknownKind(4)),
            (b"{}", DecodeError::UnknownKind(b'{')),
        ];
        for (frame, want) in cases {
            assert_eq!(decode_client(frame).unwrap_err(), *want, "{frame:?}");
        }
    }

    #[test]
    fn kind_four_refuses_strings_over_255_bytes_and_writes_nothing() {
        let long = "x".repeat(256);
        let mut out = vec![9];
        let body = UserBroadcastBody::Binary(b"");
        let err = write_user_broadcast(&long, "e", None, body, &mut out).unwrap_err();
        assert_eq!(
            err,
            EncodeError::TooLong {
                field: Field::Topic,
                len: 256
            }
        );
        let err = write_user_broadcast("t", &long, None, body, &mut out).unwrap_err();
        assert_eq!(
            err,
            EncodeError::TooLong {
                field: Field::UserEvent,
                len: 256
            }
        );
        let meta = format!("\"{}\"", "x".repeat(254));
        let err = write_user_broadcast("t", "e", Some(&meta), body, &mut out).unwrap_err();
        assert_eq!(
            err,
            EncodeError::TooLong {
                field: Field::Metadata,
                len: 256
            }
        );
        assert_eq!(out, [9]);
        write_user_broadcast(&long[1..], "e", None, body, &mut out).unwrap();
    }

    #[test]
    fn server_decoder_refuses_client_kinds() {
        assert_eq!(
            decode_server(b"\x03").unwrap_err(),
            DecodeError::UnknownKind(3)
        );
        assert_eq!(decode_server(b"").unwrap_err(), DecodeError::Empty);
    }
}
