//! The connection-setup Lambda: `POST /api/connections/{id}/webhooks` makes the platform
//! deliver the connection's webhooks to its `webhook_url` (creating them, or updating the
//! ones already there for that URL), with a generated secret stored sealed on the connection;
//! `DELETE` removes them. It is the one API route that calls a platform, so it is a function
//! of its own: the platform HTTP client is linked here and not into the API function.
//!
//! Same tenant rule, errors and body checks as the API function (`sync_api`).

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Error, Request, Response};
use serde_json::{json, Value};

use sync_api::request::{public_base_url, tenant};
use sync_api::{json_response, ApiError};
use sync_core::config::ApiSettings;
use sync_core::domain::ConnectionId;
use sync_core::service::{Registration, WebhookSetup};

/// What a request needs, built once per cold start.
pub struct App {
    pub setup: WebhookSetup,
    pub settings: ApiSettings,
    /// How long a request may take before it is answered 504 (inside API Gateway's 30 s).
    pub time_limit: std::time::Duration,
}

/// The default [`App::time_limit`].
pub const TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(25);

/// Answers one request; never fails (every failure is a JSON answer).
pub async fn handle(app: &App, req: Request) -> Result<Response<Body>, Error> {
    let response = match answer(app, &req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    tracing::info!(
        method = %req.method(),
        path = %sync_core::logtext::clip(req.uri().path()),
        status = response.status().as_u16(),
        "request"
    );
    Ok(response)
}

async fn answer(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    let segments: Vec<&str> = req.uri().path().trim_matches('/').split('/').collect();
    let ["api", "connections", id, "webhooks"] = segments.as_slice() else {
        return Err(ApiError::not_found("no such route"));
    };
    let tenant = tenant(req, &app.settings.tenant_claim)?;
    let id: ConnectionId = id
        .parse()
        .map_err(|_| ApiError::not_found("no connection with that id"))?;
    let base = public_base_url(&app.settings, req);
    let work = async {
        match *req.method() {
            Method::POST => Ok(app.setup.register(&tenant, id, &base).await?),
            Method::DELETE => Ok(app.setup.unregister(&tenant, id, &base).await?),
            _ => Err(ApiError::method_not_allowed("POST, DELETE")),
        }
    };
    // API Gateway gives the function 30 s; answer in JSON before it answers for us. Both
    // calls are idempotent, so the client can simply send the request again.
    let registration = tokio::time::timeout(app.time_limit, work)
        .await
        .map_err(|_| {
            ApiError::platform_timeout(
                "the platform did not finish in time; what was done stays and sending the request again completes it",
            )
        })??;
    let message = if *req.method() == Method::POST {
        "webhooks registered at the platform"
    } else {
        "webhooks removed at the platform"
    };
    Ok(json_response(StatusCode::OK, &view(&registration, message)))
}

fn view(r: &Registration, message: &str) -> Value {
    json!({
        "message": message,
        "connection_id": r.connection.id.to_string(),
        "webhook_url": r.webhook_url,
        "webhooks_enabled": r.connection.webhooks_enabled,
        "secrets": r.connection.secret_hints,
        "subscriptions": r.subscriptions.iter().map(|s| json!({
            "id": s.id,
            "topic": s.topic,
            "status": s.status,
            "change": s.change.as_str(),
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests;
