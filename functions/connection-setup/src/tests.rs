//! The handler on the `events/connections-webhooks-*.json` samples, with the webhook setup
//! use case over in-memory fakes (a connection of the sample tenant, its store in memory).

use super::*;
use lambda_http::http::StatusCode;
use std::sync::Arc;
use sync_core::clock::{Clock, FixedClock};
use sync_core::domain::{Connection, Platform, TenantId};
use sync_core::fixtures;
use sync_core::memory::{MemoryConnectors, MemoryIntuit, MemoryOAuthStates, MemoryPlatform};
use sync_core::service::{QuickBooksAppConfig, Services};

struct World {
    app: App,
    intuit: Arc<MemoryIntuit>,
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
    let intuit = Arc::new(MemoryIntuit::default());
    let app = QuickBooksAppConfig {
        client_id: "AB-client".into(),
        client_secret: "app-secret".into(),
        authorize_url: "https://appcenter.intuit.com/connect/oauth2".into(),
        token_url: "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer".into(),
        redirect_uri: None,
        environment: None,
        api_url: None,
    };
    World {
        intuit: intuit.clone(),
        app: App {
            setup: WebhookSetup::new(
                memory.connections.clone(),
                memory.sealer.clone(),
                connectors.clone(),
                clock.clone(),
            ),
            connect: QuickBooksConnect::new(
                memory.connections.clone(),
                memory.sealer.clone(),
                Arc::new(MemoryOAuthStates::default()),
                intuit,
                clock,
                sync_core::platforms::http::RetryPolicy::default(),
                Some(app),
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

/// A sample event as JSON, to change before it is made a request.
fn event_json(name: &str) -> Value {
    let bytes = fixtures::event_file(name).unwrap_or_else(|e| panic!("{e}"));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{e}"))
}

/// The sample event for `connection` (and, if given, another method).
fn event(name: &str, connection: &Connection, method: Option<&str>) -> Request {
    let mut e = event_json(name);
    let path = format!("/api/connections/{}/webhooks", connection.id);
    e["rawPath"] = json!(path);
    e["requestContext"]["http"]["path"] = json!(path);
    e["pathParameters"]["id"] = json!(connection.id.to_string());
    if let Some(m) = method {
        e["requestContext"]["http"]["method"] = json!(m);
    }
    lambda_http::request::from_str(&e.to_string()).unwrap_or_else(|e| panic!("{e}"))
}

/// A sample event as is.
fn sample(name: &str) -> Request {
    let bytes = fixtures::event_file(name).unwrap_or_else(|e| panic!("{e}"));
    lambda_http::request::from_str(&String::from_utf8_lossy(&bytes))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The callback sample with these query parameters.
fn callback_event(params: &[(&str, &str)]) -> Request {
    lambda_http::request::from_str(&callback_json(params).to_string())
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The same, as JSON.
fn callback_json(params: &[(&str, &str)]) -> Value {
    let mut e = event_json("oauth-quickbooks-callback.json");
    let query: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{k}={}", sync_core::platforms::http::encode(v)))
        .collect();
    e["rawQueryString"] = json!(query.join("&"));
    e["queryStringParameters"] = json!(params
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect::<serde_json::Map<String, Value>>());
    e
}

/// The status, and the page's text, of an HTML answer.
async fn page(w: &World, req: Request) -> (StatusCode, String, String) {
    let response = handle(&w.app, req).await.unwrap_or_else(|e| panic!("{e}"));
    let kind = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let text = match response.body() {
        Body::Text(t) => t.clone(),
        _ => String::new(),
    };
    (response.status(), kind, text)
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

#[tokio::test]
async fn authorizing_answers_the_consent_url_and_the_callback_connects_the_company_once() {
    let w = world().await;
    let (status, body) = send(&w, sample("connections-quickbooks-authorize.json")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["redirect_uri"],
        "https://api.example.com/oauth/quickbooks/callback"
    );
    let url = body["authorize_url"].as_str().unwrap_or_default();
    assert!(
        url.starts_with("https://appcenter.intuit.com/connect/oauth2?client_id=AB-client"),
        "{url}"
    );
    let state = url
        .split('&')
        .find_map(|p| p.strip_prefix("state="))
        .unwrap_or_default()
        .to_string();
    w.intuit.grant("code-1");
    let back = [
        ("code", "code-1"),
        ("state", state.as_str()),
        ("realmId", "9341453050263456"),
    ];
    let (status, kind, text) = page(&w, callback_event(&back)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(kind, "text/html; charset=utf-8");
    assert!(
        text.contains("QuickBooks company 9341453050263456 is now connected"),
        "{text}"
    );
    let tenant = TenantId::parse("tenant-demo").unwrap_or_else(|e| panic!("{e}"));
    let books: Vec<_> = w
        .services
        .connections
        .list(&tenant)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .filter(|c| c.platform == Platform::QuickBooks)
        .collect();
    assert_eq!(books.len(), 1);
    // The same redirect again (a reload, or someone replaying it): refused, nothing changes.
    let (status, _, text) = page(&w, callback_event(&back)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.contains("already used"), "{text}");
}

#[tokio::test]
async fn the_sample_callback_state_is_refused_with_a_page_that_escapes_what_it_shows() {
    let w = world().await;
    let (status, kind, text) = page(&w, sample("oauth-quickbooks-callback.json")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(kind.starts_with("text/html"));
    assert!(text.contains("start connecting again"), "{text}");
    // A declined consent names Intuit's error, escaped.
    let (_, state, _) = {
        let (s, b) = send(&w, sample("connections-quickbooks-authorize.json")).await;
        assert_eq!(s, StatusCode::OK);
        let url = b["authorize_url"].as_str().unwrap_or_default().to_string();
        let state = url
            .split('&')
            .find_map(|p| p.strip_prefix("state="))
            .unwrap_or_default()
            .to_string();
        (s, state, url)
    };
    let (status, _, text) = page(
        &w,
        callback_event(&[
            ("error", "<script>access_denied</script>"),
            ("state", &state),
        ]),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.contains("&lt;script&gt;access_denied"), "{text}");
    assert!(!text.contains("<script>"));
}

mod fuzz {
    //! Requests of every connection-setup route with odd ids, methods, tenants and bodies,
    //! and consent callbacks with odd, forged, replayed and real states, codes and company
    //! ids: the function never panics and never answers 5xx; every JSON refusal says why,
    //! and every page of the callback is a page.

    use super::*;
    use proptest::prelude::*;
    use sync_core::fuzzing::{http_rounds, mutated, odd_text};

    /// What exists in a round: the connection's id and the states of consents begun.
    #[derive(Clone, Debug)]
    struct Known {
        connection: String,
        states: Vec<String>,
    }

    async fn known(w: &World) -> Known {
        let mut states = Vec::new();
        for _ in 0..3 {
            let (status, body) = send(w, sample("connections-quickbooks-authorize.json")).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let url = body["authorize_url"].as_str().unwrap_or_default();
            if let Some(state) = url.split('&').find_map(|p| p.strip_prefix("state=")) {
                states.push(state.to_string());
            }
        }
        // Intuit takes this code once; others it refuses.
        w.intuit.grant("code-fuzz");
        Known {
            connection: w.connection.id.to_string(),
            states,
        }
    }

    /// One request as API Gateway would hand it over: to the webhooks route, to the
    /// consent route, or a callback.
    fn request(known: Known) -> impl Strategy<Value = Value> {
        let id = prop_oneof![
            4 => Just(known.connection.clone()),
            1 => Just(uuid_like()),
            1 => odd_text(),
        ];
        let method = prop_oneof![
            6 => proptest::sample::select(vec!["POST", "DELETE"]),
            1 => proptest::sample::select(vec!["GET", "PUT", "PATCH", "OPTIONS", "HEAD"]),
        ];
        let body = prop_oneof![
            2 => Just(None),
            2 => mutated(json!({"webhook_url": "https://api.example.com/webhooks/woocommerce"}), 3)
                .prop_map(|v| Some(v.to_string())),
            1 => odd_text().prop_map(Some),
        ];
        let tenant = prop_oneof![8 => Just("tenant-demo"), 1 => Just("globex"), 1 => Just("")];
        let setup =
            (0..2usize, id, method, body, tenant).prop_map(|(route, id, method, body, tenant)| {
                let mut e = if route == 0 {
                    event_json("connections-webhooks-register.json")
                } else {
                    event_json("connections-quickbooks-authorize.json")
                };
                if route == 0 {
                    let path = format!(
                        "/api/connections/{}/webhooks",
                        sync_core::platforms::http::encode(&id)
                    );
                    e["rawPath"] = json!(path);
                    e["requestContext"]["http"]["path"] = json!(path);
                    e["pathParameters"]["id"] = json!(id);
                }
                e["requestContext"]["http"]["method"] = json!(method);
                e["body"] = body.map_or(Value::Null, Value::from);
                if tenant.is_empty() {
                    e["requestContext"]["authorizer"] = Value::Null;
                } else {
                    e["requestContext"]["authorizer"]["jwt"]["claims"]["tenant_id"] = json!(tenant);
                }
                e
            });
        let state = prop_oneof![
            3 => proptest::sample::select(known.states.clone()),
            1 => odd_text(),
            1 => proptest::sample::select(known.states).prop_map(|s| format!("{s}x")),
        ];
        let code = prop_oneof![2 => Just("code-fuzz".to_string()), 1 => odd_text()];
        let realm = prop_oneof![2 => Just("9341453050263456".to_string()), 1 => odd_text()];
        let param = |v: BoxedStrategy<String>| prop_oneof![5 => v.prop_map(Some), 1 => Just(None)];
        let callback = (
            param(code.boxed()),
            param(state.boxed()),
            param(realm.boxed()),
            prop_oneof![6 => Just(None), 1 => odd_text().prop_map(Some)],
        )
            .prop_map(|(code, state, realm, error)| {
                let params: Vec<(&str, String)> = [
                    ("code", code),
                    ("state", state),
                    ("realmId", realm),
                    ("error", error),
                ]
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k, v)))
                .collect();
                let params: Vec<(&str, &str)> =
                    params.iter().map(|(k, v)| (*k, v.as_str())).collect();
                callback_json(&params)
            });
        prop_oneof![2 => setup, 1 => callback]
    }

    fn uuid_like() -> String {
        "7d5c2f1e-9a3b-4c8d-8e2f-0a1b2c3d4e5f".to_string()
    }

    #[test]
    fn no_request_to_a_connection_setup_route_makes_it_panic_or_answer_5xx() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let world = || {
            let w = rt.block_on(world());
            let known = rt.block_on(known(&w));
            (w, request(known))
        };
        let answered = http_rounds(400, world, |w, e| {
            let Ok(req) = lambda_http::request::from_str(&e.to_string()) else {
                return Ok(None);
            };
            let callback = req.uri().path().starts_with("/oauth/");
            let response = rt
                .block_on(handle(&w.app, req))
                .map_err(|err| TestCaseError::fail(format!("{err}")))?;
            let status = response.status();
            prop_assert!(!status.is_server_error(), "{status} for {e}");
            let text = match response.body() {
                Body::Text(t) => t.clone(),
                _ => String::new(),
            };
            if callback {
                prop_assert!(
                    text.contains("</html>"),
                    "{status}: not a page for {e}: {text}"
                );
            } else if status.is_client_error() {
                let body = serde_json::from_str::<Value>(&text).unwrap_or(Value::Null);
                prop_assert!(
                    body["error"]["message"].is_string(),
                    "{status} without a JSON error for {e}: {body}"
                );
            }
            Ok(Some(status.as_u16()))
        });
        eprintln!("connection-setup fuzz: {answered:?} answers by hundreds");
    }
}
