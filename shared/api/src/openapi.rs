//! The HTTP API's OpenAPI 3.1 document, made from the route table: every route of
//! [`API_ROUTES`] and every gateway route of the other functions is an operation, with its
//! path parameters, its query parameters and request body (by endpoint, below), its answers
//! and the one error shape. `GET /api/openapi.json` serves it, `syncctl openapi` prints it,
//! and the test command runs schemathesis against the local stack with it.

use serde_json::{json, Map, Value};

use crate::routes::{Endpoint, API_ROUTES};

/// A `$ref` to a component schema.
fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn string() -> Value {
    json!({ "type": "string" })
}

fn uuid() -> Value {
    json!({ "type": "string", "format": "uuid" })
}

fn time() -> Value {
    json!({ "type": "string", "format": "date-time" })
}

fn entity() -> Value {
    json!({ "type": "string", "enum": ["orders", "customers", "products"] })
}

fn platform() -> Value {
    json!({ "type": "string", "enum": ["woocommerce", "quickbooks", "supabase"] })
}

fn object(properties: Value, required: &[&str]) -> Value {
    json!({ "type": "object", "properties": properties, "required": required })
}

/// What a route takes in its body, if anything.
fn request_body(endpoint: Endpoint) -> Option<Value> {
    let schedule_options = json!({
        "sync_mode": { "type": "string", "enum": ["full", "incremental"] },
        "timezone": { "type": "string", "examples": ["America/Edmonton"] },
        "is_active": { "type": "boolean" },
        "overlap_policy": { "type": "string", "enum": ["skip", "buffer_one"] },
        "pause_note": { "type": ["string", "null"] },
        "flexible_window_minutes": { "type": ["integer", "null"], "minimum": 1, "maximum": 1440 },
        "catch_up_window_minutes": { "type": "integer", "minimum": 0, "maximum": 1440 },
        "auto_pause_after_failures": { "type": "integer", "minimum": 0, "maximum": 1000 },
    });
    let with = |extra: Value, base: &Value| {
        let mut all = base.as_object().cloned().unwrap_or_default();
        all.extend(extra.as_object().cloned().unwrap_or_default());
        Value::Object(all)
    };
    let strings = json!({ "type": "object", "additionalProperties": { "type": "string" } });
    let entities = json!({ "type": "array", "items": entity() });
    let body = match endpoint {
        Endpoint::ScheduleCreate => object(
            with(
                json!({
                    "credential_id": uuid(),
                    "platform": platform(),
                    "entity_type": entity(),
                    "cron_expression": { "type": "string", "examples": ["*/15 * * * *", "rate(1 hour)"] },
                }),
                &schedule_options,
            ),
            &[
                "credential_id",
                "platform",
                "entity_type",
                "cron_expression",
            ],
        ),
        Endpoint::ScheduleUpdate => object(
            with(json!({ "cron_expression": string() }), &schedule_options),
            &[],
        ),
        Endpoint::SchedulePreview => object(
            json!({
                "cron_expression": string(),
                "timezone": string(),
                "count": { "type": "integer", "minimum": 1, "maximum": 100 },
                "after": time(),
            }),
            &["cron_expression"],
        ),
        Endpoint::ConnectionCreate => object(
            json!({
                "platform": platform(),
                "display_name": string(),
                "config": { "type": "object" },
                "secrets": strings,
                "webhooks_enabled": { "type": "boolean" },
            }),
            &["platform", "display_name", "config", "secrets"],
        ),
        Endpoint::ConnectionUpdate => object(
            json!({
                "display_name": string(),
                "config": { "type": "object" },
                "secrets": strings,
                "webhooks_enabled": { "type": "boolean" },
            }),
            &[],
        ),
        Endpoint::FlowCreate => object(
            json!({
                "source_connection_id": uuid(),
                "target_connection_id": uuid(),
                "entities": entities,
                "conflict_policy": { "type": "string", "enum": ["source_wins", "newest_wins"] },
                "doc_number_prefix": string(),
                "enabled": { "type": "boolean" },
            }),
            &["source_connection_id", "target_connection_id", "entities"],
        ),
        Endpoint::FlowUpdate => object(
            json!({
                "entities": entities,
                "conflict_policy": { "type": "string", "enum": ["source_wins", "newest_wins"] },
                "enabled": { "type": "boolean" },
            }),
            &[],
        ),
        Endpoint::SyncTrigger => object(
            json!({
                "connection_id": uuid(),
                "entity_type": entity(),
                "sync_mode": { "type": "string", "enum": ["full", "incremental"] },
                "ids": { "type": "array", "items": string(), "maxItems": 500 },
            }),
            &["connection_id", "entity_type"],
        ),
        Endpoint::SyncResync => object(
            json!({
                "connection_id": uuid(),
                "entity_type": entity(),
                "modified_from": time(),
                "modified_to": time(),
                "cursor": time(),
            }),
            &["connection_id", "entity_type"],
        ),
        Endpoint::FailureRetry => object(
            json!({
                "connection_id": uuid(),
                "entity_type": entity(),
                "error_contains": string(),
                "error_code": string(),
                "failed_from": time(),
                "failed_to": time(),
                "not_quarantined_too": { "type": "boolean" },
            }),
            &[],
        ),
        Endpoint::AlertDestinationCreate => object(
            json!({
                "kind": { "type": "string", "enum": ["sns", "slack", "webhook"] },
                "name": string(),
                "url": { "type": "string", "format": "uri" },
                "secret": { "type": "string", "minLength": 16, "maxLength": 256 },
            }),
            &["kind"],
        ),
        _ => return None,
    };
    Some(json!({
        "required": true,
        "content": { "application/json": { "schema": body } },
    }))
}

