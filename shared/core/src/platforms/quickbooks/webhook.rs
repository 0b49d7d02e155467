//! QuickBooks Online webhooks.
//!
//! - Signature: `intuit-signature` = base64(HMAC-SHA256(verifier token, raw body)).
//! - Two payload formats: the classic `{"eventNotifications": [...]}` object, and the
//!   CloudEvents array (`[{"specversion": "1.0", "id": ..., "type": "qbo.customer.created.v1",
//!   "intuitaccountid": realm, "intuitentityid": id, ...}]`), possibly sent as
//!   `application/cloudevents+json`. One POST may carry several events and several realms.
//! - Events for a realm that is not the connection's are dropped, not queued.
//! - Event key: the CloudEvents `id` (retries resend it); classic events have none, so realm
//!   + entity + id + operation + `lastUpdated` (seen both as `…-0700` and as `…Z`).

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

use crate::crypto;
use crate::domain::{EntityType, WebhookEvent};
use crate::platforms::{id_text, json, Parsed, PayloadError};

/// The entity a QuickBooks entity name stands for.
pub fn entity_for(name: &str) -> Option<EntityType> {
    match name.to_ascii_lowercase().as_str() {
        "invoice" | "salesreceipt" => Some(EntityType::Orders),
        "customer" => Some(EntityType::Customers),
        "item" => Some(EntityType::Products),
        _ => None,
    }
}

/// The id a record of this entity has in the sync: a document's carries its kind
/// (`SalesReceipt:12`), since sales receipts and invoices number their ids apart.
pub fn record_id(name: &str, id: &str) -> String {
    match name.to_ascii_lowercase().as_str() {
        "salesreceipt" => format!("SalesReceipt:{id}"),
        "invoice" => format!("Invoice:{id}"),
        _ => id.to_string(),
    }
}

pub fn sign(verifier_token: &str, body: &[u8]) -> String {
    crypto::hmac_sha256_base64(verifier_token.as_bytes(), body)
}

pub fn verify(verifier_token: &str, body: &[u8], signature: &str) -> bool {
    crypto::verify_hmac_sha256_base64(verifier_token.as_bytes(), body, signature)
}

/// `lastUpdated` in one form (UTC, milliseconds), whichever form it came in.
fn normalise_time(text: &str) -> String {
    DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .map(|t| {
            t.with_timezone(&Utc)
                .to_rfc3339_opts(SecondsFormat::Millis, true)
        })
        .unwrap_or_else(|_| text.to_string())
}

fn str_field<'a>(o: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    o.get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Events in a verified delivery for the connection of `realm`.
/// The companies (realms) a delivery names, in order of first appearance.
pub fn realms(body: &[u8]) -> Result<Vec<String>, PayloadError> {
    let named: Vec<Option<String>> = match json(body)? {
        Value::Array(items) => items
            .iter()
            .map(|i| id_text(i.get("intuitaccountid")))
            .collect(),
        Value::Object(o) => o
            .get("eventNotifications")
            .and_then(Value::as_array)
            .map(|n| n.iter().map(|n| id_text(n.get("realmId"))).collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let mut out: Vec<String> = Vec::new();
    for realm in named.into_iter().flatten() {
        if !out.contains(&realm) {
            out.push(realm);
        }
    }
    Ok(out)
}

pub fn parse(realm: &str, body: &[u8]) -> Result<Parsed, PayloadError> {
    match json(body)? {
        Value::Array(items) => cloud_events(realm, &items),
        Value::Object(o) if o.contains_key("eventNotifications") => classic(realm, &o),
        _ => Err(PayloadError(
            "neither a CloudEvents array nor an eventNotifications object".into(),
        )),
    }
}

fn cloud_events(realm: &str, items: &[Value]) -> Result<Parsed, PayloadError> {
    let mut parsed = Parsed::default();
    for item in items {
        let o = item
            .as_object()
            .filter(|o| o.contains_key("specversion"))
            .ok_or_else(|| PayloadError("a CloudEvents array item is not a CloudEvent".into()))?;
        let id = str_field(o, "id").ok_or_else(|| PayloadError("a CloudEvent has no id".into()))?;
        let kind = str_field(o, "type").unwrap_or("");
        let event_realm = id_text(o.get("intuitaccountid")).unwrap_or_default();
        if event_realm != realm {
            parsed.ignored.push(format!(
                "event {id} is for realm {event_realm}, not this connection's"
            ));
            continue;
        }
        // qbo.<entity>.<operation>.v1
        let mut parts = kind.split('.');
        let (Some("qbo"), Some(name)) = (parts.next(), parts.next()) else {
            parsed
                .ignored
                .push(format!("event {id} has unknown type {kind}"));
            continue;
        };
        let Some(entity) = entity_for(name) else {
            parsed
                .ignored
                .push(format!("event {id}: {name} is not synced"));
            continue;
        };
        let Some(entity_id) = id_text(o.get("intuitentityid")) else {
            return Err(PayloadError(format!("event {id} has no intuitentityid")));
        };
        parsed.events.push(WebhookEvent {
            key: format!("quickbooks:ce:{id}"),
            event_type: kind.to_string(),
            entity_type: entity,
            entity_id: record_id(name, &entity_id),
        });
    }
    Ok(parsed)
}

fn classic(realm: &str, o: &Map<String, Value>) -> Result<Parsed, PayloadError> {
    let mut parsed = Parsed::default();
    let notifications = o
        .get("eventNotifications")
        .and_then(Value::as_array)
        .ok_or_else(|| PayloadError("eventNotifications is not an array".into()))?;
    for n in notifications {
        let n = n
            .as_object()
            .ok_or_else(|| PayloadError("an event notification is not an object".into()))?;
        let event_realm = id_text(n.get("realmId")).unwrap_or_default();
        let entities = n
            .get("dataChangeEvent")
            .and_then(|d| d.get("entities"))
            .and_then(Value::as_array)
            .ok_or_else(|| PayloadError("a notification has no dataChangeEvent.entities".into()))?;
        if event_realm != realm {
            parsed.ignored.push(format!(
                "{} event(s) for realm {event_realm}, not this connection's",
                entities.len()
            ));
            continue;
        }
        for e in entities {
            let e = e
                .as_object()
                .ok_or_else(|| PayloadError("an entity change is not an object".into()))?;
            let name = str_field(e, "name")
                .ok_or_else(|| PayloadError("an entity change has no name".into()))?;
            let id = id_text(e.get("id"))
                .ok_or_else(|| PayloadError("an entity change has no id".into()))?;
            let operation = str_field(e, "operation").unwrap_or("Unknown");
            let Some(entity) = entity_for(name) else {
                parsed
                    .ignored
                    .push(format!("{name} {id}: {name} is not synced"));
                continue;
            };
            let stamp = str_field(e, "lastUpdated")
                .map(normalise_time)
                .unwrap_or_default();
            parsed.events.push(WebhookEvent {
                key: format!("quickbooks:{realm}:{name}:{id}:{operation}:{stamp}"),
                event_type: format!("{name}.{operation}"),
                entity_type: entity,
                entity_id: record_id(name, &id),
            });
        }
    }
    Ok(parsed)
}
