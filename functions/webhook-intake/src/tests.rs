//! The intake handler on the `events/webhook-*.json` fixtures, with in-memory fakes behind
//! it and connections created by the real connection service.

use super::*;
use lambda_http::http::StatusCode;
use std::sync::Arc;
use sync_core::clock::FixedClock;
use sync_core::domain::{Connection, Platform};
use sync_core::fixtures;
use sync_core::memory::MemoryWorld;
use sync_core::service::{IntakeSettings, Services};

struct World {
    app: App,
    services: Services,
    memory: MemoryWorld,
}

fn world() -> World {
    let clock = Arc::new(FixedClock::new(
        chrono::DateTime::parse_from_rfc3339("2026-11-24T12:12:45Z")
            .map(|t| t.with_timezone(&chrono::Utc))
            .unwrap_or_default(),
    ));
    let (services, memory) = Services::in_memory(clock.clone());
    let intake = Intake::new(
        memory.connections.clone(),
        memory.sealer.clone(),
        memory.events.clone(),
        memory.queue.clone(),
        clock,
        IntakeSettings::default(),
    );
    World {
        app: App {
            intake,
            max_body_bytes: 64 * 1024,
            metrics_namespace: "SyncService".into(),
        },
        services,
        memory,
    }
}

async fn connection(w: &World, platform: Platform) -> Connection {
    w.services
        .connections
        .create(&fixtures::tenant(), fixtures::new_connection(platform))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

fn event(name: &str) -> Value {
    let bytes = fixtures::event_file(name).unwrap_or_else(|e| panic!("{e}"));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The fixture, sent to `connection` instead of the fixture's own connection id.
fn to(mut e: Value, c: &Connection) -> Value {
    let path = format!("/webhooks/{}/{}", c.platform, c.id);
    e["rawPath"] = json!(path);
    e["requestContext"]["http"]["path"] = json!(path);
    e
}

async fn send(w: &World, e: Value) -> (StatusCode, Value) {
    let req = lambda_http::request::from_str(&e.to_string()).unwrap_or_else(|err| panic!("{err}"));
    let response = handle(&w.app, req)
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    let status = response.status();
    let body = match response.body() {
        Body::Text(t) => serde_json::from_str(t).unwrap_or(Value::Null),
        _ => Value::Null,
    };
    (status, body)
}

#[tokio::test]
async fn each_platforms_signed_sample_is_accepted() {
    let w = world();
    let woo = connection(&w, Platform::WooCommerce).await;
    let qbo = connection(&w, Platform::QuickBooks).await;
    let sb = connection(&w, Platform::Supabase).await;
    let cases = [
        (
            "webhook-woocommerce-order-updated.json",
            &woo,
            json!({"queued": 1, "duplicates": 0, "ignored": 0}),
        ),
        (
            "webhook-quickbooks-classic.json",
            &qbo,
            json!({"queued": 2, "duplicates": 0, "ignored": 2}),
        ),
        (
            "webhook-quickbooks-cloudevents.json",
            &qbo,
            json!({"queued": 2, "duplicates": 0, "ignored": 0}),
        ),
        (
            "webhook-supabase-update.json",
            &sb,
            json!({"queued": 1, "duplicates": 0, "ignored": 0}),
        ),
    ];
    for (file, c, expected) in cases {
        let (status, body) = send(&w, to(event(file), c)).await;
        assert_eq!((status, body), (StatusCode::OK, expected), "{file}");
    }
    assert_eq!(w.memory.queue.events().len(), 6);
    // Redelivered: all duplicates, nothing more queued.
    let (status, body) = send(&w, to(event("webhook-quickbooks-cloudevents.json"), &qbo)).await;
    assert_eq!(
        (status, body["duplicates"].clone()),
        (StatusCode::OK, json!(2))
    );
    assert_eq!(w.memory.queue.events().len(), 6);
}

#[tokio::test]
async fn the_ping_is_answered_with_exactly_200() {
    let w = world();
    let woo = connection(&w, Platform::WooCommerce).await;
    let (status, _) = send(&w, to(event("webhook-woocommerce-ping.json"), &woo)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(w.memory.queue.events().is_empty());
}

#[tokio::test]
async fn authentication_failures_are_a_generic_401() {
    let w = world();
    let woo = connection(&w, Platform::WooCommerce).await;
    let mut truncated = to(event("webhook-woocommerce-order-updated.json"), &woo);
    let body = truncated["body"].as_str().unwrap_or_default().to_string();
    truncated["body"] = json!(body[..body.len() - 10]);
    let mut not_utf8 = to(event("webhook-woocommerce-order-updated.json"), &woo);
    not_utf8["body"] = json!("//79/A==");
    not_utf8["isBase64Encoded"] = json!(true);
    let unknown = event("webhook-woocommerce-order-updated.json");
    let mut wrong_platform = to(event("webhook-woocommerce-order-updated.json"), &woo);
    wrong_platform["rawPath"] = json!(format!("/webhooks/supabase/{}", woo.id));
    for e in [
        to(event("webhook-woocommerce-bad-signature.json"), &woo),
        truncated,
        not_utf8,
        unknown,
        wrong_platform,
    ] {
        let (status, body) = send(&w, e).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            body,
            json!({"error": {"code": "unauthorized", "message": "the delivery could not be authenticated"}})
        );
    }
    assert!(w.memory.queue.events().is_empty() && w.memory.events.records().is_empty());
}

#[tokio::test]
async fn content_type_size_method_and_path_are_checked() {
    let w = world();
    let woo = connection(&w, Platform::WooCommerce).await;
    let mut text = to(event("webhook-woocommerce-order-updated.json"), &woo);
    text["headers"]["content-type"] = json!("text/plain");
    assert_eq!(send(&w, text).await.0, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let mut big = to(event("webhook-woocommerce-order-updated.json"), &woo);
    big["body"] = json!("x".repeat(64 * 1024 + 1));
    assert_eq!(send(&w, big).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    let mut get = to(event("webhook-woocommerce-order-updated.json"), &woo);
    get["requestContext"]["http"]["method"] = json!("GET");
    assert_eq!(send(&w, get).await.0, StatusCode::METHOD_NOT_ALLOWED);
    let mut elsewhere = to(event("webhook-woocommerce-order-updated.json"), &woo);
    elsewhere["rawPath"] = json!(format!("/webhooks/woocommerce/{}/more", woo.id));
    assert_eq!(send(&w, elsewhere).await.0, StatusCode::NOT_FOUND);
    // The app-wide URL of a platform without one (or of a deployment without the app).
    let mut app = to(event("webhook-woocommerce-order-updated.json"), &woo);
    app["rawPath"] = json!("/webhooks/woocommerce");
    assert_eq!(send(&w, app).await.0, StatusCode::UNAUTHORIZED);
    // The QBO CloudEvents content type is accepted for QBO only.
    let mut ce = to(event("webhook-woocommerce-order-updated.json"), &woo);
    ce["headers"]["content-type"] = json!("application/cloudevents+json");
    assert_eq!(send(&w, ce).await.0, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(w.memory.queue.events().is_empty());
}

#[tokio::test]
async fn a_queue_outage_is_503_and_the_retry_is_queued_once() {
    let w = world();
    let sb = connection(&w, Platform::Supabase).await;
    w.memory.queue.set_failing(true);
    let (status, body) = send(&w, to(event("webhook-supabase-update.json"), &sb)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        !body.to_string().contains("memory"),
        "internals leaked: {body}"
    );
    w.memory.queue.set_failing(false);
    assert_eq!(
        send(&w, to(event("webhook-supabase-update.json"), &sb))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        send(&w, to(event("webhook-supabase-update.json"), &sb))
            .await
            .1["duplicates"],
        json!(1)
    );
    assert_eq!(w.memory.queue.events().len(), 1);
}

thread_local! {
    /// Log output of the test running on this thread (see [`logged`]).
    static LOG: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Writes log lines into this thread's [`LOG`].
struct ThreadLog;

impl std::io::Write for ThreadLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOG.with(|log| log.borrow_mut().extend_from_slice(buf));
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Log lines written on this thread while `f` runs, as text. The subscriber is the process's
/// global one (a per-test default would race with other tests over tracing's callsite cache).
async fn logged<F: std::future::Future>(f: F) -> String {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_writer(|| ThreadLog)
            .with_max_level(tracing::Level::INFO)
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
    LOG.with(|log| log.borrow_mut().clear());
    f.await;
    LOG.with(|log| String::from_utf8_lossy(&log.borrow()).into_owned())
}

#[tokio::test(flavor = "current_thread")]
async fn a_huge_attacker_controlled_path_is_clipped_in_the_logs() {
    let w = world();
    let woo = connection(&w, Platform::WooCommerce).await;
    let mut e = to(event("webhook-woocommerce-order-updated.json"), &woo);
    let path = format!("/webhooks/{}/{}", "x".repeat(60_000), woo.id);
    e["rawPath"] = json!(path);
    e["requestContext"]["http"]["path"] = json!(path);
    let lines = logged(async {
        let (status, _) = send(&w, e).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    })
    .await;
    assert!(lines.contains("webhook refused"), "{lines}");
    assert!(lines.contains("bytes in all"), "{lines}");
    assert!(lines.len() < 2_000, "{} bytes logged", lines.len());
}

#[test]
fn each_delivery_is_one_metrics_line_of_its_events_or_its_refusal() {
    let line = |status: StatusCode, body: &str| -> Value {
        let mut response = Response::new(Body::Text(body.to_string()));
        *response.status_mut() = status;
        serde_json::from_str(&crate::metrics(
            "SyncService/test",
            &response,
            chrono::Utc::now(),
        ))
        .unwrap_or_default()
    };
    let accepted = line(StatusCode::OK, r#"{"queued":2,"duplicates":1,"ignored":0}"#);
    assert_eq!(accepted["Function"], "WebhookIntake");
    assert_eq!(accepted["WebhookEventsQueued"], 2.0);
    assert_eq!(accepted["WebhookEventsDuplicate"], 1.0);
    assert_eq!(accepted["WebhookDeliveriesRefused"], 0.0);
    let refused = line(
        StatusCode::UNAUTHORIZED,
        r#"{"error":{"code":"unauthorized"}}"#,
    );
    assert_eq!(refused["WebhookDeliveriesRefused"], 1.0);
    assert_eq!(refused["WebhookEventsQueued"], 0.0);
    let failed = line(StatusCode::SERVICE_UNAVAILABLE, "{}");
    assert_eq!(failed["WebhookDeliveriesFailed"], 1.0);
}

mod fuzz {
    //! Deliveries of every platform with mutated bodies, odd signatures and headers, to
    //! real, unknown and odd connection ids: the intake never panics and never answers 5xx,
    //! and nothing is queued unless the delivery was signed with the connection's secret.

    use super::*;
    use proptest::prelude::*;
    use sync_core::fuzzing::{http_rounds, mutated, odd_text};
    use sync_core::platforms::SignOptions;

    const SAMPLES: [(Platform, &str); 4] = [
        (
            Platform::WooCommerce,
            "webhooks/woocommerce-order-updated.body.json",
        ),
        (
            Platform::QuickBooks,
            "webhooks/quickbooks-classic.body.json",
        ),
        (
            Platform::QuickBooks,
            "webhooks/quickbooks-cloudevents.body.json",
        ),
        (Platform::Supabase, "webhooks/supabase-update.body.json"),
    ];

    /// How a delivery is signed.
    #[derive(Clone, Debug)]
    enum Signing {
        Right,
        WrongSecret(String),
        Odd(String),
        None,
    }

    fn delivery(
        ids: Vec<String>,
    ) -> impl Strategy<Value = (Platform, String, Value, Signing, Vec<(String, String)>)> {
        let body = (0..SAMPLES.len()).prop_flat_map(|i| {
            let seed = event(SAMPLES[i].1);
            (Just(SAMPLES[i].0), mutated(seed, 4))
        });
        let signing = prop_oneof![
            4 => Just(Signing::Right),
            1 => odd_text().prop_map(Signing::WrongSecret),
            1 => odd_text().prop_map(Signing::Odd),
            1 => Just(Signing::None),
        ];
        let target = prop_oneof![
            6 => proptest::sample::select(ids),
            1 => Just("0b7e4f7e-93f5-4a7c-9d2e-7a1c5e3f9b21".to_string()),
            1 => odd_text().prop_map(|t| t.bytes().map(|b| format!("%{b:02X}")).collect()),
        ];
        let header = (
            proptest::sample::select(vec![
                "x-wc-webhook-topic",
                "x-wc-webhook-signature",
                "intuit-signature",
                "content-type",
                "x-webhook-secret",
                "x-wc-webhook-id",
                "x-wc-webhook-delivery-id",
                "content-length",
            ]),
            "[ -~]{0,40}",
        )
            .prop_map(|(n, v)| (n.to_string(), v));
        (
            body,
            signing,
            target,
            proptest::collection::vec(header, 0..3),
        )
            .prop_map(|((platform, body), signing, target, headers)| {
                (platform, target, body, signing, headers)
            })
    }

    #[test]
    fn no_delivery_makes_the_intake_panic_or_answer_5xx_and_only_signed_ones_queue() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let world = || {
            let w = world();
            let connections: Vec<Connection> = rt.block_on(async {
                let mut all = Vec::new();
                for platform in [
                    Platform::WooCommerce,
                    Platform::QuickBooks,
                    Platform::Supabase,
                ] {
                    all.push(connection(&w, platform).await);
                }
                all
            });
            let ids: Vec<String> = connections.iter().map(|c| c.id.to_string()).collect();
            ((w, connections), delivery(ids))
        };
        let answered = http_rounds(
            300,
            world,
            |(w, connections), (platform, target, body, signing, extra)| {
                let bytes = body.to_string().into_bytes();
                let secret = fixtures::webhook_secret(platform);
                let options = SignOptions {
                    topic: Some("order.updated".into()),
                    header: None,
                };
                let signed: Vec<(String, String)> = match &signing {
                    Signing::Right => platform.module().sign(secret, &bytes, &options),
                    Signing::WrongSecret(s) => platform.module().sign(s, &bytes, &options),
                    Signing::Odd(s) => platform
                        .module()
                        .sign(secret, &bytes, &options)
                        .into_iter()
                        .map(|(n, _)| (n, s.clone()))
                        .collect(),
                    Signing::None => Vec::new(),
                };
                let mut headers = serde_json::Map::new();
                headers.insert("content-type".into(), json!("application/json"));
                for (n, v) in signed.iter().cloned().chain(extra) {
                    headers.insert(n.to_lowercase(), Value::from(v));
                }
                // Genuine: signed with the connection's secret, and no extra header replaced
                // what the signing put there.
                let intact = matches!(signing, Signing::Right)
                    && signed.iter().all(|(n, v)| {
                        headers.get(&n.to_lowercase()).and_then(Value::as_str) == Some(v.as_str())
                    });
                let mut e = event("webhook-woocommerce-order-updated.json");
                let path = format!("/webhooks/{platform}/{target}");
                e["rawPath"] = json!(path);
                e["requestContext"]["http"]["path"] = json!(path);
                e["headers"] = Value::Object(headers);
                e["body"] = json!(String::from_utf8_lossy(&bytes));
                let Ok(req) = lambda_http::request::from_str(&e.to_string()) else {
                    return Ok(None);
                };
                let before = w.memory.queue.events().len();
                let response = rt
                    .block_on(handle(&w.app, req))
                    .map_err(|err| TestCaseError::fail(format!("{err}")))?;
                let status = response.status();
                prop_assert!(!status.is_server_error(), "{status} for {e}");
                let queued = w.memory.queue.events().len() > before;
                let genuine = intact
                    && connections
                        .iter()
                        .any(|c| c.id.to_string() == target && c.platform == platform);
                prop_assert!(
                    !queued || genuine,
                    "queued a delivery signed {signing:?} to {target}"
                );
                Ok(Some(status.as_u16()))
            },
        );
        eprintln!("intake fuzz: {answered:?} answers by hundreds");
    }
}
