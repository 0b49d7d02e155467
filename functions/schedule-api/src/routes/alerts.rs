//! Alerts: `GET /api/alerts[?status=open|resolved]`, `POST /api/alerts/{id}/ack`, and the
//! tenant's destinations under `/api/alerts/destinations`.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::json;

use crate::error::ApiError;
use crate::request::subject;
use crate::view;
use crate::App;
use sync_core::domain::{AlertStatus, DestinationKind, TenantId};
use sync_core::service::{NewDestination, ServiceError};

pub(super) async fn list(
    app: &App,
    tenant: &TenantId,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let status: Option<AlertStatus> = super::query(req, "status", "open or resolved")?;
    let alerts = app.services.alerts.list(tenant, status).await?;
    Ok(view::json_response(
        StatusCode::OK,
        &json!({ "alerts": alerts.iter().map(view::alert).collect::<Vec<_>>() }),
    ))
}

pub(super) async fn ack(
    app: &App,
    tenant: &TenantId,
    id: &str,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let by = subject(req).unwrap_or_else(|| "unknown".into());
    let acked = app.services.alerts.ack(tenant, id, &by).await?;
    Ok(view::json_response(StatusCode::OK, &view::alert(&acked)))
}

pub(super) async fn destinations(app: &App, tenant: &TenantId) -> Result<Response<Body>, ApiError> {
    let found = app.services.alerts.destinations(tenant).await?;
    Ok(view::json_response(
        StatusCode::OK,
        &json!({ "destinations": found.iter().map(view::alert_destination).collect::<Vec<_>>() }),
    ))
}

const FIELDS: &[&str] = &["kind", "name", "url", "secret"];

/// `POST /api/alerts/destinations`: 201 with the destination; a webhook's signing secret
/// made here is in the answer this once (`secret`), never again.
pub(super) async fn add_destination(
    app: &App,
    tenant: &TenantId,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let fields = super::body(app, req, FIELDS, &[])?;
    let kind: DestinationKind = fields.required_parsed("kind")?;
    let name = fields
        .string("name", true)?
        .map_or_else(|| kind.as_str().to_string(), str::to_string);
    let new = NewDestination {
        kind,
        name,
        url: fields.string("url", true)?.map(str::to_string),
        secret: fields.string("secret", true)?.map(str::to_string),
    };
    let (made, secret) = app.services.alerts.add_destination(tenant, new).await?;
    let mut body = view::alert_destination(&made);
    if let Some(secret) = secret {
        body["secret"] = json!(secret);
    }
    Ok(view::created(
        &format!("/api/alerts/destinations/{}", made.id),
        body,
    ))
}

pub(super) async fn remove_destination(
    app: &App,
    tenant: &TenantId,
    id: &str,
) -> Result<Response<Body>, ApiError> {
    app.services
        .alerts
        .remove_destination(tenant, id)
        .await
        .map_err(|e: ServiceError| ApiError::from(e))?;
    Ok(view::json_response(
        StatusCode::OK,
        &json!({ "message": "alert destination removed" }),
    ))
}
