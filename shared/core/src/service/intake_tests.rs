//! The intake against in-memory fakes, with connections created (and secrets sealed) by the
//! real connection service, and bodies and signatures from `events/webhooks/`.

use super::*;
use crate::clock::FixedClock;
use crate::domain::TenantId;
use crate::memory::MemoryWorld;
use crate::service::Services;
use serde_json::json;

const WOO_SECRET: &str = "whsec_Sample&amp;Secret-0123456789";
const WOO_SIGNATURE: &str = "N/qrLgDgszMZaN9m0r/MbgCERmufWQHw0Vd4MqNSY7s=";
const QBO_TOKEN: &str = "verifier-token-0123456789abcdef";
const QBO_CLASSIC_SIGNATURE: &str = "aiikr0AVw6WnBDsFqxPBdSVzk6vZdcB3UlbV7u4j7JQ=";
const SB_SECRET: &str = "sb-shared-secret-0123456789abcdef";

fn fixture(name: &str) -> Vec<u8> {
    crate::fixtures::event_file(&format!("webhooks/{name}")).unwrap_or_else(|e| panic!("{e}"))
}

struct World {
    intake: Arc<Intake>,
    services: Services,
    memory: MemoryWorld,
    clock: Arc<FixedClock>,
}

fn world() -> World {
    let clock = Arc::new(FixedClock::new(
        chrono::DateTime::parse_from_rfc3339("2026-11-24T12:00:00Z")
            .map(|t| t.with_timezone(&chrono::Utc))
            .unwrap_or_default(),
    ));
    let (services, memory) = Services::in_memory(clock.clone());
    let intake = container(&memory, &clock);
    World {
        intake,
        services,
        memory,
        clock,
    }
}

/// An intake over the world's stores: each one is a Lambda container of its own, with its
/// own memory of connections and of the keys it queued.
fn container(memory: &MemoryWorld, clock: &Arc<FixedClock>) -> Arc<Intake> {
    Arc::new(Intake::new(
        memory.connections.clone(),
        memory.sealer.clone(),
        memory.events.clone(),
        memory.queue.clone(),
        clock.clone(),
        IntakeSettings::default(),
    ))
}

/// Further deliveries reach another container (the first one died, or Lambda scaled out).
fn move_to_another_container(w: &mut World) {
    w.intake = container(&w.memory, &w.clock);
}

/// The sample connection of `platform` for `tenant`, with `secret` as its webhook secret.
async fn connection(w: &World, tenant: &str, platform: Platform, secret: &str) -> Connection {
    let mut new = crate::fixtures::new_connection(platform);
    new.secrets.insert(
        platform.spec().webhook_secret.to_string(),
        Secret::new(secret),
    );
    let tenant = TenantId::parse(tenant).unwrap_or_else(|e| panic!("{e}"));
    w.services
        .connections
        .create(&tenant, new)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

fn headers(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn woo_headers() -> HashMap<String, String> {
    headers(&[
        ("content-type", "application/json"),
        ("x-wc-webhook-signature", WOO_SIGNATURE),
        ("x-wc-webhook-topic", "order.updated"),
        ("x-wc-webhook-resource", "order"),
        ("x-wc-webhook-event", "updated"),
    ])
}

async fn deliver(
    w: &World,
    c: &Connection,
    h: &HashMap<String, String>,
    body: &[u8],
) -> Result<Outcome, IntakeError> {
    let id = c.id.to_string();
    w.intake
        .handle(&Delivery {
            platform: c.platform.as_str(),
            connection_id: &id,
            headers: h,
            body,
        })
        .await
}

fn queued(n: usize, duplicates: usize, ignored: usize) -> Result<Outcome, IntakeError> {
    Ok(Outcome::Accepted {
        queued: n,
        duplicates,
        ignored,
    })
}

#[tokio::test]
async fn a_signed_woocommerce_delivery_is_queued_once_and_logged() {
    let w = world();
    let c = connection(&w, "acme", Platform::WooCommerce, WOO_SECRET).await;
    let body = fixture("woocommerce-order-updated.body.json");
    assert_eq!(
        deliver(&w, &c, &woo_headers(), &body).await,
        queued(1, 0, 0)
    );
    // WooCommerce sends the same thing again: dropped.
    assert_eq!(
        deliver(&w, &c, &woo_headers(), &body).await,
        queued(0, 1, 0)
    );
    let events = w.memory.queue.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].entity_id, "1042");
    assert_eq!(events[0].tenant_id.as_str(), "acme");
    let log = w.memory.events.records();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].status, EventStatus::Claimed);
    assert_eq!(log[0].entity_id, "1042");
}

