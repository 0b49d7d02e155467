//! Supabase Database Webhooks.
//!
//! - Unsigned by design: the connection's shared secret is sent in a header of the user's
//!   choosing (default `x-webhook-secret`; `authorization` takes `Bearer <secret>`), and is
//!   compared in constant time.
//! - Body: `{"type": "INSERT|UPDATE|DELETE", "table", "schema", "record", "old_record"}`;
//!   the row is `old_record` for DELETE. The connection's `tables` config maps tables to
//!   entities; rows of other tables are ignored.
//! - Event key: table + row id + operation + the row's `updated_at` (or a body digest).

use serde_json::Value;

use crate::crypto::constant_time_eq;
use crate::domain::{Connection, WebhookEvent};
use crate::platforms::{body_digest, id_text, json, Parsed, PayloadError};

/// Whether the header value carries `secret`.
pub fn verify(secret: &str, header: &str, value: Option<&str>) -> bool {
    let Some(value) = value else {
        return false;
    };
    let presented = if header.eq_ignore_ascii_case("authorization") {
        // The scheme is case-insensitive (RFC 7235).
        match value.trim().split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token,
            _ => return false,
        }
    } else {
        value
    };
    constant_time_eq(presented.trim().as_bytes(), secret.as_bytes())
}

pub fn parse(connection: &Connection, body: &[u8]) -> Result<Parsed, PayloadError> {
    let payload = json(body)?;
    let o = payload
        .as_object()
        .ok_or_else(|| PayloadError("the body is not a JSON object".into()))?;
    let kind = o.get("type").and_then(Value::as_str).unwrap_or("");
    if !matches!(kind, "INSERT" | "UPDATE" | "DELETE") {
        return Err(PayloadError(format!(
            "type '{kind}' is not INSERT, UPDATE or DELETE"
        )));
    }
    let table = o
        .get("table")
        .and_then(Value::as_str)
        .ok_or_else(|| PayloadError("the body has no table".into()))?;
    let schema = o.get("schema").and_then(Value::as_str).unwrap_or("public");
    let mut parsed = Parsed::default();
    let Some(entity) = super::table_entity(connection, table) else {
        parsed
            .ignored
            .push(format!("table {schema}.{table} is not mapped to an entity"));
        return Ok(parsed);
    };
    let row = if kind == "DELETE" {
        o.get("old_record")
    } else {
        o.get("record")
    };
    let row = row
        .and_then(Value::as_object)
        .ok_or_else(|| PayloadError(format!("a {kind} has no row")))?;
    let id = id_text(row.get(super::id_column(connection))).ok_or_else(|| {
        PayloadError(format!(
            "the row has no {} column",
            super::id_column(connection)
        ))
    })?;
    let stamp = row
        .get(super::updated_at_column(connection))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| body_digest(body));
    parsed.events.push(WebhookEvent {
        key: format!(
            "supabase:{}:{schema}.{table}:{id}:{kind}:{stamp}",
            connection.id
        ),
        event_type: format!("{table}.{kind}"),
        entity_type: entity,
        entity_id: id,
    });
    Ok(parsed)
}
