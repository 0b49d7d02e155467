//! Connection routes: create, list, read, update (rename, reconfigure, rotate secrets,
//! switch webhooks), delete, and the connection's webhook event log.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::request::Fields;
use crate::view;
use crate::App;
use sync_core::domain::{
    ConnectionId, ConnectionPatch, NewConnection, Platform, Secret, Secrets, TenantId,
};

pub(super) const BASE: &str = "/api/connections";
const CREATE_FIELDS: &[&str] = &[
    "platform",
    "display_name",
    "config",
    "secrets",
    "webhooks_enabled",
];
const UPDATE_FIELDS: &[&str] = &["display_name", "config", "secrets", "webhooks_enabled"];

/// The base URL webhooks are sent to: configured, or this API's own domain.
fn base_url(app: &App, req: &Request) -> String {
    sync_api::request::public_base_url(&app.settings, req)
}

fn secrets_field(fields: &Fields) -> Result<Secrets, ApiError> {
    let Some(map) = fields.object("secrets")? else {
        return Ok(Secrets::new());
    };
    map.iter()
        .map(|(name, value)| match value {
            Value::String(v) => Ok((name.clone(), Secret::new(v.clone()))),
            _ => Err(ApiError::invalid_field(
                format!("secrets.{name}"),
                format!("secrets.{name} must be a string"),
            )),
        })
        .collect()
}

fn config_field(fields: &Fields) -> Result<Map<String, Value>, ApiError> {
    Ok(fields.object("config")?.cloned().unwrap_or_default())
}

pub(super) async fn list(
    app: &App,
    tenant: &TenantId,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let base = base_url(app, req);
    let all = app.services.connections.list(tenant).await?;
    let body: Vec<_> = all.iter().map(|c| view::connection(c, &base)).collect();
    Ok(view::json_response(StatusCode::OK, &json!(body)))
}

pub(super) async fn get(
    app: &App,
    tenant: &TenantId,
    id: ConnectionId,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let c = app.services.connections.get(tenant, id).await?;
    Ok(view::json_response(
        StatusCode::OK,
        &view::connection(&c, &base_url(app, req)),
    ))
}

pub(super) async fn create(
    app: &App,
    tenant: &TenantId,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let fields = super::body(app, req, CREATE_FIELDS, &[])?;
    let platform: Platform = fields.required_parsed("platform")?;
    let new = NewConnection {
        platform,
        display_name: fields
            .string("display_name", false)?
            .ok_or_else(|| ApiError::invalid_field("display_name", "display_name is required"))?
            .to_string(),
        config: config_field(&fields)?,
        secrets: secrets_field(&fields)?,
        webhooks_enabled: fields.bool("webhooks_enabled", true)?,
    };
    let c = app.services.connections.create(tenant, new).await?;
    let connection = view::connection(&c, &base_url(app, req));
    Ok(view::created(
        &format!("{BASE}/{}", c.id),
        json!({ "id": c.id.to_string(), "message": "connection created", "connection": connection }),
    ))
}

pub(super) async fn update(
    app: &App,
    tenant: &TenantId,
    id: ConnectionId,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let fields = super::body(app, req, UPDATE_FIELDS, &["platform"])?;
    let patch = ConnectionPatch {
        display_name: fields.string("display_name", false)?.map(str::to_string),
        config: config_field(&fields)?,
        secrets: secrets_field(&fields)?,
        webhooks_enabled: fields.bool("webhooks_enabled", false)?,
    };
    if patch.is_empty() {
        return Err(ApiError::bad_request(format!(
            "nothing to update; send at least one of: {}",
            UPDATE_FIELDS.join(", ")
        )));
    }
    let c = app.services.connections.update(tenant, id, patch).await?;
    Ok(view::json_response(
        StatusCode::OK,
        &json!({ "message": "connection updated", "connection": view::connection(&c, &base_url(app, req)) }),
    ))
}

pub(super) async fn delete(
    app: &App,
    tenant: &TenantId,
    id: ConnectionId,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let cascade = match req
        .query_string_parameters_ref()
        .and_then(|q| q.first("cascade"))
    {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(ApiError::invalid_field(
                "cascade",
                "cascade must be true or false",
            ))
        }
    };
    app.services.connections.delete(tenant, id, cascade).await?;
    Ok(view::json_response(
        StatusCode::OK,
        &json!({ "message": "connection deleted" }),
    ))
}

/// `GET /api/connections/{id}/streams`: each stream of the connection, its cursor (and who
/// set it by hand), whether a run works on it, a follow-up waits, and its last webhooks.
pub(super) async fn streams(
    app: &App,
    tenant: &TenantId,
    id: ConnectionId,
) -> Result<Response<Body>, ApiError> {
    let streams = app.services.operations.streams(tenant, id).await?;
    Ok(view::json_response(
        StatusCode::OK,
        &json!({
            "connection_id": id.to_string(),
            "streams": streams
                .iter()
                .map(|(entity, s)| view::stream(*entity, s))
                .collect::<Vec<_>>(),
        }),
    ))
}

pub(super) async fn events(
    app: &App,
    tenant: &TenantId,
    id: ConnectionId,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    // The connection must be the tenant's before anything of it is shown.
    app.services.connections.get(tenant, id).await?;
    let query = req.query_string_parameters_ref();
    let limit = match query.and_then(|q| q.first("limit")) {
        None => 50,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| ApiError::invalid_field("limit", "limit must be from 1 to 100"))?,
    };
    let next = query.and_then(|q| q.first("next")).map(str::to_string);
    let page = app
        .services
        .events
        .list(id, limit, next.as_deref(), app.services.schedules.now())
        .await
        .map_err(|e| match e {
            sync_core::ports::EventLogError::BadCursor => {
                ApiError::invalid_field("next", "next is not a cursor this API returned")
            }
            other => sync_core::service::ServiceError::Unavailable(other.to_string()).into(),
        })?;
    Ok(view::json_response(
        StatusCode::OK,
        &json!({
            "events": page.events.iter().map(view::event).collect::<Vec<_>>(),
            "next": page.next,
        }),
    ))
}