#[tokio::test]
async fn the_woocommerce_ping_gets_its_200_and_changes_nothing() {
    let w = world();
    let c = connection(&w, "acme", Platform::WooCommerce, WOO_SECRET).await;
    let h = headers(&[("content-type", "application/x-www-form-urlencoded")]);
    assert_eq!(
        deliver(&w, &c, &h, b"webhook_id=17").await,
        Ok(Outcome::Ping)
    );
    assert!(w.memory.queue.events().is_empty() && w.memory.events.records().is_empty());
}

#[tokio::test]
async fn forged_deliveries_are_401_and_change_nothing() {
    let w = world();
    let c = connection(&w, "acme", Platform::WooCommerce, WOO_SECRET).await;
    let body = fixture("woocommerce-order-updated.body.json");
    let mut tampered = body.clone();
    tampered[10] ^= 1;
    let mut no_sig = woo_headers();
    no_sig.remove("x-wc-webhook-signature");
    let mut bad_sig = woo_headers();
    bad_sig.insert(
        "x-wc-webhook-signature".into(),
        crate::crypto::hmac_sha256_base64(b"wrong", &body),
    );
    for (h, b) in [
        (&woo_headers(), &tampered),
        (&no_sig, &body),
        (&bad_sig, &body),
        (&woo_headers(), &body[..body.len() / 2].to_vec()),
    ] {
        let r = deliver(&w, &c, h, b).await;
        assert!(matches!(r, Err(IntakeError::Unauthorized(_))), "{r:?}");
    }
    assert!(w.memory.queue.events().is_empty() && w.memory.events.records().is_empty());
}

#[tokio::test]
async fn unknown_mismatched_and_disabled_connections_are_401() {
    let w = world();
    let c = connection(&w, "acme", Platform::WooCommerce, WOO_SECRET).await;
    let body = fixture("woocommerce-order-updated.body.json");
    let h = woo_headers();
    let id = c.id.to_string();
    for (platform, conn) in [
        ("woocommerce", ConnectionId::new_random().to_string()),
        ("quickbooks", id.clone()),
        ("shopify", id.clone()),
        ("woocommerce", "not-a-uuid".to_string()),
    ] {
        let r = w
            .intake
            .handle(&Delivery {
                platform,
                connection_id: &conn,
                headers: &h,
                body: &body,
            })
            .await;
        assert!(
            matches!(r, Err(IntakeError::Unauthorized(_))),
            "{platform} {conn}: {r:?}"
        );
    }
    let tenant = TenantId::parse("acme").unwrap_or_else(|e| panic!("{e}"));
    let patch = crate::domain::ConnectionPatch {
        webhooks_enabled: Some(false),
        ..Default::default()
    };
    let disabled = w
        .services
        .connections
        .update(&tenant, c.id, patch)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // The connection read a moment ago is kept for a minute.
    w.clock.advance(chrono::Duration::seconds(61));
    assert_eq!(
        deliver(&w, &disabled, &h, &body).await,
        Err(IntakeError::Unauthorized(
            "webhooks are disabled for the connection"
        ))
    );
    assert!(w.memory.queue.events().is_empty());
}

