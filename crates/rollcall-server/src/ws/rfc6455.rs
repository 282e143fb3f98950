//! RFC 6455 rules the socket layer enforces itself: which close code a read error gets, and
//! what a valid `Sec-WebSocket-Key` looks like.

/// What a failed read means for the socket (RFC 6455 §7.4.1), classified by the error's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReadError {
    /// A message or frame over `max_frame_bytes`: close 1009.
    TooBig,
    /// A text message that is not UTF-8: close 1007.
    InvalidUtf8,
    /// Any other violation of the framing rules (reserved bits, unmasked frame, bad opcode,
    /// fragmented control frame, …): close 1002.
    Protocol,
    /// The transport failed or the peer vanished: no close frame can be delivered.
    Transport,
}

impl ReadError {
    pub(super) fn of(e: &axum::Error) -> ReadError {
        use tungstenite::Error as WsError;
        use tungstenite::error::ProtocolError;
        let inner = std::error::Error::source(e).and_then(|s| s.downcast_ref::<WsError>());
        match inner {
            Some(WsError::Capacity(_)) => ReadError::TooBig,
            Some(WsError::Utf8(_)) => ReadError::InvalidUtf8,
            Some(WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake)) => {
                ReadError::Transport
            }
            Some(WsError::Protocol(_)) => ReadError::Protocol,
            _ => ReadError::Transport,
        }
    }

    /// The `rollcall_errors_total` reason.
    pub(super) fn metric(self) -> &'static str {
        match self {
            ReadError::TooBig => "frame_too_large",
            ReadError::InvalidUtf8 => "invalid_utf8",
            ReadError::Protocol => "protocol_error",
            ReadError::Transport => "websocket_error",
        }
    }

    /// The close frame to send, if the peer can still receive one.
    pub(super) fn close_frame(self) -> Option<(u16, &'static str)> {
        match self {
            ReadError::TooBig => Some((1009, "message too big")),
            ReadError::InvalidUtf8 => Some((1007, "invalid UTF-8 in a text message")),
            ReadError::Protocol => Some((1002, "protocol error")),
            ReadError::Transport => None,
        }
    }
}

/// True for a `Sec-WebSocket-Key` that is the base64 of 16 bytes: 22 base64 characters and
/// `==` (RFC 6455 §4.1); the unused low bits of the 22nd character are not checked.
pub(super) fn valid_websocket_key(key: &[u8]) -> bool {
    let b64 = |c: &u8| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/';
    key.len() == 24 && key[..22].iter().all(b64) && &key[22..] == b"=="
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_keys_must_be_the_base64_of_16_bytes() {
        assert!(valid_websocket_key(b"dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(valid_websocket_key(b"6D69KGBOr4Re+Nj6zx9aQA=="));
        for bad in [
            &b"abc"[..],
            b"",
            b"dGhlIHNhbXBsZSBub25jZQ",
            b"dGhlIHNhbXBsZSBub25jZQ=",
            b"dGhlIHNhbXBsZSBub25jZ===",
            b"dGhlIHNhbXBsZSBub25j*Q==",
            b"dGhlIHNhbXBsZSBub25jZQ==dGhl",
        ] {
            assert!(
                !valid_websocket_key(bad),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn read_errors_map_to_their_close_codes_by_type() {
        use tungstenite::error::{CapacityError, ProtocolError};
        let of = |e: tungstenite::Error| ReadError::of(&axum::Error::new(e));
        let utf8 = std::str::from_utf8(&[0xff, 0xfe][..]).unwrap_err();
        assert_eq!(of(tungstenite::Error::from(utf8)), ReadError::InvalidUtf8);
        let big = CapacityError::MessageTooLong {
            size: 2,
            max_size: 1,
        };
        assert_eq!(of(big.into()), ReadError::TooBig);
        assert_eq!(
            of(ProtocolError::NonZeroReservedBits.into()),
            ReadError::Protocol
        );
        assert_eq!(
            of(ProtocolError::ResetWithoutClosingHandshake.into()),
            ReadError::Transport
        );
        assert_eq!(
            of(tungstenite::Error::ConnectionClosed),
            ReadError::Transport
        );
        assert_eq!(
            ReadError::InvalidUtf8.close_frame().map(|c| c.0),
            Some(1007)
        );
        assert_eq!(ReadError::Protocol.close_frame().map(|c| c.0), Some(1002));
        assert_eq!(ReadError::TooBig.close_frame().map(|c| c.0), Some(1009));
    }
}
