//! Connections and webhooks end to end against moto, through the local gateway over HTTP:
//! secrets never leave sealed, deliveries become exactly one queued event each and then one
//! job per connection and entity, failures strand nothing, tenants and realms stay apart.

use std::collections::HashMap;
use std::sync::Arc;

use integration_tests::{api, clock, create_body_for, Api};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sync_aws::wiring as aws;
use sync_core::config::IntakeConfig;
use sync_core::domain::Platform;
use sync_core::fixtures;
use sync_core::service::{Delivery, IntakeError, Outcome};

/// The sample connections' webhook secrets (what `events/webhooks/` is signed with).
const WOO_SECRET: &str = "whsec_Sample&amp;Secret-0123456789";
const QBO_TOKEN: &str = "verifier-token-0123456789abcdef";
const SB_SECRET: &str = "sb-shared-secret-0123456789abcdef";
/// A consumer secret the leak test looks for everywhere.
const CONSUMER_SECRET: &str = "cs_live_do_not_leak_0123456789abcdef";

fn fixture(name: &str) -> Vec<u8> {
    fixtures::event_file(&format!("webhooks/{name}")).unwrap_or_else(|e| panic!("{e}"))
}

fn connection_body(platform: &str) -> Value {
    let platform: Platform = platform.parse().unwrap_or_else(|e| panic!("{e}"));
    let mut body = fixtures::connection_body(platform);
    if platform == Platform::WooCommerce {
        body["secrets"]["consumer_secret"] = json!(CONSUMER_SECRET);
    }
    body
}

#[test]
fn the_sample_secrets_are_the_ones_events_are_signed_with() {
    assert_eq!(fixtures::webhook_secret(Platform::WooCommerce), WOO_SECRET);
    assert_eq!(fixtures::webhook_secret(Platform::QuickBooks), QBO_TOKEN);
    assert_eq!(fixtures::webhook_secret(Platform::Supabase), SB_SECRET);
}

/// Creates a connection over the API; returns (id, webhook_url).
async fn connect(api: &Api, tenant: &str, platform: &str) -> (String, String) {
    connect_with(api, tenant, connection_body(platform)).await
}

