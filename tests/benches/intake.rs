//! The webhook intake handler, timed. Two parts:
//!
//! 1. Time per delivery excluding AWS calls: the full handler path (routing, header
//!    collection, connection lookup, signature check over the raw body, parsing, claim,
//!    queue, confirm) with DynamoDB, KMS and SQS replaced by in-memory adapters.
//! 2. A signed QuickBooks delivery carrying 200 entity changes (QuickBooks batches events
//!    and wants an answer within 3 seconds): against the same in-memory adapters (zero
//!    latency), and against moto over HTTP (real SDK calls: 200 claims, 20 queue batches,
//!    4 confirmations).
//!
//! Requests are built before the clock starts. Run with `cargo bench -p integration-tests
//! --bench intake`; it prints mean, median and p99 per scenario.
//!
//! The machine this runs on may be shared and noisy: read the figures as orders of
//! magnitude, and compare runs on the same machine.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lambda_http::Request;
use serde_json::{json, Value};
use sync_core::clock::SystemClock;
use sync_core::domain::{Connection, Platform};
use sync_core::fixtures;
use sync_core::platforms::quickbooks::webhook as quickbooks;
use sync_core::platforms::woocommerce::webhook as woocommerce;
use sync_core::service::{Intake, IntakeSettings, Services};
use webhook_intake::{handle, App};

/// Rounds of the 200-event delivery.
const BIG_ROUNDS: usize = 20;
const BIG_EVENTS: usize = 200;

const ROUNDS: usize = 5_000;
const WARM_UP: usize = 200;
/// The sample connections' webhook secrets.
const WOO_SECRET: &str = "whsec_Sample&amp;Secret-0123456789";
const QBO_TOKEN: &str = "verifier-token-0123456789abcdef";
const SB_SECRET: &str = "sb-shared-secret-0123456789abcdef";

fn fixture(name: &str) -> Vec<u8> {
    fixtures::event_file(name).unwrap_or_else(|e| panic!("{e}"))
}

/// An API Gateway event for `body` sent to connection `c` with `headers`.
fn request(c: &Connection, body: &[u8], headers: Value) -> Request {
    let path = format!("/webhooks/{}/{}", c.platform, c.id);
    let event = json!({
        "version": "2.0", "routeKey": "ANY /webhooks/{platform}/{connection_id}",
        "rawPath": path, "rawQueryString": "", "headers": headers,
        "requestContext": {"accountId": "1", "apiId": "a", "domainName": "example.com",
            "http": {"method": "POST", "path": path, "protocol": "HTTP/1.1", "sourceIp": "198.51.100.7", "userAgent": "bench"},
            "requestId": "r", "routeKey": "ANY /webhooks/{platform}/{connection_id}", "stage": "$default", "timeEpoch": 0},
        "body": String::from_utf8_lossy(body), "isBase64Encoded": false,
    });
    lambda_http::request::from_str(&event.to_string()).unwrap_or_else(|e| panic!("{e}"))
}

