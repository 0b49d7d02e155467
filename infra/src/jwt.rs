//! The local stand-in for API Gateway's JWT authorizer: HS256 tokens signed with a local
//! secret, checked for signature, issuer, audience, expiry and not-before. In AWS the real
//! authorizer checks the user's identity provider; the handler sees the same claims either
//! way (as text, the way API Gateway passes them).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Map, Value};
use sha2::Sha256;
use std::collections::HashMap;

/// Settings shared by `syncctl dev-token` and the local gateway.
#[derive(Clone, Debug)]
pub struct LocalJwt {
    secret: String,
    pub issuer: String,
    pub audience: String,
}

/// Defaults, overridable with `SYNC_LOCAL_JWT_SECRET`, `SYNC_LOCAL_JWT_ISSUER`,
/// `SYNC_LOCAL_JWT_AUDIENCE`. The default secret is public: the local stack is for a
/// developer's machine only.
impl LocalJwt {
    pub fn from_env() -> Self {
        let get = |k: &str, d: &str| {
            std::env::var(k)
                .ok()
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| d.to_string())
        };
        Self {
            secret: get(
                "SYNC_LOCAL_JWT_SECRET",
                "local-development-secret-not-for-production",
            ),
            issuer: get("SYNC_LOCAL_JWT_ISSUER", "https://local.sync.invalid/"),
            audience: get("SYNC_LOCAL_JWT_AUDIENCE", "sync-api"),
        }
    }

    /// The signing secret (for tests that look for it where it must not be).
    pub fn secret(&self) -> &str {
        &self.secret
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length; this cannot fail.
        <Hmac<Sha256> as Mac>::new_from_slice(self.secret.as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
    }

    /// A token for `tenant` under `claim`, valid for `ttl_seconds` from `now` (Unix seconds).
    pub fn token(&self, claim: &str, tenant: &str, now: i64, ttl_seconds: i64) -> String {
        let header = json!({"alg": "HS256", "typ": "JWT"});
        let mut claims = Map::new();
        claims.insert("sub".into(), json!(format!("dev-user@{tenant}")));
        claims.insert("iss".into(), json!(self.issuer));
        claims.insert("aud".into(), json!(self.audience));
        claims.insert("iat".into(), json!(now));
        claims.insert("exp".into(), json!(now + ttl_seconds));
        claims.insert(claim.to_string(), json!(tenant));
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(Value::Object(claims).to_string())
        );
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signing_input}.{signature}")
    }

    /// The claims of a valid token, with their JSON types, or why it is not valid. A token
    /// is valid from its `nbf` (if it has one) until its `exp`.
    pub fn verify(&self, token: &str, now: i64) -> Result<Map<String, Value>, &'static str> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("malformed token");
        };
        let header: Value = decode(header)?;
        if header.get("alg") != Some(&json!("HS256")) {
            return Err("unsupported algorithm");
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| "malformed signature")?;
        let mut mac = self.mac();
        mac.update(format!("{}.{}", token_part(token, 0), token_part(token, 1)).as_bytes());
        mac.verify_slice(&signature).map_err(|_| "bad signature")?;
        let claims: Value = decode(payload)?;
        let Value::Object(claims) = claims else {
            return Err("claims are not an object");
        };
        if claims.get("iss").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err("wrong issuer");
        }
        let audience_ok = match claims.get("aud") {
            Some(Value::String(a)) => a == &self.audience,
            Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(&self.audience)),
            _ => false,
        };
        if !audience_ok {
            return Err("wrong audience");
        }
        match claims.get("exp").and_then(Value::as_i64) {
            Some(exp) if exp > now => {}
            _ => return Err("expired"),
        }
        match claims.get("nbf") {
            None => {}
            Some(nbf) => match nbf.as_i64() {
                Some(nbf) if nbf <= now => {}
                Some(_) => return Err("not valid yet"),
                None => return Err("malformed nbf"),
            },
        }
        Ok(claims)
    }

    /// The claims as API Gateway hands them to the function: every value as text.
    pub fn as_gateway_claims(claims: Map<String, Value>) -> HashMap<String, String> {
        claims
            .into_iter()
            .map(|(k, v)| {
                let text = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, text)
            })
            .collect()
    }
}

fn token_part(token: &str, index: usize) -> &str {
    token.split('.').nth(index).unwrap_or("")
}

fn decode(part: &str) -> Result<Value, &'static str> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| "malformed token")?;
    serde_json::from_slice(&bytes).map_err(|_| "malformed token")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt() -> LocalJwt {
        LocalJwt {
            secret: "s3cret".into(),
            issuer: "https://issuer/".into(),
            audience: "api".into(),
        }
    }

    #[test]
    fn a_fresh_token_verifies_and_carries_the_tenant() {
        let t = jwt().token("tenant_id", "acme", 1_000, 60);
        let claims = LocalJwt::as_gateway_claims(jwt().verify(&t, 1_010).unwrap_or_default());
        assert_eq!(claims.get("tenant_id").map(String::as_str), Some("acme"));
        assert_eq!(claims.get("exp").map(String::as_str), Some("1060"));
    }

    /// A token with `extra` claims merged in, signed with the test key.
    fn signed(extra: Value) -> String {
        let mut claims = json!({"iss": "https://issuer/", "aud": "api", "exp": 2_000});
        if let (Some(c), Some(e)) = (claims.as_object_mut(), extra.as_object()) {
            c.extend(e.clone());
        }
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(json!({"alg": "HS256"}).to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut mac = jwt().mac();
        mac.update(input.as_bytes());
        format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
    }

    #[test]
    fn a_token_is_refused_before_its_nbf() {
        let t = signed(json!({"tenant_id": "acme", "nbf": 1_500}));
        assert_eq!(jwt().verify(&t, 1_499), Err("not valid yet"));
        assert!(jwt().verify(&t, 1_500).is_ok());
        let odd = signed(json!({"tenant_id": "acme", "nbf": "soon"}));
        assert_eq!(jwt().verify(&odd, 1_500), Err("malformed nbf"));
    }

    #[test]
    fn expired_tampered_and_foreign_tokens_are_refused() {
        let t = jwt().token("tenant_id", "acme", 1_000, 60);
        assert_eq!(jwt().verify(&t, 1_060), Err("expired"));
        let mut other = jwt();
        other.secret = "other".into();
        assert_eq!(other.verify(&t, 1_010), Err("bad signature"));
        let forged = other.token("tenant_id", "acme", 1_000, 60);
        assert_eq!(jwt().verify(&forged, 1_010), Err("bad signature"));
        let mut parts: Vec<&str> = t.split('.').collect();
        let evil = URL_SAFE_NO_PAD
            .encode(r#"{"tenant_id":"evil","iss":"https://issuer/","aud":"api","exp":9999}"#);
        parts[1] = &evil;
        assert_eq!(jwt().verify(&parts.join("."), 1_010), Err("bad signature"));
        assert_eq!(jwt().verify("a.b", 1_010), Err("malformed token"));
        let mut wrong_aud = jwt();
        wrong_aud.audience = "other".into();
        assert_eq!(wrong_aud.verify(&t, 1_010), Err("wrong audience"));
    }
}
