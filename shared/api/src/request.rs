//! Reading a request: the tenant from the authorizer's claims, and a JSON object body that
//! has passed the media-type, size and syntax checks.

use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt};
use serde_json::{Map, Value};

use crate::error::ApiError;
use sync_core::domain::TenantId;

/// The tenant named by the JWT authorizer's claim `claim`. Nothing else (body, query,
/// ordinary headers) can name a tenant.
pub fn tenant(req: &Request, claim: &str) -> Result<TenantId, ApiError> {
    let claims = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx
            .authorizer
            .as_ref()
            .and_then(|a| a.jwt.as_ref())
            .map(|jwt| &jwt.claims),
        _ => None,
    };
    claims
        .and_then(|c| c.get(claim))
        .and_then(|value| TenantId::parse(value).ok())
        .ok_or_else(ApiError::unauthorized)
}

/// The span a request is answered in: every line logged meanwhile carries API Gateway's
/// id of the request and the tenant its token names (if it names one).
pub fn span(req: &Request, claim: &str) -> tracing::Span {
    let request_id = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.request_id.clone(),
        _ => None,
    };
    let span = tracing::info_span!(
        "request",
        request_id = request_id.unwrap_or_default(),
        tenant_id = tracing::field::Empty,
    );
    if let Ok(tenant) = tenant(req, claim) {
        span.record("tenant_id", tracing::field::display(tenant));
    }
    span
}

/// Who made the request, as the JWT authorizer's `sub` claim names them (at most 200
/// characters); `None` without one.
pub fn subject(req: &Request) -> Option<String> {
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx
            .authorizer
            .as_ref()
            .and_then(|a| a.jwt.as_ref())
            .and_then(|jwt| jwt.claims.get("sub"))
            .filter(|sub| !sub.trim().is_empty())
            .map(|sub| sub.chars().take(200).collect()),
        _ => None,
    }
}

/// The base URL the platforms reach this API at (webhook URLs are below it): the
/// configured `PUBLIC_BASE_URL`, or the domain API Gateway received the request on.
pub fn public_base_url(settings: &sync_core::config::ApiSettings, req: &Request) -> String {
    if let Some(base) = &settings.public_base_url {
        return base.trim_end_matches('/').to_string();
    }
    let domain = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.domain_name.clone(),
        _ => None,
    };
    format!("https://{}", domain.unwrap_or_else(|| "localhost".into()))
}

/// The body as a JSON object, after checking, in order: media type (415), size (413),
/// JSON syntax (400) and that it is an object (400).
pub fn json_object(req: &Request, max_bytes: usize) -> Result<Map<String, Value>, ApiError> {
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !is_json_media_type(content_type) {
        return Err(ApiError::unsupported_media_type());
    }
    let bytes: &[u8] = match req.body() {
        Body::Empty => b"",
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => b"",
    };
    if bytes.len() > max_bytes {
        return Err(ApiError::too_large(max_bytes));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid_json(
            "the request body is empty; send a JSON object",
        ));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::invalid_json(
            "the request body must be a JSON object",
        )),
        Err(e) => Err(ApiError::invalid_json(format!(
            "the request body is not valid JSON: {e}"
        ))),
    }
}

/// `application/json` or any `application/*+json`, with or without parameters.
fn is_json_media_type(value: &str) -> bool {
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Field-by-field reading of a JSON object, so every error names its field.
pub struct Fields {
    map: Map<String, Value>,
}

impl Fields {
    /// Refuses any field not in `allowed`; `immutable` ones get a message of their own.
    pub fn new(
        map: Map<String, Value>,
        allowed: &[&str],
        immutable: &[&str],
    ) -> Result<Self, ApiError> {
        let mut names: Vec<&String> = map.keys().collect();
        names.sort();
        for name in names {
            if immutable.contains(&name.as_str()) {
                return Err(ApiError::invalid_field(
                    name.as_str(),
                    format!("{name} cannot be changed; create a new one instead"),
                ));
            }
            if !allowed.contains(&name.as_str()) {
                return Err(ApiError::invalid_field(
                    name.as_str(),
                    format!("unknown field; expected one of: {}", allowed.join(", ")),
                ));
            }
        }
        Ok(Self { map })
    }

    /// Whether the body names the field at all (`null` included): a partial update's
    /// `null` clears a value, its absence leaves it.
    pub fn present(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// A string field; `None` when absent. `null` counts as absent only if `nullable`.
    pub fn string(&self, name: &str, nullable: bool) -> Result<Option<&str>, ApiError> {
        match self.map.get(name) {
            None => Ok(None),
            Some(Value::Null) if nullable => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(ApiError::invalid_field(
                name,
                format!("{name} must be a string"),
            )),
        }
    }

    pub fn bool(&self, name: &str, nullable: bool) -> Result<Option<bool>, ApiError> {
        match self.map.get(name) {
            None => Ok(None),
            Some(Value::Null) if nullable => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(ApiError::invalid_field(
                name,
                format!("{name} must be true or false"),
            )),
        }
    }

    pub fn object(&self, name: &str) -> Result<Option<&Map<String, Value>>, ApiError> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(o)) => Ok(Some(o)),
            Some(_) => Err(ApiError::invalid_field(
                name,
                format!("{name} must be a JSON object"),
            )),
        }
    }

    pub fn integer(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_i64().map(Some).ok_or_else(|| {
                ApiError::invalid_field(name, format!("{name} must be a whole number"))
            }),
        }
    }

    /// A list of strings, each parsed with `FromStr`; `None` when absent.
    pub fn parsed_list<T>(&self, name: &str) -> Result<Option<Vec<T>>, ApiError>
    where
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
    {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => s
                        .parse()
                        .map_err(|e| ApiError::invalid_field(name, format!("{name}: {e}"))),
                    _ => Err(ApiError::invalid_field(
                        name,
                        format!("{name} must be a list of strings"),
                    )),
                })
                .collect::<Result<Vec<T>, _>>()
                .map(Some),
            Some(_) => Err(ApiError::invalid_field(
                name,
                format!("{name} must be a list of strings"),
            )),
        }
    }

    /// A string parsed with `FromStr`; the parse error's text becomes the message.
    pub fn parsed<T>(&self, name: &str, nullable: bool) -> Result<Option<T>, ApiError>
    where
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
    {
        match self.string(name, nullable)? {
            None => Ok(None),
            Some(text) => text
                .parse()
                .map(Some)
                .map_err(|e| ApiError::invalid_field(name, format!("{name}: {e}"))),
        }
    }

    /// An RFC 3339 time, in UTC; `None` when absent or `null`.
    pub fn time(&self, name: &str) -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError> {
        match self.string(name, true)? {
            None => Ok(None),
            Some(text) => chrono::DateTime::parse_from_rfc3339(text)
                .map(|t| Some(t.with_timezone(&chrono::Utc)))
                .map_err(|_| {
                    ApiError::invalid_field(
                        name,
                        format!("{name} must be an RFC 3339 time, e.g. 2026-11-24T09:00:00Z"),
                    )
                }),
        }
    }

    pub fn required_parsed<T>(&self, name: &str) -> Result<T, ApiError>
    where
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
    {
        self.parsed(name, false)?
            .ok_or_else(|| ApiError::invalid_field(name, format!("{name} is required")))
    }
}