async fn connection(services: &Services, platform: Platform) -> Connection {
    services
        .connections
        .create(&fixtures::tenant(), fixtures::new_connection(platform))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

fn woo_order(c: &Connection, id: usize) -> Request {
    let mut order: Value =
        serde_json::from_slice(&fixture("webhooks/woocommerce-order-updated.body.json"))
            .unwrap_or_default();
    order["id"] = json!(id);
    let body = order.to_string().into_bytes();
    request(
        c,
        &body,
        json!({"content-type": "application/json", "x-wc-webhook-topic": "order.updated",
        "x-wc-webhook-signature": woocommerce::sign(WOO_SECRET, &body)}),
    )
}

fn qbo_event(c: &Connection, id: usize) -> Request {
    let body = format!(r#"[{{"specversion":"1.0","id":"evt-{id}","source":"intuit","type":"qbo.invoice.updated.v1","datacontenttype":"application/json","time":"2026-11-24T12:00:00Z","intuitentityid":"{id}","intuitaccountid":"9130350000000001","data":{{}}}}]"#).into_bytes();
    request(
        c,
        &body,
        json!({"content-type": "application/cloudevents+json", "intuit-signature": quickbooks::sign(QBO_TOKEN, &body)}),
    )
}

/// A classic QuickBooks delivery with `events` customer changes (ids unique per `round`).
fn qbo_batch(c: &Connection, round: usize, events: usize) -> Request {
    let entities: Vec<Value> = (0..events)
        .map(|i| json!({"name": "Customer", "id": format!("{}", round * 10_000 + i), "operation": "Update", "lastUpdated": "2026-11-24T12:00:00.000Z"}))
        .collect();
    let body = json!({"eventNotifications": [{"realmId": "9130350000000001", "dataChangeEvent": {"entities": entities}}]})
        .to_string()
        .into_bytes();
    request(
        c,
        &body,
        json!({"content-type": "application/json", "intuit-signature": quickbooks::sign(QBO_TOKEN, &body)}),
    )
}

/// Times each delivery in full (no warm-up is dropped: each round is a new batch). After
/// each, `between` runs untimed (the moto run drains the queue there, as the coalescer
/// would: moto's SQS, unlike SQS, slows down as a queue it keeps grows).
async fn measure_batches<F, Fut>(app: &App, name: &str, requests: Vec<Request>, between: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut times = Vec::with_capacity(requests.len());
    for req in requests {
        let start = Instant::now();
        let response = handle(app, req).await.unwrap_or_else(|e| panic!("{e}"));
        times.push(start.elapsed());
        assert_eq!(response.status(), 200, "{:?}", response.body());
        between().await;
    }
    times.sort();
    let mean = times.iter().sum::<Duration>() / times.len().max(1) as u32;
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    println!(
        "{name:<44} mean {:>7.1} ms   median {:>7.1} ms   max {:>7.1} ms   ({} deliveries)",
        mean.as_secs_f64() * 1e3,
        at(0.5).as_secs_f64() * 1e3,
        at(1.0).as_secs_f64() * 1e3,
        times.len()
    );
}

/// The 200-event delivery through the intake as Lambda runs it, against moto.
async fn against_moto() {
    let aws = integration_tests::fresh_aws().await;
    let config = sync_core::config::IntakeConfig::from_lookup(|name| match name {
        "TABLE_NAME" => Some(aws.resources.table_name.clone()),
        "KMS_KEY_ID" => Some(aws.resources.kms_key_id.clone()),
        "WEBHOOK_QUEUE_URL" => Some(aws.provisioned.events_queue_url.clone()),
        _ => None,
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let app = App {
        intake: sync_aws::wiring::intake(&aws.sdk, &config, Arc::new(SystemClock)),
        max_body_bytes: config.max_body_bytes,
        metrics_namespace: "SyncService".into(),
    };
    let services = sync_aws::wiring::services(&aws.sdk, &aws.resources, Arc::new(SystemClock));
    let qbo = connection(&services, Platform::QuickBooks).await;
    let sqs = aws.sqs();
    let queue = aws.provisioned.events_queue_url.clone();
    measure_batches(
        &app,
        "quickbooks 200-event delivery, moto",
        (0..BIG_ROUNDS)
            .map(|r| qbo_batch(&qbo, r, BIG_EVENTS))
            .collect(),
        || async {
            // Drained as the coalescer's event source would (PurgeQueue may run once a minute).
            loop {
                let got = sqs
                    .receive_message()
                    .queue_url(&queue)
                    .max_number_of_messages(10)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("draining the queue: {e}"));
                if got.messages().is_empty() {
                    break;
                }
                for m in got.messages() {
                    let receipt = m.receipt_handle().unwrap_or_default();
                    let _ = sqs
                        .delete_message()
                        .queue_url(&queue)
                        .receipt_handle(receipt)
                        .send()
                        .await;
                }
            }
        },
    )
    .await;
}

fn supabase_row(c: &Connection, id: usize) -> Request {
    let body = format!(r#"{{"type":"UPDATE","table":"shop_orders","schema":"public","record":{{"id":{id},"total":"42.50","updated_at":"2026-11-24T12:00:00+00:00"}},"old_record":{{"id":{id}}}}}"#).into_bytes();
    request(
        c,
        &body,
        json!({"content-type": "application/json", "x-webhook-secret": SB_SECRET}),
    )
}

async fn measure(app: &App, name: &str, requests: Vec<Request>) {
    let mut times = Vec::with_capacity(requests.len());
    for (i, req) in requests.into_iter().enumerate() {
        let start = Instant::now();
        let response = handle(app, req).await.unwrap_or_else(|e| panic!("{e}"));
        let took = start.elapsed();
        if i >= WARM_UP {
            times.push(took);
        }
        std::hint::black_box(response);
    }
    times.sort();
    let mean = times.iter().sum::<Duration>() / times.len().max(1) as u32;
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    println!(
        "{name:<44} mean {:>7.1} µs   median {:>7.1} µs   p99 {:>7.1} µs   ({} events)",
        mean.as_secs_f64() * 1e6,
        at(0.5).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6,
        times.len()
    );
}

fn main() {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    runtime.block_on(async {
        let (services, memory) = Services::in_memory(Arc::new(SystemClock));
        let intake = Intake::new(
            memory.connections.clone(),
            memory.sealer.clone(),
            memory.events.clone(),
            memory.queue.clone(),
            Arc::new(SystemClock),
            IntakeSettings::default(),
        );
        let app = App {
            intake,
            max_body_bytes: 2 * 1024 * 1024,
            metrics_namespace: "SyncService".into(),
        };
        let woo = connection(&services, Platform::WooCommerce).await;
        let qbo = connection(&services, Platform::QuickBooks).await;
        let sb = connection(&services, Platform::Supabase).await;
        let n = ROUNDS + WARM_UP;
        println!("webhook intake, per delivery, AWS calls replaced by in-memory adapters");
        measure(&app, "woocommerce order (new event, queued)", (0..n).map(|i| woo_order(&woo, i)).collect()).await;
        measure(&app, "woocommerce order (redelivery, duplicate)", (0..n).map(|i| woo_order(&woo, i)).collect()).await;
        measure(&app, "quickbooks cloudevent (new event, queued)", (0..n).map(|i| qbo_event(&qbo, i)).collect()).await;
        measure(&app, "supabase row (new event, queued)", (0..n).map(|i| supabase_row(&sb, i)).collect()).await;
        let forged: Vec<Request> = (0..n)
            .map(|i| {
                let body = format!(r#"{{"id":{i}}}"#).into_bytes();
                request(&woo, &body, json!({"content-type": "application/json", "x-wc-webhook-topic": "order.updated",
                    "x-wc-webhook-signature": woocommerce::sign("forged", &body)}))
            })
            .collect();
        measure(&app, "woocommerce forged signature (401)", forged).await;
        println!("queued events: {}", memory.queue.events().len());
        println!();
        println!("a signed QuickBooks delivery of {BIG_EVENTS} entity changes, whole delivery");
        measure_batches(
            &app,
            "quickbooks 200-event delivery, stubs",
            (0..BIG_ROUNDS).map(|r| qbo_batch(&qbo, r, BIG_EVENTS)).collect(),
            || async {},
        )
        .await;
        against_moto().await;
    });
}
