//! Handler tests: the `events/` fixtures, varied per case, through `handle` with in-memory
//! fakes behind the service.

use super::*;
use lambda_http::http::StatusCode;
use serde_json::{json, Value};
use std::sync::Arc;
use sync_core::clock::FixedClock;
use sync_core::domain::{ConnectionId, Platform, TenantId};
use sync_core::memory::{connection_fixture, MemoryScheduleStore, MemoryTrigger, MemoryWorld};

struct World {
    app: App,
    store: Arc<MemoryScheduleStore>,
    trigger: Arc<MemoryTrigger>,
    memory: MemoryWorld,
}

/// The connection `events/schedules-create.json` names, owned by its tenant.
const FIXTURE_CONNECTION: &str = "8d2f5b7a-1c3e-4f60-9a8b-2e4d6f8a0b1c";

fn seed_connection(memory: &MemoryWorld, tenant: &str, id: &str, platform: Platform) {
    let tenant = TenantId::parse(tenant).unwrap_or_else(|e| panic!("{e}"));
    let mut c = connection_fixture(&tenant, platform);
    c.id = id.parse::<ConnectionId>().unwrap_or_else(|e| panic!("{e}"));
    memory.connections.seed(c);
}

fn world() -> World {
    let clock = Arc::new(FixedClock::new(
        chrono::DateTime::parse_from_rfc3339("2026-11-24T12:00:00Z")
            .map(|t| t.with_timezone(&chrono::Utc))
            .unwrap_or_default(),
    ));
    let (services, memory) = Services::in_memory(clock);
    seed_connection(
        &memory,
        "tenant-demo",
        FIXTURE_CONNECTION,
        Platform::WooCommerce,
    );
    World {
        app: App::new(services, ApiSettings::default()),
        store: memory.schedules.clone(),
        trigger: memory.trigger.clone(),
        memory,
    }
}

