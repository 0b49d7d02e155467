//! The local HTTP gateway: serves the template's routes on loopback by turning each HTTP
//! request into the API Gateway v2 (HTTP API) event Lambda would receive, checking the JWT
//! the way the authorizer would on the routes that have it, and calling the same handler
//! the Lambda runs. The routes, their functions and their guards are
//! [`sync_api::routes::GATEWAY_ROUTES`], the table `template.yaml` is checked against.

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
use sync_api::routes::{gateway_route, Auth, Function};

/// API Gateway HTTP APIs refuse payloads over 10 MB before the function sees them.
pub const MAX_PAYLOAD_BYTES: usize = 10 * 1024 * 1024;

/// What the gateway routes to.
pub struct Gateway {
    pub schedules: schedule_api::App,
    pub setup: connection_setup::App,
    pub webhooks: webhook_intake::App,
    pub jwt: LocalJwt,
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
    let Some((route, params)) = gateway_route(parts.method.as_str(), &path) else {
        return plain(StatusCode::NOT_FOUND, "Not Found");
    };
    let route_key = route.key();
    let authorizer = match route.auth {
        Auth::Jwt => match api_claims(gateway, &parts.headers) {
            Ok(authorizer) => authorizer,
            Err(reason) => {
                tracing::info!(path = %sync_core::logtext::clip(&path), reason, "token refused");
                return plain(StatusCode::UNAUTHORIZED, "Unauthorized");
            }
        },
        Auth::None => Value::Null,
    };
    let path_parameters: Map<String, Value> = params
        .iter()
        .map(|(name, value)| (name.to_string(), json!(value)))
        .collect();

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
    let handled = match route.function {
        Function::Api => schedule_api::handle(&gateway.schedules, request).await,
        Function::ConnectionSetup => connection_setup::handle(&gateway.setup, request).await,
        Function::WebhookIntake => webhook_intake::handle(&gateway.webhooks, request).await,
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
