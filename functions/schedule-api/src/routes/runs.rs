//! Run history: `GET /api/sync/runs` (newest first, filtered, paged) and
//! `GET /api/sync/runs/{id}`.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::json;

use crate::error::ApiError;
use crate::view;
use crate::App;
use sync_core::domain::{RunFilter, RunId, RunStatus, TenantId};
use sync_core::ports::RunListError;
use sync_core::service::ServiceError;

const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 100;

/// One run of the tenant's; another tenant's run, or a malformed id, is simply not found.
pub(super) async fn get(
    app: &App,
    tenant: &TenantId,
    raw: &str,
) -> Result<Response<Body>, ApiError> {
    let id: RunId = raw
        .parse()
        .map_err(|_| ApiError::not_found("no run with that id"))?;
    let run = app
        .services
        .runs
        .get(tenant, &id)
        .await
        .map_err(ServiceError::from)?
        .ok_or_else(|| ApiError::not_found("no run with that id"))?;
    Ok(view::json_response(StatusCode::OK, &view::run(&run)))
}

/// A query parameter parsed with `FromStr`, its error naming the parameter.
fn query<T: std::str::FromStr>(
    req: &Request,
    name: &str,
    what: &str,
) -> Result<Option<T>, ApiError> {
    match req
        .query_string_parameters_ref()
        .and_then(|q| q.first(name))
    {
        None => Ok(None),
        Some(text) => text
            .parse()
            .map(Some)
            .map_err(|_| ApiError::invalid_field(name, format!("{name} must be {what}"))),
    }
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
