//! Runs: the history (`GET /api/sync/runs`, newest first, filtered, paged, and
//! `GET /api/sync/runs/{id}`), and runs asked for now (`POST /api/sync/trigger`,
//! `POST /api/sync/schedules/{id}/run`), answered 202 with the run as queued; and stopping
//! one (`POST /api/sync/runs/{id}/cancel`).

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::json;

use super::query;
use crate::error::ApiError;
use crate::view;
use crate::App;
use sync_core::domain::{Run, RunFilter, RunId, RunStatus, ScheduleId, SyncMode, TenantId};
use sync_core::ports::RunListError;
use sync_core::service::{Cancelled, ResyncRequest, RunRequest, ServiceError};

const TRIGGER_FIELDS: &[&str] = &["connection_id", "entity_type", "sync_mode", "ids"];

/// `POST /api/sync/trigger`: a manual run of a connection's entity (or of the records
/// `ids` names).
pub(super) async fn trigger(
    app: &App,
    tenant: &TenantId,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let fields = super::body(app, req, TRIGGER_FIELDS, &[])?;
    let ask = RunRequest {
        connection_id: fields.required_parsed("connection_id")?,
        entity_type: fields.required_parsed("entity_type")?,
        sync_mode: fields.parsed::<SyncMode>("sync_mode", true)?,
        ids: fields.parsed_list::<String>("ids")?.unwrap_or_default(),
    };
    let run = app.services.operations.trigger(tenant, ask).await?;
    Ok(queued(&run))
}

const RESYNC_FIELDS: &[&str] = &[
    "connection_id",
    "entity_type",
    "modified_from",
    "modified_to",
    "cursor",
];

/// `POST /api/sync/resync`: with `modified_from` (and `modified_to`), a run that reads
/// again and rewrites what the source changed in that span (202, queued); with `cursor`,
/// the stream's cursor set there, noting who and when (200).
pub(super) async fn resync(
    app: &App,
    tenant: &TenantId,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let fields = super::body(app, req, RESYNC_FIELDS, &[])?;
    let connection_id = fields.required_parsed("connection_id")?;
    let entity_type = fields.required_parsed("entity_type")?;
    let from = fields.time("modified_from")?;
    let to = fields.time("modified_to")?;
    let Some(cursor) = fields.time("cursor")? else {
        let modified_from = from.ok_or_else(|| {
            ApiError::invalid_field(
                "modified_from",
                "modified_from is required (or cursor, to set the stream's cursor)",
            )
        })?;
        let ask = ResyncRequest {
            connection_id,
            entity_type,
            modified_from,
            modified_to: to,
        };
        let run = app.services.operations.resync(tenant, ask).await?;
        return Ok(queued(&run));
    };
    if from.is_some() || to.is_some() {
        return Err(ApiError::invalid_field(
            if from.is_some() {
                "modified_from"
            } else {
                "modified_to"
            },
            "either a span (modified_from, modified_to) to resync or a cursor to set, not both",
        ));
    }
    let by = crate::request::subject(req).unwrap_or_else(|| format!("tenant {tenant}"));
    let change = app
        .services
        .operations
        .set_cursor(tenant, connection_id, entity_type, cursor, &by)
        .await?;
    Ok(view::json_response(
        StatusCode::OK,
        &view::cursor_change(&change),
    ))
}

/// `POST /api/sync/runs/{id}/retry`.
pub(super) async fn retry(
    app: &App,
    tenant: &TenantId,
    raw: &str,
) -> Result<Response<Body>, ApiError> {
    let id = run_id(raw)?;
    let retried = app.services.operations.retry_run(tenant, &id).await?;
    Ok(view::retried(&retried))
}

/// `POST /api/sync/runs/{id}/cancel`: 200 with the run cancelled, for one that had not
/// started; 202 with the run as it is and `cancel_requested_at`, for one that stops at the
/// end of its current page.
pub(super) async fn cancel(
    app: &App,
    tenant: &TenantId,
    raw: &str,
) -> Result<Response<Body>, ApiError> {
    let id = run_id(raw)?;
    Ok(
        match app.services.operations.cancel_run(tenant, &id).await? {
            Cancelled::Dropped(run) => view::json_response(StatusCode::OK, &view::run(&run)),
            Cancelled::Requested(run, at) => {
                let mut body = view::run(&run);
                if let Some(map) = body.as_object_mut() {
                    map.insert("cancel_requested_at".into(), json!(view::timestamp(at)));
                }
                view::json_response(StatusCode::ACCEPTED, &body)
            }
        },
    )
}