/// An `events/` fixture as JSON, to vary before sending.
fn event(name: &str) -> Value {
    let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn with_body(mut e: Value, body: &str) -> Value {
    e["body"] = json!(body);
    e
}

fn with_json(e: Value, body: Value) -> Value {
    with_body(e, &body.to_string())
}

fn with_path(mut e: Value, path: &str) -> Value {
    e["rawPath"] = json!(path);
    e["requestContext"]["http"]["path"] = json!(path);
    e
}

fn with_method(mut e: Value, method: &str) -> Value {
    e["requestContext"]["http"]["method"] = json!(method);
    e
}

fn with_header(mut e: Value, name: &str, value: Option<&str>) -> Value {
    match value {
        Some(v) => e["headers"][name] = json!(v),
        None => {
            if let Some(h) = e["headers"].as_object_mut() {
                h.remove(name);
            }
        }
    }
    e
}

fn with_tenant(mut e: Value, tenant: &str) -> Value {
    e["requestContext"]["authorizer"]["jwt"]["claims"]["tenant_id"] = json!(tenant);
    e
}

async fn send(w: &World, e: Value) -> (StatusCode, Value, lambda_http::http::HeaderMap) {
    let req = lambda_http::request::from_str(&e.to_string()).unwrap_or_else(|err| panic!("{err}"));
    let response = handle(&w.app, req)
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    let status = response.status();
    let headers = response.headers().clone();
    let body = match response.body() {
        Body::Text(t) => serde_json::from_str(t).unwrap_or(Value::Null),
        _ => Value::Null,
    };
    (status, body, headers)
}

async fn create(w: &World) -> Value {
    let (status, body, _) = send(w, event("schedules-create.json")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

fn item_path(id: &str) -> String {
    format!("/api/sync/schedules/{id}")
}

fn assert_error(status: StatusCode, body: &Value, expected: StatusCode, code: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[tokio::test]
async fn create_returns_201_with_the_stored_schedule_and_its_canonical_expression() {
    let w = world();
    let body = create(&w).await;
    let s = &body["schedule"];
    assert_eq!(body["id"], s["id"]);
    assert_eq!(body["message"], "schedule created");
    assert_eq!(s["cron_expression"], "0 */15 * * * *");
    assert_eq!(s["schedule_expression"], "cron(0/15 * * * ? *)");
    assert_eq!(s["timezone"], "America/Edmonton");
    assert_eq!(s["sync_mode"], "incremental");
    assert_eq!(s["is_active"], true);
    assert_eq!(s["last_run_at"], Value::Null);
    assert_eq!(s["next_run_at"], "2026-11-24T12:15:00Z");
    assert_eq!(s["created_at"], "2026-11-24T12:00:00Z");
    assert_eq!(w.store.len(), 1);
    assert_eq!(w.trigger.len(), 1);
}

#[tokio::test]
async fn defaults_apply_when_optional_fields_are_left_out() {
    let w = world();
    let qbo = "5b0f3c1e-7a2d-4e8f-9c6b-1d2e3f4a5b6c";
    seed_connection(&w.memory, "tenant-demo", qbo, Platform::QuickBooks);
    let e = with_json(
        event("schedules-create.json"),
        json!({"credential_id": qbo, "platform": "quickbooks",
               "entity_type": "customers", "cron_expression": "@daily"}),
    );
    let (status, body, headers) = send(&w, e).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["schedule"]["sync_mode"], "incremental");
    assert_eq!(body["schedule"]["timezone"], "America/Edmonton");
    assert_eq!(body["schedule"]["is_active"], true);
    let location = headers
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert_eq!(location, item_path(body["id"].as_str().unwrap_or("")));
}

#[tokio::test]
async fn list_get_update_delete_round_trip() {
    let w = world();
    let id = create(&w).await["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    let (status, list, _) = send(&w, event("schedules-list.json")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().map(Vec::len), Some(1));

    let (status, got, _) = send(&w, with_path(event("schedules-get.json"), &item_path(&id))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["id"], id.as_str());

    let (status, updated, _) = send(
        &w,
        with_path(event("schedules-update.json"), &item_path(&id)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["message"], "schedule updated");
    assert_eq!(
        updated["schedule"]["schedule_expression"],
        "cron(0 9 ? * MON-FRI *)"
    );
    assert_eq!(updated["schedule"]["is_active"], false);
    assert_eq!(updated["schedule"]["next_run_at"], Value::Null);
    assert_eq!(updated["schedule"]["platform"], "woocommerce");

    let (status, deleted, _) = send(
        &w,
        with_path(event("schedules-delete.json"), &item_path(&id)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(deleted["message"], "schedule deleted");
    assert!(w.store.is_empty() && w.trigger.is_empty());
    let (status, _, _) = send(&w, with_path(event("schedules-get.json"), &item_path(&id))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn preview_follows_edmonton_dst_and_stores_nothing() {
    let w = world();
    let (status, body, _) = send(&w, event("schedules-preview.json")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["schedule_expression"], "cron(30 2 * * ? *)");
    assert_eq!(body["timezone"], "America/Edmonton");
    // 2026-03-08 02:30 does not exist in Edmonton.
    assert_eq!(
        body["next_runs"],
        json!([
            "2026-03-07T09:30:00Z",
            "2026-03-09T08:30:00Z",
            "2026-03-10T08:30:00Z"
        ])
    );
    assert!(w.store.is_empty());
}

#[tokio::test]
async fn preview_checks_count_and_after() {
    let w = world();
    for (body, field) in [
        (json!({"cron_expression": "@daily", "count": 0}), "count"),
        (json!({"cron_expression": "@daily", "count": 101}), "count"),
        (json!({"cron_expression": "@daily", "count": "5"}), "count"),
        (
            json!({"cron_expression": "@daily", "after": "yesterday"}),
            "after",
        ),
        (
            json!({"cron_expression": "@daily", "timezone": "Moon/Base"}),
            "timezone",
        ),
        (json!({"timezone": "UTC"}), "cron_expression"),
        // What can never fire is refused here exactly as create refuses it.
        (json!({"cron_expression": "0 12 30 2 *"}), "cron_expression"),
        (
            json!({"cron_expression": "cron(0 12 31 2 ? *)"}),
            "cron_expression",
        ),
        (
            json!({"cron_expression": "cron(0 0 31W 2 ? *)"}),
            "cron_expression",
        ),
        (
            json!({"cron_expression": "cron(0 0 29 2 ? 2100)"}),
            "cron_expression",
        ),
        (
            json!({"cron_expression": "cron(0 0 ? * ? *)"}),
            "cron_expression",
        ),
        (
            json!({"cron_expression": "@daily", "timezone": "UTC "}),
            "timezone",
        ),
    ] {
        let (status, got, _) = send(&w, with_json(event("schedules-preview.json"), body)).await;
        assert_error(status, &got, StatusCode::BAD_REQUEST, "invalid_field");
        assert_eq!(got["error"]["field"], field, "{got}");
    }
    let (status, got, _) = send(
        &w,
        with_json(
            event("schedules-preview.json"),
            json!({"cron_expression": "rate(1 hour)", "count": 100}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["next_runs"].as_array().map(Vec::len), Some(100));
}

#[tokio::test]
async fn a_request_without_the_tenant_claim_is_401_and_changes_nothing() {
    let w = world();
    let (status, body, _) = send(&w, event("schedules-create-no-tenant.json")).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    let (status, _, _) = send(&w, with_tenant(event("schedules-list.json"), "")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The tenant must come from the configured claim, not from another one.
    let mut e = event("schedules-list.json");
    if let Some(claims) = e["requestContext"]["authorizer"]["jwt"]["claims"].as_object_mut() {
        claims.remove("tenant_id");
        claims.insert("tenant".into(), json!("tenant-demo"));
    }
    let (status, _, _) = send(&w, with_header(e, "x-tenant-id", Some("tenant-demo"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(w.store.is_empty());
}

#[tokio::test]
async fn the_tenant_claim_name_is_configurable() {
    let mut w = world();
    w.app.settings.tenant_claim = "custom:org".into();
    let mut e = event("schedules-list.json");
    e["requestContext"]["authorizer"]["jwt"]["claims"]["custom:org"] = json!("org-7");
    let (status, _, _) = send(&w, e).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn another_tenants_schedule_is_404_for_every_verb() {
    let w = world();
    let id = create(&w).await["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    for name in [
        "schedules-get.json",
        "schedules-update.json",
        "schedules-delete.json",
    ] {
        let e = with_tenant(with_path(event(name), &item_path(&id)), "tenant-other");
        let (status, body, _) = send(&w, e).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    }
    let (_, list, _) = send(
        &w,
        with_tenant(event("schedules-list.json"), "tenant-other"),
    )
    .await;
    assert_eq!(list, json!([]));
    // The owner's schedule is untouched.
    let (_, got, _) = send(&w, with_path(event("schedules-get.json"), &item_path(&id))).await;
    assert_eq!(got["is_active"], true);
    assert_eq!(w.trigger.len(), 1);
}

#[tokio::test]
async fn invalid_fields_are_400_naming_the_field_and_store_nothing() {
    let w = world();
    let base = json!({"credential_id": "8d2f5b7a-1c3e-4f60-9a8b-2e4d6f8a0b1c", "platform": "woocommerce",
                      "entity_type": "orders", "cron_expression": "@daily"});
    let cases = [
        ("credential_id", json!("not-a-uuid")),
        ("credential_id", json!(null)),
        ("platform", json!("shopify")),
        ("entity_type", json!("invoices")),
        ("cron_expression", json!("0 9 1 * 1")),
        ("cron_expression", json!("30 * * * * *")),
        ("cron_expression", json!("0 0 31 2 *")),
        ("cron_expression", json!(42)),
        ("sync_mode", json!("partial")),
        ("timezone", json!("Mars/Olympus")),
        ("is_active", json!("yes")),
        ("tenant_id", json!("tenant-other")),
    ];
    for (field, value) in cases {
        let mut body = base.clone();
        body[field] = value.clone();
        let (status, got, _) = send(&w, with_json(event("schedules-create.json"), body)).await;
        assert_error(status, &got, StatusCode::BAD_REQUEST, "invalid_field");
        assert_eq!(got["error"]["field"], field, "{field}={value}: {got}");
    }
    let mut missing = base.clone();
    if let Some(m) = missing.as_object_mut() {
        m.remove("platform");
    }
    let (status, got, _) = send(&w, with_json(event("schedules-create.json"), missing)).await;
    assert_error(status, &got, StatusCode::BAD_REQUEST, "invalid_field");
    assert_eq!(got["error"]["field"], "platform");
    assert!(w.store.is_empty() && w.trigger.is_empty());
}

#[tokio::test]
async fn the_dialect_error_message_says_what_to_write() {
    let w = world();
    let mut body: Value = serde_json::from_str(
        event("schedules-create.json")["body"]
            .as_str()
            .unwrap_or("{}"),
    )
    .unwrap_or_default();
    body["cron_expression"] = json!("0 9 1 * MON");
    let (_, got, _) = send(&w, with_json(event("schedules-create.json"), body)).await;
    let message = got["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("either") && message.contains("'0 9 * * 1'"),
        "{message}"
    );
}

#[tokio::test]
async fn malformed_bodies_are_400_invalid_json() {
    let w = world();
    for body in ["{", "[]", "\"text\"", "", "   ", "{\"a\":1}}", "null"] {
        let (status, got, _) = send(&w, with_body(event("schedules-create.json"), body)).await;
        assert_error(status, &got, StatusCode::BAD_REQUEST, "invalid_json");
    }
    // Bytes that are not UTF-8 arrive base64-encoded from API Gateway.
    let mut e = with_body(event("schedules-create.json"), "/w==");
    e["isBase64Encoded"] = json!(true);
    let (status, got, _) = send(&w, e).await;
    assert_error(status, &got, StatusCode::BAD_REQUEST, "invalid_json");
    assert!(w.store.is_empty());
}

#[tokio::test]
async fn a_non_json_content_type_is_415() {
    let w = world();
    for ct in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let e = with_header(event("schedules-create.json"), "content-type", ct);
        let (status, got, _) = send(&w, e).await;
        assert_error(
            status,
            &got,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        );
    }
    let e = with_header(
        event("schedules-create.json"),
        "content-type",
        Some("application/json; charset=utf-8"),
    );
    assert_eq!(send(&w, e).await.0, StatusCode::CREATED);
}

#[tokio::test]
async fn an_oversized_body_is_413() {
    let w = world();
    let padding = "x".repeat(w.app.settings.max_body_bytes);
    let body = json!({"cron_expression": "@daily", "pad": padding});
    let (status, got, _) = send(&w, with_json(event("schedules-create.json"), body)).await;
    assert_error(
        status,
        &got,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    assert!(w.store.is_empty());
}

#[tokio::test]
async fn wrong_methods_are_405_with_allow() {
    let w = world();
    let cases = [
        (event("schedules-list.json"), "PATCH", "GET, POST"),
        (event("schedules-preview.json"), "GET", "POST"),
        (event("schedules-get.json"), "POST", "GET, PUT, DELETE"),
    ];
    for (e, method, allow) in cases {
        let (status, got, headers) = send(&w, with_method(e, method)).await;
        assert_error(
            status,
            &got,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        );
        assert_eq!(
            headers.get("allow").and_then(|v| v.to_str().ok()),
            Some(allow)
        );
    }
}

#[tokio::test]
async fn unknown_paths_and_ids_are_404() {
    let w = world();
    for path in [
        "/api/sync/other",
        "/api/sync/schedules/abc",
        "/api/sync/schedules/a/b",
    ] {
        let (status, got, _) = send(&w, with_path(event("schedules-get.json"), path)).await;
        assert_error(status, &got, StatusCode::NOT_FOUND, "not_found");
    }
}

#[tokio::test]
async fn update_refuses_immutable_unknown_and_empty_bodies() {
    let w = world();
    let id = create(&w).await["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let e = || with_path(event("schedules-update.json"), &item_path(&id));
    for (body, field) in [
        (json!({"platform": "supabase"}), Some("platform")),
        (
            json!({"credential_id": "8d2f5b7a-1c3e-4f60-9a8b-2e4d6f8a0b1d"}),
            Some("credential_id"),
        ),
        (json!({"colour": "blue"}), Some("colour")),
        (json!({"timezone": null}), Some("timezone")),
        (
            json!({"cron_expression": "rate(0 days)"}),
            Some("cron_expression"),
        ),
        (json!({}), None),
    ] {
        let (status, got, _) = send(&w, with_json(e(), body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{got}");
        assert_eq!(got["error"]["field"].as_str(), field, "{got}");
    }
    let (_, got, _) = send(&w, with_path(event("schedules-get.json"), &item_path(&id))).await;
    assert_eq!(got["cron_expression"], "0 */15 * * * *");
}

#[tokio::test]
async fn when_eventbridge_fails_the_answer_is_503_and_nothing_is_left_behind() {
    let w = world();
    w.trigger.set_failing(true);
    let (status, got, _) = send(&w, event("schedules-create.json")).await;
    assert_error(
        status,
        &got,
        StatusCode::SERVICE_UNAVAILABLE,
        "service_unavailable",
    );
    assert!(
        !got.to_string().contains("memory trigger"),
        "internals leaked: {got}"
    );
    assert!(w.store.is_empty());
}

#[tokio::test]
async fn when_the_store_fails_the_answer_is_503_without_internals() {
    let w = world();
    w.store.set_failing(true);
    let (status, got, _) = send(&w, event("schedules-list.json")).await;
    assert_error(
        status,
        &got,
        StatusCode::SERVICE_UNAVAILABLE,
        "service_unavailable",
    );
    assert!(
        !got.to_string().contains("memory store"),
        "internals leaked: {got}"
    );
}

#[tokio::test]
async fn a_concurrent_change_is_409_and_the_trigger_is_untouched() {
    let w = world();
    let id = create(&w).await["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    w.store.set_conflicting(true);
    for name in ["schedules-update.json", "schedules-delete.json"] {
        let (status, got, _) = send(&w, with_path(event(name), &item_path(&id))).await;
        assert_error(status, &got, StatusCode::CONFLICT, "conflict");
    }
    w.store.set_conflicting(false);
    let (_, got, _) = send(&w, with_path(event("schedules-get.json"), &item_path(&id))).await;
    assert_eq!(got["is_active"], true);
    assert_eq!(w.trigger.len(), 1);
}

/// A request to `path` with `method` and an optional JSON body, as the fixture's tenant.
fn request(method: &str, path: &str, body: Option<Value>) -> Value {
    let e = with_method(with_path(event("schedules-list.json"), path), method);
    match body {
        Some(b) => with_header(with_json(e, b), "content-type", Some("application/json")),
        None => e,
    }
}

const SUPABASE_CONNECTION: &str = "6a1d2c3b-4e5f-4a6b-8c7d-9e0f1a2b3c4d";

/// `GET /api/sync/runs` with these query parameters.
fn runs_query(params: &[(&str, &str)]) -> Value {
    get_query("/api/sync/runs", params)
}

/// A GET of `path` with a query string.
fn get_query(path: &str, params: &[(&str, &str)]) -> Value {
    let mut e = request("GET", path, None);
    let raw: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    e["rawQueryString"] = json!(raw.join("&"));
    e["queryStringParameters"] = Value::Object(
        params
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect(),
    );
    e
}

#[tokio::test]
async fn flows_are_created_read_listed_updated_and_deleted() {
    let w = world();
    seed_connection(
        &w.memory,
        "tenant-demo",
        SUPABASE_CONNECTION,
        Platform::Supabase,
    );
    let (status, body, headers) = send(
        &w,
        request(
            "POST",
            "/api/flows",
            Some(json!({"source_connection_id": FIXTURE_CONNECTION, "target_connection_id": SUPABASE_CONNECTION,
                        "entities": ["orders", "products"]})),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(headers["location"], format!("/api/flows/{id}").as_str());
    assert_eq!(body["flow"]["conflict_policy"], "source_wins");
    assert_eq!(body["flow"]["enabled"], true);
    assert_eq!(w.memory.queue.jobs().len(), 2, "backfilled per entity");
    let (status, listed, _) = send(&w, request("GET", "/api/flows", None)).await;
    assert_eq!(
        (status, listed.as_array().map(Vec::len)),
        (StatusCode::OK, Some(1))
    );
    let path = format!("/api/flows/{id}");
    let (status, got, _) = send(&w, request("GET", &path, None)).await;
    assert_eq!((status, got["id"].clone()), (StatusCode::OK, json!(id)));
    let (status, updated, _) = send(
        &w,
        request(
            "PUT",
            &path,
            Some(json!({"conflict_policy": "newest_wins", "enabled": false})),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["flow"]["conflict_policy"], "newest_wins");
    let (status, refused, _) = send(
        &w,
        request(
            "PUT",
            &path,
            Some(json!({"target_connection_id": FIXTURE_CONNECTION})),
        ),
    )
    .await;
    assert_error(status, &refused, StatusCode::BAD_REQUEST, "invalid_field");
    assert_eq!(refused["error"]["field"], "target_connection_id");
    // Another tenant sees nothing of it.
    let (status, _, _) = send(&w, with_tenant(request("GET", &path, None), "someone-else")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = send(&w, request("DELETE", &path, None)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = send(&w, request("GET", &path, None)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_flow_the_registry_cannot_carry_is_a_400_on_its_field() {
    let w = world();
    seed_connection(
        &w.memory,
        "tenant-demo",
        SUPABASE_CONNECTION,
        Platform::Supabase,
    );
    for (body, field) in [
        (
            json!({"source_connection_id": SUPABASE_CONNECTION, "target_connection_id": FIXTURE_CONNECTION, "entities": ["orders"]}),
            "entities",
        ),
        (
            json!({"source_connection_id": FIXTURE_CONNECTION, "target_connection_id": SUPABASE_CONNECTION, "entities": ["invoices"]}),
            "entities",
        ),
        (
            json!({"source_connection_id": FIXTURE_CONNECTION, "target_connection_id": SUPABASE_CONNECTION, "entities": "orders"}),
            "entities",
        ),
        (
            json!({"source_connection_id": FIXTURE_CONNECTION, "target_connection_id": SUPABASE_CONNECTION}),
            "entities",
        ),
        (
            json!({"source_connection_id": FIXTURE_CONNECTION, "target_connection_id": ConnectionId::new_random().to_string(), "entities": ["orders"]}),
            "target_connection_id",
        ),
        (
            json!({"source_connection_id": FIXTURE_CONNECTION, "target_connection_id": SUPABASE_CONNECTION, "entities": ["orders"], "conflict_policy": "loudest_wins"}),
            "conflict_policy",
        ),
    ] {
        let (status, got, _) = send(&w, request("POST", "/api/flows", Some(body.clone()))).await;
        assert_error(status, &got, StatusCode::BAD_REQUEST, "invalid_field");
        assert_eq!(got["error"]["field"], field, "{body}");
    }
    assert!(w.memory.queue.jobs().is_empty());
}

#[tokio::test]
async fn runs_are_listed_newest_first_filtered_and_paged_and_read_only_by_their_tenant() {
    use sync_core::domain::{
        EntityType, Run, RunCounts, RunId, RunStatus, ScheduleId, SyncMode, Trigger,
    };
    use sync_core::ports::RunLog;
    let w = world();
    let tenant = TenantId::parse("tenant-demo").unwrap_or_else(|e| panic!("{e}"));
    let schedule = ScheduleId::new_random();
    let base = chrono::DateTime::from_timestamp(1_795_521_600, 0).unwrap_or_default();
    for i in 0..5i64 {
        let at = base + chrono::Duration::minutes(i);
        let run = Run {
            id: RunId::for_job(at, &format!("job-{i}")),
            tenant_id: tenant.clone(),
            job_id: format!("job-{i}"),
            trigger: if i % 2 == 0 {
                Trigger::Schedule {
                    schedule_id: schedule,
                    schedule_version: 1,
                }
            } else {
                Trigger::Webhook
            },
            schedule_id: (i % 2 == 0).then_some(schedule),
            connection_id: FIXTURE_CONNECTION.parse().unwrap_or_else(|e| panic!("{e}")),
            platform: Platform::WooCommerce,
            entity_type: EntityType::Orders,
            sync_mode: SyncMode::Incremental,
            ids_requested: 0,
            ids: Vec::new(),
            status: if i == 4 {
                RunStatus::Partial
            } else {
                RunStatus::Succeeded
            },
            counts: RunCounts {
                read: 3,
                written: 2,
                ..RunCounts::default()
            },
            flows: Vec::new(),
            failures: Vec::new(),
            conflicts: Vec::new(),
            message: None,
            cursor_before: None,
            cursor_after: None,
            triggered_at: at,
            started_at: at,
            finished_at: Some(at + chrono::Duration::seconds(2)),
            updated_at: at + chrono::Duration::seconds(2),
            continuations: 0,
            attempts: 1,
            window: None,
            redone_by: None,
            reported: false,
        };
        w.memory
            .runs
            .save(&run)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let (status, page, _) = send(&w, request("GET", "/api/sync/runs", None)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let runs = page["runs"].as_array().cloned().unwrap_or_default();
    assert_eq!(runs.len(), 5);
    assert_eq!(runs[0]["status"], "partial", "newest first");
    assert_eq!(runs[0]["duration_ms"], 2000);
    // Filtered by schedule, two at a time.
    let s = schedule.to_string();
    let (status, first, _) = send(&w, runs_query(&[("schedule_id", &s), ("limit", "2")])).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["runs"].as_array().map(Vec::len), Some(2));
    let next = first["next"].as_str().unwrap_or_default().to_string();
    let (_, second, _) = send(
        &w,
        runs_query(&[("schedule_id", &s), ("limit", "2"), ("next", &next)]),
    )
    .await;
    assert_eq!(second["runs"].as_array().map(Vec::len), Some(1));
    assert_eq!(second["next"], Value::Null);
    // One run, and not another tenant's.
    let id = runs[1]["id"].as_str().unwrap_or_default().to_string();
    let one = format!("/api/sync/runs/{id}");
    let (status, got, _) = send(&w, request("GET", &one, None)).await;
    assert_eq!((status, got["id"].clone()), (StatusCode::OK, json!(id)));
    let (status, _, _) = send(&w, with_tenant(request("GET", &one, None), "someone-else")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Bad filters are 400s on their field.
    for (k, v) in [
        ("status", "great"),
        ("limit", "0"),
        ("next", "nope"),
        ("schedule_id", "x"),
    ] {
        let (status, got, _) = send(&w, runs_query(&[(k, v)])).await;
        assert_error(status, &got, StatusCode::BAD_REQUEST, "invalid_field");
        assert_eq!(got["error"]["field"], k);
    }
}

/// A world whose fixture connection's orders flow into a Supabase connection.
async fn world_with_an_orders_flow() -> World {
    let w = world();
    seed_connection(
        &w.memory,
        "tenant-demo",
        SUPABASE_CONNECTION,
        Platform::Supabase,
    );
    let (status, body, _) = send(
        &w,
        request(
            "POST",
            "/api/flows",
            Some(json!({"source_connection_id": FIXTURE_CONNECTION, "target_connection_id": SUPABASE_CONNECTION,
                        "entities": ["orders"]})),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    w
}

#[tokio::test]
async fn a_trigger_is_202_with_the_queued_run_which_reads_back_and_bad_ones_queue_nothing() {
    let w = world_with_an_orders_flow().await;
    w.memory.queue.drain_jobs();
    // Refused: no such entity, no flow reading products, a field it does not take, a
    // connection of another tenant.
    for (ask, code, status) in [
        (
            json!({"connection_id": FIXTURE_CONNECTION, "entity_type": "invoices"}),
            "invalid_field",
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"connection_id": FIXTURE_CONNECTION, "entity_type": "products"}),
            "conflict",
            StatusCode::CONFLICT,
        ),
        (
            json!({"connection_id": FIXTURE_CONNECTION, "entity_type": "orders", "when": "now"}),
            "invalid_field",
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"connection_id": FIXTURE_CONNECTION, "entity_type": "orders", "ids": [12]}),
            "invalid_field",
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"connection_id": ConnectionId::new_random().to_string(), "entity_type": "orders"}),
            "invalid_field",
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (got, body, _) = send(&w, request("POST", "/api/sync/trigger", Some(ask))).await;
        assert_error(got, &body, status, code);
    }
    assert!(w.memory.queue.jobs().is_empty());
    assert!(w.memory.runs.all().is_empty());
    let (status, body, _) = send(
        &w,
        request(
            "POST",
            "/api/sync/trigger",
            Some(json!({"connection_id": FIXTURE_CONNECTION, "entity_type": "orders", "ids": ["1001"]})),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["status"], "queued");
    assert_eq!(body["trigger"], "manual");
    let run_id = body["run_id"].as_str().unwrap_or_default().to_string();
    assert_eq!(body["location"], format!("/api/sync/runs/{run_id}"));
    assert_eq!(w.memory.queue.jobs().len(), 1);
    let (status, read, _) = send(
        &w,
        request("GET", &format!("/api/sync/runs/{run_id}"), None),
    )
    .await;
    assert_eq!(
        (status, read["status"].clone()),
        (StatusCode::OK, json!("queued"))
    );
    // Another tenant cannot run it.
    let (status, body, _) = send(
        &w,
        with_tenant(
            request(
                "POST",
                "/api/sync/trigger",
                Some(json!({"connection_id": FIXTURE_CONNECTION, "entity_type": "orders"})),
            ),
            "someone-else",
        ),
    )
    .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_field");
    assert_eq!(w.memory.queue.jobs().len(), 1);
}

#[tokio::test]
async fn a_schedule_runs_now_with_a_202_and_only_for_its_tenant() {
    let w = world();
    seed_connection(
        &w.memory,
        "tenant-demo",
        SUPABASE_CONNECTION,
        Platform::Supabase,
    );
    let created = create(&w).await;
    let id = created["id"].as_str().unwrap_or_default().to_string();
    let path = format!("{}/run", item_path(&id));
    // No flow reads what it syncs yet: it would only be skipped.
    let (status, body, _) = send(&w, request("POST", &path, None)).await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    let entity = created["schedule"]["entity_type"].clone();
    let (status, body, _) = send(
        &w,
        request(
            "POST",
            "/api/flows",
            Some(json!({"source_connection_id": FIXTURE_CONNECTION, "target_connection_id": SUPABASE_CONNECTION,
                        "entities": [entity]})),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    w.memory.queue.drain_jobs();
    let (status, body, _) = send(&w, request("POST", &path, None)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["schedule_id"], json!(id));
    assert_eq!(w.memory.queue.jobs().len(), 1);
    let (status, body, _) = send(
        &w,
        with_tenant(request("POST", &path, None), "someone-else"),
    )
    .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, _, _) = send(&w, request("GET", &path, None)).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn retries_refuse_bad_requests_and_answer_what_they_queued() {
    let w = world();
    let (status, body, _) = send(
        &w,
        request(
            "POST",
            "/api/sync/runs/0000000000001-abcdefabcdef/retry",
            None,
        ),
    )
    .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body, _) = send(&w, request("POST", "/api/sync/runs/not-a-run/retry", None)).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    for (ask, field) in [
        (json!({"failed_from": "yesterday"}), "failed_from"),
        (json!({"entity_type": "invoices"}), "entity_type"),
        (json!({"connection_id": "nope"}), "connection_id"),
        (json!({"not_quarantined_too": "yes"}), "not_quarantined_too"),
        (json!({"everything": true}), "everything"),
    ] {
        let (status, body, _) =
            send(&w, request("POST", "/api/sync/failures/retry", Some(ask))).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_field");
        assert_eq!(body["error"]["field"], field, "{body}");
    }
    let (status, body, _) = send(
        &w,
        request("POST", "/api/sync/failures/retry", Some(json!({}))),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"records": 0, "runs": [], "more": false}));
    assert!(w.memory.queue.jobs().is_empty());
}

#[tokio::test]
async fn a_cancel_is_200_for_a_queued_run_202_for_a_running_one_and_409_once_it_has_ended() {
    let w = world_with_an_orders_flow().await;
    let trigger = || {
        request(
            "POST",
            "/api/sync/trigger",
            Some(json!({"connection_id": FIXTURE_CONNECTION, "entity_type": "orders"})),
        )
    };
    let (_, queued, _) = send(&w, trigger()).await;
    let id = queued["run_id"].as_str().unwrap_or_default().to_string();
    let path = format!("/api/sync/runs/{id}/cancel");
    // Another tenant's run is not found, and a GET is no cancel.
    let (status, body, _) = send(
        &w,
        with_tenant(request("POST", &path, None), "someone-else"),
    )
    .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, _, _) = send(&w, request("GET", &path, None)).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (status, body, _) = send(&w, request("POST", "/api/sync/runs/nope/cancel", None)).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    // Queued: cancelled at once.
    let (status, body, _) = send(&w, request("POST", &path, None)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "cancelled");
    assert!(body["finished_at"].is_string(), "{body}");
    let (status, body, _) = send(&w, request("POST", &path, None)).await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    // Running: asked to stop.
    let (_, queued, _) = send(&w, trigger()).await;
    let id: sync_core::domain::RunId = queued["run_id"]
        .as_str()
        .unwrap_or_default()
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut running = w
        .memory
        .runs
        .all()
        .into_iter()
        .find(|r| r.id == id)
        .unwrap_or_else(|| panic!("no run {id}"));
    running.status = sync_core::domain::RunStatus::Running;
    w.memory.runs.seed(running);
    let (status, body, _) = send(
        &w,
        request("POST", &format!("/api/sync/runs/{id}/cancel"), None),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["status"], "running");
    assert!(body["cancel_requested_at"].is_string(), "{body}");
}

#[tokio::test]
async fn a_resync_is_202_with_its_span_or_200_setting_the_cursor_and_a_mixed_request_is_refused() {
    let w = world_with_an_orders_flow().await;
    w.memory.queue.drain_jobs();
    let resync = |body: Value| request("POST", "/api/sync/resync", Some(body));
    let stream = json!({"connection_id": FIXTURE_CONNECTION, "entity_type": "orders"});
    let with = |extra: Value| {
        let mut body = stream.clone();
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        body
    };
    for (body, field) in [
        (with(json!({})), "modified_from"),
        (with(json!({"modified_from": "last week"})), "modified_from"),
        (
            with(
                json!({"modified_from": "2026-11-01T00:00:00Z", "cursor": "2026-11-01T00:00:00Z"}),
            ),
            "modified_from",
        ),
        (
            with(
                json!({"modified_from": "2026-11-02T00:00:00Z", "modified_to": "2026-11-01T00:00:00Z"}),
            ),
            "modified_to",
        ),
        (with(json!({"since": "2026-11-01T00:00:00Z"})), "since"),
    ] {
        let (status, got, _) = send(&w, resync(body)).await;
        assert_error(status, &got, StatusCode::BAD_REQUEST, "invalid_field");
        assert_eq!(got["error"]["field"], field, "{got}");
    }
    assert!(w.memory.queue.jobs().is_empty());
    let (status, got, _) = send(
        &w,
        resync(with(
            json!({"modified_from": "2026-11-01T00:00:00Z", "modified_to": "2026-11-02T00:00:00Z"}),
        )),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{got}");
    assert_eq!(got["status"], "queued");
    assert_eq!(got["window"]["modified_from"], "2026-11-01T00:00:00Z");
    assert_eq!(w.memory.queue.jobs().len(), 1);
    let (status, got, _) = send(&w, resync(with(json!({"cursor": "2026-11-01T00:00:00Z"})))).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["cursor"]["modified_at"], "2026-11-01T00:00:00Z");
    assert_eq!(got["previous_cursor"], Value::Null);
    assert!(got["cursor_set_by"].is_string(), "{got}");
}

#[tokio::test]
async fn a_connections_streams_show_the_cursor_who_set_it_by_hand_and_when_and_whether_a_run_works_on_it(
) {
    let w = world_with_an_orders_flow().await;
    let path = format!("/api/connections/{FIXTURE_CONNECTION}/streams");
    let (status, got, _) = send(&w, request("GET", &path, None)).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    // The stream a flow reads, never run: no cursor yet.
    assert_eq!(got["streams"].as_array().map(Vec::len), Some(1), "{got}");
    let orders = &got["streams"][0];
    assert_eq!(orders["entity_type"], "orders");
    assert_eq!(orders["cursor"], Value::Null);
    assert_eq!(orders["running"], false);
    let set = json!({"connection_id": FIXTURE_CONNECTION, "entity_type": "orders", "cursor": "2026-11-01T00:00:00Z"});
    let (status, changed, _) = send(&w, request("POST", "/api/sync/resync", Some(set))).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    let (status, got, _) = send(&w, request("GET", &path, None)).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    let orders = &got["streams"][0];
    assert_eq!(orders["cursor"]["modified_at"], "2026-11-01T00:00:00Z");
    assert_eq!(orders["cursor_set_by"], changed["cursor_set_by"]);
    assert_eq!(orders["cursor_set_at"], changed["cursor_set_at"]);
    assert_eq!(
        (&orders["running"], &orders["follow_up_kept"]),
        (&json!(false), &json!(false)),
        "the setting holds no lease: {orders}"
    );
    // Another tenant's connection, or none, is not found.
    let (status, got, _) = send(&w, with_tenant(request("GET", &path, None), "someone-else")).await;
    assert_error(status, &got, StatusCode::NOT_FOUND, "not_found");
    let (status, got, _) = send(
        &w,
        request("GET", "/api/connections/not-an-id/streams", None),
    )
    .await;
    assert_error(status, &got, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn a_schedules_overlap_policy_pause_note_and_flexible_window_are_set_shown_and_checked() {
    let w = world();
    let created = create(&w).await;
    let s = &created["schedule"];
    assert_eq!(s["overlap_policy"], "buffer_one");
    assert_eq!(s["pause_note"], Value::Null);
    assert_eq!(s["flexible_window_minutes"], Value::Null);
    let path = item_path(s["id"].as_str().unwrap_or_default());
    let put = |body: Value| request("PUT", &path, Some(body));
    let (status, body, _) = send(
        &w,
        put(
            json!({"is_active": false, "pause_note": "closing November", "overlap_policy": "skip",
                   "flexible_window_minutes": 10}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let s = &body["schedule"];
    assert_eq!(
        (
            &s["overlap_policy"],
            &s["pause_note"],
            &s["flexible_window_minutes"]
        ),
        (&json!("skip"), &json!("closing November"), &json!(10))
    );
    for (ask, field) in [
        (json!({"overlap_policy": "never"}), "overlap_policy"),
        (
            json!({"flexible_window_minutes": -1}),
            "flexible_window_minutes",
        ),
        (
            json!({"flexible_window_minutes": 2000}),
            "flexible_window_minutes",
        ),
        (json!({"pause_note": 7}), "pause_note"),
        (
            json!({"is_active": true, "pause_note": "still"}),
            "pause_note",
        ),
    ] {
        let (status, body, _) = send(&w, put(ask)).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_field");
        assert_eq!(body["error"]["field"], field, "{body}");
    }
    // null turns the window off; resuming clears the note.
    let (status, body, _) = send(
        &w,
        put(json!({"flexible_window_minutes": null, "is_active": true})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["schedule"]["flexible_window_minutes"], Value::Null);
    assert_eq!(body["schedule"]["pause_note"], Value::Null);
    assert_eq!(body["schedule"]["overlap_policy"], "skip");
}

#[tokio::test]
async fn a_schedules_audit_lists_its_fire_times_in_utc_and_its_zone_and_refuses_a_bad_span() {
    let w = world();
    let created = create(&w).await;
    let id = created["id"].as_str().unwrap_or_default().to_string();
    let path = format!("{}/audit", item_path(&id));
    let (status, audit, _) = send(
        &w,
        get_query(
            &path,
            &[
                ("from", "2026-11-24T12:00:00Z"),
                ("to", "2026-11-24T13:00:00Z"),
            ],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{audit}");
    assert_eq!(audit["timezone"], "America/Edmonton");
    let fires = audit["fires"].as_array().cloned().unwrap_or_default();
    // Every 15 minutes, from the schedule's creation (now) to the end of the span.
    let times: Vec<_> = fires.iter().map(|f| f["fire_time"].clone()).collect();
    assert_eq!(
        times,
        [
            json!("2026-11-24T12:00:00Z"),
            json!("2026-11-24T12:15:00Z"),
            json!("2026-11-24T12:30:00Z"),
            json!("2026-11-24T12:45:00Z")
        ],
        "{audit}"
    );
    assert_eq!(fires[1]["fire_time_local"], "2026-11-24T05:15:00-07:00");
    assert_eq!(fires[0]["label"], "due", "not yet come");
    assert_eq!(fires[0]["run_id"], Value::Null);
    assert_eq!(audit["counts"]["due"], 4);
    for (params, field) in [
        (vec![("from", "yesterday")], "from"),
        (
            vec![
                ("from", "2026-11-25T00:00:00Z"),
                ("to", "2026-11-24T00:00:00Z"),
            ],
            "from",
        ),
        (
            vec![
                ("from", "2026-09-01T00:00:00Z"),
                ("to", "2026-11-24T00:00:00Z"),
            ],
            "from",
        ),
    ] {
        let (status, got, _) = send(&w, get_query(&path, &params)).await;
        assert_error(status, &got, StatusCode::BAD_REQUEST, "invalid_field");
        assert_eq!(got["error"]["field"], field, "{got}");
    }
    let (status, got, _) = send(&w, with_tenant(get_query(&path, &[]), "someone-else")).await;
    assert_error(status, &got, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn the_sweeper_status_says_when_it_last_swept_and_counts_its_errors_without_naming_them() {
    use sync_core::ports::{SweepCounts, SweepStatus};
    let w = world();
    let (status, none, _) = send(&w, request("GET", "/api/sync/sweeper", None)).await;
    assert_eq!(status, StatusCode::OK, "{none}");
    assert_eq!(none["last_sweep_at"], Value::Null);
    let at = chrono::DateTime::parse_from_rfc3339("2026-11-24T12:00:00Z")
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or_default();
    let recorded = w
        .app
        .services
        .sweeps
        .record(&SweepStatus {
            last_sweep_at: at,
            checked_until: at - chrono::Duration::minutes(10),
            pass: Some(sync_core::ports::SweepPass {
                from: at - chrono::Duration::minutes(10),
                until: at - chrono::Duration::minutes(5),
                shard: 3,
                after: Some("SCHEDULE#another-tenant#3f00".into()),
                started_at: at - chrono::Duration::minutes(5),
                failed_tries: 0,
            }),
            triggers_at: None,
            last: SweepCounts {
                caught_up: 1,
                schedules: 250,
                ..SweepCounts::default()
            },
            totals: SweepCounts {
                caught_up: 4,
                repairs: 2,
                ..SweepCounts::default()
            },
            errors: vec!["schedule 3f00… of another tenant not checked".into()],
        })
        .await;
    assert!(recorded.is_ok());
    let (status, got, _) = send(&w, request("GET", "/api/sync/sweeper", None)).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["last_sweep_at"], "2026-11-24T12:00:00Z");
    assert_eq!(got["last"]["caught_up"], 1);
    assert_eq!(got["totals"]["repairs"], 2);
    assert_eq!(got["errors"], 1);
    assert_eq!(got["last"]["schedules"], 250);
    assert_eq!(got["pass"]["shard"], 3);
    assert_eq!(got["pass"]["shards"], 16);
    assert_eq!(got["pass"]["fire_times_until"], "2026-11-24T11:55:00Z");
    assert!(!got.to_string().contains("another"), "{got}");
}

#[tokio::test]
async fn alert_destinations_are_added_checked_listed_without_secrets_and_removed_per_tenant() {
    let w = world();
    let add = |body: Value| request("POST", "/api/alerts/destinations", Some(body));
    let (status, made, headers) = send(
        &w,
        add(json!({"kind": "webhook", "name": "pager", "url": "https://hooks.example.com/in?token=abc"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    assert_eq!(made["url_host"], "https://hooks.example.com");
    assert_eq!(made["secret"].as_str().map(str::len), Some(64));
    let id = made["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(
        headers.get("location").and_then(|v| v.to_str().ok()),
        Some(format!("/api/alerts/destinations/{id}").as_str())
    );
    for (bad, field) in [
        (json!({"kind": "pigeon"}), "kind"),
        (
            json!({"kind": "slack", "url": "http://hooks.example.com/x"}),
            "url",
        ),
        (
            json!({"kind": "slack", "url": "https://169.254.169.254/latest"}),
            "url",
        ),
        (json!({"kind": "slack"}), "url"),
        (
            json!({"kind": "webhook", "url": "https://hooks.example.com/x", "secret": "short"}),
            "secret",
        ),
        (json!({"kind": "sns", "colour": "red"}), "colour"),
    ] {
        let (status, body, _) = send(&w, add(bad.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["error"]["field"], field, "{bad}: {body}");
    }
    let (status, listed, _) = send(&w, request("GET", "/api/alerts/destinations", None)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["destinations"].as_array().map(Vec::len), Some(1));
    let text = listed.to_string();
    assert!(
        !text.contains("token=abc") && !text.contains("secret"),
        "{text}"
    );
    // Another tenant neither sees nor removes it.
    let other = |e: Value| with_tenant(e, "tenant-other");
    let (_, theirs, _) = send(&w, other(request("GET", "/api/alerts/destinations", None))).await;
    assert_eq!(theirs["destinations"], json!([]));
    let path = format!("/api/alerts/destinations/{id}");
    let (status, body, _) = send(&w, other(request("DELETE", &path, None))).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, _, _) = send(&w, request("DELETE", &path, None)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body, _) = send(&w, request("DELETE", &path, None)).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn alerts_are_listed_by_status_and_acknowledged_once_by_their_tenant() {
    use sync_core::domain::{AlertKind, AlertSubject, Raised};
    let w = world();
    let tenant = TenantId::parse("tenant-demo").unwrap_or_else(|e| panic!("{e}"));
    let raiser = sync_core::service::AlertRaiser::new(
        w.memory.alerts.clone(),
        Arc::new(FixedClock::new(chrono::Utc::now())),
    );
    let subject = AlertSubject::Stream(
        FIXTURE_CONNECTION.parse().unwrap_or_else(|e| panic!("{e}")),
        sync_core::domain::EntityType::Orders,
    );
    let raised = raiser
        .raise(Raised {
            tenant: &tenant,
            subject,
            kind: AlertKind::RunFailed,
            error: "401 from the shop",
            link: Some("/api/sync/runs/r1".into()),
        })
        .await;
    assert!(raised.is_ok());
    let (status, open, _) = send(&w, get_query("/api/alerts", &[("status", "open")])).await;
    assert_eq!(status, StatusCode::OK, "{open}");
    let alert = &open["alerts"][0];
    assert_eq!(alert["kind"], "run_failed");
    assert_eq!(alert["last_error"], "401 from the shop");
    assert!(alert["what_to_do"].as_str().is_some_and(|t| !t.is_empty()));
    let (_, resolved, _) = send(&w, get_query("/api/alerts", &[("status", "resolved")])).await;
    assert_eq!(resolved["alerts"], json!([]));
    let (status, body, _) = send(&w, get_query("/api/alerts", &[("status", "sometimes")])).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_field");
    let id = alert["id"].as_str().unwrap_or_default();
    let path = format!("/api/alerts/{id}/ack");
    let (status, body, _) = send(
        &w,
        with_tenant(request("POST", &path, None), "tenant-other"),
    )
    .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, acked, _) = send(&w, request("POST", &path, None)).await;
    assert_eq!(status, StatusCode::OK, "{acked}");
    assert!(acked["acked_at"].is_string());
    let cleared = raiser.resolve(&tenant, subject, AlertKind::RunFailed).await;
    assert!(cleared.is_ok());
    let (status, body, _) = send(&w, request("POST", &path, None)).await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
}

// --- fuzzing -----------------------------------------------------------------------------

mod fuzz {
    //! Requests of every route with mutated bodies, odd ids and odd query strings: the API
    //! never panics and never answers 5xx, and every refusal is a JSON error. The world
    //! keeps what earlier cases of its round made, so later cases meet schedules, flows and runs.

    use super::*;
    use proptest::prelude::*;
    use sync_api::routes::API_ROUTES;
    use sync_core::fuzzing::{http_rounds, mutated, odd_text};

    /// Ids of things that exist, to put in paths, queries and bodies.
    #[derive(Clone, Debug)]
    struct Known {
        ids: Vec<String>,
    }

    fn id_of(body: &Value) -> String {
        ["/id", "/connection/id", "/run_id"]
            .iter()
            .find_map(|p| body.pointer(p).and_then(Value::as_str))
            .unwrap_or_default()
            .to_string()
    }

    async fn made(w: &World, method: &str, path: &str, body: Value) -> String {
        let e = with_json(
            with_path(with_method(event("schedules-create.json"), method), path),
            body,
        );
        let (status, got, _) = send(w, e).await;
        assert!(status.is_success(), "{path}: {status} {got}");
        id_of(&got)
    }

    /// Things made through the API, so that each is as real as production's (the world's
    /// seeded fixture connection has no sealed secrets, which no real one lacks).
    async fn known(w: &World) -> Known {
        let store = made(
            w,
            "POST",
            "/api/connections",
            sync_core::fixtures::connection_body(Platform::WooCommerce),
        )
        .await;
        let project = made(
            w,
            "POST",
            "/api/connections",
            sync_core::fixtures::connection_body(Platform::Supabase),
        )
        .await;
        let schedule = made(
            w,
            "POST",
            "/api/sync/schedules",
            json!({"credential_id": store,
            "platform": "woocommerce", "entity_type": "orders", "cron_expression": "0 */15 * * * *",
            "timezone": "America/Edmonton"}),
        )
        .await;
        let flow = made(
            w,
            "POST",
            "/api/flows",
            json!({"source_connection_id": store,
            "target_connection_id": project, "entities": ["orders", "customers"]}),
        )
        .await;
        let run = made(
            w,
            "POST",
            "/api/sync/trigger",
            json!({"connection_id": store,
            "entity_type": "orders"}),
        )
        .await;
        let destination = made(
            w,
            "POST",
            "/api/alerts/destinations",
            json!({"kind": "webhook",
            "url": "https://hooks.example.com/ops", "secret": "fuzz-destination-secret-0123"}),
        )
        .await;
        Known {
            ids: vec![store.clone(), project, schedule, flow, run, destination],
        }
    }

    /// Bodies the API takes, to mutate.
    fn bodies(known: &Known) -> Vec<Value> {
        let id = |i: usize| known.ids.get(i).cloned().unwrap_or_default();
        vec![
            json!({"credential_id": id(0), "platform": "woocommerce", "entity_type": "orders",
                   "cron_expression": "0 9 * * MON-FRI", "timezone": "Europe/London", "sync_mode": "full",
                   "is_active": true, "overlap_policy": "skip", "catch_up_window": "PT2H",
                   "flexible_window_minutes": 15, "auto_pause_after": 3, "pause_note": "x"}),
            json!({"cron_expression": "30 2 * * *", "timezone": "America/Edmonton", "count": 3,
                   "after": "2026-03-07T00:00:00Z"}),
            sync_core::fixtures::connection_body(Platform::WooCommerce),
            sync_core::fixtures::connection_body(Platform::QuickBooks),
            json!({"display_name": "Shop", "config": {"base_url": "https://shop.example.com"},
                   "secrets": {"consumer_secret": "cs_0123456789"}, "webhooks_enabled": true}),
            json!({"source_connection_id": id(0), "target_connection_id": id(1),
                   "entities": ["orders"], "conflict_policy": "source_wins", "enabled": true}),
            json!({"connection_id": id(0), "entity_type": "orders", "sync_mode": "incremental",
                   "ids": ["1", "2"]}),
            json!({"connection_id": id(0), "entity_type": "orders",
                   "modified_from": "2026-11-01T00:00:00Z", "modified_to": "2026-11-02T00:00:00Z"}),
            json!({"connection_id": id(0), "entity_type": "orders", "cursor": "2026-11-01T00:00:00Z"}),
            json!({"connection_id": id(0), "entity_type": "orders", "error_contains": "500",
                   "error_code": "http_500",
                   "failed_from": "2026-11-01T00:00:00Z", "failed_to": "2026-12-01T00:00:00Z",
                   "not_quarantined_too": true}),
            json!({"kind": "slack", "name": "ops", "url": "https://hooks.slack.com/services/T/B/x"}),
        ]
    }

    fn encode(text: &str) -> String {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    }

    const QUERY_KEYS: [&str; 14] = [
        "limit",
        "next",
        "status",
        "connection_id",
        "entity_type",
        "schedule_id",
        "flow_id",
        "from",
        "to",
        "cascade",
        "count",
        "after",
        "trigger",
        "sync_mode",
    ];

    /// One request, as API Gateway would hand it to the function.
    fn request(known: Known) -> impl Strategy<Value = Value> {
        let seeds = bodies(&known);
        let n_seeds = seeds.len();
        let body = prop_oneof![
            1 => Just(None),
            6 => (0..n_seeds).prop_flat_map(move |i| mutated(seeds[i].clone(), 4)).prop_map(|v| Some(v.to_string())),
            1 => odd_text().prop_map(Some),
            1 => proptest::collection::vec(any::<u8>(), 0..64).prop_map(|b| Some(String::from_utf8_lossy(&b).into_owned())),
        ];
        let ids = known.ids.clone();
        let id = prop_oneof![
            4 => proptest::sample::select(ids),
            1 => Just(uuid::Uuid::new_v4().to_string()),
            1 => odd_text(),
        ];
        let key = prop_oneof![
            3 => proptest::sample::select(QUERY_KEYS.to_vec()).prop_map(str::to_string),
            1 => "[a-z_]{1,10}",
        ];
        let value = prop_oneof![
            2 => proptest::sample::select(known.ids.clone()),
            3 => odd_text(),
            1 => Just("true".to_string()),
            1 => (0u32..2000).prop_map(|n| n.to_string()),
        ];
        let method = prop_oneof![
            8 => Just(None),
            1 => proptest::sample::select(vec!["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]).prop_map(Some),
        ];
        let tail = prop_oneof![6 => Just(""), 1 => Just("/"), 1 => Just("/extra")];
        (
            0..API_ROUTES.len(),
            method,
            id,
            proptest::collection::vec((key, value), 0..4),
            body,
            tail,
            prop_oneof![9 => Just("tenant-demo"), 1 => Just("globex")],
        )
            .prop_map(|(route, method, id, query, body, tail, tenant)| {
                let route = &API_ROUTES[route];
                let path = format!("{}{tail}", route.path.replace("{id}", &encode(&id)));
                let raw_query: Vec<String> = query
                    .iter()
                    .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
                    .collect();
                let parameters: serde_json::Map<String, Value> = query
                    .into_iter()
                    .map(|(k, v)| (k, Value::from(v)))
                    .collect();
                let mut e = with_tenant(
                    with_path(
                        with_method(
                            event("schedules-create.json"),
                            method.unwrap_or(route.method),
                        ),
                        &path,
                    ),
                    tenant,
                );
                e["rawQueryString"] = json!(raw_query.join("&"));
                e["queryStringParameters"] = Value::Object(parameters);
                match body {
                    Some(b) => e["body"] = json!(b),
                    None => e["body"] = Value::Null,
                }
                e
            })
    }

    #[test]
    fn no_request_to_any_route_makes_the_api_panic_or_answer_5xx() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let world = || {
            let w = world();
            let known = rt.block_on(known(&w));
            (w, request(known))
        };
        let answered = http_rounds(400, world, |w, e| {
            // A path or query API Gateway would not hand over is not a case.
            let Ok(req) = lambda_http::request::from_str(&e.to_string()) else {
                return Ok(None);
            };
            let response = rt
                .block_on(handle(&w.app, req))
                .map_err(|err| TestCaseError::fail(format!("{err}")))?;
            let status = response.status();
            prop_assert!(!status.is_server_error(), "{status} for {e}");
            if status.is_client_error() {
                let body = match response.body() {
                    Body::Text(t) => serde_json::from_str::<Value>(t).unwrap_or(Value::Null),
                    _ => Value::Null,
                };
                prop_assert!(
                    body["error"]["message"].is_string(),
                    "{status} without a JSON error for {e}: {body}"
                );
            }
            Ok(Some(status.as_u16()))
        });
        eprintln!("API fuzz: {answered:?} answers by hundreds");
    }
}
