//! WooCommerce webhooks.
//!
//! - Signature: `X-WC-Webhook-Signature` = base64(HMAC-SHA256(key, raw body)), where the key
//!   is the webhook secret *with HTML entities decoded* (WooCommerce runs it through
//!   `wp_specialchars_decode(…, ENT_QUOTES)` before signing).
//! - Creation ping: a form body `webhook_id=N`, unsigned, no `X-WC-Webhook-*` headers; it
//!   must be answered with exactly 200.
//! - Topic in `X-WC-Webhook-Topic` (`order.updated`, …); the body is the resource as the
//!   REST API returns it, or `{"id": N}` for `deleted`.
//! - The delivery id header is *not* unique (webhook id + current second), so the event
//!   key is entity + id + `date_modified_gmt` (a body digest where there is no stamp).

use crate::crypto;
use crate::domain::{ConnectionId, EntityType, WebhookEvent};
use crate::platforms::{body_digest, id_text, json, Parsed, PayloadError};

/// Order statuses that are not real orders yet (block checkout drafts and the like).
const DRAFT_STATUSES: &[&str] = &["checkout-draft", "draft", "auto-draft"];

/// The secret as WooCommerce uses it for signing: `wp_specialchars_decode($secret,
/// ENT_QUOTES)`, one left-to-right pass over the entities it knows.
pub fn signing_key(secret: &str) -> String {
    const ENTITIES: &[(&str, char)] = &[
        ("&quot;", '"'),
        ("&#034;", '"'),
        ("&#x22;", '"'),
        ("&lt;", '<'),
        ("&#060;", '<'),
        ("&gt;", '>'),
        ("&#062;", '>'),
        ("&amp;", '&'),
        ("&#038;", '&'),
        ("&#x26;", '&'),
        ("&#039;", '\''),
        ("&#x27;", '\''),
    ];
    let mut out = String::with_capacity(secret.len());
    let mut rest = secret;
    while let Some(pos) = rest.find('&') {
        out.push_str(&rest[..pos]);
        rest = &rest[pos..];
        match ENTITIES.iter().find(|(entity, _)| {
            rest.get(..entity.len())
                .is_some_and(|h| h.eq_ignore_ascii_case(entity))
        }) {
            Some((entity, ch)) => {
                out.push(*ch);
                rest = &rest[entity.len()..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The signature WooCommerce would send for `body`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    crypto::hmac_sha256_base64(signing_key(secret).as_bytes(), body)
}

pub fn verify(secret: &str, body: &[u8], signature: &str) -> bool {
    crypto::verify_hmac_sha256_base64(signing_key(secret).as_bytes(), body, signature)
}

/// Whether `body` is the creation ping, `webhook_id=<digits>`.
pub fn is_ping(body: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(body) else {
        return false;
    };
    text.trim().strip_prefix("webhook_id=").is_some_and(|id| {
        !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit())
    })
}

/// Events in a verified delivery with topic header `topic`.
pub fn parse(
    connection: ConnectionId,
    topic: Option<&str>,
    body: &[u8],
) -> Result<Parsed, PayloadError> {
    let topic = topic.ok_or_else(|| PayloadError("no X-WC-Webhook-Topic header".into()))?;
    let mut parsed = Parsed::default();
    let (resource, event) = topic.split_once('.').unwrap_or((topic, ""));
    let entity = match resource {
        "order" => Some(EntityType::Orders),
        "customer" => Some(EntityType::Customers),
        "product" => Some(EntityType::Products),
        _ => None,
    };
    let known_event = matches!(event, "created" | "updated" | "deleted" | "restored");
    let Some(entity) = entity.filter(|_| known_event) else {
        parsed.ignored.push(format!("topic {topic} is not synced"));
        return Ok(parsed);
    };
    let payload = json(body)?;
    let object = payload
        .as_object()
        .ok_or_else(|| PayloadError("the body is not a JSON object".into()))?;
    let id = id_text(object.get("id")).ok_or_else(|| PayloadError("the body has no id".into()))?;
    if entity == EntityType::Orders {
        if let Some(status) = object.get("status").and_then(|s| s.as_str()) {
            if DRAFT_STATUSES.contains(&status) {
                parsed
                    .ignored
                    .push(format!("order {id} has status {status}"));
                return Ok(parsed);
            }
        }
    }
    let stamp = if event == "deleted" {
        body_digest(body)
    } else {
        ["date_modified_gmt", "date_modified"]
            .iter()
            .find_map(|f| {
                object
                    .get(*f)
                    .and_then(|v| v.as_str())
                    .filter(|s| !s.is_empty())
            })
            .map(str::to_string)
            .unwrap_or_else(|| body_digest(body))
    };
    parsed.events.push(WebhookEvent {
        key: format!("woocommerce:{connection}:{resource}:{id}:{event}:{stamp}"),
        event_type: topic.to_string(),
        entity_type: entity,
        entity_id: id,
    });
    Ok(parsed)
}
