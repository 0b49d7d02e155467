//! The connection-setup Lambda: the API routes that call a platform, so the platform HTTP
//! client is linked here and not into the API function.
//!
//! - `POST /api/connections/{id}/webhooks` makes the platform deliver the connection's
//!   webhooks to its `webhook_url` (creating them, or updating the ones already there for
//!   that URL), with a generated secret stored sealed on the connection; `DELETE` removes
//!   them.
//! - `POST /api/connections/quickbooks/authorize` answers Intuit's consent URL for the
//!   deployment's app, and `GET /oauth/quickbooks/callback` (no JWT: the sealed, single-use
//!   state authenticates it) finishes connecting the company and answers a small HTML page
//!   that says what happened.
//!
//! Same tenant rule, errors and body checks as the API function (`sync_api`).

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Error, Request, RequestExt, Response};
use serde_json::{json, Value};

use sync_api::request::{public_base_url, tenant};
use sync_api::{json_response, ApiError};
use sync_core::config::ApiSettings;
use sync_core::domain::ConnectionId;
use sync_core::service::{
    Callback, ConnectError, QuickBooksConnect, Registration, ServiceError, WebhookSetup,
};
use tracing::Instrument;

/// What a request needs, built once per cold start.
pub struct App {
    pub setup: WebhookSetup,
    pub connect: QuickBooksConnect,
    pub settings: ApiSettings,
    /// How long a request may take before it is answered 504 (inside API Gateway's 30 s).
    pub time_limit: std::time::Duration,
}

impl App {
    /// The function's wiring from its environment (`get` reads one variable) and the
    /// platforms' HTTP client: what its `main` builds in Lambda, and what the local stack
    /// builds on loopback.
    pub fn from_lookup(
        sdk: &sync_aws::SdkConfig,
        get: impl Fn(&str) -> Option<String>,
        http: std::sync::Arc<dyn sync_core::ports::HttpClient>,
    ) -> Result<Self, sync_core::config::ConfigError> {
        let config = sync_core::config::SetupConfig::from_lookup(&get)?;
        let clock = std::sync::Arc::new(sync_core::clock::SystemClock);
        Ok(Self {
            setup: sync_aws::wiring::webhook_setup(sdk, &config, http.clone(), clock.clone()),
            connect: sync_aws::wiring::quickbooks_connect(sdk, &config, http, clock),
            settings: ApiSettings::from_lookup(&get)?,
            time_limit: TIME_LIMIT,
        })
    }
}

/// The default [`App::time_limit`].
pub const TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(25);

/// Answers one request; never fails (every failure is a JSON answer).
/// Every line logged while answering carries the request's id and its tenant.
pub async fn handle(app: &App, req: Request) -> Result<Response<Body>, Error> {
    let span = sync_api::request::span(&req, &app.settings.tenant_claim);
    let response = match answer(app, &req).instrument(span.clone()).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    let _in = span.enter();
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
    match segments.as_slice() {
        ["oauth", "quickbooks", "callback"] => Ok(callback(app, req).await),
        ["api", "connections", "quickbooks", "authorize"] => authorize(app, req).await,
        ["api", "connections", id, "webhooks"] => webhooks(app, req, id).await,
        _ => Err(ApiError::not_found("no such route")),
    }
}

/// Runs `work` within the time limit (API Gateway gives the function 30 s; answer before it
/// answers for us).
async fn in_time<T>(
    app: &App,
    work: impl std::future::Future<Output = Result<T, ApiError>>,
    what: &str,
) -> Result<T, ApiError> {
    tokio::time::timeout(app.time_limit, work)
        .await
        .map_err(|_| ApiError::platform_timeout(what.to_string()))?
}

async fn webhooks(app: &App, req: &Request, id: &str) -> Result<Response<Body>, ApiError> {
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
    // Both calls are idempotent, so the client can simply send the request again.
    let registration = in_time(
        app,
        work,
        "the platform did not finish in time; what was done stays and sending the request again completes it",
    )
    .await?;
    let message = if *req.method() == Method::POST {
        "webhooks registered at the platform"
    } else {
        "webhooks removed at the platform"
    };
    Ok(json_response(StatusCode::OK, &view(&registration, message)))
}

