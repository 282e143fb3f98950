//! Borrowing JSON helpers shared by the decoders and encoders: strings that borrow unless they
//! hold escapes, the named fields of an object and the head of an array, all without building a
//! `serde_json::Value`. serde_json's recursion limit (128) bounds nesting, so deep input errors
//! instead of overflowing the stack.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer as _, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// The JSON type of a value, read from its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

/// The JSON type of a raw value.
pub(crate) fn kind(raw: &RawValue) -> Kind {
    match raw.get().trim_start().as_bytes().first() {
        Some(b'n') => Kind::Null,
        Some(b't' | b'f') => Kind::Bool,
        Some(b'"') => Kind::String,
        Some(b'[') => Kind::Array,
        Some(b'{') => Kind::Object,
        // A RawValue is valid JSON, so anything else starts a number.
        _ => Kind::Number,
    }
}

/// The first non-whitespace byte of a text, to pick a decoder before parsing.
pub(crate) fn first_byte(text: &str) -> Option<u8> {
    text.trim_start_matches([' ', '\t', '\n', '\r'])
        .as_bytes()
        .first()
        .copied()
}

/// The error describing `text`: its syntax error if it is not JSON, otherwise `otherwise`.
pub(crate) fn syntax_error_or(text: &str, otherwise: crate::DecodeError) -> crate::DecodeError {
    match serde_json::from_str::<IgnoredAny>(text) {
        Ok(_) => otherwise,
        Err(e) => crate::DecodeError::from_json(&e),
    }
}

/// The string a raw JSON value holds, borrowed when it has no escapes; None if not a string.
pub(crate) fn as_str(raw: &RawValue) -> Option<Cow<'_, str>> {
    if kind(raw) != Kind::String {
        return None;
    }
    serde_json::from_str::<CowStr<'_>>(raw.get())
        .ok()
        .map(|s| s.0)
}

/// Parses `text` as a raw value, for payloads that must be valid JSON.
pub(crate) fn raw(text: &str) -> Option<&RawValue> {
    serde_json::from_str::<&RawValue>(text).ok()
}

/// The empty object `{}` as a raw value.
pub(crate) fn empty_object() -> &'static RawValue {
    serde_json::from_str("{}").expect("{} is valid json")
}

/// Appends `s` as a JSON string literal, escaped by serde_json.
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("writing a str into a Vec cannot fail");
}

/// Appends `s` as a JSON string literal, or `null` for None.
pub(crate) fn write_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => write_str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

/// The values of `keys` in the JSON object `text` (the last one wins on duplicates).
///
/// # Errors
/// serde_json's error when `text` is not a valid JSON object.
pub(crate) fn object_fields<'a, const N: usize>(
    text: &'a str,
    keys: &[&str; N],
) -> Result<[Option<&'a RawValue>; N], serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let fields = de.deserialize_map(FieldsVisitor { keys })?;
    de.end()?;
    Ok(fields)
}

/// The named fields of a JSON object value; None if `raw` is not an object.
pub(crate) fn object_of<'a, const N: usize>(
    raw: &'a RawValue,
    keys: &[&str; N],
) -> Option<[Option<&'a RawValue>; N]> {
    if kind(raw) != Kind::Object {
        return None;
    }
    object_fields(raw.get(), keys).ok()
}

/// The number of elements of the JSON array `text` and its first `N` elements.
///
/// # Errors
/// serde_json's error when `text` is not a valid JSON array.
pub(crate) fn array_head<const N: usize>(
    text: &str,
) -> Result<(usize, [Option<&RawValue>; N]), serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let head = de.deserialize_seq(HeadVisitor::<N>)?;
    de.end()?;
    Ok(head)
}

/// A JSON string that borrows from the input unless it contained escapes. serde's own
/// `Cow<str>` always allocates, hence this.
struct CowStr<'a>(Cow<'a, str>);

impl<'de> de::Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(CowStrVisitor)
    }
}

struct CowStrVisitor;

impl<'de> Visitor<'de> for CowStrVisitor {
    type Value = CowStr<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(CowStr(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(CowStr(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(CowStr(Cow::Owned(v)))
    }
}

struct FieldsVisitor<'k, const N: usize> {
    keys: &'k [&'k str; N],
}

impl<'de, const N: usize> Visitor<'de> for FieldsVisitor<'_, N> {
    type Value = [Option<&'de RawValue>; N];

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a json object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = [None; N];
        while let Some(key) = map.next_key::<CowStr<'de>>()? {
            match self.keys.iter().position(|k| *k == key.0) {
                Some(i) => out[i] = Some(map.next_value::<&'de RawValue>()?),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(out)
    }
}

struct HeadVisitor<const N: usize>;

impl<'de, const N: usize> Visitor<'de> for HeadVisitor<N> {
    type Value = (usize, [Option<&'de RawValue>; N]);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a json array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut head = [None; N];
        let mut len = 0;
        while len < N {
            match seq.next_element::<&'de RawValue>()? {
                Some(v) => head[len] = Some(v),
                None => return Ok((len, head)),
            }
            len += 1;
        }
        while seq.next_element::<IgnoredAny>()?.is_some() {
            len += 1;
        }
        Ok((len, head))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_without_escapes_are_borrowed() {
        let raw = raw(r#""room""#).unwrap();
        assert!(matches!(as_str(raw), Some(Cow::Borrowed("room"))));
    }

    #[test]
    fn strings_with_escapes_are_unescaped() {
        let raw = raw(r#""a\"b\u00e9""#).unwrap();
        assert_eq!(as_str(raw).unwrap(), "a\"bé");
    }

    #[test]
    fn object_fields_picks_named_keys_and_skips_the_rest() {
        let [a, b] =
            object_fields(r#"{"x":[1,{}],"a":1,"b\u0000":2,"b":null}"#, &["a", "b"]).unwrap();
        assert_eq!(a.unwrap().get(), "1");
        assert_eq!(b.unwrap().get(), "null");
    }

    #[test]
    fn array_head_counts_every_element() {
        let (len, [a, b]) = array_head::<2>("[1, \"x\", {}, []]").unwrap();
        assert_eq!(len, 4);
        assert_eq!(a.unwrap().get(), "1");
        assert_eq!(b.unwrap().get(), "\"x\"");
    }

    #[test]
    fn deep_nesting_errors_instead_of_overflowing() {
        let deep = "[".repeat(100_000);
        assert!(array_head::<5>(&deep).is_err());
        let deep = format!("[1,2,3,4,5,{}]", "[".repeat(100_000));
        assert!(array_head::<5>(&deep).is_err());
        let deep = format!("[1,2,3,4,{}]", "[".repeat(100_000));
        assert!(array_head::<5>(&deep).is_err());
    }

    #[test]
    fn write_str_escapes_quotes_controls_and_keeps_unicode() {
        let mut out = Vec::new();
        write_str(&mut out, "a\"\\\n\u{1}é");
        assert_eq!(String::from_utf8(out).unwrap(), r#""a\"\\\n\u0001é""#);
    }
}
