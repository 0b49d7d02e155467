//! Schedule routes: create, list, read, update, delete, preview.

use chrono::{DateTime, Utc};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::json;

use crate::error::ApiError;
use crate::request::Fields;
use crate::view;
use crate::App;
use sync_core::domain::{
    NewSchedule, OverlapPolicy, ScheduleId, ScheduleOptions, SchedulePatch, SyncMode, TenantId,
    DEFAULT_AUTO_PAUSE_AFTER_FAILURES, DEFAULT_CATCH_UP_WINDOW_MINUTES,
    MAX_AUTO_PAUSE_AFTER_FAILURES, MAX_CATCH_UP_WINDOW_MINUTES, MIN_CATCH_UP_WINDOW_MINUTES,
};
use sync_core::service::MAX_PREVIEW_COUNT;
use sync_core::time::{ScheduleExpression, Zone};

pub(super) const BASE: &str = "/api/sync/schedules";
const CREATE_FIELDS: &[&str] = &[
    "credential_id",
    "platform",
    "entity_type",
    "cron_expression",
    "sync_mode",
    "timezone",
    "is_active",
    "overlap_policy",
    "pause_note",
    "flexible_window_minutes",
    "catch_up_window_minutes",
    "auto_pause_after_failures",
];
const UPDATE_FIELDS: &[&str] = &[
    "cron_expression",
    "sync_mode",
    "timezone",
    "is_active",
    "overlap_policy",
    "pause_note",
    "flexible_window_minutes",
    "catch_up_window_minutes",
    "auto_pause_after_failures",
];
const IMMUTABLE_FIELDS: &[&str] = &["credential_id", "platform", "entity_type"];
const PREVIEW_FIELDS: &[&str] = &["cron_expression", "timezone", "count", "after"];
const DEFAULT_PREVIEW_COUNT: i64 = 5;

pub(super) async fn list(app: &App, tenant: &TenantId) -> Result<Response<Body>, ApiError> {
    let schedules = app.services.schedules.list(tenant).await?;
    let now = app.services.schedules.now();
    let body: Vec<_> = schedules.iter().map(|s| view::schedule(s, now)).collect();
    Ok(view::json_response(StatusCode::OK, &json!(body)))
}

pub(super) async fn get(
    app: &App,
    tenant: &TenantId,
    id: ScheduleId,
) -> Result<Response<Body>, ApiError> {
    let schedule = app.services.schedules.get(tenant, id).await?;
    Ok(view::json_response(
        StatusCode::OK,
        &view::schedule(&schedule, app.services.schedules.now()),
    ))
}

fn expression(fields: &Fields) -> Result<Option<(String, ScheduleExpression)>, ApiError> {
    match fields.string("cron_expression", false)? {
        None => Ok(None),
        Some(text) => ScheduleExpression::parse(text)
            .map(|e| Some((text.to_string(), e)))
            .map_err(|e| ApiError::invalid_field("cron_expression", e.to_string())),
    }
}

pub(super) async fn create(
    app: &App,
    tenant: &TenantId,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let fields = super::body(app, req, CREATE_FIELDS, &[])?;
    let credential_id = fields.required_parsed("credential_id")?;
    let platform = fields.required_parsed("platform")?;
    let entity_type = fields.required_parsed("entity_type")?;
    let (cron_expression, expression) = expression(&fields)?
        .ok_or_else(|| ApiError::invalid_field("cron_expression", "cron_expression is required"))?;
    let new = NewSchedule {
        credential_id,
        platform,
        entity_type,
        cron_expression,
        expression,
        sync_mode: fields
            .parsed("sync_mode", true)?
            .unwrap_or(SyncMode::Incremental),
        timezone: fields
            .parsed::<Zone>("timezone", true)?
            .unwrap_or(app.settings.default_timezone),
        is_active: fields.bool("is_active", true)?.unwrap_or(true),
        options: ScheduleOptions {
            overlap_policy: fields
                .parsed("overlap_policy", true)?
                .unwrap_or(OverlapPolicy::BufferOne),
            pause_note: fields.string("pause_note", true)?.map(str::to_string),
            flexible_window_minutes: window_minutes(&fields)?,
            catch_up_window_minutes: catch_up_minutes(&fields)?
                .unwrap_or(DEFAULT_CATCH_UP_WINDOW_MINUTES),
            auto_pause_after_failures: pause_after(&fields)?
                .unwrap_or(DEFAULT_AUTO_PAUSE_AFTER_FAILURES),
        },
    };
    let schedule = app.services.schedules.create(tenant, new).await?;
    Ok(view::created(
        &format!("{BASE}/{}", schedule.id),
        json!({
            "id": schedule.id.to_string(),
            "message": "schedule created",
            "schedule": view::schedule(&schedule, app.services.schedules.now()),
        }),
    ))
}