/// A query parameter.
fn query(name: &str, schema: Value, required: bool) -> Value {
    json!({ "name": name, "in": "query", "required": required, "schema": schema })
}

/// What a route takes in its query string.
fn query_parameters(endpoint: Endpoint) -> Vec<Value> {
    let limit = |max: u32| json!({ "type": "integer", "minimum": 1, "maximum": max });
    match endpoint {
        Endpoint::ScheduleAudit => vec![query("from", time(), false), query("to", time(), false)],
        Endpoint::ConnectionDelete => vec![query("cascade", json!({"type": "boolean"}), false)],
        Endpoint::ConnectionEvents => {
            vec![
                query("limit", limit(100), false),
                query("next", string(), false),
            ]
        }
        Endpoint::RunList => vec![
            query("schedule_id", uuid(), false),
            query("flow_id", uuid(), false),
            query("connection_id", uuid(), false),
            query(
                "status",
                json!({"type": "string", "enum": ["queued", "running", "succeeded", "partial", "failed", "skipped", "cancelled"]}),
                false,
            ),
            query("limit", limit(100), false),
            query("next", string(), false),
        ],
        Endpoint::FailureList => vec![
            query("connection_id", uuid(), true),
            query("entity_type", entity(), false),
            query("limit", limit(100), false),
            query("next", string(), false),
        ],
        Endpoint::AlertList => vec![query(
            "status",
            json!({"type": "string", "enum": ["open", "resolved"]}),
            false,
        )],
        _ => Vec::new(),
    }
}

/// The status of a route's success, and whether it answers a list.
fn success(endpoint: Endpoint) -> (&'static str, Value) {
    let any_object = json!({ "type": "object" });
    let list = json!({ "type": "array", "items": { "type": "object" } });
    match endpoint {
        Endpoint::ScheduleCreate
        | Endpoint::ConnectionCreate
        | Endpoint::FlowCreate
        | Endpoint::AlertDestinationCreate => ("201", any_object),
        Endpoint::ScheduleRun
        | Endpoint::RunRetry
        | Endpoint::SyncTrigger
        | Endpoint::SyncResync
        | Endpoint::FailureRetry => ("202", any_object),
        Endpoint::ScheduleList | Endpoint::ConnectionList | Endpoint::FlowList => ("200", list),
        _ => ("200", any_object),
    }
}

