//! The serializer version a socket negotiated through its `vsn` query parameter (protocol §1.3).

use crate::VsnError;

/// The serializer a socket speaks, fixed for the socket's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Vsn {
    /// `1.0.0`: JSON objects, no `join_ref` on server frames, no binary frames (protocol §2.1).
    V1,
    /// `2.0.0`: JSON arrays plus Supabase binary user broadcasts (protocol §2.2, §2.3).
    V2,
}

impl Vsn {
    /// Picks the serializer from the `vsn` query parameter, as Phoenix does.
    ///
    /// A missing parameter means `1.0.0`. Phoenix matches `~> 1.0.0` (>= 1.0.0, < 1.1.0) to
    /// [`Vsn::V1`] and `~> 2.0.0` to [`Vsn::V2`]. Pre-releases match neither requirement, and
    /// build metadata (`+...`) is ignored, as in Elixir's `Version.match?`.
    ///
    /// # Errors
    /// [`VsnError`] when the value is not a version or matches neither; the server then
    /// answers HTTP 403 with an empty body.
    ///
    /// ```
    /// use rollcall_phoenix::Vsn;
    /// assert_eq!(Vsn::from_query(Some("2.0.0")), Ok(Vsn::V2));
    /// assert_eq!(Vsn::from_query(None), Ok(Vsn::V1));
    /// assert!(Vsn::from_query(Some("1.1.0")).is_err());
    /// ```
    pub fn from_query(vsn: Option<&str>) -> Result<Vsn, VsnError> {
        let Some(text) = vsn else {
            return Ok(Vsn::V1);
        };
        let Some((major, minor, pre)) = parse(text) else {
            return Err(VsnError::Unparsable(text.to_owned()));
        };
        match (major, minor, pre) {
            (1, 0, false) => Ok(Vsn::V1),
            (2, 0, false) => Ok(Vsn::V2),
            _ => Err(VsnError::Unsupported(text.to_owned())),
        }
    }

    /// The canonical version string, as clients send it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Vsn::V1 => "1.0.0",
            Vsn::V2 => "2.0.0",
        }
    }
}

/// Major, minor, and whether a pre-release is present, of a semantic version.
fn parse(text: &str) -> Option<(u64, u64, bool)> {
    let (text, build) = match text.split_once('+') {
        Some((v, b)) => (v, Some(b)),
        None => (text, None),
    };
    if build.is_some_and(|build| !identifiers_valid(build)) {
        return None;
    }
    let (core, pre) = match text.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (text, None),
    };
    if pre.is_some_and(|pre| !identifiers_valid(pre)) {
        return None;
    }
    let mut parts = core.split('.');
    let major = number(parts.next()?)?;
    let minor = number(parts.next()?)?;
    number(parts.next()?)?;
    if parts.next().is_some() {
        return None;
    }
    Some((major, minor, pre.is_some()))
}

/// A numeric version part: digits, no leading zero.
fn number(part: &str) -> Option<u64> {
    let digits = !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    if !digits || (part.len() > 1 && part.starts_with('0')) {
        return None;
    }
    part.parse().ok()
}

/// Dot-separated, non-empty identifiers of `[0-9A-Za-z-]`.
fn identifiers_valid(s: &str) -> bool {
    s.split('.')
        .all(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_map_to_the_serializer_phoenix_picks() {
        let cases: &[(Option<&str>, Option<Vsn>)] = &[
            (None, Some(Vsn::V1)),
            (Some("1.0.0"), Some(Vsn::V1)),
            (Some("1.0.7"), Some(Vsn::V1)),
            (Some("1.0.0+build.1"), Some(Vsn::V1)),
            (Some("2.0.0"), Some(Vsn::V2)),
            (Some("2.0.3"), Some(Vsn::V2)),
            (Some("1.1.0"), None),
            (Some("2.1.0"), None),
            (Some("3.0.0"), None),
            (Some("0.9.0"), None),
            (Some("2.0.0-rc.1"), None),
            (Some(""), None),
            (Some("2"), None),
            (Some("2.0"), None),
            (Some("2.0.0.0"), None),
            (Some("02.0.0"), None),
            (Some("v2.0.0"), None),
            (Some("2.0.0+"), None),
            (Some(" 2.0.0"), None),
            (Some("99999999999999999999.0.0"), None),
        ];
        for (query, want) in cases {
            assert_eq!(Vsn::from_query(*query).ok(), *want, "{query:?}");
        }
    }

    #[test]
    fn unparsable_and_unsupported_are_told_apart() {
        assert_eq!(
            Vsn::from_query(Some("x")),
            Err(VsnError::Unparsable("x".into()))
        );
        assert_eq!(
            Vsn::from_query(Some("3.0.0")),
            Err(VsnError::Unsupported("3.0.0".into()))
        );
    }

    #[test]
    fn as_str_round_trips() {
        for vsn in [Vsn::V1, Vsn::V2] {
            assert_eq!(Vsn::from_query(Some(vsn.as_str())), Ok(vsn));
        }
    }
}
