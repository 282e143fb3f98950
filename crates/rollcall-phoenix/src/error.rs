//! Error enums, one per operation family. Mapping them to wire replies happens only in
//! [`crate::reply`].

use std::fmt;

/// A field of a frame, named in decode and encode errors.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The channel's join ref (`join_ref`).
    JoinRef,
    /// The message ref (`ref`).
    Ref,
    /// The topic, e.g. `realtime:room1`.
    Topic,
    /// The Phoenix event, e.g. `phx_join`.
    Event,
    /// The user event of a user broadcast (binary kinds 3 and 4).
    UserEvent,
    /// The metadata of a user broadcast (binary kinds 3 and 4).
    Metadata,
    /// The payload.
    Payload,
}

impl Field {
    /// The field's name as the protocol spells it.
    pub const fn name(self) -> &'static str {
        match self {
            Field::JoinRef => "join_ref",
            Field::Ref => "ref",
            Field::Topic => "topic",
            Field::Event => "event",
            Field::UserEvent => "user_event",
            Field::Metadata => "metadata",
            Field::Payload => "payload",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why an inbound frame could not be decoded. The socket stays open; the frame is dropped.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The text frame is not valid JSON.
    #[error("invalid json at line {line} column {column}")]
    InvalidJson {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
    },
    /// A vsn 2.0.0 text frame is valid JSON but not an array.
    #[error("frame is not a json array")]
    NotAnArray,
    /// A vsn 1.0.0 text frame is valid JSON but not an object.
    #[error("frame is not a json object")]
    NotAnObject,
    /// A vsn 2.0.0 array does not have exactly 5 elements.
    #[error("frame has {0} elements, 5 are required")]
    Arity(usize),
    /// A required field is absent.
    #[error("field {0} is missing")]
    MissingField(Field),
    /// A field has the wrong JSON type (e.g. a topic that is not a string).
    #[error("field {0} has the wrong type")]
    WrongType(Field),
    /// A binary frame with no bytes at all.
    #[error("binary frame is empty")]
    Empty,
    /// A binary frame shorter than its kind's fixed header.
    #[error("binary header of kind {kind} is {len} bytes, {needed} are required")]
    TruncatedHeader {
        /// The kind byte.
        kind: u8,
        /// The frame's length.
        len: usize,
        /// The header length the kind requires.
        needed: usize,
    },
    /// A length byte points past the end of the frame.
    #[error("field {field} is {len} bytes, only {remaining} remain")]
    LengthPastEnd {
        /// The field whose length is wrong.
        field: Field,
        /// The length the header declares.
        len: usize,
        /// The bytes left in the frame.
        remaining: usize,
    },
    /// A string field of a binary frame is not UTF-8.
    #[error("field {0} is not valid utf-8")]
    InvalidUtf8(Field),
    /// A binary frame declares JSON in a field that does not hold valid JSON.
    #[error("field {0} is not valid json")]
    InvalidJsonIn(Field),
    /// The binary kind byte is not one a client may send (0 or 3).
    #[error("unknown binary kind {0}")]
    UnknownKind(u8),
    /// The payload encoding byte of a user broadcast is neither 0 (binary) nor 1 (JSON).
    #[error("unknown payload encoding {0}")]
    UnknownEncoding(u8),
}

impl DecodeError {
    pub(crate) fn from_json(err: &serde_json::Error) -> Self {
        DecodeError::InvalidJson {
            line: err.line(),
            column: err.column(),
        }
    }
}

/// Why an outbound frame could not be produced; the server skips that recipient group.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A binary user broadcast cannot reach a vsn 1.0.0 socket (RT drops it too).
    #[error("binary user broadcast cannot be sent to a vsn 1.0.0 socket")]
    BinaryOnV1,
    /// A string of a binary frame is longer than its one-byte length allows.
    #[error("field {field} is {len} bytes, the limit is 255")]
    TooLong {
        /// The field that is too long.
        field: Field,
        /// Its length in bytes.
        len: usize,
    },
}

/// Why a `vsn` query parameter was refused; the server answers HTTP 403.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VsnError {
    /// Not a semantic version (`MAJOR.MINOR.PATCH`).
    #[error("vsn {0:?} is not a version")]
    Unparsable(String),
    /// A version that matches neither `~> 1.0.0` nor `~> 2.0.0`.
    #[error("vsn {0:?} is not supported, the supported versions are ~> 1.0.0 and ~> 2.0.0")]
    Unsupported(String),
}

/// Why a `phx_join` payload was refused as a whole.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    /// The payload is not a JSON object.
    #[error("join payload is not a json object")]
    NotAnObject,
}

/// Why a `presence` push payload was refused.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PresenceError {
    /// The payload is not a JSON object.
    #[error("presence payload is not a json object")]
    NotAnObject,
    /// The `event` key is present but not a string.
    #[error("presence event is not a string")]
    EventNotAString,
    /// A track whose `payload` (the meta) is present but not an object.
    #[error("presence track payload must be a map")]
    MetaNotAMap,
}

/// Why a text `broadcast` push payload was refused.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BroadcastError {
    /// The payload is not a JSON object.
    #[error("broadcast payload is not a json object")]
    NotAnObject,
    /// The `event` key is missing or not a string.
    #[error("broadcast event is missing or not a string")]
    EventNotAString,
}
