//! Flow routes: create, list, read, update (entities, conflict policy, on/off), delete.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::json;

use crate::error::ApiError;
use crate::view;
use crate::App;
use sync_core::domain::{ConflictPolicy, FlowId, FlowPatch, NewFlow, TenantId};

pub(super) const BASE: &str = "/api/flows";
const CREATE_FIELDS: &[&str] = &[
    "source_connection_id",
    "target_connection_id",
    "entities",
    "conflict_policy",
    "doc_number_prefix",
    "enabled",
];
const UPDATE_FIELDS: &[&str] = &["entities", "conflict_policy", "enabled"];
/// The documents a flow wrote carry its prefix: numbering another way is a new flow.
const IMMUTABLE_FIELDS: &[&str] = &[
    "source_connection_id",
    "target_connection_id",
    "doc_number_prefix",
];

pub(super) async fn list(app: &App, tenant: &TenantId) -> Result<Response<Body>, ApiError> {
    let flows = app.services.flows.list(tenant).await?;
    let body: Vec<_> = flows.iter().map(view::flow).collect();
    Ok(view::json_response(StatusCode::OK, &json!(body)))
}

pub(super) async fn get(
    app: &App,
    tenant: &TenantId,
    id: FlowId,
) -> Result<Response<Body>, ApiError> {
    let flow = app.services.flows.get(tenant, id).await?;
    Ok(view::json_response(StatusCode::OK, &view::flow(&flow)))
}

pub(super) async fn delete(
    app: &App,
    tenant: &TenantId,
    id: FlowId,
) -> Result<Response<Body>, ApiError> {
    app.services.flows.delete(tenant, id).await?;
    Ok(view::json_response(
        StatusCode::OK,
        &json!({ "message": "flow deleted" }),
    ))
}

pub(super) async fn create(
    app: &App,
    tenant: &TenantId,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let fields = super::body(app, req, CREATE_FIELDS, &[])?;
    let new = NewFlow {
        source_connection_id: fields.required_parsed("source_connection_id")?,
        target_connection_id: fields.required_parsed("target_connection_id")?,
        entities: fields
            .parsed_list("entities")?
            .ok_or_else(|| ApiError::invalid_field("entities", "entities is required"))?,
        conflict_policy: fields
            .parsed::<ConflictPolicy>("conflict_policy", true)?
            .unwrap_or_default(),
        doc_number_prefix: fields.parsed("doc_number_prefix", true)?,
        enabled: fields.bool("enabled", true)?.unwrap_or(true),
    };
    let flow = app.services.flows.create(tenant, new).await?;
    Ok(view::created(
        &format!("{BASE}/{}", flow.id),
        json!({ "id": flow.id.to_string(), "message": "flow created", "flow": view::flow(&flow) }),
    ))
}

pub(super) async fn update(
    app: &App,
    tenant: &TenantId,
    id: FlowId,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let fields = super::body(app, req, UPDATE_FIELDS, IMMUTABLE_FIELDS)?;
    let patch = FlowPatch {
        entities: fields.parsed_list("entities")?,
        conflict_policy: fields.parsed("conflict_policy", false)?,
        enabled: fields.bool("enabled", false)?,
    };
    if patch.is_empty() {
        return Err(ApiError::bad_request(format!(
            "nothing to update; send at least one of: {}",
            UPDATE_FIELDS.join(", ")
        )));
    }
    let flow = app.services.flows.update(tenant, id, patch).await?;
    Ok(view::json_response(
        StatusCode::OK,
        &json!({ "message": "flow updated", "flow": view::flow(&flow) }),
    ))
}
