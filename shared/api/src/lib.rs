//! What every Lambda behind the HTTP API shares, so each answers the same way:
//!
//! - [`request`]: the tenant from the JWT authorizer's claims (nothing else can name one),
//!   and JSON object bodies checked for media type, size and syntax, read field by field.
//! - [`error`]: the one error type, its status codes and its JSON body
//!   `{"error": {"code", "message", "field"}}`.
//! - [`routes`]: every route of the HTTP API, which function serves it and how it is
//!   guarded; the API function dispatches by it, the local gateway routes by it, and
//!   `template.yaml` is checked against it.
//! - [`openapi`]: the API's OpenAPI 3.1 document, made from the route table.

pub mod error;
pub mod openapi;
pub mod request;
pub mod routes;

use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};
use serde_json::Value;

pub use error::ApiError;

/// A JSON answer.
pub fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    let mut response = Response::new(Body::Text(body.to_string()));
    *response.status_mut() = status;
    if let Ok(value) = "application/json".parse() {
        response.headers_mut().insert("content-type", value);
    }
    response
}
