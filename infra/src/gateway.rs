//! The local HTTP gateway: serves the template's routes on loopback by turning each HTTP
//! request into the API Gateway v2 (HTTP API) event Lambda would receive, checking the JWT
//! the way the authorizer would on `/api` routes (the webhook routes have none, as in the
//! template), and calling the same handler the Lambda runs.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Map, Value};
use std::convert::Infallible;
use std::sync::Arc;
use tokio::net::TcpListener;

use crate::jwt::LocalJwt;

/// API Gateway HTTP APIs refuse payloads over 10 MB before the function sees them.
pub const MAX_PAYLOAD_BYTES: usize = 10 * 1024 * 1024;

/// What the gateway routes to.
pub struct Gateway {
    pub schedules: schedule_api::App,
    pub setup: connection_setup::App,
    pub webhooks: webhook_intake::App,
    pub jwt: LocalJwt,
}

/// Which function a template route belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    /// The API function, behind the JWT authorizer.
    Api,
    /// The connection-setup function (`/api/connections/{id}/webhooks`,
    /// `/api/connections/quickbooks/authorize`), behind it too.
    Setup,
    /// The connection-setup function's OAuth callback, with no authorizer (the sealed,
    /// single-use state authenticates it).
    Callback,
    /// The webhook intake, with no authorizer.
    Webhooks,
}

/// Serves connections from `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, gateway: Arc<Gateway>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                continue;
            }
        };
        let gateway = gateway.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let gateway = gateway.clone();
                async move { Ok::<_, Infallible>(answer(&gateway, req, peer.ip().to_string()).await) }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
}

/// The token of an `Authorization: Bearer …` header; the scheme is case-insensitive
/// (RFC 7235), so `bearer` and `BEARER` work too.
fn bearer(headers: &hyper::HeaderMap) -> Option<&str> {
    let value = headers.get("authorization")?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The verified claims of an `/api` request, or why it is refused. A tenant claim that is
/// there must be a JSON string: a token whose tenant is `null`, a boolean, a number, a list
/// or an object is refused here, before its text form could become a tenant. (API Gateway
/// hands claims over as text; the handler refuses the text forms of all but numbers too.)
/// A token without the claim passes, as it does API Gateway's authorizer, and the handler
/// answers it.
fn api_claims(gateway: &Gateway, headers: &hyper::HeaderMap) -> Result<Value, &'static str> {
    let token = bearer(headers).ok_or("no bearer token")?;
    let claims = gateway.jwt.verify(token, chrono::Utc::now().timestamp())?;
    let tenant_claim = &gateway.schedules.settings.tenant_claim;
    match claims.get(tenant_claim) {
        Some(Value::String(_)) | None => {}
        Some(_) => return Err("the tenant claim is not a string"),
    }
    Ok(json!({ "jwt": { "claims": LocalJwt::as_gateway_claims(claims), "scopes": null } }))
}

/// An answer API Gateway gives itself, before any function runs (no route, authorizer
/// refusal, payload limit), in API Gateway's own `{"message": …}` shape, which an HTTP API
/// cannot change: imitated on purpose so local clients meet what AWS answers (README, errors).
fn plain(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(
        json!({ "message": message }).to_string(),
    )));
    *response.status_mut() = status;
    response.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