#[tokio::test]
async fn a_rotated_secret_works_at_once_and_a_deleted_connection_is_refused_once_its_minute_is_over(
) {
    let w = world();
    let c = connection(&w, "acme", Platform::WooCommerce, WOO_SECRET).await;
    let tenant = TenantId::parse("acme").unwrap_or_else(|e| panic!("{e}"));
    let body = fixture("woocommerce-order-updated.body.json");
    assert_eq!(
        deliver(&w, &c, &woo_headers(), &body).await,
        queued(1, 0, 0)
    );
    // The secret is rotated while the intake keeps the connection: a delivery signed with
    // the new one is accepted at once (a duplicate of the first, so nothing new is
    // queued), one signed with the old one no longer.
    let rotated = "whsec_rotated-0123456789abcdef";
    let mut patch = crate::domain::ConnectionPatch::default();
    patch
        .secrets
        .insert("webhook_secret".into(), Secret::new(rotated));
    w.services
        .connections
        .update(&tenant, c.id, patch)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut signed = woo_headers();
    signed.insert(
        "x-wc-webhook-signature".into(),
        crate::crypto::hmac_sha256_base64(rotated.as_bytes(), &body),
    );
    assert_eq!(deliver(&w, &c, &signed, &body).await, queued(0, 1, 0));
    assert!(matches!(
        deliver(&w, &c, &woo_headers(), &body).await,
        Err(IntakeError::Unauthorized(_))
    ));
    // Deleted: a warm intake that read it within the minute still accepts its deliveries
    // (the documented bound); after the minute, it is refused.
    w.services
        .connections
        .delete(&tenant, c.id, false)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    w.clock.advance(chrono::Duration::seconds(59));
    assert!(matches!(
        deliver(&w, &c, &signed, &body).await,
        Ok(Outcome::Accepted { .. })
    ));
    w.clock.advance(chrono::Duration::seconds(2));
    assert!(matches!(
        deliver(&w, &c, &signed, &body).await,
        Err(IntakeError::Unauthorized(_))
    ));
}

#[tokio::test]
async fn another_tenants_secret_does_not_open_this_connection() {
    let w = world();
    let ours = connection(&w, "acme", Platform::WooCommerce, "our-secret-0123456789").await;
    // Signed correctly for a connection of another tenant, sent to ours.
    let _theirs = connection(&w, "globex", Platform::WooCommerce, WOO_SECRET).await;
    let body = fixture("woocommerce-order-updated.body.json");
    let r = deliver(&w, &ours, &woo_headers(), &body).await;
    assert_eq!(r, Err(IntakeError::Unauthorized("bad signature")));
}

#[tokio::test]
async fn wrong_media_types_and_malformed_bodies_are_refused_after_the_signature() {
    let w = world();
    let c = connection(&w, "acme", Platform::WooCommerce, WOO_SECRET).await;
    let body = fixture("woocommerce-order-updated.body.json");
    let mut h = woo_headers();
    h.insert("content-type".into(), "text/plain".into());
    assert_eq!(
        deliver(&w, &c, &h, &body).await,
        Err(IntakeError::UnsupportedMediaType)
    );
    let garbage = b"{\"no\":\"id\"}";
    let mut h = woo_headers();
    h.insert(
        "x-wc-webhook-signature".into(),
        crate::platforms::woocommerce::webhook::sign(WOO_SECRET, garbage),
    );
    assert!(matches!(
        deliver(&w, &c, &h, garbage).await,
        Err(IntakeError::BadPayload(_))
    ));
    let not_utf8 = b"\xff\xfe\xfd";
    h.insert(
        "x-wc-webhook-signature".into(),
        crate::platforms::woocommerce::webhook::sign(WOO_SECRET, not_utf8),
    );
    assert!(matches!(
        deliver(&w, &c, &h, not_utf8).await,
        Err(IntakeError::BadPayload(_))
    ));
    assert!(w.memory.queue.events().is_empty());
}

