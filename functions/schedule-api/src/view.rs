//! How schedules and previews look on the wire.

use chrono::{DateTime, SecondsFormat, Utc};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};
use serde_json::{json, Value};

use sync_core::domain::{
    Connection, Cursor, EventRecord, FailedRecord, Flow, Run, RunCounts, Schedule,
};
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
        "overlap_policy": s.options.overlap_policy.as_str(),
        "pause_note": s.options.pause_note,
        "flexible_window_minutes": s.options.flexible_window_minutes,
        "catch_up_window_minutes": s.options.catch_up_window_minutes,
        "auto_pause_after_failures": s.options.auto_pause_after_failures,
        "consecutive_failures": s.consecutive_failures,
        "last_run_at": optional(s.last_run_at),
        "last_run_status": s.last_run_status.map(|st| st.as_str()),
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
        "webhook_url": c.webhook_url(base_url),
        // `deleting`: a delete began and did not finish; deleting again finishes it.
        // `needs_reauth`: the platform refused the grant; connect the company again.
        "status": if c.is_deleting() {
            "deleting"
        } else if c.needs_reauth.is_some() {
            "needs_reauth"
        } else {
            "active"
        },
        "status_reason": c.needs_reauth,
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

pub fn flow(f: &Flow) -> Value {
    json!({
        "id": f.id.to_string(),
        "source_connection_id": f.source_connection_id.to_string(),
        "target_connection_id": f.target_connection_id.to_string(),
        "entities": f.entities.iter().map(|e| e.as_str()).collect::<Vec<_>>(),
        "conflict_policy": f.conflict_policy.as_str(),
        "doc_number_prefix": f.doc_number_prefix.as_ref().map(|p| p.as_str()),
        "enabled": f.enabled,
        "created_at": timestamp(f.created_at),
        "updated_at": timestamp(f.updated_at),
    })
}

fn counts(c: &RunCounts) -> Value {
    json!({
        "read": c.read, "written": c.written, "unchanged": c.unchanged,
        "echo_skipped": c.echo_skipped, "failed": c.failed, "conflicts": c.conflicts,
        "unannounced": c.unannounced,
    })
}

fn cursor(c: &Option<Cursor>) -> Value {
    c.as_ref().map_or(
        Value::Null,
        |c| json!({ "modified_at": timestamp(c.stamp), "id": c.id }),
    )
}

/// A record that keeps failing, as the API shows it.
pub fn failure(f: &FailedRecord) -> Value {
    json!({
        "connection_id": f.connection_id.to_string(),
        "entity_type": f.entity_type.as_str(),
        "record_id": f.record_id,
        "flow_id": f.flow_id.map(|id| id.to_string()),
        "error": f.error,
        "error_code": Some(&f.error_code).filter(|c| !c.is_empty()),
        "attempts": f.attempts,
        "first_failed_at": timestamp(f.first_failed_at),
        "last_failed_at": timestamp(f.last_failed_at),
        "run_id": f.run_id.to_string(),
        "quarantined": f.quarantined_at.is_some(),
        "quarantined_at": optional(f.quarantined_at),
        "next_try_at": optional(f.next_try_at),
    })
}

/// What a retry queued: `{records, runs: [run, …], more}` (202 when it queued any).
pub fn retried(r: &sync_core::service::Retried) -> Response<Body> {
    let status = if r.runs.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    json_response(
        status,
        &json!({
            "records": r.records,
            "runs": r.runs.iter().map(run).collect::<Vec<_>>(),
            "more": r.more,
        }),
    )
}

/// A stream's cursor set by hand, and the one it replaced.
pub fn cursor_change(c: &sync_core::service::CursorChange) -> Value {
    json!({
        "connection_id": c.connection_id.to_string(),
        "entity_type": c.entity_type.as_str(),
        "cursor": cursor(&Some(c.cursor.clone())),
        "previous_cursor": cursor(&c.previous),
        "cursor_set_by": c.set_by,
        "cursor_set_at": timestamp(c.set_at),
    })
}

/// A connection's stream of one entity as it stands.
pub fn stream(entity: sync_core::domain::EntityType, s: &sync_core::ports::StreamView) -> Value {
    json!({
        "entity_type": entity.as_str(),
        "cursor": cursor(&s.cursor),
        "cursor_set_by": s.cursor_set_by,
        "cursor_set_at": s.cursor_set_at.map(timestamp),
        "running": s.running,
        "lease_until": s.lease_until.filter(|_| s.running).map(timestamp),
        "follow_up_kept": s.follow_up_kept,
        "webhooks_last_at": s.webhook_at.map(timestamp),
    })
}