async fn authorize(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    let tenant = tenant(req, &app.settings.tenant_claim)?;
    if *req.method() != Method::POST {
        return Err(ApiError::method_not_allowed("POST"));
    }
    let base = public_base_url(&app.settings, req);
    let (url, expires) = app
        .connect
        .authorize(&tenant, &base)
        .await
        .map_err(|e| match e {
            ConnectError::NotConfigured => ApiError::conflict(
                "this deployment has no Intuit app (template parameters QuickBooksClientId and QuickBooksClientSecret); connect a company with your own app instead: create a quickbooks connection with client_id, client_secret and refresh_token secrets",
            ),
            other => {
                tracing::error!(error = %other, "could not start connecting QuickBooks");
                ApiError::unavailable()
            }
        })?;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "authorize_url": url,
            "redirect_uri": app.connect.redirect_uri(&base),
            "expires_at": expires.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        }),
    ))
}

/// Text for an HTML page.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn page(status: StatusCode, title: &str, text: &str) -> Response<Body> {
    let html = format!(
        "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>{t}</title><h1>{t}</h1><p>{}</p></html>",
        escape(text),
        t = escape(title),
    );
    let mut response = Response::new(Body::Text(html));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    let value = lambda_http::http::HeaderValue::from_static;
    headers.insert("content-type", value("text/html; charset=utf-8"));
    // The URL carried a code and a state: keep them out of caches and referrers.
    headers.insert("cache-control", value("no-store"));
    headers.insert("referrer-policy", value("no-referrer"));
    response
}

async fn callback(app: &App, req: &Request) -> Response<Body> {
    if *req.method() != Method::GET {
        return page(
            StatusCode::METHOD_NOT_ALLOWED,
            "Not connected",
            "Open this address from QuickBooks' consent screen.",
        );
    }
    let query = req.query_string_parameters_ref();
    let param = |name: &str| query.and_then(|q| q.first(name)).map(str::to_string);
    let back = Callback {
        code: param("code"),
        state: param("state"),
        realm_id: param("realmId"),
        error: param("error"),
    };
    let base = public_base_url(&app.settings, req);
    let result = tokio::time::timeout(app.time_limit, app.connect.callback(&back, &base)).await;
    let failed = |status, text: &str| page(status, "QuickBooks was not connected", text);
    match result {
        Err(_) => failed(
            StatusCode::GATEWAY_TIMEOUT,
            "Intuit did not answer in time. Start connecting again.",
        ),
        Ok(Ok(done)) => {
            let realm = done.connection.config_str("realm_id").unwrap_or_default();
            let what = if done.created {
                "is now connected"
            } else {
                "is connected again"
            };
            page(
                StatusCode::OK,
                "QuickBooks connected",
                &format!(
                    "The QuickBooks company {realm} {what} (connection {}). You can close this window.",
                    done.connection.id
                ),
            )
        }
        Ok(Err(ConnectError::BadState(why))) => failed(StatusCode::BAD_REQUEST, why),
        Ok(Err(ConnectError::Refused(why))) => failed(StatusCode::BAD_REQUEST, &why),
        Ok(Err(ConnectError::NotConfigured)) => failed(
            StatusCode::NOT_FOUND,
            "This deployment does not connect companies through its own Intuit app.",
        ),
        Ok(Err(ConnectError::Unavailable(why))) => {
            tracing::warn!(error = %why, "connecting QuickBooks failed");
            failed(
                StatusCode::BAD_GATEWAY,
                "Intuit or our storage could not be reached. Start connecting again in a moment.",
            )
        }
        Ok(Err(ConnectError::Service(e))) => {
            tracing::error!(error = %e, "storing the QuickBooks connection failed");
            let status = match e {
                ServiceError::Conflict(_) => StatusCode::CONFLICT,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            failed(
                status,
                "The connection could not be stored. Start connecting again.",
            )
        }
    }
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