#[tokio::test]
async fn quickbooks_events_of_other_realms_are_not_queued() {
    let w = world();
    let c = connection(&w, "acme", Platform::QuickBooks, QBO_TOKEN).await;
    let body = fixture("quickbooks-classic.body.json");
    let h = headers(&[
        ("content-type", "application/json"),
        ("intuit-signature", QBO_CLASSIC_SIGNATURE),
    ]);
    assert_eq!(deliver(&w, &c, &h, &body).await, queued(2, 0, 2));
    let ids: Vec<_> = w
        .memory
        .queue
        .events()
        .into_iter()
        .map(|e| (e.entity_type.to_string(), e.entity_id))
        .collect();
    assert_eq!(
        ids,
        [
            ("customers".to_string(), "58".to_string()),
            ("orders".to_string(), "Invoice:1301".to_string())
        ]
    );
}

#[tokio::test]
async fn an_unreadable_but_signed_quickbooks_body_is_acknowledged_without_queueing() {
    let w = world();
    let c = connection(&w, "acme", Platform::QuickBooks, QBO_TOKEN).await;
    let body = b"{\"something\":\"else\"}";
    let h = headers(&[
        ("content-type", "application/cloudevents+json"),
        (
            "intuit-signature",
            &crate::platforms::quickbooks::webhook::sign(QBO_TOKEN, body),
        ),
    ]);
    assert_eq!(deliver(&w, &c, &h, body).await, queued(0, 0, 1));
    assert!(w.memory.queue.events().is_empty());
}

#[tokio::test]
async fn supabase_deliveries_need_the_shared_secret_header() {
    let w = world();
    let c = connection(&w, "acme", Platform::Supabase, SB_SECRET).await;
    let body = fixture("supabase-update.body.json");
    let good = headers(&[
        ("content-type", "application/json"),
        ("x-webhook-secret", SB_SECRET),
    ]);
    let bad = headers(&[
        ("content-type", "application/json"),
        ("x-webhook-secret", "guess"),
    ]);
    assert!(matches!(
        deliver(&w, &c, &bad, &body).await,
        Err(IntakeError::Unauthorized(_))
    ));
    assert_eq!(deliver(&w, &c, &good, &body).await, queued(1, 0, 0));
}

#[tokio::test]
async fn when_queueing_fails_the_claim_is_released_and_the_retry_queues_once() {
    let w = world();
    let c = connection(&w, "acme", Platform::WooCommerce, WOO_SECRET).await;
    let body = fixture("woocommerce-order-updated.body.json");
    w.memory.queue.set_failing(true);
    assert!(matches!(
        deliver(&w, &c, &woo_headers(), &body).await,
        Err(IntakeError::Unavailable(_))
    ));
    assert_eq!(
        w.memory.events.records()[0].status,
        EventStatus::EnqueueFailed
    );
    w.memory.queue.set_failing(false);
    assert_eq!(
        deliver(&w, &c, &woo_headers(), &body).await,
        queued(1, 0, 0)
    );
    assert_eq!(
        deliver(&w, &c, &woo_headers(), &body).await,
        queued(0, 1, 0)
    );
    assert_eq!(w.memory.queue.events().len(), 1);
}

/// Turns every queued event so far into jobs, as the coalescer does with a batch; answers
/// the jobs made.
async fn coalesce(w: &World) -> Vec<crate::domain::SyncJob> {
    use crate::service::coalesce::{Coalescer, Incoming};
    let coalescer = Coalescer::new(
        w.memory.queue.clone(),
        w.memory.events.clone(),
        Arc::new(crate::memory::MemorySyncLeases::default()),
    );
    let batch = w
        .memory
        .queue
        .events()
        .iter()
        .enumerate()
        .map(|(i, e)| Incoming {
            message_id: format!("m{i}"),
            body: serde_json::to_string(e).unwrap_or_else(|e| panic!("{e}")),
        })
        .collect();
    coalescer.run(batch).await.jobs
}