pub fn run(r: &Run) -> Value {
    json!({
        "id": r.id.to_string(),
        "trigger": r.trigger.as_str(),
        "schedule_id": r.schedule_id.map(|s| s.to_string()),
        "flow_ids": r.flow_ids().iter().map(|f| f.to_string()).collect::<Vec<_>>(),
        "connection_id": r.connection_id.to_string(),
        "platform": r.platform.as_str(),
        "entity_type": r.entity_type.as_str(),
        "sync_mode": r.sync_mode.as_str(),
        "ids_requested": r.ids_requested,
        "status": r.status.as_str(),
        "counts": counts(&r.counts),
        "flows": r.flows.iter().map(|f| json!({
            "flow_id": f.flow_id.to_string(),
            "target_connection_id": f.target_connection_id.to_string(),
            "counts": counts(&f.counts),
        })).collect::<Vec<_>>(),
        "failures": r.failures.iter().map(|f| json!({
            "record_id": f.record_id,
            "flow_id": f.flow_id.map(|id| id.to_string()),
            "error": f.error,
            "error_code": Some(&f.error_code).filter(|c| !c.is_empty()),
            "retryable": f.retryable,
            "attempts": f.attempts,
            "quarantined": f.quarantined,
        })).collect::<Vec<_>>(),
        "conflicts": r.conflicts.iter().map(|c| json!({
            "record_id": c.record_id,
            "flow_id": c.flow_id.to_string(),
            "target_id": c.target_id,
            "source_modified_at": timestamp(c.source_modified_at),
            "target_modified_at": timestamp(c.target_modified_at),
            "winner": c.winner.as_str(),
            "tie": c.tie,
        })).collect::<Vec<_>>(),
        "message": r.message,
        "cursor_before": cursor(&r.cursor_before),
        "cursor_after": cursor(&r.cursor_after),
        "triggered_at": timestamp(r.triggered_at),
        "started_at": timestamp(r.started_at),
        "finished_at": optional(r.finished_at),
        "updated_at": timestamp(r.updated_at),
        "duration_ms": r.finished_at.map(|f| (f - r.started_at).num_milliseconds()),
        "continuations": r.continuations,
        "attempts": r.attempts,
        "redone_by": r.redone_by.as_ref().map(|id| id.as_str()),
        "window": r.window.map(|w| json!({
            "modified_from": timestamp(w.from),
            "modified_to": timestamp(w.to),
        })),
    })
}

/// 201 with the new record's `location`.
pub fn created(location: &str, body: Value) -> Response<Body> {
    located(StatusCode::CREATED, location, body)
}

/// `status` with a `Location` header: where to find (or follow) what the request made.
pub fn located(status: StatusCode, location: &str, body: Value) -> Response<Body> {
    let mut response = json_response(status, &body);
    if let Ok(value) = location.parse() {
        response.headers_mut().insert("location", value);
    }
    response
}

pub use sync_api::json_response;

/// A schedule's audit: its fire times in the span (in UTC and in the schedule's zone), each
/// with what became of it and its run, and how many of each.
pub fn audit(a: &sync_core::service::Audit) -> Value {
    let zone = a.schedule.timezone;
    let mut counts = serde_json::Map::new();
    for fire in &a.fires {
        let n = counts
            .entry(fire.label.as_str())
            .or_insert(Value::from(0u64));
        *n = Value::from(n.as_u64().unwrap_or(0) + 1);
    }
    json!({
        "schedule_id": a.schedule.id.to_string(),
        "timezone": zone.name(),
        "from": timestamp(a.from),
        "to": timestamp(a.to),
        "fires": a.fires.iter().map(|f| json!({
            "fire_time": timestamp(f.fire_time),
            "fire_time_local": f.fire_time.with_timezone(&zone.tz()).to_rfc3339(),
            "label": f.label.as_str(),
            "run_id": f.run.as_ref().map(|r| r.id.to_string()),
            "run_status": f.run.as_ref().map(|r| r.status.as_str()),
            "run_started_at": f.run.as_ref().map(|r| timestamp(r.started_at)),
        })).collect::<Vec<_>>(),
        "counts": counts,
        "truncated": a.truncated,
    })
}

/// An alert issue as the API shows it: who heard of it, not the destinations' secrets.
pub fn alert(a: &sync_core::domain::AlertIssue) -> Value {
    json!({
        "id": a.id,
        "kind": a.kind.as_str(),
        "subject": a.subject,
        "status": a.status.as_str(),
        "opened_at": timestamp(a.opened_at),
        "updated_at": timestamp(a.updated_at),
        "resolved_at": optional(a.resolved_at),
        "count": a.count,
        "first_error": a.first_error,
        "last_error": a.last_error,
        "what_to_do": a.kind.hint(),
        "link": a.link,
        "acked_at": optional(a.acked_at),
        "acked_by": a.acked_by,
        "notifications": a.hearings.iter().map(|(destination, h)| json!({
            "destination_id": destination,
            "told": h.heard.map(|s| s.as_str()),
            "at": optional(h.at),
            "failed": h.failed,
            "attempts": h.attempts,
            "retry_at": optional(h.retry_at),
            "last_error": h.last_error,
        })).collect::<Vec<_>>(),
    })
}

/// An alert destination as the API shows it: its kind, name and host, never its whole URL
/// or its secret.
pub fn alert_destination(d: &sync_core::domain::AlertDestination) -> Value {
    json!({
        "id": d.id,
        "kind": d.kind.as_str(),
        "name": d.name,
        "url_host": d.url_host,
        "created_at": timestamp(d.created_at),
    })
}
