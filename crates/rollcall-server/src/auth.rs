//! JWT verification and channel access rules, with Supabase's error texts.
//!
//! Tokens are verified with HS256/384/512 and a shared secret (`jwt_secret`), or RS256/ES256
//! with a PEM public key or a JWKS file (`jwt_public_key`, `jwt_jwks`). `exp` is checked here
//! (not by the library) so the message can say how long ago it expired, as Supabase does.
//! With nothing configured the server runs open: tokens are not verified, private channels are
//! refused, and a warning is logged at start-up. Private-channel access rules are in
//! `auth/rules.rs`.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

mod rules;

pub use rules::AccessRule;

/// Why a token was refused. `Display` gives the join-reply reason; [`AuthError::http_message`]
/// the 401 body text on connect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token at all on connect.
    #[error("InvalidJWTToken: API key is missing")]
    Missing,
    /// Not three base64 JSON parts.
    #[error("MalformedJWT: The token provided is not a valid JWT")]
    Malformed,
    /// Signature does not verify, or the algorithm/kid has no configured key.
    #[error("JwtSignatureError: Failed to validate JWT signature")]
    BadSignature,
    /// `exp` is in the past.
    #[error("InvalidJWTToken: Token has expired {0} seconds ago")]
    Expired(u64),
    /// `role` or `exp` missing.
    #[error("InvalidJWTToken: Fields `role` and `exp` are required in JWT")]
    MissingClaims,
    /// `nbf` (not before) is in the future. Supabase does not check `nbf`; the text follows
    /// its `InvalidJWTToken` family.
    #[error("InvalidJWTToken: Token is not valid yet")]
    NotYetValid,
}

impl AuthError {
    /// The text of the `{"error": ...}` body of a refused WebSocket upgrade (Supabase §1.3).
    pub fn http_message(&self) -> String {
        match self {
            AuthError::Missing => "API key is missing".into(),
            AuthError::Malformed => "The token provided is not a valid JWT".into(),
            AuthError::BadSignature => "Failed to validate JWT signature".into(),
            AuthError::Expired(_) => "Token has expired".into(),
            AuthError::MissingClaims => "Fields `role` and `exp` are required in JWT".into(),
            AuthError::NotYetValid => "Token is not valid yet".into(),
        }
    }

    /// The `system` message text when a joined channel's token fails (Supabase §3.6).
    pub fn system_message(&self) -> String {
        match self {
            AuthError::Expired(s) => format!("Token has expired {s} seconds ago"),
            other => other.http_message(),
        }
    }
}

/// The claims Rollcall uses, plus all of them for access rules.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims {
    /// `role` (e.g. `anon`, `authenticated`).
    pub role: String,
    /// `sub`: the user id, when the token is a user's.
    pub sub: Option<String>,
    /// `exp` in Unix seconds.
    pub exp: u64,
    /// Every claim, for `{claims.x}` placeholders.
    pub all: Map<String, Value>,
}

/// Where the presence key comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PresenceKeySource {
    /// The join's `config.presence.key` (Supabase's behaviour).
    #[default]
    Client,
    /// Always the token's `sub`: a client cannot appear online as someone else.
    Sub,
}

/// The verifier: keys, rules and options.
#[derive(Default)]
pub struct Auth {
    keys: Vec<(Option<String>, Algorithm, DecodingKey)>,
    /// Access rules for private channels (empty: any token whose role is not `anon`).
    pub rules: Vec<AccessRule>,
    /// Where presence keys come from.
    pub presence_key: PresenceKeySource,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("keys", &self.keys.len())
            .field("rules", &self.rules)
            .field("presence_key", &self.presence_key)
            .finish()
    }
}

/// A key that could not be loaded, naming the setting.
#[derive(Debug, thiserror::Error)]
#[error("invalid config `{key}`: {reason}")]
pub struct KeyError {
    /// The setting.
    pub key: &'static str,
    /// What is wrong.
    pub reason: String,
}