#[tokio::test]
async fn a_claim_the_coalescer_has_not_marked_within_its_lease_is_taken_over_and_only_one_message_makes_a_job(
) {
    let mut w = world();
    let c = connection(&w, "acme", Platform::WooCommerce, WOO_SECRET).await;
    let body = fixture("woocommerce-order-updated.body.json");
    assert_eq!(
        deliver(&w, &c, &woo_headers(), &body).await,
        queued(1, 0, 0)
    );
    move_to_another_container(&mut w);
    // Within the lease a redelivery is a duplicate (queued as well, as its event is in no
    // job yet); after it, the claim is taken over.
    w.clock.advance(chrono::Duration::seconds(29));
    assert_eq!(
        deliver(&w, &c, &woo_headers(), &body).await,
        queued(0, 1, 0)
    );
    move_to_another_container(&mut w);
    w.clock.advance(chrono::Duration::seconds(2));
    assert_eq!(
        deliver(&w, &c, &woo_headers(), &body).await,
        queued(1, 0, 0)
    );
    // All three messages reach the coalescer: one carries the event.
    assert_eq!(w.memory.queue.events().len(), 3);
    let jobs = coalesce(&w).await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let logged = w.memory.events.records();
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0].job_id.as_deref(), Some(jobs[0].job_id.as_str()));
    // A claim marked with its job is never taken over by the lease, only past its
    // deduplication window.
    w.clock.advance(chrono::Duration::hours(1));
    assert_eq!(
        deliver(&w, &c, &woo_headers(), &body).await,
        queued(0, 1, 0)
    );
    w.clock.advance(chrono::Duration::hours(72));
    assert_eq!(
        deliver(&w, &c, &woo_headers(), &body).await,
        queued(1, 0, 0)
    );
}

#[tokio::test]
async fn a_redelivery_that_took_a_claim_over_and_could_not_queue_leaves_one_job_whichever_message_comes_first(
) {
    let mut w = world();
    let c = connection(&w, "acme", Platform::WooCommerce, WOO_SECRET).await;
    let body = fixture("woocommerce-order-updated.body.json");
    assert_eq!(
        deliver(&w, &c, &woo_headers(), &body).await,
        queued(1, 0, 0)
    );
    move_to_another_container(&mut w);
    // The first message waits in the queue; a redelivery takes the claim over after the
    // lease, cannot queue, and is answered 503; the platform's retry then queues it.
    w.clock.advance(chrono::Duration::seconds(31));
    w.memory.queue.set_failing(true);
    assert!(matches!(
        deliver(&w, &c, &woo_headers(), &body).await,
        Err(IntakeError::Unavailable(_))
    ));
    w.memory.queue.set_failing(false);
    assert_eq!(
        deliver(&w, &c, &woo_headers(), &body).await,
        queued(1, 0, 0)
    );
    assert_eq!(w.memory.queue.events().len(), 2);
    let jobs = coalesce(&w).await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(w.memory.events.records()[0].status, EventStatus::Coalesced);
    assert_eq!(
        deliver(&w, &c, &woo_headers(), &body).await,
        queued(0, 1, 0)
    );
}

#[tokio::test]
async fn a_redelivery_while_the_first_claim_is_in_no_job_is_queued_as_well_and_one_job_results() {
    let w = world();
    let c = connection(&w, "acme", Platform::WooCommerce, WOO_SECRET).await;
    let body = fixture("woocommerce-order-updated.body.json");
    // Another container claimed the event and died before queueing it.
    let delivery = WebhookDelivery {
        headers: &woo_headers(),
        body: &body,
    };
    let Ok(Received::Events(parsed)) = Platform::WooCommerce
        .module()
        .receive(&c, WOO_SECRET, &delivery)
    else {
        panic!("the sample delivery does not parse");
    };
    let event = &parsed.events[0];
    let now = w.clock.now();
    let abandoned = EventRecord {
        connection_id: c.id,
        tenant_id: c.tenant_id.clone(),
        platform: c.platform,
        event_key: event.key.clone(),
        key_hash: claim_key(&c, &event.key),
        event_type: event.event_type.clone(),
        entity_type: event.entity_type,
        entity_id: event.entity_id.clone(),
        received_at: now,
        status: EventStatus::Claimed,
        message_id: None,
        job_id: None,
        claim_token: "died-before-queueing".into(),
    };
    let settings = IntakeSettings::default();
    assert_eq!(
        w.memory
            .events
            .claim(&abandoned, now, settings.dedup_ttl, settings.claim_lease)
            .await,
        Ok(Claim::Claimed)
    );
    // The platform's retry within the lease is a duplicate to the platform, but its event
    // is queued all the same.
    w.clock.advance(chrono::Duration::seconds(5));
    assert_eq!(
        deliver(&w, &c, &woo_headers(), &body).await,
        queued(0, 1, 0)
    );
    assert_eq!(w.memory.queue.events().len(), 1);
    let jobs = coalesce(&w).await;
    assert_eq!(jobs.len(), 1, "the event was lost: {jobs:?}");
    assert_eq!(jobs[0].ids, std::slice::from_ref(&event.entity_id));
}

