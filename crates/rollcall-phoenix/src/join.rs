//! The `phx_join` payload (protocol §3.2), cast field by field as RT's Ecto schemas do: a badly
//! typed field is ignored and recorded in [`JoinConfig::warnings`] (RT logs `InvalidJoinPayload`
//! and still joins), and only a payload that is not an object is refused.

use serde_json::value::RawValue;

use crate::JoinError;
use crate::json::{self, Kind};

/// What a join asks for. Missing fields take their defaults: `false`, `None`, 0.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JoinConfig {
    /// `config.broadcast.self`: the sender also receives its own broadcasts.
    pub broadcast_self: bool,
    /// `config.broadcast.ack`: broadcasts get an `ok` reply.
    pub broadcast_ack: bool,
    /// `config.presence.enabled`: send `presence_state` after the join.
    pub presence_enabled: bool,
    /// `config.presence.key`; None when missing, null or `""` (the server then makes one up).
    /// Numbers and booleans are kept as their JSON text.
    pub presence_key: Option<String>,
    /// The number of `config.postgres_changes` bindings, which this server cannot serve.
    pub postgres_changes: usize,
    /// `config.private`: an RLS-checked private channel.
    pub private: bool,
    /// `access_token`, else the legacy `user_token`; None means "use the socket's apikey".
    /// Kept as sent, so `sb_…` keys and `""` are for the caller to judge.
    pub access_token: Option<String>,
    /// `config.broadcast.replay` is an object (RT refuses it on public channels).
    pub replay_requested: bool,
    /// Dotted paths of fields that had the wrong type and were ignored, e.g.
    /// `config.broadcast.self`.
    pub warnings: Vec<&'static str>,
}

/// Parses a `phx_join` payload.
///
/// Booleans accept `true`/`false` and the strings `"true"`/`"false"` in any case
/// (RT `flexible_boolean.ex`); null means "use the default".
///
/// # Errors
/// [`JoinError::NotAnObject`] when the payload is not a JSON object.
///
/// ```
/// use rollcall_phoenix::join::parse_join;
/// let raw = serde_json::from_str(r#"{"config":{"presence":{"key":"a","enabled":"TRUE"}}}"#)
///     .unwrap();
/// let join = parse_join(raw).unwrap();
/// assert!(join.presence_enabled);
/// assert_eq!(join.presence_key.as_deref(), Some("a"));
/// ```
pub fn parse_join(payload: &RawValue) -> Result<JoinConfig, JoinError> {
    let mut join = JoinConfig::default();
    let [config, access_token, user_token] =
        json::object_of(payload, &["config", "access_token", "user_token"])
            .ok_or(JoinError::NotAnObject)?;
    let w = &mut join.warnings;
    join.access_token =
        string(access_token, "access_token", w).or_else(|| string(user_token, "user_token", w));
    let [broadcast, presence, postgres_changes, private] = section(
        config,
        "config",
        &["broadcast", "presence", "postgres_changes", "private"],
        w,
    );
    let [bself, ack, replay] =
        section(broadcast, "config.broadcast", &["self", "ack", "replay"], w);
    let [enabled, key] = section(presence, "config.presence", &["enabled", "key"], w);
    join.broadcast_self = boolean(bself, "config.broadcast.self", w);
    join.broadcast_ack = boolean(ack, "config.broadcast.ack", w);
    join.replay_requested = match replay.map(json::kind) {
        None | Some(Kind::Null) => false,
        Some(Kind::Object) => true,
        Some(_) => warn(w, "config.broadcast.replay", false),
    };
    join.presence_enabled = boolean(enabled, "config.presence.enabled", w);
    join.presence_key = key.and_then(|raw| match json::kind(raw) {
        Kind::Null => None,
        Kind::String => json::as_str(raw)
            .filter(|k| !k.is_empty())
            .map(String::from),
        Kind::Number | Kind::Bool => Some(raw.get().to_owned()),
        Kind::Array | Kind::Object => warn(w, "config.presence.key", None),
    });
    join.postgres_changes = match postgres_changes {
        Some(raw) if json::kind(raw) == Kind::Array => {
            json::array_head::<0>(raw.get()).map_or(0, |(len, _)| len)
        }
        Some(raw) if json::kind(raw) != Kind::Null => warn(w, "config.postgres_changes", 0),
        _ => 0,
    };
    join.private = boolean(private, "config.private", w);
    Ok(join)
}

/// The named fields of an optional sub-object; all None (and a warning) if it is not an object.
fn section<'a, const N: usize>(
    raw: Option<&'a RawValue>,
    path: &'static str,
    keys: &[&str; N],
    w: &mut Vec<&'static str>,
) -> [Option<&'a RawValue>; N] {
    match raw {
        None => [None; N],
        Some(raw) if json::kind(raw) == Kind::Null => [None; N],
        Some(raw) => json::object_of(raw, keys).unwrap_or_else(|| warn(w, path, [None; N])),
    }
}

