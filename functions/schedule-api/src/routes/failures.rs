//! Records that keep failing: `GET /api/sync/failures?connection_id=…[&entity_type=…]`
//! (paged with `limit` and `next`), the tenant's connection's kept failures, quarantined or
//! not, each with its error, tries and times.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::json;

use crate::error::ApiError;
use crate::view;
use crate::App;
use sync_core::domain::{ConnectionId, EntityType, TenantId};
use sync_core::ports::RunListError;
use sync_core::service::ServiceError;

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