/// Creates the connection `request` describes over the API; returns (id, webhook_url).
async fn connect_with(api: &Api, tenant: &str, request: Value) -> (String, String) {
    let (status, body) = api
        .send(
            reqwest::Method::POST,
            "/api/connections",
            Some(tenant),
            Some(request),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let c = &body["connection"];
    (
        c["id"].as_str().unwrap_or_default().to_string(),
        c["webhook_url"].as_str().unwrap_or_default().to_string(),
    )
}

/// POSTs `body` to a webhook URL with the headers the platform would send.
async fn deliver(
    api: &Api,
    url: &str,
    platform: &str,
    body: &[u8],
    secret: &str,
) -> (StatusCode, Value) {
    let mut req = api
        .http
        .post(url)
        .header("content-type", "application/json");
    let platform: Platform = platform.parse().unwrap_or_else(|e| panic!("{e}"));
    let options = sync_core::platforms::SignOptions::default();
    for (name, value) in platform.module().sign(secret, body, &options) {
        req = req.header(name, value);
    }
    let response = req
        .body(body.to_vec())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The intake's configuration on the test's resources, queueing to `queue`.
fn intake_config(api: &Api, queue: &str) -> IntakeConfig {
    IntakeConfig {
        table_name: api.aws.resources.table_name.clone(),
        kms_key_id: api.aws.resources.kms_key_id.clone(),
        webhook_queue_url: queue.to_string(),
        dedup_ttl_hours: 72,
        claim_lease_seconds: 30,
        max_body_bytes: 1 << 20,
        quickbooks_verifier: None,
    }
}

/// A Supabase Database Webhook's headers, with the sample connection's shared secret.
fn supabase_headers() -> HashMap<String, String> {
    [
        ("content-type", "application/json"),
        ("x-webhook-secret", SB_SECRET),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

async fn queue_bodies(api: &Api, url: &str) -> Vec<Value> {
    let sqs = api.aws.sqs();
    let mut out = Vec::new();
    loop {
        let r = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(300)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        if r.messages().is_empty() {
            return out;
        }
        out.extend(
            r.messages()
                .iter()
                .map(|m| serde_json::from_str(m.body().unwrap_or("null")).unwrap_or_default()),
        );
    }
}

/// What is on the webhook-events queue, handed to the coalescer's own Lambda handler as its
/// event source would; every message must be settled (none handed back).
async fn coalesce(api: &Api) -> infra::event_source::PollReport {
    let report = api
        .stack
        .coalesce_once()
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(report.returned, 0, "{report:?}");
    report
}

#[tokio::test]
async fn secrets_never_appear_in_responses_or_in_a_table_dump() {
    let api = api().await;
    let (id, _) = connect(&api, "acme", "woocommerce").await;
    let path = format!("/api/connections/{id}");
    let rotated = "cs_rotated_do_not_leak_0123456789ab";
    let mut seen = Vec::new();
    for (method, body) in [
        (reqwest::Method::GET, None),
        (
            reqwest::Method::PUT,
            Some(json!({"secrets": {"consumer_secret": rotated}, "display_name": "Renamed"})),
        ),
    ] {
        let (status, got) = api.send(method, &path, Some("acme"), body).await;
        assert_eq!(status, StatusCode::OK, "{got}");
        seen.push(got);
    }
    let (_, list) = api
        .send(reqwest::Method::GET, "/api/connections", Some("acme"), None)
        .await;
    seen.push(list);
    for text in seen.iter().map(Value::to_string) {
        for secret in [
            CONSUMER_SECRET,
            rotated,
            WOO_SECRET,
            "ck_live_0123456789abcdef",
        ] {
            assert!(!text.contains(secret), "secret in a response: {text}");
        }
    }
    assert_eq!(seen[1]["connection"]["secrets"]["consumer_secret"], "…89ab");
    // A stolen dump of the table: no secret in any attribute, as text or as bytes.
    let dump = api
        .aws
        .dynamodb()
        .scan()
        .table_name(&api.aws.resources.table_name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let everything = format!("{:?}", dump.items());
    for secret in [
        CONSUMER_SECRET,
        rotated,
        "whsec_Sample",
        "ck_live_0123456789abcdef",
    ] {
        assert!(!everything.contains(secret), "secret in the table");
        for item in dump.items() {
            for value in item.values() {
                if let Ok(b) = value.as_b() {
                    assert!(!b
                        .as_ref()
                        .windows(secret.len())
                        .any(|w| w == secret.as_bytes()));
                }
            }
        }
    }
}

#[tokio::test]
async fn each_platforms_deliveries_become_one_job_per_connection_and_entity() {
    let api = api().await;
    let (_, woo) = connect(&api, "acme", "woocommerce").await;
    let (_, qbo) = connect(&api, "acme", "quickbooks").await;
    let (_, sb) = connect(&api, "acme", "supabase").await;
    let cases = [
        (
            &woo,
            "woocommerce",
            "woocommerce-order-updated.body.json",
            WOO_SECRET,
            1,
        ),
        (
            &qbo,
            "quickbooks",
            "quickbooks-classic.body.json",
            QBO_TOKEN,
            2,
        ),
        (&sb, "supabase", "supabase-update.body.json", SB_SECRET, 1),
    ];
    for (url, platform, file, secret, queued) in cases {
        let (status, body) = deliver(&api, url, platform, &fixture(file), secret).await;
        assert_eq!(status, StatusCode::OK, "{platform}: {body}");
        assert_eq!(body["queued"], queued, "{platform}: {body}");
    }
    coalesce(&api).await;
    let mut jobs: Vec<(String, String, Vec<String>)> =
        queue_bodies(&api, &api.aws.provisioned.sync_queue_url)
            .await
            .iter()
            .map(|j| {
                let ids = j["ids"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                (
                    j["platform"].as_str().unwrap_or_default().to_string(),
                    j["entity_type"].as_str().unwrap_or_default().to_string(),
                    ids,
                )
            })
            .collect();
    jobs.sort();
    assert_eq!(
        jobs,
        [
            (
                "quickbooks".to_string(),
                "customers".to_string(),
                vec!["58".to_string()]
            ),
            (
                "quickbooks".to_string(),
                "orders".to_string(),
                vec!["Invoice:1301".to_string()]
            ),
            (
                "supabase".to_string(),
                "customers".to_string(),
                vec!["9007199254740993".to_string()]
            ),
            (
                "woocommerce".to_string(),
                "orders".to_string(),
                vec!["1042".to_string()]
            ),
        ]
    );
}

#[tokio::test]
async fn identical_deliveries_in_parallel_make_exactly_one_event_and_one_job() {
    let api = Arc::new(api().await);
    let (_, url) = connect(&api, "acme", "woocommerce").await;
    let body = Arc::new(fixture("woocommerce-order-updated.body.json"));
    let mut tasks = Vec::new();
    for _ in 0..24 {
        let (api, url, body) = (api.clone(), url.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            deliver(&api, &url, "woocommerce", &body, WOO_SECRET).await
        }));
    }
    let mut queued = 0;
    for t in tasks {
        let (status, body) = t.await.unwrap_or_else(|e| panic!("{e}"));
        // A delivery that lost a race inside DynamoDB may be told to retry (503); none may
        // be queued twice.
        assert!(
            status == StatusCode::OK || status == StatusCode::SERVICE_UNAVAILABLE,
            "{status} {body}"
        );
        queued += body["queued"].as_u64().unwrap_or(0);
    }
    assert_eq!(queued, 1);
    coalesce(&api).await;
    assert_eq!(
        queue_bodies(&api, &api.aws.provisioned.sync_queue_url)
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn a_queue_failure_releases_the_claim_and_the_retry_is_queued_once() {
    let api = api().await;
    let (id, _) = connect(&api, "acme", "supabase").await;
    let config = |queue: &str| intake_config(&api, queue);
    let missing_queue = format!("{}-missing", api.aws.provisioned.events_queue_url);
    let broken = aws::intake(
        &api.aws.sdk,
        &config(&missing_queue),
        clock("2026-11-24T12:00:00Z"),
    );
    let working = aws::intake(
        &api.aws.sdk,
        &config(&api.aws.provisioned.events_queue_url),
        clock("2026-11-24T12:00:05Z"),
    );
    let body = fixture("supabase-update.body.json");
    let headers = supabase_headers();
    let delivery = Delivery {
        platform: "supabase",
        connection_id: &id,
        headers: &headers,
        body: &body,
    };
    assert!(matches!(
        broken.handle(&delivery).await,
        Err(IntakeError::Unavailable(_))
    ));
    assert_eq!(
        working.handle(&delivery).await,
        Ok(Outcome::Accepted {
            queued: 1,
            duplicates: 0,
            ignored: 0
        })
    );
    assert_eq!(
        working.handle(&delivery).await,
        Ok(Outcome::Accepted {
            queued: 0,
            duplicates: 1,
            ignored: 0
        })
    );
    coalesce(&api).await;
    let jobs = queue_bodies(&api, &api.aws.provisioned.sync_queue_url).await;
    assert_eq!(jobs.len(), 1, "exactly one job");
    assert_eq!(jobs[0]["ids"], json!(["9007199254740993"]));
    let (_, log) = api
        .send(
            reqwest::Method::GET,
            &format!("/api/connections/{id}/events"),
            Some("acme"),
            None,
        )
        .await;
    let statuses: Vec<_> = log["events"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["status"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default();
    // The event's one entry (its claim) was `enqueue_failed` until the retry claimed it.
    assert_eq!(statuses, ["coalesced"], "{log}");
}

#[tokio::test]
async fn tenants_and_realms_stay_apart() {
    let api = api().await;
    let (acme_id, acme_url) = connect(&api, "acme", "woocommerce").await;
    // Globex's own connection, with its own secret.
    let mut theirs = connection_body("woocommerce");
    theirs["secrets"]["webhook_secret"] = json!("globex-secret-0123456789");
    connect_with(&api, "globex", theirs).await;
    for (method, path) in [
        (reqwest::Method::GET, format!("/api/connections/{acme_id}")),
        (
            reqwest::Method::GET,
            format!("/api/connections/{acme_id}/events"),
        ),
        (
            reqwest::Method::DELETE,
            format!("/api/connections/{acme_id}"),
        ),
    ] {
        let (status, _) = api.send(method, &path, Some("globex"), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    let (status, _) = api
        .send(
            reqwest::Method::PUT,
            &format!("/api/connections/{acme_id}"),
            Some("globex"),
            Some(json!({"webhooks_enabled": false})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Signed with Globex's secret, sent to Acme's URL.
    let body = fixture("woocommerce-order-updated.body.json");
    let (status, _) = deliver(
        &api,
        &acme_url,
        "woocommerce",
        &body,
        "globex-secret-0123456789",
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A schedule cannot name another tenant's connection.
    let (status, got) = api
        .send(
            reqwest::Method::POST,
            "/api/sync/schedules",
            Some("globex"),
            Some(create_body_for(&acme_id)),
        )
        .await;
    assert_eq!(
        (status, got["error"]["field"].clone()),
        (StatusCode::BAD_REQUEST, json!("credential_id"))
    );
    // QuickBooks events for a realm that is not the connection's are dropped.
    let (_, qbo) = connect(&api, "acme", "quickbooks").await;
    let other_realm = br#"{"eventNotifications":[{"realmId":"123","dataChangeEvent":{"entities":[{"name":"Customer","id":"1","operation":"Create","lastUpdated":"2026-11-24T12:00:00Z"}]}}]}"#;
    let (status, body) = deliver(&api, &qbo, "quickbooks", other_realm, QBO_TOKEN).await;
    assert_eq!(
        (status, body["queued"].clone(), body["ignored"].clone()),
        (StatusCode::OK, json!(0), json!(1))
    );
    assert!(queue_bodies(&api, &api.aws.provisioned.events_queue_url)
        .await
        .is_empty());
}

/// A Supabase insert of row `n` of `shop_orders`, as the project's Database Webhook sends it.
async fn deliver_insert(api: &Api, url: &str, n: u32) {
    let body = format!(
        r#"{{"type":"INSERT","table":"shop_orders","schema":"public","record":{{"id":{n},"updated_at":"2026-11-24T12:00:{:02}Z"}},"old_record":null}}"#,
        n % 60
    );
    let (status, got) = deliver(api, url, "supabase", body.as_bytes(), SB_SECRET).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    // Event log entries are ordered by their arrival, to the millisecond.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
}

#[tokio::test]
async fn the_event_log_follows_next_to_its_oldest_event_while_events_arrive() {
    let api = api().await;
    let (id, url) = connect(&api, "acme", "supabase").await;
    for n in 1..=7 {
        deliver_insert(&api, &url, n).await;
    }
    let path = format!("/api/connections/{id}/events");
    let (mut seen, mut next, mut pages) = (Vec::<Value>::new(), String::new(), 0);
    loop {
        let query = if next.is_empty() {
            "limit=2".to_string()
        } else {
            format!("limit=2&next={next}")
        };
        let (status, page) = api
            .send(
                reqwest::Method::GET,
                &format!("{path}?{query}"),
                Some("acme"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        pages += 1;
        seen.extend(
            page["events"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| e["entity_id"].clone()),
        );
        // A new event arrives between two pages: newer than every one listed, so not part
        // of this listing.
        deliver_insert(&api, &url, 100 + pages).await;
        match page["next"].as_str() {
            Some(n) => next = n.to_string(),
            None => break,
        }
        assert!(pages < 20, "the list never ends: {seen:?}");
    }
    let expected: Vec<Value> = (1..=7).rev().map(|n| json!(n.to_string())).collect();
    assert_eq!(seen, expected);
    assert_eq!(pages, 4);
}

#[tokio::test]
async fn the_event_log_pages_newest_first_and_shows_the_job() {
    let api = api().await;
    let (id, url) = connect(&api, "acme", "supabase").await;
    for n in 1..=3 {
        let body = format!(
            r#"{{"type":"INSERT","table":"shop_orders","schema":"public","record":{{"id":{n},"updated_at":"2026-11-24T12:00:0{n}Z"}},"old_record":null}}"#
        );
        let (status, _) = deliver(&api, &url, "supabase", body.as_bytes(), SB_SECRET).await;
        assert_eq!(status, StatusCode::OK);
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    coalesce(&api).await;
    let path = format!("/api/connections/{id}/events");
    let (status, first) = api
        .send(
            reqwest::Method::GET,
            &format!("{path}?limit=2"),
            Some("acme"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let ids: Vec<_> = first["events"]
        .as_array()
        .map(|a| a.iter().map(|e| e["entity_id"].clone()).collect())
        .unwrap_or_default();
    assert_eq!(ids, [json!("3"), json!("2")]);
    assert_eq!(first["events"][0]["status"], "coalesced");
    assert!(first["events"][0]["job_id"].is_string());
    let next = first["next"].as_str().unwrap_or_default();
    let (_, second) = api
        .send(
            reqwest::Method::GET,
            &format!("{path}?limit=2&next={next}"),
            Some("acme"),
            None,
        )
        .await;
    assert_eq!(second["events"].as_array().map(Vec::len), Some(1));
    assert_eq!(second["next"], Value::Null);
    for bad in ["limit=0", "limit=101", "next=!!", "next=QUJD"] {
        let (status, got) = api
            .send(
                reqwest::Method::GET,
                &format!("{path}?{bad}"),
                Some("acme"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {got}");
    }
}

#[tokio::test]
async fn a_connection_in_use_is_deleted_only_with_cascade() {
    let api = api().await;
    let (id, _) = connect(&api, "acme", "woocommerce").await;
    let (status, created) = api
        .send(
            reqwest::Method::POST,
            "/api/sync/schedules",
            Some("acme"),
            Some(create_body_for(&id)),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let schedule = created["id"].as_str().unwrap_or_default().to_string();
    let path = format!("/api/connections/{id}");
    let (status, got) = api
        .send(reqwest::Method::DELETE, &path, Some("acme"), None)
        .await;
    assert_eq!(
        (status, got["error"]["code"].clone()),
        (StatusCode::CONFLICT, json!("conflict"))
    );
    let (status, _) = api
        .send(
            reqwest::Method::DELETE,
            &format!("{path}?cascade=maybe"),
            Some("acme"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = api
        .send(
            reqwest::Method::DELETE,
            &format!("{path}?cascade=true"),
            Some("acme"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(api.eventbridge_state(&schedule).await, None);
    let (_, list) = api
        .send(
            reqwest::Method::GET,
            "/api/sync/schedules",
            Some("acme"),
            None,
        )
        .await;
    assert_eq!(list, json!([]));
    assert_eq!(api.aws.item_count().await, 0);
}

#[tokio::test]
async fn syncctl_webhook_send_signs_like_the_platform() {
    let api = api().await;
    let (id, _) = connect(&api, "acme", "quickbooks").await;
    let file = format!(
        "{}/../events/webhooks/quickbooks-cloudevents.body.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let args = [
        "syncctl",
        "webhook",
        "send",
        "--platform",
        "quickbooks",
        "--connection",
        &id,
        "--file",
        &file,
        "--secret",
        QBO_TOKEN,
        "--url",
        &api.stack.api_url,
        "--content-type",
        "application/cloudevents+json",
    ];
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = infra::cli::run(
        args.iter().map(|a| a.to_string()).collect(),
        &mut out,
        &mut err,
    )
    .await;
    let out = String::from_utf8_lossy(&out);
    assert_eq!(code, 0, "{out} {}", String::from_utf8_lossy(&err));
    assert!(
        out.starts_with("200 ") && out.contains("\"queued\":2"),
        "{out}"
    );
    let wrong = args.map(|a| if a == QBO_TOKEN { "wrong" } else { a });
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = infra::cli::run(
        wrong.iter().map(|a| a.to_string()).collect(),
        &mut out,
        &mut err,
    )
    .await;
    assert_eq!(code, 1);
    assert!(String::from_utf8_lossy(&out).starts_with("401 "));
}

#[tokio::test]
async fn one_quickbooks_company_connected_by_two_tenants_syncs_for_both() {
    // GIVEN two tenants connected to the same QuickBooks company, each with its own app
    let api = api().await;
    let (a_id, a_url) = connect(&api, "acme", "quickbooks").await;
    let mut theirs = connection_body("quickbooks");
    let b_token = "globex-verifier-token-0123456789";
    theirs["secrets"]["webhook_verifier_token"] = json!(b_token);
    let (b_id, b_url) = connect_with(&api, "globex", theirs).await;
    // WHEN the same delivery reaches both, each signed for its connection, twice
    let body = fixture("quickbooks-classic.body.json");
    for (url, token) in [(&a_url, QBO_TOKEN), (&b_url, b_token)] {
        let (status, got) = deliver(&api, url, "quickbooks", &body, token).await;
        assert_eq!(
            (status, got["queued"].clone()),
            (StatusCode::OK, json!(2)),
            "{got}"
        );
        let (_, again) = deliver(&api, url, "quickbooks", &body, token).await;
        assert_eq!(again["duplicates"], json!(2), "{again}");
    }
    // THEN each tenant's event log holds the events
    for (tenant, id) in [("acme", &a_id), ("globex", &b_id)] {
        let (status, log) = api
            .send(
                reqwest::Method::GET,
                &format!("/api/connections/{id}/events"),
                Some(tenant),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            log["events"].as_array().map(Vec::len),
            Some(2),
            "{tenant}: {log}"
        );
    }
}

#[tokio::test]
async fn a_two_hundred_event_quickbooks_delivery_is_queued_exactly_once_against_moto() {
    let api = api().await;
    let (_, url) = connect(&api, "acme", "quickbooks").await;
    let entities: Vec<Value> = (0..200)
        .map(|i| json!({"name": "Customer", "id": format!("{}", 1000 + i), "operation": "Update", "lastUpdated": "2026-11-24T12:00:00.000Z"}))
        .collect();
    let body = json!({"eventNotifications": [{"realmId": "9130350000000001", "dataChangeEvent": {"entities": entities}}]})
        .to_string()
        .into_bytes();
    let (status, got) = deliver(&api, &url, "quickbooks", &body, QBO_TOKEN).await;
    assert_eq!(
        (status, got["queued"].clone()),
        (StatusCode::OK, json!(200)),
        "{got}"
    );
    let (_, again) = deliver(&api, &url, "quickbooks", &body, QBO_TOKEN).await;
    assert_eq!(again["duplicates"], json!(200), "{again}");
    let queued = queue_bodies(&api, &api.aws.provisioned.events_queue_url).await;
    let mut ids: Vec<_> = queued
        .iter()
        .map(|e| e["entity_id"].as_str().unwrap_or_default().to_string())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!((queued.len(), ids.len()), (200, 200));
}

/// A WooCommerce order event of `id`, as `QueuedEvent`s and the log know it.
fn event_record(
    key_hash: &str,
    token: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> sync_core::domain::EventRecord {
    use sync_core::domain::{EntityType, EventRecord, EventStatus, TenantId};
    EventRecord {
        connection_id: "6b1c1a52-3f0e-4d8e-9a57-0c4a2f1e9d30"
            .parse()
            .unwrap_or_else(|e| panic!("{e}")),
        tenant_id: TenantId::parse("acme").unwrap_or_else(|e| panic!("{e}")),
        platform: Platform::WooCommerce,
        event_key: format!("woocommerce:order:7:updated:{key_hash}"),
        key_hash: key_hash.into(),
        event_type: "order.updated".into(),
        entity_type: EntityType::Orders,
        entity_id: "7".into(),
        received_at: at,
        status: EventStatus::Claimed,
        message_id: None,
        job_id: None,
        claim_token: token.into(),
    }
}

#[tokio::test]
async fn against_moto_a_claim_is_one_write_taken_over_after_its_lease_and_the_first_message_marked_carries_the_event(
) {
    use sync_core::domain::{EventStatus, QueuedEvent};
    use sync_core::ports::{Claim, EventClaims, EventJobs, EventLog};
    let aws = integration_tests::fresh_aws().await;
    let store = sync_aws::DynamoEventStore::new(aws.dynamodb(), aws.resources.table_name.clone());
    let jobs = sync_aws::DynamoEventJobs::new(aws.dynamodb(), aws.resources.table_name.clone());
    let (ttl, lease) = (chrono::Duration::hours(72), chrono::Duration::seconds(30));
    let t0 = chrono::DateTime::from_timestamp_millis(chrono::Utc::now().timestamp_millis())
        .unwrap_or_default();
    let claim = |r: sync_core::domain::EventRecord, at| {
        let store = store.clone();
        async move {
            store
                .claim(&r, at, ttl, lease)
                .await
                .unwrap_or_else(|e| panic!("{e}"))
        }
    };
    let at = |seconds| t0 + chrono::Duration::seconds(seconds);
    let first = event_record(&"0f".repeat(32), "token-1", t0);
    assert_eq!(claim(first.clone(), t0).await, Claim::Claimed);
    // The same write again (the SDK retrying it after a lost answer) finds its own claim.
    assert_eq!(claim(first.clone(), at(1)).await, Claim::Claimed);
    // Within the lease a redelivery is refused, and told the event is in no job yet.
    assert_eq!(
        claim(event_record(&first.key_hash, "token-2", at(29)), at(29)).await,
        Claim::Unmarked
    );
    // Unmarked after the lease: a redelivery takes it over and queues its own message.
    let second = event_record(&first.key_hash, "token-2", at(31));
    assert_eq!(claim(second.clone(), at(31)).await, Claim::Claimed);
    // The first message marked carries the event; the other is refused; the first again
    // (SQS delivering it twice) is marked again.
    let first_message = QueuedEvent::from_record(&first);
    assert_eq!(jobs.set_job(&first_message, "job-1").await, Ok(true));
    assert_eq!(
        jobs.set_job(&QueuedEvent::from_record(&second), "job-2")
            .await,
        Ok(false)
    );
    assert_eq!(jobs.set_job(&first_message, "job-1").await, Ok(true));
    // A release after the mark (the queue took the event, only its answer was lost)
    // changes nothing.
    store
        .release(&second)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        claim(event_record(&first.key_hash, "token-3", at(300)), at(300)).await,
        Claim::Duplicate,
        "a marked claim is taken over only past its window"
    );
    assert_eq!(
        claim(
            event_record(&first.key_hash, "token-4", at(73 * 3600)),
            at(73 * 3600)
        )
        .await,
        Claim::Claimed
    );

    // A release before any mark leaves the key to the platform's retry.
    let other = event_record(&"1e".repeat(32), "token-5", t0);
    assert_eq!(claim(other.clone(), t0).await, Claim::Claimed);
    store
        .release(&other)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let page = store
        .list(other.connection_id, 10, None, t0)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let statuses: Vec<_> = page
        .events
        .iter()
        .map(|e| (e.claim_token.as_str(), e.status))
        .collect();
    assert_eq!(
        statuses,
        [
            ("token-4", EventStatus::Claimed),
            ("token-5", EventStatus::EnqueueFailed)
        ]
    );
    assert_eq!(
        claim(event_record(&other.key_hash, "token-6", t0), t0).await,
        Claim::Claimed
    );
    // A message whose claim is gone is carried.
    let gone = event_record(&"2d".repeat(32), "token-7", t0);
    assert_eq!(
        jobs.set_job(&QueuedEvent::from_record(&gone), "job-3")
            .await,
        Ok(true)
    );
}

#[tokio::test]
async fn the_event_log_lists_claims_and_entries_logged_apart_from_them_newest_first_across_pages() {
    use sync_core::ports::{EventClaims, EventLog};
    let aws = integration_tests::fresh_aws().await;
    let store = sync_aws::DynamoEventStore::new(aws.dynamodb(), aws.resources.table_name.clone());
    let t0 = chrono::DateTime::from_timestamp_millis(chrono::Utc::now().timestamp_millis())
        .unwrap_or_default();
    let (ttl, lease) = (chrono::Duration::hours(72), chrono::Duration::seconds(30));
    // Entries an earlier intake logged beside the connection, between the claims' times.
    let mut expected = Vec::new();
    for i in 0..6i64 {
        let at = t0 + chrono::Duration::milliseconds(i * 10);
        let record = event_record(&format!("{i:064}"), &format!("token-{i}"), at);
        if i % 2 == 0 {
            store
                .claim(&record, at, ttl, lease)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        } else {
            let item = [
                ("pk", format!("CONNECTION#{}", record.connection_id)),
                ("sk", format!("EVENT#{}", record.log_key())),
                ("kind", "event".into()),
                ("connection_id", record.connection_id.to_string()),
                ("tenant_id", "acme".into()),
                ("platform", "woocommerce".into()),
                ("event_key", record.event_key.clone()),
                ("key_hash", record.key_hash.clone()),
                ("event_type", "order.updated".into()),
                ("entity_type", "orders".into()),
                ("entity_id", "7".into()),
                (
                    "received_at",
                    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                ),
                ("status", "queued".into()),
                ("claim_token", record.claim_token.clone()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), aws_sdk_dynamodb::types::AttributeValue::S(v)))
            .chain([(
                "expires_at".to_string(),
                aws_sdk_dynamodb::types::AttributeValue::N((at.timestamp() + 86_400).to_string()),
            )])
            .collect();
            aws.dynamodb()
                .put_item()
                .table_name(&aws.resources.table_name)
                .set_item(Some(item))
                .send()
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        expected.push(record.claim_token);
    }
    expected.reverse();
    let connection = event_record("", "", t0).connection_id;
    // Pages of one, so every step crosses from one home to the other: six pages.
    let (mut seen, mut next, mut pages) = (Vec::new(), None, 0);
    loop {
        let page = store
            .list(connection, 1, next.as_deref(), t0)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        pages += 1;
        seen.extend(page.events.into_iter().map(|e| e.claim_token));
        match page.next {
            Some(cursor) => next = Some(cursor),
            None => break,
        }
        assert!(pages < 20, "the log never ends: {seen:?}");
    }
    assert_eq!(seen, expected);
    assert_eq!(pages, 6);
}

#[tokio::test]
async fn a_warm_intake_takes_two_aws_calls_for_a_new_event_none_for_a_duplicate_it_queued_and_one_for_another(
) {
    use platform_sims::aws_proxy::AwsProxy;
    let (proxy, endpoint, _serving) = AwsProxy::start(&integration_tests::moto().endpoint())
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let api = integration_tests::api_through(&endpoint, Vec::new()).await;
    let (_, url) = connect(&api, "acme", "supabase").await;
    let insert = |n: u32| {
        format!(
            r#"{{"type":"INSERT","table":"shop_orders","schema":"public","record":{{"id":{n},"updated_at":"2026-11-24T12:00:00Z"}},"old_record":null}}"#
        )
    };
    // Cold: the connection is read and its secret opened once.
    proxy.take_calls();
    let (status, got) = deliver(&api, &url, "supabase", insert(1).as_bytes(), SB_SECRET).await;
    assert_eq!(
        (status, got["queued"].clone()),
        (StatusCode::OK, json!(1)),
        "{got}"
    );
    let cold = proxy.take_calls();
    assert_eq!(
        cold,
        [
            "DynamoDB_20120810.GetItem",
            "TrentService.Decrypt",
            "DynamoDB_20120810.PutItem",
            "AmazonSQS.SendMessageBatch"
        ]
    );
    // Warm: the claim, which is the log entry, then the enqueue.
    let (_, got) = deliver(&api, &url, "supabase", insert(2).as_bytes(), SB_SECRET).await;
    assert_eq!(got["queued"], json!(1), "{got}");
    assert_eq!(
        proxy.take_calls(),
        ["DynamoDB_20120810.PutItem", "AmazonSQS.SendMessageBatch"]
    );
    // A duplicate: the container that queued it knows without a call.
    let (_, got) = deliver(&api, &url, "supabase", insert(2).as_bytes(), SB_SECRET).await;
    assert_eq!(got["duplicates"], json!(1), "{got}");
    assert_eq!(proxy.take_calls(), Vec::<String>::new());
    // Another container (Lambda scaled out) learns it from the claim's refusal: once warm,
    // one call, once the event is in a job (before, it queues the event as well, in case
    // the first delivery's container died before queueing it).
    coalesce(&api).await;
    proxy.take_calls();
    let other = aws::intake(
        &sync_aws::sdk::local(&endpoint).await,
        &intake_config(&api, &api.aws.provisioned.events_queue_url),
        Arc::new(sync_core::clock::SystemClock),
    );
    let headers = supabase_headers();
    let connection = url.rsplit('/').next().unwrap_or_default();
    for (n, calls) in [
        (
            2,
            &[
                "DynamoDB_20120810.GetItem",
                "TrentService.Decrypt",
                "DynamoDB_20120810.PutItem",
            ][..],
        ),
        (1, &["DynamoDB_20120810.PutItem"][..]),
    ] {
        let body = insert(n);
        let outcome = other
            .handle(&Delivery {
                platform: "supabase",
                connection_id: connection,
                headers: &headers,
                body: body.as_bytes(),
            })
            .await;
        assert_eq!(
            outcome,
            Ok(Outcome::Accepted {
                queued: 0,
                duplicates: 1,
                ignored: 0
            })
        );
        assert_eq!(proxy.take_calls(), calls);
    }
}

// The storm: many signed deliveries at once over every platform and two tenants, a third of
// them redeliveries, some while the webhook-events queue fails.

/// Unique deliveries the storm sends: a few hundred in the test command, `STORM_DELIVERIES`
/// otherwise (`./infra/bench.sh storm`); each is sent again once in two.
fn storm_size() -> usize {
    integration_tests::env_size("STORM_DELIVERIES", 240)
}

/// How many deliveries are in flight at once.
const STORM_CONCURRENCY: usize = 32;

/// How long every enqueue fails once a third of the storm has started.
const QUEUE_OUTAGE: std::time::Duration = std::time::Duration::from_millis(1500);

/// One delivery of the storm: where it goes, its body, the events it carries as
/// (connection id, entity type, record id), and whether the platform sends it again once
/// it is answered (a redelivery: every one of its events a duplicate).
struct Shot {
    url: String,
    platform: &'static str,
    secret: &'static str,
    body: Vec<u8>,
    events: Vec<(String, String, String)>,
    again: bool,
}

/// The `i`th delivery of the storm, to `connection` (id, webhook URL, platform): a new
/// record each time, two per QuickBooks delivery.
fn storm_shot(i: usize, (id, url, platform): &(String, String, &'static str)) -> Shot {
    let event = |entity: &str, record: String| (id.clone(), entity.to_string(), record);
    let (body, secret, events) = match *platform {
        "woocommerce" => {
            let mut order: Value =
                serde_json::from_slice(&fixture("woocommerce-order-updated.body.json"))
                    .unwrap_or_else(|e| panic!("{e}"));
            order["id"] = json!(100_000 + i);
            let events = vec![event("orders", (100_000 + i).to_string())];
            (order, WOO_SECRET, events)
        }
        "supabase" => {
            let mut change: Value = serde_json::from_slice(&fixture("supabase-update.body.json"))
                .unwrap_or_else(|e| panic!("{e}"));
            change["record"]["id"] = json!(i + 1);
            change["old_record"]["id"] = json!(i + 1);
            (
                change,
                SB_SECRET,
                vec![event("customers", (i + 1).to_string())],
            )
        }
        _ => {
            let ids = [2 * i + 10, 2 * i + 11];
            let entities: Vec<Value> = ids
                .iter()
                .map(|n| json!({"name": "Customer", "id": n.to_string(), "operation": "Update", "lastUpdated": "2026-11-24T12:00:00.000Z"}))
                .collect();
            let body = json!({"eventNotifications": [{"realmId": "9130350000000001", "dataChangeEvent": {"entities": entities}}]});
            let events = ids
                .iter()
                .map(|n| event("customers", n.to_string()))
                .collect();
            (body, QBO_TOKEN, events)
        }
    };
    Shot {
        url: url.clone(),
        platform,
        secret,
        body: body.to_string().into_bytes(),
        events,
        again: i % 2 == 0,
    }
}

/// One HTTP attempt of a delivery: when it was sent and answered, and the status.
type Attempt = (std::time::Instant, std::time::Instant, StatusCode);

/// Sends `shot` as its platform would: again after every 5xx until it is answered 200, then
/// once more if it is a redelivery. Its attempts, and the bodies of the 200 answers.
async fn fire(api: &Api, shot: &Shot) -> (Vec<Attempt>, Vec<Value>) {
    let mut attempts = Vec::new();
    let mut answers = Vec::new();
    for _ in 0..if shot.again { 2 } else { 1 } {
        loop {
            let sent = std::time::Instant::now();
            let (status, body) =
                deliver(api, &shot.url, shot.platform, &shot.body, shot.secret).await;
            attempts.push((sent, std::time::Instant::now(), status));
            if status == StatusCode::OK {
                answers.push(body);
                break;
            }
            assert!(attempts.len() < 100, "never accepted: {status} {body}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    (attempts, answers)
}

/// Every event-log entry of the table: (connection id, entity id, job id if coalesced,
/// status).
async fn logged_events(api: &Api) -> Vec<(String, String, Option<String>, String)> {
    let text = |item: &HashMap<String, aws_sdk_dynamodb::types::AttributeValue>, name: &str| {
        item.get(name).and_then(|v| v.as_s().ok()).cloned()
    };
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let page = api
            .aws
            .dynamodb()
            .scan()
            .table_name(&api.aws.resources.table_name)
            .filter_expression("kind = :event")
            .expression_attribute_values(
                ":event",
                aws_sdk_dynamodb::types::AttributeValue::S("event".into()),
            )
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap_or_else(|e| panic!("scan failed: {e}"));
        out.extend(page.items().iter().map(|item| {
            (
                text(item, "connection_id").unwrap_or_default(),
                text(item, "entity_id").unwrap_or_default(),
                text(item, "job_id"),
                text(item, "status").unwrap_or_default(),
            )
        }));
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            return out;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_storm_of_deliveries_a_third_redelivered_some_while_the_queue_fails_queues_each_event_once(
) {
    use futures::stream::{self, StreamExt};
    use platform_sims::aws_proxy::AwsProxy;
    use platform_sims::server::{Fault, Handler};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    use std::time::Instant;

    let (proxy, endpoint, _serving) = AwsProxy::start(&integration_tests::moto().endpoint())
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let api = integration_tests::api_through(&endpoint, Vec::new()).await;
    let mut connections = Vec::new();
    for tenant in ["acme", "globex"] {
        for platform in ["woocommerce", "quickbooks", "supabase"] {
            let (id, url) = connect(&api, tenant, platform).await;
            connections.push((id, url, platform));
        }
    }
    let shots: Vec<Shot> = (0..storm_size())
        .map(|i| storm_shot(i, &connections[i % connections.len()]))
        .collect();

    // A third of the way in, every enqueue fails for a while (a 500 from SQS, as in an
    // outage); DynamoDB keeps working.
    let started = AtomicUsize::new(0);
    let outage: Arc<Mutex<(Option<Instant>, Option<Instant>)>> = Arc::default();
    let begin = Instant::now();
    let results: Vec<(Vec<Attempt>, Vec<Value>)> = stream::iter(&shots)
        .map(|shot| {
            if started.fetch_add(1, Ordering::SeqCst) == shots.len() / 3 {
                proxy.faults().set(Fault {
                    target: Some("AmazonSQS.SendMessage".into()),
                    status: Some(500),
                    count: -1,
                    ..Fault::default()
                });
                outage.lock().unwrap_or_else(|p| p.into_inner()).0 = Some(Instant::now());
                let (proxy, outage) = (proxy.clone(), outage.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(QUEUE_OUTAGE).await;
                    proxy.faults().clear();
                    outage.lock().unwrap_or_else(|p| p.into_inner()).1 = Some(Instant::now());
                });
            }
            fire(&api, shot)
        })
        .buffered(STORM_CONCURRENCY)
        .collect()
        .await;
    let elapsed = begin.elapsed();

    // Zero 5xx but the injected ones: each is a 503 sent while the queue was failing.
    let (on, off) = *outage.lock().unwrap_or_else(|p| p.into_inner());
    let (on, off) = (
        on.unwrap_or_else(|| panic!("the outage never began")),
        off.unwrap_or_else(|| panic!("the outage never ended")),
    );
    let attempts: Vec<&Attempt> = results.iter().flat_map(|(a, _)| a).collect();
    let refused: Vec<&&Attempt> = attempts
        .iter()
        .filter(|(_, _, status)| *status != StatusCode::OK)
        .collect();
    for (sent, answered, status) in &refused {
        assert_eq!(*status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            *sent <= off && *answered >= on,
            "a {status} outside the queue's outage"
        );
    }
    assert!(
        proxy.faults().injected() > 0 && !refused.is_empty(),
        "the outage failed no delivery: the storm proves nothing about it"
    );

    // Each delivery's events were queued by exactly one accepted attempt, and its
    // redelivery found every one a duplicate.
    for (shot, (_, answers)) in shots.iter().zip(&results) {
        let n = shot.events.len();
        assert_eq!(
            (
                answers[0]["queued"].clone(),
                answers[0]["duplicates"].clone()
            ),
            (json!(n), json!(0)),
            "{}",
            answers[0]
        );
        if let Some(again) = answers.get(1) {
            assert_eq!(
                (again["queued"].clone(), again["duplicates"].clone()),
                (json!(0), json!(n)),
                "{again}"
            );
        }
    }

    // The coalescer's jobs hold every event exactly once, and nothing else.
    loop {
        if coalesce(&api).await.received == 0 {
            break;
        }
    }
    let mut in_jobs: HashMap<(String, String, String), usize> = HashMap::new();
    for job in queue_bodies(&api, &api.aws.provisioned.sync_queue_url).await {
        for id in job["ids"].as_array().into_iter().flatten() {
            let key = (
                job["connection_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                job["entity_type"].as_str().unwrap_or_default().to_string(),
                id.as_str().unwrap_or_default().to_string(),
            );
            *in_jobs.entry(key).or_default() += 1;
        }
    }
    let expected: std::collections::HashSet<(String, String, String)> =
        shots.iter().flat_map(|s| s.events.clone()).collect();
    let twice: Vec<_> = in_jobs.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "events in more than one job: {twice:?}");
    let jobbed: std::collections::HashSet<_> = in_jobs.keys().cloned().collect();
    let lost: Vec<_> = expected.difference(&jobbed).collect();
    let extra: Vec<_> = jobbed.difference(&expected).collect();
    assert!(lost.is_empty(), "{} events lost: {lost:?}", lost.len());
    assert!(extra.is_empty(), "jobs for events never sent: {extra:?}");

    // The event log agrees: each event coalesced once; every other entry is an attempt the
    // outage failed.
    let mut coalesced: HashMap<(String, String), usize> = HashMap::new();
    for (connection, entity_id, job, status) in logged_events(&api).await {
        match job {
            Some(_) => *coalesced.entry((connection, entity_id)).or_default() += 1,
            None => assert_eq!(status, "enqueue_failed", "{connection} {entity_id}"),
        }
    }
    assert_eq!(coalesced.len(), expected.len());
    assert!(coalesced.values().all(|n| *n == 1), "{coalesced:?}");

    let deliveries = attempts.len();
    let report = format!(
        "| deliveries sent (redeliveries, answered 503 in the outage) | unique events | in flight | seconds | deliveries/s | unique events/s |\n\
         |---|---|---|---|---|---|\n\
         | {deliveries} ({}, {}) | {} | {STORM_CONCURRENCY} | {:.1} | {:.0} | {:.0} |\n",
        results.iter().filter(|(_, a)| a.len() > 1).count(),
        refused.len(),
        expected.len(),
        elapsed.as_secs_f64(),
        deliveries as f64 / elapsed.as_secs_f64(),
        expected.len() as f64 / elapsed.as_secs_f64(),
    );
    eprintln!("{report}");
    if let Ok(path) = std::env::var("STORM_REPORT") {
        std::fs::write(&path, report).unwrap_or_else(|e| panic!("{path}: {e}"));
    }
}