#[tokio::test]
async fn many_identical_deliveries_at_once_queue_exactly_one_event() {
    let w = world();
    let c = connection(&w, "acme", Platform::WooCommerce, WOO_SECRET).await;
    let body = Arc::new(fixture("woocommerce-order-updated.body.json"));
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let intake = w.intake.clone();
        let body = body.clone();
        let id = c.id.to_string();
        tasks.push(tokio::spawn(async move {
            let h = woo_headers();
            intake
                .handle(&Delivery {
                    platform: "woocommerce",
                    connection_id: &id,
                    headers: &h,
                    body: &body,
                })
                .await
        }));
    }
    for t in tasks {
        assert!(matches!(t.await, Ok(Ok(Outcome::Accepted { .. }))));
    }
    assert_eq!(w.memory.queue.events().len(), 1);
}

/// A classic QuickBooks delivery naming `count` customers of `realm`, and its signature.
fn qbo_delivery(realm: &str, count: usize, token: &str) -> (Vec<u8>, HashMap<String, String>) {
    let entities: Vec<_> = (0..count)
        .map(|i| json!({"name": "Customer", "id": format!("{}", 100 + i), "operation": "Update", "lastUpdated": "2026-11-24T11:59:00.000Z"}))
        .collect();
    let body = json!({"eventNotifications": [{"realmId": realm, "dataChangeEvent": {"entities": entities}}]})
        .to_string()
        .into_bytes();
    let signature = crate::platforms::quickbooks::webhook::sign(token, &body);
    let h = headers(&[
        ("content-type", "application/json"),
        ("intuit-signature", &signature),
    ]);
    (body, h)
}

#[tokio::test]
async fn the_same_quickbooks_delivery_to_two_tenants_connections_is_queued_for_each() {
    // GIVEN two tenants connected to the same company (realm), each with its own app token
    let w = world();
    let a = connection(&w, "tenant-a", Platform::QuickBooks, QBO_TOKEN).await;
    let b_token = "another-verifier-token-0123456789";
    let b = connection(&w, "tenant-b", Platform::QuickBooks, b_token).await;
    // WHEN the same event reaches both, each correctly signed for its connection
    let (body, ha) = qbo_delivery("9130350000000001", 1, QBO_TOKEN);
    let (_, hb) = qbo_delivery("9130350000000001", 1, b_token);
    assert_eq!(deliver(&w, &a, &ha, &body).await, queued(1, 0, 0));
    assert_eq!(deliver(&w, &b, &hb, &body).await, queued(1, 0, 0));
    // THEN each connection has its own event, and each deduplicates on its own
    assert_eq!(deliver(&w, &a, &ha, &body).await, queued(0, 1, 0));
    assert_eq!(deliver(&w, &b, &hb, &body).await, queued(0, 1, 0));
    let per_connection: Vec<_> = w
        .memory
        .queue
        .events()
        .into_iter()
        .map(|e| e.connection_id)
        .collect();
    assert_eq!(per_connection, [a.id, b.id]);
}

