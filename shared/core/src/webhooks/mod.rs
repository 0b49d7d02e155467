//! Reading platform webhooks: signature checks over the raw body, and parsers that turn a
//! verified body into [`WebhookEvent`]s. Pure functions; nothing here does I/O. Every
//! parser takes arbitrary bytes and answers with events or an error, never a panic.

pub mod quickbooks;
pub mod supabase;
pub mod woocommerce;

use serde_json::Value;

use crate::crypto::sha256_hex;
use crate::domain::{EntityType, WebhookEvent};

/// What a verified delivery contained.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub events: Vec<WebhookEvent>,
    /// Why each dropped part was dropped (a topic we do not sync, another realm, …).
    pub ignored: Vec<String>,
}

/// A body that does not have the shape the platform documents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PayloadError(pub String);

/// An id as text: a JSON integer or a non-empty string (platforms use both).
pub(crate) fn id_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        Value::String(s) if !s.is_empty() && s.len() <= 128 => Some(s.clone()),
        _ => None,
    }
}

/// A stamp for payloads that carry none: a digest of the exact body.
pub(crate) fn body_digest(body: &[u8]) -> String {
    format!("body:{}", &sha256_hex(body)[..32])
}

pub(crate) fn json(body: &[u8]) -> Result<Value, PayloadError> {
    serde_json::from_slice(body).map_err(|e| PayloadError(format!("the body is not JSON: {e}")))
}

/// `application/json`, or one of `also` (e.g. `application/cloudevents+json`), with or
/// without parameters.
pub fn is_json_content_type(value: Option<&str>, also: &[&str]) -> bool {
    let essence = value
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || also.contains(&essence.as_str())
}

/// The entity a QuickBooks entity name stands for.
pub(crate) fn entity_for(name: &str) -> Option<EntityType> {
    match name.to_ascii_lowercase().as_str() {
        "invoice" | "salesreceipt" => Some(EntityType::Orders),
        "customer" => Some(EntityType::Customers),
        "item" => Some(EntityType::Products),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