pub(super) async fn update(
    app: &App,
    tenant: &TenantId,
    id: ScheduleId,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let fields = super::body(app, req, UPDATE_FIELDS, IMMUTABLE_FIELDS)?;
    if fields.is_empty() {
        return Err(ApiError::bad_request(format!(
            "nothing to update; send at least one of: {}",
            UPDATE_FIELDS.join(", ")
        )));
    }
    let patch = SchedulePatch {
        cron_expression: expression(&fields)?,
        sync_mode: fields.parsed("sync_mode", false)?,
        timezone: fields.parsed("timezone", false)?,
        is_active: fields.bool("is_active", false)?,
        overlap_policy: fields.parsed("overlap_policy", false)?,
        pause_note: if fields.present("pause_note") {
            Some(fields.string("pause_note", true)?.map(str::to_string))
        } else {
            None
        },
        flexible_window_minutes: if fields.present("flexible_window_minutes") {
            Some(window_minutes(&fields)?)
        } else {
            None
        },
        catch_up_window_minutes: catch_up_minutes(&fields)?,
        auto_pause_after_failures: pause_after(&fields)?,
    };
    let schedule = app.services.schedules.update(tenant, id, patch).await?;
    Ok(view::json_response(
        StatusCode::OK,
        &json!({
            "message": "schedule updated",
            "schedule": view::schedule(&schedule, app.services.schedules.now()),
        }),
    ))
}

pub(super) async fn delete(
    app: &App,
    tenant: &TenantId,
    id: ScheduleId,
) -> Result<Response<Body>, ApiError> {
    app.services.schedules.delete(tenant, id).await?;
    Ok(view::json_response(
        StatusCode::OK,
        &json!({ "message": "schedule deleted" }),
    ))
}

pub(super) fn preview(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    let fields = super::body(app, req, PREVIEW_FIELDS, &[])?;
    let (_, expression) = expression(&fields)?
        .ok_or_else(|| ApiError::invalid_field("cron_expression", "cron_expression is required"))?;
    let zone = fields
        .parsed::<Zone>("timezone", true)?
        .unwrap_or(app.settings.default_timezone);
    let count = fields.integer("count")?.unwrap_or(DEFAULT_PREVIEW_COUNT);
    let max = MAX_PREVIEW_COUNT as i64;
    if !(1..=max).contains(&count) {
        return Err(ApiError::invalid_field(
            "count",
            format!("count must be from 1 to {max}"),
        ));
    }
    let after = fields.time("after")?;
    // `count` is within 1..=100 here, so the conversion cannot truncate.
    let preview = app.services.schedules.preview(
        &expression,
        zone,
        after,
        usize::try_from(count).unwrap_or(1),
    )?;
    Ok(view::json_response(
        StatusCode::OK,
        &view::preview(&preview),
    ))
}

/// `flexible_window_minutes`: a whole number of minutes, or null (exact fire times); the
/// schedule service checks its range.
fn window_minutes(fields: &Fields) -> Result<Option<u32>, ApiError> {
    fields
        .integer("flexible_window_minutes")?
        .map(|m| {
            u32::try_from(m).map_err(|_| {
                ApiError::invalid_field(
                    "flexible_window_minutes",
                    "flexible_window_minutes must be 1 to 1440 (or null for exact fire times)",
                )
            })
        })
        .transpose()
}

/// `catch_up_window_minutes`: a whole number of minutes (0: never catch up); the schedule
/// service checks its range.
fn catch_up_minutes(fields: &Fields) -> Result<Option<u32>, ApiError> {
    whole(
        fields,
        "catch_up_window_minutes",
        &format!("catch_up_window_minutes must be 0 (never catch up) or {MIN_CATCH_UP_WINDOW_MINUTES} to {MAX_CATCH_UP_WINDOW_MINUTES}"),
    )
}

/// `auto_pause_after_failures`: a whole number of runs (0: never pause).
fn pause_after(fields: &Fields) -> Result<Option<u32>, ApiError> {
    whole(
        fields,
        "auto_pause_after_failures",
        &format!(
            "auto_pause_after_failures must be 0 (never pause) to {MAX_AUTO_PAUSE_AFTER_FAILURES}"
        ),
    )
}

/// A whole number field that fits a `u32`, or `message` on `name`.
fn whole(fields: &Fields, name: &str, message: &str) -> Result<Option<u32>, ApiError> {
    fields
        .integer(name)?
        .map(|m| u32::try_from(m).map_err(|_| ApiError::invalid_field(name, message)))
        .transpose()
}

/// `GET /api/sync/schedules/{id}/audit?from=&to=`: the schedule's fire times in the span,
/// each labelled with what became of it and its run.
pub(super) async fn audit(
    app: &App,
    tenant: &TenantId,
    id: ScheduleId,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let time = "an RFC 3339 time, e.g. 2026-11-24T09:00:00Z";
    let from = super::query::<DateTime<Utc>>(req, "from", time)?;
    let to = super::query::<DateTime<Utc>>(req, "to", time)?;
    let audit = app.services.audit.audit(tenant, id, from, to).await?;
    Ok(view::json_response(StatusCode::OK, &view::audit(&audit)))
}
