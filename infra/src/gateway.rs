//! The local HTTP gateway: serves the template's routes on loopback by turning each HTTP
//! request into the API Gateway v2 (HTTP API) event Lambda would receive, checking the JWT
//! the way the authorizer would, and calling the same handler the Lambda runs.

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

/// The route key and path parameters of the template route a path falls under.
fn route(path: &str) -> Option<(&'static str, Map<String, Value>)> {
    let proxy = path.strip_prefix("/api/")?;
    let mut params = Map::new();
    params.insert("proxy".into(), json!(proxy));
    Some(("ANY /api/{proxy+}", params))
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
    let Some((route_key, path_parameters)) = route(&path) else {
        return plain(StatusCode::NOT_FOUND, "Not Found");
    };
    let token = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        });
    let now = chrono::Utc::now().timestamp();
    let claims = match token.map(|t| gateway.jwt.verify(t.trim(), now)) {
        Some(Ok(claims)) => claims,
        Some(Err(reason)) => {
            tracing::info!(%path, reason, "token refused");
            return plain(StatusCode::UNAUTHORIZED, "Unauthorized");
        }
        None => return plain(StatusCode::UNAUTHORIZED, "Unauthorized"),
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
            "authorizer": { "jwt": { "claims": claims, "scopes": null } },
        },
        "isBase64Encoded": is_base64,
    });
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
    match schedule_api::handle(&gateway.schedules, request).await {
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