fn boolean(raw: Option<&RawValue>, path: &'static str, w: &mut Vec<&'static str>) -> bool {
    let Some(raw) = raw else { return false };
    match json::kind(raw) {
        Kind::Null => false,
        Kind::Bool => raw.get() == "true",
        Kind::String => match json::as_str(raw) {
            Some(s) if s.eq_ignore_ascii_case("true") => true,
            Some(s) if s.eq_ignore_ascii_case("false") => false,
            _ => warn(w, path, false),
        },
        _ => warn(w, path, false),
    }
}

fn string(raw: Option<&RawValue>, path: &'static str, w: &mut Vec<&'static str>) -> Option<String> {
    let raw = raw?;
    match json::kind(raw) {
        Kind::Null => None,
        Kind::String => json::as_str(raw).map(String::from),
        _ => warn(w, path, None),
    }
}

fn warn<T>(w: &mut Vec<&'static str>, path: &'static str, value: T) -> T {
    w.push(path);
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<JoinConfig, JoinError> {
        parse_join(json::raw(text).unwrap())
    }

    #[test]
    fn the_realtime_js_default_join_parses_to_defaults_with_a_token() {
        let join = parse(
            r#"{"config":{"broadcast":{"ack":false,"self":false},
                "presence":{"key":"","enabled":false},"postgres_changes":[],"private":false},
                "access_token":"<jwt>"}"#,
        )
        .unwrap();
        let want = JoinConfig {
            access_token: Some("<jwt>".into()),
            ..JoinConfig::default()
        };
        assert_eq!(join, want);
    }

    #[test]
    fn flexible_booleans_accept_strings_in_any_case() {
        let join = parse(
            r#"{"config":{"broadcast":{"self":"TRUE","ack":"True"},
                "presence":{"enabled":true},"private":"false"}}"#,
        )
        .unwrap();
        assert!(join.broadcast_self && join.broadcast_ack && join.presence_enabled);
        assert!(!join.private);
        assert!(join.warnings.is_empty());
    }

    #[test]
    fn badly_typed_fields_are_ignored_and_recorded() {
        let join = parse(
            r#"{"config":{"broadcast":{"self":1,"ack":"yes","replay":5},
                "presence":{"enabled":[],"key":{"a":1}},"postgres_changes":{},"private":"x"},
                "access_token":7,"user_token":"legacy"}"#,
        )
        .unwrap();
        assert_eq!(join.access_token.as_deref(), Some("legacy"));
        assert_eq!(
            join.warnings,
            [
                "access_token",
                "config.broadcast.self",
                "config.broadcast.ack",
                "config.broadcast.replay",
                "config.presence.enabled",
                "config.presence.key",
                "config.postgres_changes",
                "config.private",
            ]
        );
        let join = parse(r#"{"config":[]}"#).unwrap();
        assert_eq!(join.warnings, ["config"]);
        let join = parse(r#"{"config":{"presence":"on","broadcast":1}}"#).unwrap();
        assert_eq!(join.warnings, ["config.broadcast", "config.presence"]);
    }

    #[test]
    fn presence_keys_are_strings_or_stringified_scalars() {
        let cases = [
            (r#""alice""#, Some("alice")),
            (r#""""#, None),
            ("null", None),
            ("42", Some("42")),
            ("true", Some("true")),
            (r#""\u00e9""#, Some("é")),
        ];
        for (key, want) in cases {
            let join = parse(&format!(r#"{{"config":{{"presence":{{"key":{key}}}}}}}"#)).unwrap();
            assert_eq!(join.presence_key.as_deref(), want, "{key}");
        }
    }

    #[test]
    fn postgres_changes_and_replay_are_reported() {
        let join = parse(
            r#"{"config":{"postgres_changes":[{"event":"*"},{"event":"INSERT"}],
                "broadcast":{"replay":{"since":1,"limit":10}}}}"#,
        )
        .unwrap();
        assert_eq!(join.postgres_changes, 2);
        assert!(join.replay_requested);
    }

    #[test]
    fn access_token_wins_over_user_token_and_null_falls_back() {
        let join = parse(r#"{"access_token":"a","user_token":"u"}"#).unwrap();
        assert_eq!(join.access_token.as_deref(), Some("a"));
        let join = parse(r#"{"access_token":null,"user_token":"u"}"#).unwrap();
        assert_eq!(join.access_token.as_deref(), Some("u"));
        assert_eq!(parse("{}").unwrap().access_token, None);
    }

    #[test]
    fn a_payload_that_is_not_an_object_is_refused() {
        for text in ["[]", "null", "\"x\"", "1"] {
            assert_eq!(parse(text), Err(JoinError::NotAnObject), "{text}");
        }
    }
}
