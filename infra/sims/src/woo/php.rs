//! What WordPress and WooCommerce do in PHP that a client can tell apart: `wp_json_encode`'s
//! escaping, `rawurlencode`, `wp_specialchars_decode`, and the OAuth 1.0a check of
//! `WC_REST_Authentication`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// `wp_json_encode($value)`: JSON with `/` escaped as `\/` and every non-ASCII character as
/// `\uXXXX` (UTF-16, lower-case hex). Outside strings JSON has neither, so one pass over the
/// text is exact.
pub fn json_encode(value: &Value) -> String {
    let plain = value.to_string();
    let mut out = String::with_capacity(plain.len() + plain.len() / 8);
    for c in plain.chars() {
        match c {
            '/' => out.push_str("\\/"),
            c if c.is_ascii() => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out
}

/// PHP's `rawurlencode`: everything but `A-Za-z0-9-_.~` as `%XX` (upper case).
pub fn rawurlencode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `wp_specialchars_decode($text, ENT_QUOTES)`: the five entities WordPress encodes.
pub fn specialchars_decode(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#039;", "'")
        .replace("&#x27;", "'")
        .replace("&amp;", "&")
}

/// `base64(hmac_sha256(key, message))`.
pub fn hmac_base64(key: &[u8], message: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(message);
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Why an OAuth request was refused: the message WooCommerce answers with.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused(pub String);

/// The parameters of an `Authorization: OAuth k="v", …` header, decoded.
pub fn oauth_header(header: &str) -> Vec<(String, String)> {
    let Some(rest) = header.trim().strip_prefix("OAuth ") else {
        return Vec::new();
    };
    rest.split(',')
        .filter_map(|part| {
            let (k, v) = part.trim().split_once('=')?;
            let v = v.trim().trim_matches('"');
            Some((
                crate::server::decode(k.trim()),
                crate::server::decode(&v.replace('+', "%2B")),
            ))
        })
        .filter(|(k, _)| k.starts_with("oauth_"))
        .collect()
}

/// Checks a one-legged OAuth 1.0a signature as `WC_REST_Authentication::check_oauth_signature`
/// does: the base string is `METHOD&rawurlencode(url)&…` where `…` is every parameter but the
/// signature, sorted by name (`strcmp`), each `name=value` rawurlencoded twice over (name and
/// value once, then the pair), joined by `%26`; the key is `secret&`.
pub fn check_signature(
    method: &str,
    url: &str,
    params: &[(String, String)],
    consumer_secret: &str,
) -> Result<(), Refused> {
    let mut given = None;
    let mut signed: Vec<(String, String)> = Vec::new();
    for (k, v) in params {
        if k == "oauth_signature" {
            given = Some(v.replace(' ', "+"));
        } else if let Some(existing) = signed.iter_mut().find(|(name, _)| name == k) {
            // PHP keeps the last of a repeated name.
            existing.1 = v.clone();
        } else {
            signed.push((k.clone(), v.clone()));
        }
    }
    let given = given.ok_or_else(|| Refused("Missing OAuth parameter oauth_signature".into()))?;
    let method_name = signed
        .iter()
        .find(|(k, _)| k == "oauth_signature_method")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    if method_name != "HMAC-SHA256" && method_name != "HMAC-SHA1" {
        return Err(Refused(
            "Invalid signature method - must be HMAC-SHA1 or HMAC-SHA256.".into(),
        ));
    }
    signed.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let pairs: Vec<String> = signed
        .iter()
        .map(|(k, v)| rawurlencode(&format!("{}={}", rawurlencode(k), rawurlencode(v))))
        .collect();
    let base = format!(
        "{}&{}&{}",
        method.to_ascii_uppercase(),
        rawurlencode(url),
        pairs.join("%26")
    );
    let key = format!("{consumer_secret}&");
    let expected = if method_name == "HMAC-SHA1" {
        let mut mac = match Hmac::<sha1::Sha1>::new_from_slice(key.as_bytes()) {
            Ok(m) => m,
            Err(_) => return Err(Refused("Invalid signature".into())),
        };
        mac.update(base.as_bytes());
        STANDARD.encode(mac.finalize().into_bytes())
    } else {
        hmac_base64(key.as_bytes(), base.as_bytes())
    };
    if constant_eq(expected.as_bytes(), given.as_bytes()) {
        Ok(())
    } else {
        Err(Refused(
            "Invalid signature - provided signature does not match.".into(),
        ))
    }
}

/// `hash_equals`.
pub fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wp_json_encode_escapes_slashes_and_non_ascii_like_php() {
        let v = json!({"url": "https://x/y", "name": "Café ☕ 😀"});
        assert_eq!(
            json_encode(&v),
            r#"{"name":"Caf\u00e9 \u2615 \ud83d\ude00","url":"https:\/\/x\/y"}"#
        );
    }

    #[test]
    fn rawurlencode_leaves_only_the_unreserved_characters() {
        assert_eq!(rawurlencode("a b/c~d-e_f.g:h"), "a%20b%2Fc~d-e_f.g%3Ah");
    }

    #[test]
    fn the_secret_is_entity_decoded_before_signing() {
        assert_eq!(specialchars_decode("a&amp;b&lt;c&#039;"), "a&b<c'");
    }

    #[test]
    fn a_signature_made_the_documented_way_is_accepted_and_a_changed_one_refused() {
        // The signing side written out step by step, independently of the checker.
        let url = "http://127.0.0.1:8080/wp-json/wc/v3/orders";
        let mut params = vec![
            ("per_page".to_string(), "100".to_string()),
            ("oauth_consumer_key".to_string(), "ck_test".to_string()),
            ("oauth_nonce".to_string(), "abc".to_string()),
            (
                "oauth_signature_method".to_string(),
                "HMAC-SHA256".to_string(),
            ),
            ("oauth_timestamp".to_string(), "1700000000".to_string()),
            (
                "modified_after".to_string(),
                "2026-11-24T18:00:00".to_string(),
            ),
        ];
        let base = "GET&http%3A%2F%2F127.0.0.1%3A8080%2Fwp-json%2Fwc%2Fv3%2Forders&modified_after%3D2026-11-24T18%253A00%253A00%26oauth_consumer_key%3Dck_test%26oauth_nonce%3Dabc%26oauth_signature_method%3DHMAC-SHA256%26oauth_timestamp%3D1700000000%26per_page%3D100";
        let signature = hmac_base64(b"cs_test&", base.as_bytes());
        params.push(("oauth_signature".into(), signature));
        assert_eq!(check_signature("GET", url, &params, "cs_test"), Ok(()));
        params[0].1 = "99".into();
        assert!(check_signature("GET", url, &params, "cs_test").is_err());
    }

    #[test]
    fn the_authorization_header_form_is_parsed() {
        let p = oauth_header(r#"OAuth oauth_consumer_key="ck", oauth_signature="a%2Bb%3D""#);
        assert_eq!(
            p,
            vec![
                ("oauth_consumer_key".to_string(), "ck".to_string()),
                ("oauth_signature".to_string(), "a+b=".to_string())
            ]
        );
    }
}