/// The function, route key and path parameters of the template route a request falls under.
fn route(method: &str, path: &str) -> Option<(Target, &'static str, Map<String, Value>)> {
    let mut params = Map::new();
    if path == "/oauth/quickbooks/callback" {
        return (method == "GET").then_some((
            Target::Callback,
            "GET /oauth/quickbooks/callback",
            params,
        ));
    }
    if path == "/api/connections/quickbooks/authorize" && method == "POST" {
        return Some((
            Target::Setup,
            "POST /api/connections/quickbooks/authorize",
            params,
        ));
    }
    // API Gateway picks the most specific route: this one before /api/{proxy+}.
    if let Some(id) = path
        .strip_prefix("/api/connections/")
        .and_then(|rest| rest.strip_suffix("/webhooks"))
        .filter(|id| !id.is_empty() && !id.contains('/'))
    {
        params.insert("id".into(), json!(id));
        return Some((Target::Setup, "ANY /api/connections/{id}/webhooks", params));
    }
    if let Some(proxy) = path.strip_prefix("/api/") {
        params.insert("proxy".into(), json!(proxy));
        return Some((Target::Api, "ANY /api/{proxy+}", params));
    }
    let rest = path.strip_prefix("/webhooks/")?;
    let Some((platform, connection)) = rest.split_once('/') else {
        // The deployment app's one URL per platform.
        if rest.is_empty() || method != "POST" {
            return None;
        }
        params.insert("platform".into(), json!(rest));
        return Some((Target::Webhooks, "POST /webhooks/{platform}", params));
    };
    if platform.is_empty() || connection.is_empty() || connection.contains('/') {
        return None;
    }
    params.insert("platform".into(), json!(platform));
    params.insert("connection_id".into(), json!(connection));
    Some((
        Target::Webhooks,
        "ANY /webhooks/{platform}/{connection_id}",
        params,
    ))
}

async fn answer(
    gateway: &Gateway,
    req: Request<Incoming>,
    source_ip: String,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_PAYLOAD_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return plain(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large"),
    };
    let path = parts.uri.path().to_string();
    let Some((target, route_key, path_parameters)) = route(parts.method.as_str(), &path) else {
        return plain(StatusCode::NOT_FOUND, "Not Found");
    };
    let authorizer = match target {
        Target::Api | Target::Setup => match api_claims(gateway, &parts.headers) {
            Ok(authorizer) => authorizer,
            Err(reason) => {
                tracing::info!(path = %sync_core::logtext::clip(&path), reason, "token refused");
                return plain(StatusCode::UNAUTHORIZED, "Unauthorized");
            }
        },
        Target::Webhooks | Target::Callback => Value::Null,
    };

    let mut headers = Map::new();
    for (name, value) in &parts.headers {
        let text = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match headers.get_mut(name.as_str()) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&text);
            }
            _ => {
                headers.insert(name.as_str().to_string(), json!(text));
            }
        }
    }
    let (body_text, is_base64) = match std::str::from_utf8(&body) {
        Ok(text) => (text.to_string(), false),
        Err(_) => (STANDARD.encode(&body), true),
    };
    let now_ms = chrono::Utc::now().timestamp_millis();
    let mut event = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": parts.uri.query().unwrap_or(""),
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": "localhost",
            "domainPrefix": "localhost",
            "http": {
                "method": parts.method.as_str(),
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": parts.headers.get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or(""),
            },
            "requestId": uuid::Uuid::new_v4().to_string(),
            "routeKey": route_key,
            "stage": "$default",
            "time": chrono::Utc::now().format("%d/%b/%Y:%H:%M:%S +0000").to_string(),
            "timeEpoch": now_ms,
        },
        "isBase64Encoded": is_base64,
    });
    if !authorizer.is_null() {
        event["requestContext"]["authorizer"] = authorizer;
    }
    if !path_parameters.is_empty() {
        event["pathParameters"] = Value::Object(path_parameters);
    }
    if !body.is_empty() {
        event["body"] = json!(body_text);
    }
    let request = match lambda_http::request::from_str(&event.to_string()) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "could not build the Lambda event");
            return plain(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
        }
    };
    let handled = match target {
        Target::Api => schedule_api::handle(&gateway.schedules, request).await,
        Target::Setup | Target::Callback => connection_setup::handle(&gateway.setup, request).await,
        Target::Webhooks => webhook_intake::handle(&gateway.webhooks, request).await,
    };
    match handled {
        Ok(response) => to_hyper(response),
        Err(e) => {
            tracing::error!(error = %e, "handler failed");
            plain(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
        }
    }
}

fn to_hyper(response: lambda_http::Response<lambda_http::Body>) -> Response<Full<Bytes>> {
    let (parts, body) = response.into_parts();
    let bytes = match body {
        lambda_http::Body::Text(t) => Bytes::from(t),
        lambda_http::Body::Binary(b) => Bytes::from(b),
        _ => Bytes::new(),
    };
    let mut out = Response::new(Full::new(bytes));
    *out.status_mut() = parts.status;
    *out.headers_mut() = parts.headers;
    out
}
