//! The webhook intake Lambda: `POST /webhooks/{platform}/{connection_id}`, no JWT; the
//! connection's own secret authenticates each delivery (see [`sync_core::service::Intake`]).
//! `POST /webhooks/{platform}` is the deployment's app-wide URL (QuickBooks sends every
//! company's webhooks for one app to one URL): the app's secret authenticates it and each
//! company's events go to the connections made for it through the app.
//!
//! Answers: 200 for an accepted delivery (also for duplicates and ignored events, so the
//! platform stops retrying) and for WooCommerce's creation ping; 401 with a generic body for
//! anything that fails authentication (the reason is only logged); 400 for a signed but
//! malformed body; 404/405 for other paths and methods; 413 over the size limit; 415 for a
//! non-JSON body; 503 when a dependency fails, so the platform retries. It never calls a
//! platform, so it answers well inside QuickBooks' 3 seconds.

use lambda_http::http::{Method, StatusCode};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Error, Request, RequestExt, Response};
use serde_json::{json, Value};
use std::collections::HashMap;
use tracing::Instrument;

use std::sync::Arc;
use sync_aws::metrics::Metric;
use sync_aws::SdkConfig;
use sync_core::clock::SystemClock;
use sync_core::config::{ConfigError, IntakeConfig};
use sync_core::service::{Delivery, Intake, IntakeError, Outcome};

/// What the handler needs, built once per cold start.
pub struct App {
    pub intake: Intake,
    pub max_body_bytes: usize,
    /// Where the deliveries' metrics go (`METRICS_NAMESPACE`).
    pub metrics_namespace: String,
}

impl App {
    /// The function's wiring from its environment (`get` reads one variable): what its
    /// `main` builds in Lambda, and what the local stack builds on loopback.
    pub fn from_lookup(
        sdk: &SdkConfig,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let metrics_namespace = sync_core::config::metrics_namespace(&get);
        let config = IntakeConfig::from_lookup(get)?;
        Ok(Self {
            intake: sync_aws::wiring::intake(sdk, &config, Arc::new(SystemClock)),
            max_body_bytes: config.max_body_bytes,
            metrics_namespace,
        })
    }
}

fn respond(status: StatusCode, body: &Value) -> Response<Body> {
    let mut response = Response::new(Body::Text(body.to_string()));
    *response.status_mut() = status;
    if let Ok(v) = "application/json".parse() {
        response.headers_mut().insert("content-type", v);
    }
    response
}

fn error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    respond(
        status,
        &json!({ "error": { "code": code, "message": message } }),
    )
}

/// Answers one delivery. Never returns `Err`.
pub async fn handle(app: &App, req: Request) -> Result<Response<Body>, Error> {
    let path = req.uri().path().to_string();
    // Every line logged for the delivery carries the request's id and the connection the
    // URL names (only an id that reads as one: the path is the sender's).
    let span = tracing::info_span!(
        "delivery",
        request_id = match req.request_context_ref() {
            Some(RequestContext::ApiGatewayV2(ctx)) => ctx.request_id.clone().unwrap_or_default(),
            _ => String::new(),
        },
        connection_id = tracing::field::Empty,
    );
    if let Some(id) = path
        .rsplit('/')
        .next()
        .and_then(|id| id.parse::<sync_core::domain::ConnectionId>().ok())
    {
        span.record("connection_id", tracing::field::display(id));
    }
    let response = answer(app, &req, &path).instrument(span.clone()).await;
    let _in = span.enter();
    tracing::info!(path = %sync_core::logtext::clip(&path), status = response.status().as_u16(), "webhook");
    println!(
        "{}",
        metrics(&app.metrics_namespace, &response, chrono::Utc::now())
    );
    Ok(response)
}

/// What one delivery came to, as one metrics log line (CloudWatch's embedded metric format;
/// dimension `Function=WebhookIntake`): its events queued, duplicate and ignored, or the
/// delivery refused (4xx: a bad signature among them) or failed (5xx: the platform retries).
pub fn metrics(
    namespace: &str,
    response: &Response<Body>,
    at: chrono::DateTime<chrono::Utc>,
) -> String {
    let status = response.status();
    let answer: Value = match response.body() {
        Body::Text(text) if status == StatusCode::OK => {
            serde_json::from_str(text).unwrap_or_default()
        }
        _ => Value::Null,
    };
    let n = |field: &str| answer[field].as_u64().unwrap_or(0);
    sync_aws::metrics::emf(
        namespace,
        &[("Function", "WebhookIntake")],
        &[
            Metric::count("WebhookEventsQueued", n("queued")),
            Metric::count("WebhookEventsDuplicate", n("duplicates")),
            Metric::count("WebhookEventsIgnored", n("ignored")),
            Metric::count(
                "WebhookDeliveriesRefused",
                u64::from(status.is_client_error()),
            ),
            Metric::count(
                "WebhookDeliveriesFailed",
                u64::from(status.is_server_error()),
            ),
        ],
        at,
    )
}

async fn answer(app: &App, req: &Request, path: &str) -> Response<Body> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (platform, connection_id) = match segments.as_slice() {
        ["webhooks", platform, connection_id] => (*platform, Some(*connection_id)),
        ["webhooks", platform] => (*platform, None),
        _ => return error(StatusCode::NOT_FOUND, "not_found", "no such webhook route"),
    };
    if req.method() != Method::POST {
        let mut r = error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "webhooks are POSTed",
        );
        if let Ok(v) = "POST".parse() {
            r.headers_mut().insert("allow", v);
        }
        return r;
    }
    let body: &[u8] = match req.body() {
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b,
        _ => b"",
    };
    if body.len() > app.max_body_bytes {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the delivery is too large",
        );
    }
    let mut headers: HashMap<String, String> = HashMap::new();
    for (name, value) in req.headers() {
        let text = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.as_str().to_ascii_lowercase())
            .and_modify(|v| {
                v.push(',');
                v.push_str(&text);
            })
            .or_insert(text);
    }
    let outcome = match connection_id {
        Some(connection_id) => {
            let delivery = Delivery {
                platform,
                connection_id,
                headers: &headers,
                body,
            };
            app.intake.handle(&delivery).await
        }
        None => app.intake.handle_app(platform, &headers, body).await,
    };
    match outcome {
        Ok(Outcome::Ping) => respond(StatusCode::OK, &json!({ "status": "ok" })),
        Ok(Outcome::Accepted {
            queued,
            duplicates,
            ignored,
        }) => respond(
            StatusCode::OK,
            &json!({ "queued": queued, "duplicates": duplicates, "ignored": ignored }),
        ),
        Err(IntakeError::Unauthorized(_)) => error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the delivery could not be authenticated",
        ),
        Err(IntakeError::UnsupportedMediaType) => error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "deliveries must be JSON",
        ),
        Err(IntakeError::BadPayload(message)) => {
            error(StatusCode::BAD_REQUEST, "invalid_payload", &message)
        }
        Err(IntakeError::Unavailable(detail)) => {
            tracing::error!(detail = %detail, "webhook not accepted; the platform will retry");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
                "the delivery was not accepted; retry later",
            )
        }
    }
}

#[cfg(test)]
mod tests;
