//! How schedules and previews look on the wire.

use chrono::{DateTime, SecondsFormat, Utc};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};
use serde_json::{json, Value};

use sync_shared::domain::Schedule;
use sync_shared::service::Preview;

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