/// The answers an operation documents: its success, the error shape for 4xx, and the
/// server-side errors the API names (a platform or the queue failing).
fn responses(success_status: &str, success_schema: Value, also: &[&str]) -> Value {
    let error = json!({
        "description": "the error, saying what to change",
        "content": { "application/json": { "schema": schema_ref("Error") } },
    });
    let mut all = Map::new();
    all.insert(
        success_status.to_string(),
        json!({
            "description": "done",
            "content": { "application/json": { "schema": success_schema } },
        }),
    );
    for status in also {
        all.insert(
            (*status).to_string(),
            json!({
                "description": "done",
                "content": { "application/json": { "schema": { "type": "object" } } },
            }),
        );
    }
    // (Each refusal the API names: a bad field or body, none of the tenant's by that id, a
    // state that forbids it, a body too large, not JSON.)
    for status in ["400", "404", "409", "413", "415"] {
        all.insert(status.into(), error.clone());
    }
    // (A request without a valid JWT is refused by API Gateway's authorizer, with its own
    // body, before any function sees it.)
    all.insert(
        "401".into(),
        json!({
            "description": "no valid bearer JWT (API Gateway's answer), or no tenant claim in it",
            "content": { "application/json": { "schema": {
                "anyOf": [schema_ref("Error"), schema_ref("GatewayError")],
            } } },
        }),
    );
    // (API Gateway answers a 503 or 504 of its own with `{"message": …}`.)
    for status in ["502", "503", "504"] {
        all.insert(
            status.into(),
            json!({
                "description": "a platform or a dependency failed; nothing was changed that a retry would not finish",
                "content": { "application/json": { "schema": {
                    "anyOf": [schema_ref("Error"), schema_ref("GatewayError")],
                } } },
            }),
        );
    }
    Value::Object(all)
}

/// The `{name}` parameters of a path.
fn path_parameters(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": string() }))
        .collect()
}

fn operation_id(endpoint: Endpoint) -> String {
    let name = format!("{endpoint:?}");
    let mut id = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            id.push('_');
        }
        id.extend(c.to_lowercase());
    }
    id
}