/// `POST /api/sync/schedules/{id}/run`.
pub(super) async fn run_schedule(
    app: &App,
    tenant: &TenantId,
    id: ScheduleId,
) -> Result<Response<Body>, ApiError> {
    let run = app.services.operations.run_schedule(tenant, id).await?;
    Ok(queued(&run))
}

/// A run id from the path; a malformed one names no run.
fn run_id(raw: &str) -> Result<RunId, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::not_found("no run with that id"))
}

/// 202: the run as queued, and where to follow it.
fn queued(run: &Run) -> Response<Body> {
    let location = format!("/api/sync/runs/{}", run.id.as_str());
    let mut body = view::run(run);
    if let Some(map) = body.as_object_mut() {
        map.insert("run_id".into(), json!(run.id.as_str()));
        map.insert("location".into(), json!(location));
    }
    view::located(StatusCode::ACCEPTED, &location, body)
}

const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 100;

/// One run of the tenant's; another tenant's run, or a malformed id, is simply not found.
pub(super) async fn get(
    app: &App,
    tenant: &TenantId,
    raw: &str,
) -> Result<Response<Body>, ApiError> {
    let id = run_id(raw)?;
    let run = app
        .services
        .runs
        .get(tenant, &id)
        .await
        .map_err(ServiceError::from)?
        .ok_or_else(|| ApiError::not_found("no run with that id"))?;
    Ok(view::json_response(StatusCode::OK, &view::run(&run)))
}

pub(super) async fn list(
    app: &App,
    tenant: &TenantId,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let filter = RunFilter {
        schedule_id: query(req, "schedule_id", "a schedule id")?,
        flow_id: query(req, "flow_id", "a flow id")?,
        connection_id: query(req, "connection_id", "a connection id")?,
        status: query::<RunStatus>(req, "status", &format!("one of {}", RunStatus::ALLOWED))?,
    };
    let limit = query::<usize>(req, "limit", "a number from 1 to 100")?.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid_field(
            "limit",
            "limit must be a number from 1 to 100",
        ));
    }
    let next = req
        .query_string_parameters_ref()
        .and_then(|q| q.first("next"))
        .map(str::to_string);
    let page = app
        .services
        .runs
        .list(
            tenant,
            &filter,
            limit,
            next.as_deref(),
            app.services.schedules.now(),
        )
        .await
        .map_err(|e| match e {
            RunListError::BadCursor => {
                ApiError::invalid_field("next", "next is not a cursor this API returned")
            }
            RunListError::Store(e) => ServiceError::from(e).into(),
        })?;
    Ok(view::json_response(
        StatusCode::OK,
        &json!({
            "runs": page.runs.iter().map(view::run).collect::<Vec<_>>(),
            "next": page.next,
        }),
    ))
}

/// `GET /api/sync/sweeper`: when the sweeper last swept, and what it did then and in all.
/// Its errors are counted, not shown: they name other tenants' runs and schedules. A pass
/// over the schedules under way says which shard it has reached.
pub(super) async fn sweeper(app: &App) -> Result<Response<Body>, ApiError> {
    let status = app
        .services
        .sweeps
        .last()
        .await
        .map_err(ServiceError::from)?;
    let counts = |c: &sync_core::ports::SweepCounts| {
        json!({
            "abandoned": c.abandoned,
            "caught_up": c.caught_up,
            "missed": c.missed,
            "repairs": c.repairs,
            "paused": c.paused,
            "schedules": c.schedules,
            "triggers": c.triggers,
        })
    };
    // (Where in a shard the pass stands is not shown: it names a tenant.)
    let pass = |p: &sync_core::ports::SweepPass| {
        json!({
            "started_at": view::timestamp(p.started_at),
            "fire_times_from": view::timestamp(p.from),
            "fire_times_until": view::timestamp(p.until),
            "shard": p.shard,
            "shards": sync_core::ports::SWEEP_SHARDS,
        })
    };
    let body = match status {
        None => json!({"last_sweep_at": null, "message": "the sweeper has not swept yet"}),
        Some(s) => json!({
            "last_sweep_at": view::timestamp(s.last_sweep_at),
            "fire_times_checked_until": view::timestamp(s.checked_until),
            "pass": s.pass.as_ref().map(pass),
            "last": counts(&s.last),
            "totals": counts(&s.totals),
            "errors": s.errors.len(),
        }),
    };
    Ok(view::json_response(StatusCode::OK, &body))
}
