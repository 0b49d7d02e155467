//! How schedules and previews look on the wire.

use chrono::{DateTime, SecondsFormat, Utc};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};
use serde_json::{json, Value};

use sync_core::domain::{Connection, EventRecord, Schedule};
use sync_core::service::Preview;

/// RFC 3339 in UTC with a `Z`, fractional seconds only when there are some.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn optional(t: Option<DateTime<Utc>>) -> Value {
    t.map_or(Value::Null, |t| Value::String(timestamp(t)))
}

/// A schedule as the API returns it; `next_run_at` is computed for `now`.
pub fn schedule(s: &Schedule, now: DateTime<Utc>) -> Value {
    json!({
        "id": s.id.to_string(),
        "credential_id": s.credential_id.to_string(),
        "platform": s.platform.as_str(),
        "entity_type": s.entity_type.as_str(),
        "cron_expression": s.cron_expression,
        "schedule_expression": s.schedule_expression(),
        "sync_mode": s.sync_mode.as_str(),
        "timezone": s.timezone.name(),
        "is_active": s.is_active,
        "last_run_at": optional(s.last_run_at),
        "next_run_at": optional(s.next_run_at(now)),
        "created_at": timestamp(s.created_at),
        "updated_at": timestamp(s.updated_at),
    })
}

/// A connection as the API returns it: never a secret, only what `secret_hints` allows.
pub fn connection(c: &Connection, base_url: &str) -> Value {
    json!({
        "id": c.id.to_string(),
        "platform": c.platform.as_str(),
        "display_name": c.display_name,
        "config": Value::Object(c.config.clone()),
        "secrets": c.secret_hints,
        "webhooks_enabled": c.webhooks_enabled,
        "webhook_url": format!("{base_url}/webhooks/{}/{}", c.platform, c.id),
        // `deleting`: a delete began and did not finish; deleting again finishes it.
        "status": if c.is_deleting() { "deleting" } else { "active" },
        "created_at": timestamp(c.created_at),
        "updated_at": timestamp(c.updated_at),
    })
}

pub fn event(r: &EventRecord) -> Value {
    json!({
        "platform": r.platform.as_str(),
        "event_key": r.event_key,
        "event_type": r.event_type,
        "entity_type": r.entity_type.as_str(),
        "entity_id": r.entity_id,
        "received_at": timestamp(r.received_at),
        "status": r.status.as_str(),
        "message_id": r.message_id,
        "job_id": r.job_id,
    })
}

pub fn preview(p: &Preview) -> Value {
    json!({
        "schedule_expression": p.schedule_expression,
        "timezone": p.timezone.name(),
        "next_runs": p.next_runs.iter().map(|t| timestamp(*t)).collect::<Vec<_>>(),
    })
}

pub fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    let mut response = Response::new(Body::Text(body.to_string()));
    *response.status_mut() = status;
    if let Ok(value) = "application/json".parse() {
        response.headers_mut().insert("content-type", value);
    }
    response
}