impl Auth {
    /// Builds a verifier; with no key material the server runs open.
    ///
    /// # Errors
    /// A key that does not parse, naming its setting.
    pub fn new(
        secret: Option<&str>,
        public_key_pem: Option<&[u8]>,
        jwks_json: Option<&str>,
    ) -> Result<Auth, KeyError> {
        let mut keys = Vec::new();
        if let Some(secret) = secret {
            let k = DecodingKey::from_secret(secret.as_bytes()).map_err(|e| KeyError {
                key: "jwt_secret",
                reason: e.to_string(),
            })?;
            for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
                keys.push((None, alg, k.clone()));
            }
        }
        if let Some(pem) = public_key_pem {
            let err = |e: jsonwebtoken::errors::Error| KeyError {
                key: "jwt_public_key",
                reason: format!("expected an RSA or EC (P-256) public key in PEM: {e}"),
            };
            match DecodingKey::from_rsa_pem(pem) {
                Ok(k) => keys.push((None, Algorithm::RS256, k)),
                Err(rsa_err) => match DecodingKey::from_ec_pem(pem) {
                    Ok(k) => keys.push((None, Algorithm::ES256, k)),
                    Err(_) => return Err(err(rsa_err)),
                },
            }
        }
        if let Some(json) = jwks_json {
            let set: JwkSet = serde_json::from_str(json).map_err(|e| KeyError {
                key: "jwt_jwks",
                reason: format!("not a JWKS document: {e}"),
            })?;
            for jwk in &set.keys {
                let alg = jwk
                    .common
                    .key_algorithm
                    .and_then(|a| a.to_string().parse::<Algorithm>().ok())
                    .unwrap_or(Algorithm::RS256);
                let k = DecodingKey::from_jwk(jwk).map_err(|e| KeyError {
                    key: "jwt_jwks",
                    reason: e.to_string(),
                })?;
                keys.push((jwk.common.key_id.clone(), alg, k));
            }
        }
        Ok(Auth {
            keys,
            ..Auth::default()
        })
    }

    /// True when tokens are verified (some key is configured).
    pub fn enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Verifies `token` at `now` (Unix seconds): signature, then `role`, `exp` and, when
    /// present, `nbf`. Neither time claim gets a leeway: `exp <= now` is expired and
    /// `nbf > now` is not valid yet (a non-numeric `nbf` is malformed).
    ///
    /// # Errors
    /// The Supabase-equivalent refusal.
    pub fn verify(&self, token: &str, now: u64) -> Result<Claims, AuthError> {
        let token: String = token.chars().filter(|c| !c.is_whitespace()).collect();
        let header = jsonwebtoken::decode_header(&token).map_err(|_| AuthError::Malformed)?;
        let mut validation = Validation::new(header.alg);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let candidates = self
            .keys
            .iter()
            .filter(|(kid, alg, _)| *alg == header.alg && (kid.is_none() || *kid == header.kid));
        let mut data = None;
        for (_, _, key) in candidates {
            if let Ok(d) = jsonwebtoken::decode::<Map<String, Value>>(&token, key, &validation) {
                data = Some(d);
                break;
            }
        }
        let claims = match data {
            Some(d) => d.claims,
            None => {
                // Tell a garbled payload from a bad signature, as Supabase does.
                return Err(
                    match jsonwebtoken::dangerous::insecure_decode::<Map<String, Value>>(&token) {
                        Ok(_) => AuthError::BadSignature,
                        Err(_) => AuthError::Malformed,
                    },
                );
            }
        };
        let role = claims
            .get("role")
            .and_then(Value::as_str)
            .map(str::to_string);
        let exp = claims
            .get("exp")
            .and_then(Value::as_f64)
            .map(|e| e.round() as u64);
        let (Some(role), Some(exp)) = (role, exp) else {
            return Err(AuthError::MissingClaims);
        };
        if exp <= now {
            return Err(AuthError::Expired(now - exp));
        }
        if let Some(nbf) = claims.get("nbf") {
            let nbf = nbf.as_f64().ok_or(AuthError::Malformed)?;
            // Compared as f64: a float or a huge `nbf` cannot wrap.
            if nbf > now as f64 {
                return Err(AuthError::NotYetValid);
            }
        }
        Ok(Claims {
            role,
            sub: claims
                .get("sub")
                .and_then(Value::as_str)
                .map(str::to_string),
            exp,
            all: claims,
        })
    }

    /// May `claims` join the private channel `sub`?
    pub fn may_join_private(&self, sub: &str, claims: &Claims) -> bool {
        if self.rules.is_empty() {
            return claims.role != "anon";
        }
        self.rules.iter().any(|r| r.allows(sub, claims))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    fn token(claims: Value, secret: &str) -> String {
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()).unwrap(),
        )
        .unwrap()
    }

    fn auth() -> Auth {
        Auth::new(Some("s3cret"), None, None).unwrap()
    }

    #[test]
    fn a_valid_token_yields_its_claims() {
        let t = token(
            json!({"role": "authenticated", "exp": 2000, "sub": "u1"}),
            "s3cret",
        );
        let c = auth().verify(&t, 1000).unwrap();
        assert_eq!(
            (c.role.as_str(), c.sub.as_deref(), c.exp),
            ("authenticated", Some("u1"), 2000)
        );
    }

    #[test]
    fn forged_expired_malformed_and_incomplete_tokens_are_refused() {
        let a = auth();
        let forged = token(json!({"role": "anon", "exp": 2000}), "other");
        assert_eq!(a.verify(&forged, 1000), Err(AuthError::BadSignature));
        let expired = token(json!({"role": "anon", "exp": 990}), "s3cret");
        assert_eq!(a.verify(&expired, 1000), Err(AuthError::Expired(10)));
        assert_eq!(
            a.verify(&expired, 1000).unwrap_err().to_string(),
            "InvalidJWTToken: Token has expired 10 seconds ago"
        );
        assert_eq!(a.verify("not-a-jwt", 1000), Err(AuthError::Malformed));
        let no_role = token(json!({"exp": 2000}), "s3cret");
        assert_eq!(a.verify(&no_role, 1000), Err(AuthError::MissingClaims));
    }

    #[test]
    fn a_token_not_valid_yet_is_refused_and_one_valid_from_now_is_accepted() {
        let a = auth();
        let later = token(json!({"role": "anon", "exp": 2000, "nbf": 1001}), "s3cret");
        assert_eq!(a.verify(&later, 1000), Err(AuthError::NotYetValid));
        assert_eq!(
            AuthError::NotYetValid.to_string(),
            "InvalidJWTToken: Token is not valid yet"
        );
        assert!(a.verify(&later, 1001).is_ok(), "valid from nbf on");
        let huge = token(json!({"role": "anon", "exp": 2000, "nbf": 1e300}), "s3cret");
        assert_eq!(a.verify(&huge, 1000), Err(AuthError::NotYetValid));
        let text = token(
            json!({"role": "anon", "exp": 2000, "nbf": "soon"}),
            "s3cret",
        );
        assert_eq!(a.verify(&text, 1000), Err(AuthError::Malformed));
    }

    #[test]
    fn a_token_with_an_unconfigured_algorithm_is_refused() {
        // alg none / RS256 with only an HS secret configured
        let header = Header::new(Algorithm::HS512);
        let t = encode(
            &header,
            &json!({"role": "anon", "exp": 2000}),
            &EncodingKey::from_secret(b"s3cret").unwrap(),
        )
        .unwrap();
        assert!(
            auth().verify(&t, 1000).is_ok(),
            "HS512 with the same secret is accepted"
        );
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJyb2xlIjoiYW5vbiIsImV4cCI6MjAwMH0.";
        assert!(auth().verify(none, 1000).is_err());
    }
}
