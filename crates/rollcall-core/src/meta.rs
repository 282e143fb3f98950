//! Presence meta: the JSON object a client tracks (e.g. `{"status":"online"}`).
//!
//! Stored once as compact, normalised JSON text so the server can splice it into
//! `presence_state` / `presence_diff` payloads without re-serialising, and so an identical
//! re-track is detected by comparing text.

use std::fmt;
use std::sync::Arc;

use crate::error::MetaError;

/// A validated presence meta: a JSON object, kept as compact text with sorted keys.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Meta(Arc<str>);

impl Meta {
    /// The empty object `{}`.
    pub fn empty() -> Meta {
        Meta(Arc::from("{}"))
    }

    /// Builds a meta from a parsed JSON value.
    ///
    /// # Errors
    /// [`MetaError::NotAnObject`] when `value` is not a JSON object.
    pub fn from_value(value: &serde_json::Value) -> Result<Meta, MetaError> {
        if !value.is_object() {
            return Err(MetaError::NotAnObject);
        }
        Ok(Meta(Arc::from(value.to_string())))
    }

    /// Parses JSON text; normalises it (compact, keys sorted) so equal metas compare equal.
    ///
    /// # Errors
    /// [`MetaError::InvalidJson`] or [`MetaError::NotAnObject`].
    pub fn parse(text: &str) -> Result<Meta, MetaError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|_| MetaError::InvalidJson)?;
        Meta::from_value(&value)
    }

    /// The compact JSON text of the object.
    pub fn as_json(&self) -> &str {
        &self.0
    }

    /// Size of the JSON text in bytes, the figure the `max_meta_bytes` limit applies to.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for `{}`.
    pub fn is_empty(&self) -> bool {
        self.0.len() <= 2
    }

    /// The object's members without the surrounding braces (empty for `{}`), for splicing.
    pub(crate) fn members(&self) -> &str {
        &self.0[1..self.0.len() - 1]
    }
}

impl fmt::Debug for Meta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_objects_with_other_key_order_compare_equal() {
        let a = Meta::parse(r#"{"b":1, "a":"x"}"#).unwrap();
        let b = Meta::parse(r#"{"a":"x","b":1}"#).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.as_json(), r#"{"a":"x","b":1}"#);
    }

    #[test]
    fn non_objects_are_refused() {
        assert_eq!(Meta::parse("[1]"), Err(MetaError::NotAnObject));
        assert_eq!(Meta::parse("\"x\""), Err(MetaError::NotAnObject));
        assert_eq!(Meta::parse("{"), Err(MetaError::InvalidJson));
    }

    #[test]
    fn members_strip_the_braces() {
        assert_eq!(Meta::empty().members(), "");
        assert!(Meta::empty().is_empty());
        assert_eq!(Meta::parse(r#"{"a":1}"#).unwrap().members(), r#""a":1"#);
    }
}