fn insert(paths: &mut Map<String, Value>, path: &str, method: &str, operation: Value) {
    let item = paths
        .entry(path.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(item) = item.as_object_mut() {
        item.insert(method.to_ascii_lowercase(), operation);
    }
}

/// The document (its version is this crate's, whoever serves or prints it).
pub fn document() -> Value {
    let version = env!("CARGO_PKG_VERSION");
    let mut paths = Map::new();
    for route in API_ROUTES {
        let (status, schema) = success(route.endpoint);
        // A cancel answers 200 (a queued run, dropped) or 202 (a running one, asked to
        // stop); a resync 200 for a cursor set; a bulk retry 200 when nothing matched.
        let also: &[&str] = match route.endpoint {
            Endpoint::RunCancel => &["202"],
            Endpoint::SyncResync | Endpoint::FailureRetry => &["200"],
            _ => &[],
        };
        let mut parameters = path_parameters(route.path);
        parameters.extend(query_parameters(route.endpoint));
        let mut operation = json!({
            "operationId": operation_id(route.endpoint),
            "summary": route.summary,
            "parameters": parameters,
            "responses": responses(status, schema, also),
        });
        if let Some(body) = request_body(route.endpoint) {
            operation["requestBody"] = body;
        }
        insert(&mut paths, route.path, route.method, operation);
    }
    let connection_setup = [
        (
            "POST",
            "/api/connections/{id}/webhooks",
            "webhooks_register",
            "register the platform's webhooks for a connection (200, what was registered)",
        ),
        (
            "DELETE",
            "/api/connections/{id}/webhooks",
            "webhooks_remove",
            "remove the platform's webhooks of a connection",
        ),
        (
            "POST",
            "/api/connections/quickbooks/authorize",
            "quickbooks_authorize",
            "start QuickBooks' consent flow: the URL to send the user's browser to",
        ),
    ];
    for (method, path, id, summary) in connection_setup {
        insert(
            &mut paths,
            path,
            method,
            json!({
                "operationId": id,
                "summary": summary,
                "parameters": path_parameters(path),
                "responses": responses("200", json!({"type": "object"}), &[]),
            }),
        );
    }
    let html = json!({ "content": { "text/html": { "schema": { "type": "string" } } } });
    let page = |description: &str| {
        let mut page = html.clone();
        page["description"] = json!(description);
        page
    };
    insert(
        &mut paths,
        "/oauth/quickbooks/callback",
        "GET",
        json!({
            "operationId": "quickbooks_callback",
            "summary": "where Intuit sends the browser back after consent (no JWT: the state is sealed and used once)",
            "security": [],
            "parameters": [
                query("code", string(), false),
                query("state", string(), false),
                query("realmId", string(), false),
                query("error", string(), false),
            ],
            "responses": {
                "200": page("connected"),
                "400": page("a forged, expired or used state, or a declined consent"),
                "404": page("the deployment has no Intuit app of its own"),
                "502": page("Intuit could not be reached"),
            },
        }),
    );
    let webhook = |id: &str, summary: &str, path: &str| {
        let mut answers = responses(
            "200",
            object(
                json!({
                    "queued": { "type": "integer" },
                    "duplicates": { "type": "integer" },
                    "ignored": { "type": "integer" },
                }),
                &["queued", "duplicates", "ignored"],
            ),
            &[],
        );
        answers["401"]["description"] =
            json!("the signature or secret does not check (nothing was queued)");
        json!({
            "operationId": id,
            "summary": summary,
            "security": [],
            "parameters": path_parameters(path),
            "requestBody": {
                "required": true,
                "content": { "application/json": { "schema": { "type": "object" } } },
            },
            "responses": answers,
        })
    };
    insert(
        &mut paths,
        "/webhooks/{platform}/{connection_id}",
        "POST",
        webhook(
            "webhook_deliver",
            "a platform's webhook delivery for one connection (checked by its signature or secret; no JWT)",
            "/webhooks/{platform}/{connection_id}",
        ),
    );
    insert(
        &mut paths,
        "/webhooks/{platform}",
        "POST",
        webhook(
            "webhook_deliver_app",
            "a platform's app-wide webhook delivery (QuickBooks: the deployment's app, by realm; no JWT)",
            "/webhooks/{platform}",
        ),
    );
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Sync scheduling service",
            "version": version,
            "description": "Schedules, connections, flows, runs, failures and alerts of one tenant (the JWT's tenant claim), and the platforms' webhook intake.",
        },
        "security": [{ "bearer": [] }],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" },
            },
            "schemas": {
                "Error": object(json!({
                    "error": object(json!({
                        "code": string(),
                        "message": string(),
                        "field": string(),
                    }), &["code", "message"]),
                }), &["error"]),
                "GatewayError": object(json!({ "message": string() }), &["message"]),
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::GATEWAY_ROUTES;

    #[test]
    fn every_api_route_is_an_operation_with_its_path_parameters() {
        let doc = document();
        for route in API_ROUTES {
            let op = &doc["paths"][route.path][route.method.to_ascii_lowercase()];
            assert!(op.is_object(), "{} {} is missing", route.method, route.path);
            let names: Vec<&str> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .filter_map(|p| p["name"].as_str())
                .collect();
            for segment in route.path.split('/') {
                if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    assert!(names.contains(&name), "{}: {name}", route.path);
                }
            }
            assert!(op["responses"]["400"].is_object());
        }
    }

    #[test]
    fn every_gateway_route_outside_the_api_function_is_documented() {
        let doc = document();
        for route in GATEWAY_ROUTES
            .iter()
            .filter(|r| !r.path.contains("{proxy+}"))
        {
            let item = &doc["paths"][route.path];
            assert!(item.is_object(), "{} is missing", route.path);
            if route.method != "ANY" {
                assert!(
                    item[route.method.to_ascii_lowercase()].is_object(),
                    "{} {}",
                    route.method,
                    route.path
                );
            }
        }
    }

    #[test]
    fn operation_ids_are_unique_and_in_snake_case() {
        let doc = document();
        let mut ids: Vec<String> = Vec::new();
        for item in doc["paths"]
            .as_object()
            .into_iter()
            .flat_map(|p| p.values())
        {
            for op in item.as_object().into_iter().flat_map(|o| o.values()) {
                let id = op["operationId"].as_str().unwrap_or_default().to_string();
                assert!(
                    id.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                    "{id}"
                );
                assert!(!ids.contains(&id), "{id} twice");
                ids.push(id);
            }
        }
        assert_eq!(
            operation_id(Endpoint::AlertDestinationCreate),
            "alert_destination_create"
        );
    }
}