#[tokio::test]
async fn a_two_hundred_event_delivery_is_claimed_one_write_each_and_queued_in_batches() {
    let mut w = world();
    let c = connection(&w, "acme", Platform::QuickBooks, QBO_TOKEN).await;
    let (body, h) = qbo_delivery("9130350000000001", 200, QBO_TOKEN);
    assert_eq!(deliver(&w, &c, &h, &body).await, queued(200, 0, 0));
    assert_eq!(w.memory.queue.events().len(), 200);
    assert_eq!(w.memory.queue.calls(), 20, "ten events per queue call");
    let log = w.memory.events.records();
    assert_eq!(log.len(), 200);
    assert!(log.iter().all(|r| r.status == EventStatus::Claimed));
    assert_eq!(
        w.memory.events.writes(),
        200,
        "one write per event, nothing more"
    );
    // The retry Intuit sends when it did not see our answer is all duplicates: known to the
    // container that queued them without a call, and to another each by its one refused
    // write.
    assert_eq!(deliver(&w, &c, &h, &body).await, queued(0, 200, 0));
    assert_eq!(w.memory.events.writes(), 200);
    assert_eq!(coalesce(&w).await.len(), 1);
    assert_eq!(
        w.memory.events.writes(),
        400,
        "the coalescer marks each claim"
    );
    move_to_another_container(&mut w);
    assert_eq!(deliver(&w, &c, &h, &body).await, queued(0, 200, 0));
    assert_eq!(w.memory.events.writes(), 600);
    assert_eq!(
        w.memory.queue.calls(),
        21,
        "no queue call but the coalescer's one job"
    );
}

#[tokio::test]
async fn a_batch_that_half_fails_releases_only_the_unqueued_events_and_the_retry_queues_just_those()
{
    // GIVEN a queue that takes 25 messages and refuses the rest
    let w = world();
    let c = connection(&w, "acme", Platform::QuickBooks, QBO_TOKEN).await;
    let (body, h) = qbo_delivery("9130350000000001", 40, QBO_TOKEN);
    w.memory.queue.accept_only(Some(25));
    // WHEN the 40-event delivery arrives
    let first = deliver(&w, &c, &h, &body).await;
    // THEN it is answered 5xx, so the platform retries
    assert!(
        matches!(first, Err(IntakeError::Unavailable(_))),
        "{first:?}"
    );
    assert_eq!(w.memory.queue.events().len(), 25);
    // AND the retry queues exactly the 15 that did not make it: nothing lost, nothing twice
    w.memory.queue.accept_only(None);
    assert_eq!(deliver(&w, &c, &h, &body).await, queued(15, 25, 0));
    let mut ids: Vec<_> = w
        .memory
        .queue
        .events()
        .into_iter()
        .map(|e| e.entity_id)
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 40);
    assert_eq!(w.memory.queue.events().len(), 40);
}

#[tokio::test]
async fn the_same_event_twice_in_one_delivery_is_one_event() {
    let w = world();
    let c = connection(&w, "acme", Platform::QuickBooks, QBO_TOKEN).await;
    let entity = json!({"name": "Customer", "id": "58", "operation": "Update", "lastUpdated": "2026-11-24T11:59:00.000Z"});
    let body = json!({"eventNotifications": [{"realmId": "9130350000000001", "dataChangeEvent": {"entities": [entity.clone(), entity]}}]})
        .to_string()
        .into_bytes();
    let signature = crate::platforms::quickbooks::webhook::sign(QBO_TOKEN, &body);
    let h = headers(&[
        ("content-type", "application/json"),
        ("intuit-signature", &signature),
    ]);
    assert_eq!(deliver(&w, &c, &h, &body).await, queued(1, 1, 0));
}

/// An intake that has the deployment app's QuickBooks verifier token.
fn world_with_app() -> World {
    let mut w = world();
    let mut settings = IntakeSettings::default();
    settings
        .app_secrets
        .insert(Platform::QuickBooks, Secret::new(QBO_TOKEN));
    w.intake = Arc::new(Intake::new(
        w.memory.connections.clone(),
        w.memory.sealer.clone(),
        w.memory.events.clone(),
        w.memory.queue.clone(),
        w.clock.clone(),
        settings,
    ));
    w
}

