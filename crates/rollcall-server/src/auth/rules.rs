//! Access rules for private channels: `[[access]]` entries of a subtopic pattern and roles.

use serde::Deserialize;
use serde_json::Value;

use super::Claims;

/// One access rule for private channels: a subtopic pattern and the roles allowed.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AccessRule {
    /// Subtopic pattern; `{claims.NAME}` is replaced by that claim, `*` matches any rest.
    pub topic: String,
    /// Roles allowed; empty means any role.
    #[serde(default)]
    pub roles: Vec<String>,
}

impl AccessRule {
    /// True when `claims` may join private subtopic `sub` under this rule.
    ///
    /// A substituted claim value matches literally: only the rule's own trailing `*` is a
    /// wildcard, so a token whose `family_id` is `"*"` matches `family:*` and nothing else.
    pub fn allows(&self, sub: &str, claims: &Claims) -> bool {
        if !self.roles.is_empty() && !self.roles.contains(&claims.role) {
            return false;
        }
        // The wildcard is decided on the rule's text, before any claim is substituted.
        let (template, wildcard) = match self.topic.strip_suffix('*') {
            Some(t) => (t, true),
            None => (self.topic.as_str(), false),
        };
        let mut expected = String::with_capacity(template.len());
        let mut rest = template;
        while let Some(start) = rest.find("{claims.") {
            expected.push_str(&rest[..start]);
            let after = &rest[start + "{claims.".len()..];
            let Some(end) = after.find('}') else {
                return false;
            };
            match claims.all.get(&after[..end]) {
                Some(Value::String(s)) => expected.push_str(s),
                Some(Value::Number(n)) => expected.push_str(&n.to_string()),
                _ => return false, // a rule naming a missing claim never matches
            }
            rest = &after[end + 1..];
        }
        expected.push_str(rest);
        if wildcard {
            sub.starts_with(&expected)
        } else {
            sub == expected
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn access_rules_substitute_claims() {
        let rule = AccessRule {
            topic: "family:{claims.family_id}".into(),
            roles: vec!["authenticated".into()],
        };
        let claims = |role: &str, fam: Value| Claims {
            role: role.into(),
            sub: None,
            exp: 0,
            all: json!({"family_id": fam}).as_object().unwrap().clone(),
        };
        assert!(rule.allows("family:42", &claims("authenticated", json!(42))));
        assert!(rule.allows("family:abc", &claims("authenticated", json!("abc"))));
        assert!(!rule.allows("family:43", &claims("authenticated", json!(42))));
        assert!(!rule.allows("family:42", &claims("anon", json!(42))));
        let wild = AccessRule {
            topic: "team:*".into(),
            roles: vec![],
        };
        assert!(wild.allows("team:red", &claims("anon", json!(1))));
    }

    #[test]
    fn a_claim_value_is_matched_literally_never_as_a_wildcard() {
        let claims = |fam: &str| Claims {
            role: "authenticated".into(),
            sub: None,
            exp: 0,
            all: json!({"family_id": fam}).as_object().unwrap().clone(),
        };
        let exact = AccessRule {
            topic: "family:{claims.family_id}".into(),
            roles: vec![],
        };
        assert!(!exact.allows("family:f1", &claims("*")));
        assert!(!exact.allows("family:f1", &claims("f*")));
        assert!(exact.allows("family:*", &claims("*")), "a literal star");
        assert!(exact.allows("family:f1", &claims("f1")));
        let prefix = AccessRule {
            topic: "family:{claims.family_id}:*".into(),
            roles: vec![],
        };
        assert!(prefix.allows("family:f1:kitchen", &claims("f1")));
        assert!(!prefix.allows("family:f2:kitchen", &claims("*")));
        assert!(!prefix.allows("family:f1:kitchen", &claims("f")));
    }
}
