//! The value types of settings that are more than a number or a string: durations, "off"-able
//! durations, origin lists and node ids. Each parses from the command line (`FromStr`) and
//! from TOML (`Deserialize`) by the same rules, so a value means the same wherever it is set.

use std::fmt;
use std::str::FromStr;

use rollcall_core::Millis;
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// What a duration setting accepts, quoted in every error about one.
pub const DURATION_HELP: &str = "a duration such as 500ms, 10s, 5m or 1h";

/// Parses a duration such as `250ms`, `10s`, `5m`, `1h` (a bare number is milliseconds).
pub fn parse_duration(s: &str) -> Option<Millis> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let factor = match unit.trim() {
        "" | "ms" => 1,
        "s" => 1000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    n.checked_mul(factor).map(Millis)
}

/// A duration setting (`10s`); in TOML a string, or an integer number of milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duration(pub Millis);

impl FromStr for Duration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_duration(s)
            .map(Duration)
            .ok_or_else(|| format!("expected {DURATION_HELP}"))
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}ms", self.0.0))
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(DURATION_HELP)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
                Ok(Duration(Millis(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
                u64::try_from(v)
                    .map(|v| Duration(Millis(v)))
                    .map_err(|_| E::custom(format!("expected {DURATION_HELP}")))
            }
        }
        d.deserialize_any(V)
    }
}

/// A duration that may be switched off with `off` (`idle_after`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationOrOff(pub Option<Millis>);

impl FromStr for DurationOrOff {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim() == "off" {
            return Ok(DurationOrOff(None));
        }
        parse_duration(s)
            .map(|m| DurationOrOff(Some(m)))
            .ok_or_else(|| format!("expected {DURATION_HELP}, or off"))
    }
}

impl Serialize for DurationOrOff {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            None => s.serialize_str("off"),
            Some(m) => s.serialize_str(&format!("{}ms", m.0)),
        }
    }
}

impl<'de> Deserialize<'de> for DurationOrOff {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(de::Error::custom)
    }
}

/// Origins allowed to call the REST API cross-origin: comma-separated on the command line, a
/// list or one comma-separated string in TOML; `*` for any. Validated when the config is built.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origins(pub Vec<String>);

impl Origins {
    fn from_parts<'a>(parts: impl IntoIterator<Item = &'a str>) -> Origins {
        Origins(
            parts
                .into_iter()
                .map(str::trim)
                .filter(|o| !o.is_empty())
                .map(String::from)
                .collect(),
        )
    }
}

impl FromStr for Origins {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Origins::from_parts(s.split(',')))
    }
}

impl Serialize for Origins {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Origins {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            List(Vec<String>),
            Text(String),
        }
        Ok(match Form::deserialize(d)? {
            Form::List(l) => Origins::from_parts(l.iter().map(String::as_str)),
            Form::Text(t) => Origins::from_parts(t.split(',')),
        })
    }
}

/// The default node id: `<hostname>-<port>`, stable across restarts (so crash recovery finds
/// this node's sessions) and distinct for nodes on one host.
pub fn default_node_id(port: u16) -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let host: String = host
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    let host = if host.is_empty() { "rollcall" } else { &host };
    format!("{host}-{port}")
}

/// A fresh random node id such as `node-3f2a9c1e` (for an OS-chosen port, and for configs
/// built in code).
pub fn random_node_id() -> String {
    format!("node-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// True for 1 to 64 letters, digits, `-` or `_` (the id is part of Redis keys and log lines).
pub(super) fn valid_node_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_common_units() {
        assert_eq!(parse_duration("250ms"), Some(Millis(250)));
        assert_eq!(parse_duration("10s"), Some(Millis(10_000)));
        assert_eq!(parse_duration("5m"), Some(Millis(300_000)));
        assert_eq!(parse_duration("7"), Some(Millis(7)));
        assert_eq!(parse_duration("ten"), None);
        assert_eq!(parse_duration("5 parsecs"), None);
        assert_eq!(parse_duration("99999999999999999999h"), None);
    }

    #[test]
    fn values_round_trip_and_parse_from_toml() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct T {
            d: Duration,
            o: DurationOrOff,
            p: DurationOrOff,
            origins: Origins,
        }
        let t = T {
            d: Duration(Millis(1500)),
            o: DurationOrOff(None),
            p: DurationOrOff(Some(Millis(7))),
            origins: Origins(vec!["https://a.example".into(), "*".into()]),
        };
        let json = serde_json::to_value(&t).unwrap();
        assert_eq!(serde_json::from_value::<T>(json).unwrap(), t);
        let t: T = toml::from_str("d = 250\no = \"5m\"\np = \"off\"\norigins = \"a, ,b\"").unwrap();
        assert_eq!(t.d, Duration(Millis(250)));
        assert_eq!(t.o, DurationOrOff(Some(Millis(300_000))));
        assert_eq!(t.p, DurationOrOff(None));
        assert_eq!(t.origins, Origins(vec!["a".into(), "b".into()]));
    }

    #[test]
    fn node_ids_are_checked() {
        assert!(valid_node_id("eu-1_a"));
        assert!(!valid_node_id(""));
        assert!(!valid_node_id("a b"));
        assert!(!valid_node_id(&"x".repeat(65)));
        assert!(default_node_id(4000).ends_with("-4000"));
    }
}
