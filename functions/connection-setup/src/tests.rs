//! The handler on the `events/connections-webhooks-*.json` samples, with the webhook setup
//! use case over in-memory fakes (a connection of the sample tenant, its store in memory).

use super::*;
use lambda_http::http::StatusCode;
use std::sync::Arc;
use sync_core::clock::{Clock, FixedClock};
use sync_core::domain::{Connection, Platform, TenantId};
use sync_core::fixtures;
use sync_core::memory::{MemoryConnectors, MemoryPlatform};
use sync_core::service::Services;

struct World {
    app: App,
    services: Services,
    connectors: Arc<MemoryConnectors>,
    store: Arc<MemoryPlatform>,
    connection: Connection,
}

async fn world() -> World {
    let clock: Arc<dyn Clock> = Arc::new(FixedClock::new(
        chrono::DateTime::from_timestamp(1_795_521_600, 0).unwrap_or_default(),
    ));
    let (services, memory) = Services::in_memory(clock.clone());
    let tenant = TenantId::parse("tenant-demo").unwrap_or_else(|e| panic!("{e}"));
    let connection = services
        .connections
        .create(&tenant, fixtures::new_connection(Platform::WooCommerce))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let store = Arc::new(MemoryPlatform::new(clock.clone(), 100));
    let connectors = Arc::new(MemoryConnectors::default());
    connectors.attach(connection.id, store.clone());
    let settings = ApiSettings {
        public_base_url: Some("https://api.example.com".into()),
        ..ApiSettings::default()
    };
    World {
        app: App {
            setup: WebhookSetup::new(
                memory.connections.clone(),
                memory.sealer.clone(),
                connectors.clone(),
                clock,
            ),
            settings,
            time_limit: std::time::Duration::from_secs(2),
        },
        services,
        connectors,
        store,
        connection,
    }
}

/// The sample event for `connection` (and, if given, another method).
fn event(name: &str, connection: &Connection, method: Option<&str>) -> Request {
    let bytes = fixtures::event_file(name).unwrap_or_else(|e| panic!("{e}"));
    let mut e: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{e}"));
    let path = format!("/api/connections/{}/webhooks", connection.id);
    e["rawPath"] = json!(path);
    e["requestContext"]["http"]["path"] = json!(path);
    e["pathParameters"]["id"] = json!(connection.id.to_string());
    if let Some(m) = method {
        e["requestContext"]["http"]["method"] = json!(m);
    }
    lambda_http::request::from_str(&e.to_string()).unwrap_or_else(|e| panic!("{e}"))
}

async fn send(w: &World, req: Request) -> (StatusCode, Value) {
    let response = handle(&w.app, req).await.unwrap_or_else(|e| panic!("{e}"));
    let status = response.status();
    let body = match response.body() {
        Body::Text(t) => serde_json::from_str(t).unwrap_or(Value::Null),
        _ => Value::Null,
    };
    (status, body)
}

#[tokio::test]
async fn registering_creates_the_platforms_webhooks_and_registering_again_updates_them() {
    let w = world().await;
    let url = format!(
        "https://api.example.com/webhooks/woocommerce/{}",
        w.connection.id
    );
    let (status, body) = send(
        &w,
        event("connections-webhooks-register.json", &w.connection, None),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["webhook_url"], json!(url));
    assert_eq!(body["webhooks_enabled"], true);
    let changes: Vec<&str> = body["subscriptions"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s["change"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(changes, ["created", "created", "created"]);
    let (status, again) = send(
        &w,
        event("connections-webhooks-register.json", &w.connection, None),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(again["subscriptions"]
        .as_array()
        .is_some_and(|a| a.iter().all(|s| s["change"] == "updated")));
    assert_eq!(w.store.subscriptions().len(), 3, "nothing doubled");
}

#[tokio::test]
async fn removing_deletes_them_and_other_methods_and_tenants_are_refused() {
    let w = world().await;
    send(
        &w,
        event("connections-webhooks-register.json", &w.connection, None),
    )
    .await;
    let (status, body) = send(
        &w,
        event("connections-webhooks-remove.json", &w.connection, None),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(w.store.subscriptions().is_empty());
    let (status, body) = send(
        &w,
        event(
            "connections-webhooks-register.json",
            &w.connection,
            Some("GET"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    // A connection that does not exist is not found.
    let mut missing = w.connection.clone();
    missing.id = sync_core::domain::ConnectionId::new_random();
    let (status, body) = send(
        &w,
        event("connections-webhooks-register.json", &missing, None),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
    assert!(w.store.subscriptions().is_empty());
}

#[tokio::test]
async fn another_tenants_connection_is_not_found_and_gets_no_webhooks() {
    let w = world().await;
    let globex = TenantId::parse("globex").unwrap_or_else(|e| panic!("{e}"));
    let theirs = w
        .services
        .connections
        .create(&globex, fixtures::new_connection(Platform::WooCommerce))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    w.connectors.attach(theirs.id, w.store.clone());
    // The sample event's token is tenant-demo's.
    for name in [
        "connections-webhooks-register.json",
        "connections-webhooks-remove.json",
    ] {
        let (status, body) = send(&w, event(name, &theirs, None)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{name}: {body}");
    }
    assert!(w.store.subscriptions().is_empty());
}

#[tokio::test]
async fn a_platform_that_does_not_answer_in_time_is_a_json_504() {
    let w = world().await;
    w.store.set_latency(std::time::Duration::from_secs(5));
    let (status, body) = send(
        &w,
        event("connections-webhooks-register.json", &w.connection, None),
    )
    .await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert_eq!(body["error"]["code"], "platform_timeout");
}
