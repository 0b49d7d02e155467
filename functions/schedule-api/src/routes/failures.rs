//! Records that keep failing: `GET /api/sync/failures?connection_id=…[&entity_type=…]`
//! (paged with `limit` and `next`), the tenant's connection's kept failures, quarantined or
//! not, each with its error, tries and times; and `POST /api/sync/failures/retry`, which
//! tries those a filter matches again.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::json;

use crate::error::ApiError;
use crate::view;
use crate::App;
use sync_core::domain::{ConnectionId, EntityType, TenantId};
use sync_core::ports::RunListError;
use sync_core::service::{FailureFilter, ServiceError};

const RETRY_FIELDS: &[&str] = &[
    "connection_id",
    "entity_type",
    "error_contains",
    "error_code",
    "failed_from",
    "failed_to",
    "not_quarantined_too",
];

/// `POST /api/sync/failures/retry`: every part of the body narrows which kept failures
/// are tried again (by default the tenant's quarantined records, all of them).
pub(super) async fn retry(
    app: &App,
    tenant: &TenantId,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let fields = super::body(app, req, RETRY_FIELDS, &[])?;
    let filter = FailureFilter {
        connection_id: fields.parsed("connection_id", true)?,
        entity_type: fields.parsed("entity_type", true)?,
        error_contains: fields
            .string("error_contains", true)?
            .filter(|t| !t.is_empty())
            .map(str::to_string),
        error_code: fields
            .string("error_code", true)?
            .filter(|t| !t.is_empty())
            .map(str::to_string),
        failed_from: fields.time("failed_from")?,
        failed_to: fields.time("failed_to")?,
        not_quarantined_too: fields.bool("not_quarantined_too", true)?.unwrap_or(false),
    };
    let retried = app
        .services
        .operations
        .retry_failures(tenant, filter)
        .await?;
    Ok(view::retried(&retried))
}

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 100;

pub(super) async fn list(
    app: &App,
    tenant: &TenantId,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let param = |name: &str| {
        req.query_string_parameters_ref()
            .and_then(|q| q.first(name))
            .map(str::to_string)
    };
    let connection: ConnectionId = param("connection_id")
        .ok_or_else(|| {
            ApiError::invalid_field(
                "connection_id",
                "connection_id is required: the connection whose failed records to list",
            )
        })?
        .parse()
        .map_err(|_| {
            ApiError::invalid_field("connection_id", "connection_id must be a connection id")
        })?;
    let entity = match param("entity_type") {
        None => None,
        Some(text) => Some(text.parse::<EntityType>().map_err(|_| {
            ApiError::invalid_field(
                "entity_type",
                "entity_type must be one of orders, customers, products",
            )
        })?),
    };
    let limit = match param("limit") {
        None => DEFAULT_LIMIT,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::invalid_field("limit", "limit must be a number from 1 to 100")
            })?,
    };
    // Another tenant's connection is simply not found.
    app.services.connections.get(tenant, connection).await?;
    let page = app
        .services
        .failures
        .list(connection, entity, limit, param("next").as_deref())
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
            "failures": page
                .failures
                .iter()
                .filter(|f| &f.tenant_id == tenant)
                .map(view::failure)
                .collect::<Vec<_>>(),
            "next": page.next,
        }),
    ))
}