/// A QuickBooks connection made through the deployment's app (no app of its own).
async fn app_connection(w: &World, tenant: &str, realm: &str) -> Connection {
    let mut new = crate::fixtures::new_connection(Platform::QuickBooks);
    new.secrets.retain(|k, _| k == "refresh_token");
    new.config.insert("realm_id".into(), json!(realm));
    new.webhooks_enabled = Some(false);
    let tenant = TenantId::parse(tenant).unwrap_or_else(|e| panic!("{e}"));
    let mut made = w
        .services
        .connections
        .create(&tenant, new)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // As the connect flow marks it (users cannot).
    made.config.insert("app".into(), json!("deployment"));
    w.memory.connections.seed(made.clone());
    made
}

#[tokio::test]
async fn the_apps_one_url_routes_each_companys_events_to_every_connection_for_it() {
    let w = world_with_app();
    // The classic sample names realm 9130350000000001 (a customer and an invoice) and another.
    let acme = app_connection(&w, "acme", "9130350000000001").await;
    let globex = app_connection(&w, "globex", "9130350000000001").await;
    let elsewhere = app_connection(&w, "initech", "5555").await;
    // A connection with its own app gets its webhooks from that app, not this route; one
    // whose user typed the company's realm in is not routed either.
    let own = connection(&w, "acme", Platform::QuickBooks, QBO_TOKEN).await;
    let mut typed = crate::fixtures::new_connection(Platform::QuickBooks);
    typed.secrets.retain(|k, _| k == "refresh_token");
    typed
        .config
        .insert("realm_id".into(), json!("9130350000000001"));
    let typed = w
        .services
        .connections
        .create(
            &TenantId::parse("mallory").unwrap_or_else(|e| panic!("{e}")),
            typed,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let body = fixture("quickbooks-classic.body.json");
    let h = headers(&[
        ("content-type", "application/json"),
        ("intuit-signature", QBO_CLASSIC_SIGNATURE),
    ]);
    let outcome = w.intake.handle_app("quickbooks", &h, &body).await;
    assert!(
        matches!(
            outcome,
            Ok(Outcome::Accepted {
                queued: 4,
                duplicates: 0,
                ..
            })
        ),
        "{outcome:?}"
    );
    let mut got: Vec<(ConnectionId, String)> = w
        .memory
        .queue
        .events()
        .into_iter()
        .map(|e| (e.connection_id, e.entity_id))
        .collect();
    got.sort();
    let mut want = vec![
        (acme.id, "58".to_string()),
        (acme.id, "Invoice:1301".to_string()),
        (globex.id, "58".to_string()),
        (globex.id, "Invoice:1301".to_string()),
    ];
    want.sort();
    assert_eq!(got, want);
    assert!(!got
        .iter()
        .any(|(c, _)| *c == elsewhere.id || *c == own.id || *c == typed.id));
    // The same delivery again: duplicates for each connection, nothing queued.
    let again = w.intake.handle_app("quickbooks", &h, &body).await;
    assert!(
        matches!(
            again,
            Ok(Outcome::Accepted {
                queued: 0,
                duplicates: 4,
                ..
            })
        ),
        "{again:?}"
    );
}

#[tokio::test]
async fn the_apps_url_refuses_a_bad_signature_and_a_deployment_without_an_app() {
    let w = world_with_app();
    app_connection(&w, "acme", "9130350000000001").await;
    let body = fixture("quickbooks-classic.body.json");
    let forged = headers(&[
        ("content-type", "application/json"),
        ("intuit-signature", "bm90IHRoZSBzaWduYXR1cmU="),
    ]);
    assert!(matches!(
        w.intake.handle_app("quickbooks", &forged, &body).await,
        Err(IntakeError::Unauthorized(_))
    ));
    let signed = headers(&[
        ("content-type", "application/json"),
        ("intuit-signature", QBO_CLASSIC_SIGNATURE),
    ]);
    assert!(matches!(
        world()
            .intake
            .handle_app("quickbooks", &signed, &body)
            .await,
        Err(IntakeError::Unauthorized(_))
    ));
    assert!(matches!(
        w.intake.handle_app("woocommerce", &signed, &body).await,
        Err(IntakeError::Unauthorized(_))
    ));
    assert!(w.memory.queue.events().is_empty());
}
