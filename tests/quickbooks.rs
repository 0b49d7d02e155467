//! QuickBooks end to end through the local stack (moto, the API and the worker's own
//! handlers) against the QuickBooks simulator, the WooCommerce store simulator and a real
//! PostgreSQL behind the PostgREST layer.

use integration_tests::platforms::{sync_world_with, SyncWorld};
use platform_sims::server::Handler;
use platform_sims::woo::{Kind, Seed};
use reqwest::{Method, StatusCode};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::str::FromStr;
use sync_core::domain::SyncMode;

fn seed() -> Seed {
    Seed {
        products: 8,
        customers: 6,
        orders: 30,
        seed: 11,
    }
}

/// A world with the company connected; a 429 that does not say how long waits a second.
async fn world() -> (SyncWorld, String) {
    world_with(Vec::new()).await
}

/// As [`world`], with more of the worker's settings.
async fn world_with(mut env: Vec<(String, String)>) -> (SyncWorld, String) {
    env.push(("THROTTLE_WAIT_SECONDS".into(), "1".into()));
    let w = sync_world_with(seed(), env).await;
    let books = w.connect_quickbooks(json!({})).await;
    (w, books)
}

fn amount(v: &Value) -> Decimal {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => "0".into(),
    };
    Decimal::from_str(&text)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .normalize()
}

/// The document-number prefix a flow from the store ("Store") gets by default.
const STORE_PREFIX: &str = "STOR-";

/// The live documents in the company, by `DocNumber` without the store's prefix (the
/// store's order number), with their kind.
async fn documents(w: &SyncWorld) -> HashMap<String, Vec<(&'static str, Value)>> {
    let mut out: HashMap<String, Vec<(&'static str, Value)>> = HashMap::new();
    for kind in ["SalesReceipt", "Invoice"] {
        for doc in w.books(kind).await {
            if doc["status"] != "Deleted" {
                let full = doc["DocNumber"].as_str().unwrap_or_default();
                let number = full.strip_prefix(STORE_PREFIX).unwrap_or(full).to_string();
                out.entry(number).or_default().push((kind, doc));
            }
        }
    }
    out
}

fn item_names(items: &[Value]) -> HashMap<String, (String, String)> {
    items
        .iter()
        .map(|i| {
            (
                i["Id"].as_str().unwrap_or_default().to_string(),
                (
                    i["Name"].as_str().unwrap_or_default().to_string(),
                    i["Sku"].as_str().unwrap_or_default().to_string(),
                ),
            )
        })
        .collect()
}

/// Every order that keeps a document has exactly one, of the kind its payment says, whose
/// lines, discount, tax and total are the order's.
async fn assert_documents_match_orders(w: &SyncWorld) {
    let docs = documents(w).await;
    let items = item_names(&w.books("Item").await);
    let orders = w.woo.all(Kind::Orders);
    assert!(!orders.is_empty());
    let mut checked = 0;
    for order in orders {
        let number = order["number"].as_str().unwrap_or_default();
        let status = order["status"].as_str().unwrap_or_default();
        let found = docs.get(number).cloned().unwrap_or_default();
        if matches!(status, "cancelled" | "failed" | "trash") {
            assert!(
                found.iter().all(|(_, d)| d["TotalAmt"] == json!(0)),
                "order {number} ({status}) has a live document: {found:?}"
            );
            continue;
        }
        assert_eq!(found.len(), 1, "order {number}: {found:?}");
        let (kind, doc) = &found[0];
        let paid = !order["date_paid_gmt"].is_null();
        assert_eq!(
            *kind,
            if paid { "SalesReceipt" } else { "Invoice" },
            "order {number}"
        );
        assert_eq!(
            amount(&doc["TotalAmt"]),
            amount(&order["total"]),
            "order {number} total"
        );
        assert_eq!(
            amount(&doc["TxnTaxDetail"]["TotalTax"]),
            amount(&order["total_tax"]),
            "order {number} tax"
        );
        let lines: Vec<&Value> = doc["Line"]
            .as_array()
            .map(|l| l.iter().collect())
            .unwrap_or_default();
        let sales: Vec<&Value> = lines
            .iter()
            .copied()
            .filter(|l| l["DetailType"] == "SalesItemLineDetail")
            .collect();
        let (mut products, mut shipping, mut fees) = (Vec::new(), Decimal::ZERO, Decimal::ZERO);
        for line in sales {
            let item = line["SalesItemLineDetail"]["ItemRef"]["value"]
                .as_str()
                .unwrap_or_default();
            match items.get(item).map(|(n, s)| (n.as_str(), s.as_str())) {
                Some(("Shipping", _)) => shipping += amount(&line["Amount"]),
                Some(("Fees", _)) => fees += amount(&line["Amount"]),
                Some((_, sku)) => products.push((
                    sku.to_string(),
                    amount(&line["SalesItemLineDetail"]["Qty"]),
                    amount(&line["Amount"]),
                )),
                None => panic!("order {number}: line on unknown item {item}"),
            }
        }
        let expected: Vec<(String, Decimal, Decimal)> = order["line_items"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|l| {
                (
                    l["sku"].as_str().unwrap_or_default().to_string(),
                    amount(&l["quantity"]),
                    amount(&l["subtotal"]),
                )
            })
            .collect();
        assert_eq!(products, expected, "order {number} lines");
        assert_eq!(
            shipping,
            amount(&order["shipping_total"]),
            "order {number} shipping"
        );
        let fee_total: Decimal = order["fee_lines"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|f| amount(&f["total"]))
            .sum();
        assert_eq!(fees, fee_total.normalize(), "order {number} fees");
        let discount: Decimal = lines
            .iter()
            .filter(|l| l["DetailType"] == "DiscountLineDetail")
            .map(|l| amount(&l["Amount"]))
            .sum();
        assert_eq!(
            discount.normalize(),
            amount(&order["discount_total"]),
            "order {number} discount"
        );
        checked += 1;
    }
    assert!(checked > 10, "only {checked} orders checked");
    assert_refunds_match_orders(w).await;
}

/// The live refund documents in the company, by `DocNumber` without the store's prefix.
async fn refund_documents(w: &SyncWorld) -> HashMap<String, Vec<(&'static str, Value)>> {
    let mut out: HashMap<String, Vec<(&'static str, Value)>> = HashMap::new();
    for kind in ["RefundReceipt", "CreditMemo"] {
        for doc in w.books(kind).await {
            if doc["status"] != "Deleted" {
                let full = doc["DocNumber"].as_str().unwrap_or_default();
                let number = full.strip_prefix(STORE_PREFIX).unwrap_or(full).to_string();
                out.entry(number).or_default().push((kind, doc));
            }
        }
    }
    out
}

/// Every refund of an order that keeps its document is one refund document, of the kind
/// that goes with the order's document (a refund receipt where the customer paid: a sales
/// receipt, or an invoice whose order is paid; a credit memo for an invoice still owed),
/// for the refund's amount; there is no other refund document.
async fn assert_refunds_match_orders(w: &SyncWorld) {
    let docs = documents(w).await;
    let refunds = refund_documents(w).await;
    let mut expected = 0;
    for order in w.woo.all(Kind::Orders) {
        let status = order["status"].as_str().unwrap_or_default();
        if matches!(status, "cancelled" | "failed" | "trash") {
            continue;
        }
        let number = order["number"].as_str().unwrap_or_default();
        let Some((kind, _)) = docs.get(number).and_then(|d| d.first()) else {
            panic!("order {number} has no document");
        };
        for refund in order["refunds"].as_array().into_iter().flatten() {
            let key = format!("{number}-R{}", refund["id"]);
            let found = refunds.get(&key).cloned().unwrap_or_default();
            assert_eq!(found.len(), 1, "refund {key}: {found:#?}");
            let (refund_kind, doc) = &found[0];
            let paid = !order["date_paid_gmt"].is_null();
            let want = if *kind == "SalesReceipt" || paid {
                "RefundReceipt"
            } else {
                "CreditMemo"
            };
            assert_eq!(*refund_kind, want, "refund {key}");
            assert_eq!(
                amount(&doc["TotalAmt"]),
                -amount(&refund["total"]),
                "refund {key}"
            );
            if -amount(&refund["total"]) == amount(&order["total"]) {
                // The whole order at once: all its tax is paid back, none of it booked as
                // a sale.
                assert_eq!(
                    amount(&doc["TxnTaxDetail"]["TotalTax"]),
                    amount(&order["total_tax"]),
                    "refund {key}: {doc:#}"
                );
            }
            expected += 1;
        }
    }
    assert!(expected >= 2, "only {expected} refunds checked");
    // Those of cancelled orders are voided with them.
    let live = refunds
        .values()
        .flatten()
        .filter(|(_, d)| {
            !d["PrivateNote"]
                .as_str()
                .unwrap_or_default()
                .starts_with("Voided")
        })
        .count();
    assert_eq!(live, expected, "no other live refund document");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paid_and_unpaid_orders_become_documents_that_equal_the_orders_line_by_line() {
    let (w, books) = world().await;
    w.flow(&w.store, &books, &["customers", "products", "orders"])
        .await;
    w.work().await;
    assert_documents_match_orders(&w).await;
    // Customers are matched by email: one per store customer and one per guest email.
    let customers = w.books("Customer").await;
    let mut emails: Vec<&str> = customers
        .iter()
        .filter_map(|c| c["PrimaryEmailAddr"]["Address"].as_str())
        .collect();
    let before = emails.len();
    emails.sort();
    emails.dedup();
    assert_eq!(emails.len(), before, "a customer was created twice");
    // A second full sync writes nothing new.
    let writes = |s: &Value| -> u64 {
        s["calls"]
            .as_object()
            .map(|c| {
                c.iter()
                    .filter(|(k, _)| k.starts_with("create") || k.starts_with("update"))
                    .map(|(_, v)| v.as_u64().unwrap_or(0))
                    .sum()
            })
            .unwrap_or(0)
    };
    let stats = w.qbo_admin(Method::GET, "stats", Value::Null).await;
    w.enqueue(&w.job(&w.store, "orders", SyncMode::Full, &[]))
        .await;
    w.work().await;
    let again = w.qbo_admin(Method::GET, "stats", Value::Null).await;
    assert_eq!(
        writes(&again),
        writes(&stats),
        "the second sync wrote again"
    );
    assert_documents_match_orders(&w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_made_through_the_deployments_app_never_sends_its_secret_elsewhere() {
    let (w, books) = world().await;
    // A tenant names another token endpoint on the connection: it is not used, since the
    // app's credentials would go with the refresh.
    let (status, got) = w
        .api
        .send(
            Method::PUT,
            &format!("/api/connections/{books}"),
            Some("acme"),
            Some(json!({"config": {"token_url": "http://127.0.0.1:9/collect",
                                   "api_url": "http://127.0.0.1:9/books"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{got}");
    w.flow(&w.store, &books, &["customers"]).await;
    w.work().await;
    let runs = w.runs(&format!("connection_id={}", w.store)).await;
    assert!(runs.iter().all(|r| r["status"] == "succeeded"), "{runs:?}");
    assert_eq!(
        w.books("Customer").await.len(),
        w.woo.all(Kind::Customers).len(),
        "written to the deployment's QuickBooks"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_the_bookkeeper_numbered_like_an_order_is_left_alone() {
    let (w, books) = world().await;
    let order = w
        .woo
        .all(Kind::Orders)
        .into_iter()
        .find(|o| o["status"] == "pending" || o["status"] == "on-hold")
        .unwrap_or_default();
    let number = order["number"].as_str().unwrap_or_default().to_string();
    let customer = w
        .qbo_admin(
            Method::POST,
            "entities/Customer",
            json!({"DisplayName": "Walk-in"}),
        )
        .await;
    let item = w
        .qbo_admin(
            Method::POST,
            "entities/Item",
            json!({"Name": "Consulting", "Type": "Service", "IncomeAccountRef": {"value": "1"}}),
        )
        .await;
    let theirs = w
        .qbo_admin(
            Method::POST,
            "entities/Invoice",
            json!({"DocNumber": number, "CustomerRef": {"value": customer["Id"]},
                   "Line": [{"DetailType": "SalesItemLineDetail", "Amount": 5,
                             "SalesItemLineDetail": {"ItemRef": {"value": item["Id"]}}}]}),
        )
        .await;
    // Numbered as the store numbers its orders, the way a single store's books may be kept.
    w.flow_with(
        &w.store,
        &books,
        &["orders"],
        json!({"doc_number_prefix": ""}),
    )
    .await;
    w.work().await;
    let invoices = w.books("Invoice").await;
    let numbered: Vec<&Value> = invoices
        .iter()
        .filter(|d| d["DocNumber"] == number.as_str())
        .collect();
    assert_eq!(numbered.len(), 2, "the order got its own invoice");
    let kept = numbered
        .iter()
        .find(|d| d["Id"] == theirs["Id"])
        .unwrap_or_else(|| panic!("the bookkeeper's invoice is gone"));
    assert_eq!(
        kept["SyncToken"], "0",
        "the bookkeeper's invoice was not written"
    );
    assert_eq!(amount(&kept["TotalAmt"]), amount(&json!(5)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_lost_after_quickbooks_committed_still_leaves_one_document() {
    let (w, books) = world().await;
    w.qbo_admin(Method::POST, "lose-responses", json!({"count": 4}))
        .await;
    w.flow(&w.store, &books, &["orders"]).await;
    w.work().await;
    let stats = w.qbo_admin(Method::GET, "stats", Value::Null).await;
    assert!(stats["replays"].as_u64().unwrap_or(0) >= 1, "{stats}");
    assert_documents_match_orders(&w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_sync_token_is_read_again_and_the_update_retried_keeping_the_other_edit() {
    let (w, books) = world().await;
    w.flow(&w.store, &books, &["customers"]).await;
    w.work().await;
    let customer = w
        .woo
        .all(Kind::Customers)
        .into_iter()
        .next()
        .unwrap_or_default();
    let id = customer["id"].as_u64().unwrap_or_default();
    w.store_admin(
        Method::PUT,
        &format!("wc/v3/customers/{id}"),
        json!({"first_name": "Renamed"}),
    )
    .await;
    w.qbo_admin(Method::POST, "concurrent-edits", json!({"count": 1}))
        .await;
    w.enqueue(&w.job(&w.store, "customers", SyncMode::Incremental, &[]))
        .await;
    w.work().await;
    let stats = w.qbo_admin(Method::GET, "stats", Value::Null).await;
    assert_eq!(stats["concurrent_edits"], 1, "{stats}");
    let email = customer["email"].as_str().unwrap_or_default();
    let found = w
        .books("Customer")
        .await
        .into_iter()
        .find(|c| c["PrimaryEmailAddr"]["Address"] == email)
        .unwrap_or_default();
    assert_eq!(found["GivenName"], "Renamed", "{found}");
    assert_eq!(
        found["PrivateNote"], "edited in QuickBooks",
        "the other edit was lost"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_grant_marks_the_connection_needs_reauth_and_its_runs_fail_fast() {
    let (w, books) = world().await;
    // The user disconnects the app in QuickBooks: every grant is revoked.
    let revoked = w
        .api
        .http
        .post(format!("{}/__admin/oauth/revoke-all", w.qbo_url))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(revoked.status().is_success());
    w.flow(&w.store, &books, &["customers"]).await;
    w.work().await;
    let connection = w.connection(&books).await;
    assert_eq!(connection["status"], "needs_reauth", "{connection}");
    let runs = w
        .runs(&format!("connection_id={}&status=failed", w.store))
        .await;
    assert!(
        runs.iter().any(|r| r["message"]
            .as_str()
            .unwrap_or_default()
            .contains("needs_reauth")),
        "{runs:?}"
    );
    // Later runs do not go back to Intuit.
    let token_calls = |w: &SyncWorld| {
        w.qbo
            .faults()
            .calls()
            .get("POST /oauth2/v1/tokens/bearer")
            .copied()
            .unwrap_or(0)
    };
    let before = token_calls(&w);
    w.enqueue(&w.job(&w.store, "customers", SyncMode::Full, &[]))
        .await;
    w.work().await;
    assert_eq!(token_calls(&w), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_429s_converges_and_never_more_than_ten_calls_go_at_once() {
    let (w, books) = world().await;
    // The company admits one call at a time: any other the worker makes meanwhile is refused
    // with 429.
    w.qbo_admin(
        Method::POST,
        "limits",
        json!({"concurrent": 1, "per_minute": 500, "latency_ms": 25}),
    )
    .await;
    w.flow(&w.store, &books, &["customers", "products", "orders"])
        .await;
    w.work().await;
    assert_documents_match_orders(&w).await;
    let stats = w.qbo_admin(Method::GET, "stats", Value::Null).await;
    assert!(
        stats["throttled"].as_u64().unwrap_or(0) > 0,
        "no storm: {stats}"
    );
    let most = stats["max_attempted"].as_u64().unwrap_or(99);
    assert!(most <= 10, "{most} calls at once: {stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_to_the_apps_one_url_syncs_just_that_customer_to_supabase() {
    let (w, books) = world().await;
    w.flow(&books, &w.project, &["customers"]).await;
    w.qbo_admin(
        Method::POST,
        "entities/Customer",
        json!({"DisplayName": "Ada Lovelace", "GivenName": "Ada", "FamilyName": "Lovelace",
               "PrimaryEmailAddr": {"Address": "ada@example.com"}}),
    )
    .await;
    w.work().await;
    assert_eq!(w.rows("customers").await.len(), 1);
    // Intuit sends every company's webhooks for the deployment's app to its one URL.
    let url = w.api.url("/webhooks/quickbooks");
    w.qbo_admin(
        Method::POST,
        "webhooks",
        json!({"url": url, "verifier": infra::demo::APP_VERIFIER, "format": "cloudevents"}),
    )
    .await;
    let ada = w
        .books("Customer")
        .await
        .into_iter()
        .find(|c| c["DisplayName"] == "Ada Lovelace")
        .unwrap_or_default();
    w.qbo_admin(
        Method::POST,
        "entities/Customer",
        json!({"Id": ada["Id"], "GivenName": "Augusta"}),
    )
    .await;
    let mut synced = false;
    for _ in 0..50 {
        w.qbo.deliver_webhooks().await;
        w.api
            .stack
            .coalesce_once()
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        w.work().await;
        let rows = w.rows("customers").await;
        if rows.iter().any(|r| r["first_name"] == "Augusta") {
            synced = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(synced, "{:?}", w.rows("customers").await);
    let runs = w.runs(&format!("connection_id={books}")).await;
    assert!(
        runs.iter()
            .any(|r| r["trigger"] == "webhook" && r["counts"]["read"] == 1),
        "the webhook run read more than the one customer: {runs:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_through_the_consent_screen_makes_one_connection_and_a_replayed_redirect_is_refused(
) {
    let (w, books) = world().await;
    let connection = w.connection(&books).await;
    assert_eq!(connection["status"], "active", "{connection}");
    assert_eq!(connection["config"]["realm_id"], w.qbo.config().realm_id);
    // Connecting the same company again renews the connection instead of adding one, and a
    // redirect seen once is refused the second time.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let (status, started) = w
        .api
        .send(
            Method::POST,
            "/api/connections/quickbooks/authorize",
            Some("acme"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{started}");
    let consent = http
        .get(started["authorize_url"].as_str().unwrap_or_default())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let back = consent
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let first = http
        .get(&back)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(first.status(), StatusCode::OK);
    assert!(first
        .text()
        .await
        .unwrap_or_default()
        .contains("is connected again"));
    let replay = http
        .get(&back)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    let (_, all) = w
        .api
        .send(Method::GET, "/api/connections", Some("acme"), None)
        .await;
    let books_count = all
        .as_array()
        .map(|a| a.iter().filter(|c| c["platform"] == "quickbooks").count())
        .unwrap_or(0);
    assert_eq!(books_count, 1);
    // The company of a connection made through the app, and how it was made, are not the
    // user's to type in: webhooks for that company are routed to it.
    for config in [json!({"realm_id": "1234"}), json!({"app": "deployment"})] {
        let (status, got) = w
            .api
            .send(
                Method::PUT,
                &format!("/api/connections/{books}"),
                Some("acme"),
                Some(json!({ "config": config })),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{got}");
    }
    // Without a JWT there is no consent URL.
    let (status, _) = w
        .api
        .send(
            Method::POST,
            "/api/connections/quickbooks/authorize",
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// Token keepers of the company's connection, as workers make them: over DynamoDB (moto),
/// KMS and the simulator's token endpoint.
struct Keepers {
    vault: std::sync::Arc<sync_aws::DynamoTokens>,
    sealer: std::sync::Arc<sync_aws::KmsSealer>,
    endpoint: std::sync::Arc<sync_core::platforms::quickbooks::oauth::TokenEndpoint>,
    connection: sync_core::domain::Connection,
    seed: sync_core::domain::Secret,
}

impl Keepers {
    async fn new(w: &SyncWorld, books: &str) -> Keepers {
        use std::sync::Arc;
        use sync_core::platforms::http::{Caller, RetryPolicy};
        use sync_core::platforms::quickbooks::oauth::{App, TokenEndpoint};

        let aws = &w.api.aws;
        let table = aws.resources.table_name.clone();
        let connection = w.stored_connection(books).await;
        let sealer = Arc::new(sync_aws::KmsSealer::new(
            aws_sdk_kms::Client::new(&aws.sdk),
            aws.resources.kms_key_id.clone(),
        ));
        let secrets = sync_core::service::open_secrets(sealer.as_ref(), &connection)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let app = w.qbo.config().clone();
        let endpoint = Arc::new(TokenEndpoint::new(
            Caller::new(
                Arc::new(sync_http::ReqwestClient::new().unwrap_or_else(|e| panic!("{e}"))),
                RetryPolicy::default(),
                "Intuit OAuth",
            ),
            App {
                client_id: app.client_id.clone(),
                client_secret: app.client_secret.clone(),
                token_url: format!("{}/oauth2/v1/tokens/bearer", w.qbo_url),
            },
        ));
        Keepers {
            vault: Arc::new(sync_aws::DynamoTokens::new(aws.dynamodb(), table)),
            sealer,
            endpoint,
            seed: secrets["refresh_token"].clone(),
            connection,
        }
    }

    fn keeper(
        &self,
        settings: sync_core::service::tokens::KeeperSettings,
    ) -> sync_core::service::tokens::TokenKeeper {
        sync_core::service::tokens::TokenKeeper::new(
            self.vault.clone(),
            self.sealer.clone(),
            std::sync::Arc::new(sync_core::clock::SystemClock),
            self.endpoint.clone(),
            &self.connection,
            self.seed.clone(),
            settings,
        )
    }

    /// The refresh token the vault holds now.
    async fn stored_refresh_token(&self) -> String {
        use sync_core::ports::{SecretOpener, TokenVault};
        let stored = self
            .vault
            .load(self.connection.id)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .and_then(|s| s.sealed)
            .unwrap_or_else(|| panic!("nothing stored"));
        let id = self.connection.id.to_string();
        let opened = self
            .sealer
            .open(
                &stored,
                &[
                    ("tenant_id", self.connection.tenant_id.as_str()),
                    ("connection_id", &id),
                    ("purpose", "oauth-tokens"),
                ],
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let tokens: Value = serde_json::from_slice(&opened).unwrap_or_default();
        tokens["refresh_token"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// Refreshes the simulator has been asked for so far.
fn refreshes(w: &SyncWorld) -> u64 {
    w.qbo
        .faults()
        .calls()
        .get("POST /oauth2/v1/tokens/bearer")
        .copied()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_refresh_racing_in_two_workers_ends_with_one_valid_refresh_token_stored() {
    use sync_core::service::tokens::KeeperSettings;

    let (w, books) = world().await;
    let keepers = Keepers::new(&w, &books).await;
    let keeper = || {
        keepers.keeper(KeeperSettings {
            poll: std::time::Duration::from_millis(20),
            ..KeeperSettings::default()
        })
    };
    let before = refreshes(&w);
    let (a, b) = (keeper(), keeper());
    let (x, y) = tokio::join!(a.access_token(), b.access_token());
    let (x, y) = (
        x.unwrap_or_else(|e| panic!("{e}")),
        y.unwrap_or_else(|e| panic!("{e}")),
    );
    assert_eq!(x, y, "both workers use the one refreshed access token");
    assert_eq!(refreshes(&w) - before, 1, "one refresh");
    let refresh = keepers.stored_refresh_token().await;
    assert!(
        w.qbo.is_live_refresh_token(&refresh),
        "the stored refresh token is the live one"
    );
    assert!(!w.qbo.is_live_refresh_token(keepers.seed.expose()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_refresh_whose_answer_is_lost_is_not_sent_again_while_its_lease_lasts() {
    use sync_core::service::tokens::KeeperSettings;

    let (w, books) = world().await;
    let keepers = Keepers::new(&w, &books).await;
    let keeper = || {
        keepers.keeper(KeeperSettings {
            wait: chrono::Duration::milliseconds(500),
            poll: std::time::Duration::from_millis(20),
            ..KeeperSettings::default()
        })
    };
    // Intuit makes the refresh (the connection's refresh token is spent) and the answer is
    // lost on the way.
    let lose = w
        .api
        .http
        .post(format!("{}/__admin/oauth/lose-refreshes", w.qbo_url))
        .json(&json!({"count": 1}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(lose.status().is_success());
    let before = refreshes(&w);
    let first = keeper().access_token().await;
    assert!(first.is_err(), "no answer, no token");
    assert!(!w.qbo.is_live_refresh_token(keepers.seed.expose()));
    // Another worker right after does not send the spent token again (which would read as
    // a dead grant and mark the company needs_reauth): the attempt's lease holds.
    let second = keeper().access_token().await;
    assert!(second.is_err());
    assert_eq!(refreshes(&w) - before, 1, "the spent token was sent once");
    let connection = w.connection(&books).await;
    assert_eq!(connection["status"], "active", "{connection:#}");
}

/// A world where the store's records went into QuickBooks, and QuickBooks' into Supabase.
async fn store_into_books_into_project() -> (SyncWorld, String) {
    let (w, books) = world().await;
    for (from, to) in [(&w.store, &books), (&books, &w.project)] {
        w.flow(from, to, &["customers", "products", "orders"]).await;
        w.work().await;
    }
    (w, books)
}

/// Runs one incremental sync of `entity` from `connection`; what its run wrote.
/// The newest run of an incremental sync of the stream, run to its end.
async fn run_once(w: &SyncWorld, connection: &str, entity: &str) -> Value {
    w.enqueue(&w.job(connection, entity, SyncMode::Incremental, &[]))
        .await;
    w.work().await;
    let runs = w.runs(&format!("connection_id={connection}")).await;
    runs.iter()
        .find(|r| r["entity_type"] == entity)
        .cloned()
        .unwrap_or_default()
}

async fn sync_once(w: &SyncWorld, connection: &str, entity: &str) -> u64 {
    let run = run_once(w, connection, entity).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    run["counts"]["written"].as_u64().unwrap_or(99)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickbooks_documents_customers_and_items_reach_supabase() {
    let (w, _) = store_into_books_into_project().await;
    let docs = documents(&w).await;
    let live: Vec<(&'static str, Value)> = docs
        .values()
        .flatten()
        .filter(|(_, d)| d["PrivateNote"] != "Voided")
        .cloned()
        .collect();
    let rows = w.rows("orders").await;
    assert_eq!(rows.len(), live.len(), "one order row per live document");
    for (kind, doc) in &live {
        let id = format!("{kind}:{}", doc["Id"].as_str().unwrap_or_default());
        let row = rows
            .iter()
            .find(|r| r["source_id"] == id.as_str())
            .unwrap_or_else(|| panic!("no row for {id}"));
        assert_eq!(row["source"], "quickbooks");
        assert_eq!(row["number"], doc["DocNumber"]);
        assert_eq!(amount(&row["total"]), amount(&doc["TotalAmt"]), "{id}");
        assert_eq!(
            amount(&row["total_tax"]),
            amount(&doc["TxnTaxDetail"]["TotalTax"])
        );
        let expected = if *kind == "SalesReceipt" {
            "completed"
        } else {
            "pending"
        };
        assert_eq!(row["status"], expected, "{id}");
    }
    // Items with a SKU are products; the items orders' charges are booked on are not.
    let products = w.rows("products").await;
    assert_eq!(products.len(), w.woo.all(Kind::Products).len());
    assert!(
        products.iter().all(|p| p["sku"].is_string()),
        "{products:?}"
    );
    let customers = w.rows("customers").await;
    let with_email = w
        .books("Customer")
        .await
        .iter()
        .filter(|c| c["PrimaryEmailAddr"]["Address"].is_string())
        .count();
    assert_eq!(customers.len(), with_email);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_goes_once_round_woocommerce_quickbooks_supabase_and_stops() {
    let (w, books) = store_into_books_into_project().await;
    w.flow(&w.project, &w.store, &["customers", "products"])
        .await;
    w.work().await;
    // The backfills settle: within a few rounds nothing anywhere is written any more. (The
    // customers QuickBooks got for guest orders go round once: Supabase, then the store.)
    let pairs = [
        (&w.store, "products"),
        (&books, "products"),
        (&w.project, "products"),
        (&w.store, "customers"),
        (&books, "customers"),
        (&w.project, "customers"),
    ];
    let mut settled = false;
    for _ in 0..4 {
        let mut written = 0;
        for (connection, entity) in pairs {
            written += sync_once(&w, connection, entity).await;
        }
        if written == 0 {
            settled = true;
            break;
        }
    }
    assert!(settled, "the three flows keep writing");
    let product = w.woo.all(Kind::Products)[0].clone();
    let id = product["id"].as_u64().unwrap_or_default();
    w.store_admin(
        Method::PUT,
        &format!("wc/v3/products/{id}"),
        json!({"regular_price": "77.70"}),
    )
    .await;
    assert_eq!(
        sync_once(&w, &w.store, "products").await,
        1,
        "store → QuickBooks"
    );
    assert_eq!(
        sync_once(&w, &books, "products").await,
        1,
        "QuickBooks → Supabase"
    );
    assert_eq!(
        sync_once(&w, &w.project, "products").await,
        0,
        "Supabase → store: already there"
    );
    assert_eq!(sync_once(&w, &w.store, "products").await, 0, "and it stops");
    assert_eq!(sync_once(&w, &books, "products").await, 0);
    let sku = product["sku"].clone();
    let now = w.store_product(&sku).unwrap_or_default();
    assert_eq!(now["regular_price"], "77.70");
    // QuickBooks keeps no stock: the store's stock is not blanked by the round trip.
    assert_eq!(now["stock_quantity"], product["stock_quantity"]);
    assert_eq!(now["manage_stock"], product["manage_stock"]);
    let item = w
        .books("Item")
        .await
        .into_iter()
        .find(|i| i["Sku"] == sku)
        .unwrap_or_default();
    assert_eq!(amount(&item["UnitPrice"]), amount(&json!("77.7")));
    let row = w
        .rows("products")
        .await
        .into_iter()
        .find(|r| r["sku"] == sku)
        .unwrap_or_default();
    assert_eq!(amount(&row["price"]), amount(&json!("77.7")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_that_is_not_quickbooks_fails_alone_and_never_reads_as_a_deletion() {
    let (w, books) = world().await;
    w.flow(&books, &w.project, &["orders"]).await;
    w.work().await;
    w.enqueue(&w.job(
        &books,
        "orders",
        SyncMode::Incremental,
        &["1301", "Invoice:x"],
    ))
    .await;
    w.work().await;
    let runs = w.runs(&format!("connection_id={books}")).await;
    let run = runs
        .iter()
        .find(|r| r["trigger"] == "webhook")
        .cloned()
        .unwrap_or_default();
    assert_eq!(run["status"], "partial", "{run}");
    assert_eq!(run["counts"]["failed"], 2, "{run}");
    assert_eq!(run["counts"]["written"], 0, "{run}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_again_after_the_three_flow_chain_writes_nothing_and_rewrites_no_document() {
    let (w, books) = store_into_books_into_project().await;
    // Every entity polled again, from every source, in the chain's order.
    let mut written = Vec::new();
    for (connection, entity) in [
        (&w.store, "customers"),
        (&w.store, "products"),
        (&w.store, "orders"),
        (&books, "customers"),
        (&books, "products"),
        (&books, "orders"),
    ] {
        written.push((entity, sync_once(&w, connection, entity).await));
    }
    assert!(written.iter().all(|(_, n)| *n == 0), "{written:?}");
    // No document was written twice: each is at its first version.
    for kind in ["SalesReceipt", "Invoice"] {
        for doc in w.books(kind).await {
            assert_eq!(doc["SyncToken"], "0", "{kind} {}", doc["Id"]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_are_booked_on_the_shops_own_day_and_carried_on_with_their_creation_instant() {
    let (w, books) = world().await;
    // A shop fourteen hours ahead of UTC: every order's local day is not its UTC day for
    // most of the day, as an evening order in Edmonton is not on the next UTC day's books.
    w.store_admin(Method::POST, "zone", json!({"zone": "Pacific/Kiritimati"}))
        .await;
    w.flow(&w.store, &books, &["orders"]).await;
    w.work().await;
    let docs = documents(&w).await;
    assert!(!docs.is_empty());
    for order in w.woo.all(Kind::Orders) {
        let number = order["number"].as_str().unwrap_or_default();
        let Some(found) = docs.get(number) else {
            continue;
        };
        let local_day = &order["date_created"].as_str().unwrap_or_default()[..10];
        assert_eq!(found[0].1["TxnDate"], local_day, "order {number}");
    }
    // Carried on into the project, a document keeps its creation instant, not midnight.
    w.flow(&books, &w.project, &["orders"]).await;
    w.work().await;
    let rows = w.rows("orders").await;
    for (kind, doc) in docs.values().flatten() {
        let id = format!("{kind}:{}", doc["Id"].as_str().unwrap_or_default());
        let Some(row) = rows.iter().find(|r| r["source_id"] == id.as_str()) else {
            continue;
        };
        let created = chrono::DateTime::parse_from_rfc3339(
            doc["MetaData"]["CreateTime"].as_str().unwrap_or_default(),
        )
        .unwrap_or_else(|e| panic!("{id}: {e}"));
        let placed =
            chrono::DateTime::parse_from_rfc3339(row["placed_at"].as_str().unwrap_or_default())
                .unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(placed, created, "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_with_the_same_order_numbers_keep_one_set_of_books_without_overwriting_each_other(
) {
    let (w, books) = world().await;
    // A second store whose orders carry the same numbers as the first's.
    let (second, second_id) = w.another_store("Europe Shop", seed()).await;
    let first_flow = w.flow(&w.store, &books, &["orders"]).await;
    let second_flow = w.flow(&second_id, &books, &["orders"]).await;
    w.work().await;
    // Each flow numbers its documents with a prefix of its own, derived from the store.
    let prefix = |flow: String| {
        let w = &w;
        async move {
            let (status, got) = w
                .api
                .send(
                    Method::GET,
                    &format!("/api/flows/{flow}"),
                    Some("acme"),
                    None,
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{got}");
            got["doc_number_prefix"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        }
    };
    let (first_prefix, second_prefix) = (prefix(first_flow).await, prefix(second_flow).await);
    assert_eq!(
        (first_prefix.as_str(), second_prefix.as_str()),
        (STORE_PREFIX, "ES-")
    );

    let mut live: HashMap<String, Vec<Value>> = HashMap::new();
    for kind in ["SalesReceipt", "Invoice"] {
        for doc in w.books(kind).await {
            if doc["status"] != "Deleted" && doc["PrivateNote"] != "Voided" {
                let number = doc["DocNumber"].as_str().unwrap_or_default().to_string();
                live.entry(number).or_default().push(doc);
            }
        }
    }
    let mut shared = 0;
    for (store, prefix, connection) in [
        (w.woo.clone(), &first_prefix, &w.store),
        (second.clone(), &second_prefix, &second_id),
    ] {
        for order in store.all(Kind::Orders) {
            let status = order["status"].as_str().unwrap_or_default();
            if matches!(status, "cancelled" | "failed" | "trash") {
                continue;
            }
            let number = order["number"].as_str().unwrap_or_default();
            let docs = live
                .get(&format!("{prefix}{number}"))
                .cloned()
                .unwrap_or_default();
            assert_eq!(docs.len(), 1, "{prefix}{number}: {docs:#?}");
            // The document names the store it came from.
            let note = docs[0]["PrivateNote"].as_str().unwrap_or_default();
            assert!(note.contains(connection.as_str()), "{note}");
            assert_eq!(amount(&docs[0]["TotalAmt"]), amount(&order["total"]));
            shared += 1;
        }
    }
    assert!(shared >= 20, "both stores' orders were checked: {shared}");
    assert_eq!(
        live.values().map(Vec::len).sum::<usize>(),
        shared,
        "no other document"
    );

    // A third flow numbering the same way as one of them is refused, saying how to fix it.
    let (_, third_id) = w.another_store("Third", seed()).await;
    let (status, got) = w
        .api
        .send(
            Method::POST,
            "/api/flows",
            Some("acme"),
            Some(
                json!({"source_connection_id": third_id, "target_connection_id": books,
                        "entities": ["orders"], "doc_number_prefix": "ES-"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{got}");
    let message = got.to_string();
    assert!(
        message.contains("doc_number_prefix") && message.contains("ES-"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refunds_become_refund_documents_and_a_paid_invoice_its_payment_once_though_answers_are_lost(
) {
    let (w, books) = world().await;
    w.flow(&w.store, &books, &["orders"]).await;
    w.work().await;
    // Seeded refunds (in full, and of one unit) are refund documents already, and a
    // refunded order keeps its document instead of a void.
    assert_documents_match_orders(&w).await;

    let orders = w.woo.all(Kind::Orders);
    let pick = |statuses: &[&str]| {
        orders
            .iter()
            .find(|o| {
                statuses.iter().any(|s| o["status"] == *s)
                    && o["refunds"].as_array().is_none_or(|r| r.is_empty())
            })
            .cloned()
            .unwrap_or_else(|| panic!("no {statuses:?} order without refunds"))
    };
    let unpaid = pick(&["pending", "on-hold"]);
    let partly = pick(&["completed"]);
    let fully = pick(&["processing"]);
    let id = |o: &Value| o["id"].as_u64().unwrap_or_default();
    // The unpaid order (an invoice) is paid; one unit of another's first line is refunded
    // with its tax; a third is set to refunded (WooCommerce refunds the rest).
    w.store_admin(
        Method::PUT,
        &format!("wc/v3/orders/{}", id(&unpaid)),
        json!({"status": "processing", "date_paid": "2026-12-01T10:00:00",
               "date_paid_gmt": "2026-12-01T17:00:00"}),
    )
    .await;
    let line = &partly["line_items"][0];
    let units = amount(&line["quantity"]);
    let refund = w
        .store_admin(
            Method::POST,
            &format!("wc/v3/orders/{}/refunds", id(&partly)),
            json!({"reason": "Broken in transit", "line_items": [{
                "id": line["id"], "quantity": 1,
                "refund_total": (amount(&line["total"]) / units).round_dp(2).to_string(),
                "refund_tax": (amount(&line["total_tax"]) / units).round_dp(2).to_string(),
            }]}),
        )
        .await;
    assert!(refund["id"].as_u64().is_some(), "{refund}");
    w.store_admin(
        Method::PUT,
        &format!("wc/v3/orders/{}", id(&fully)),
        json!({"status": "refunded"}),
    )
    .await;

    // QuickBooks commits the next writes and their answers are lost on the way back.
    w.qbo_admin(Method::POST, "lose-responses", json!({"count": 3}))
        .await;
    for _ in 0..3 {
        w.enqueue(&w.job(&w.store, "orders", SyncMode::Incremental, &[]))
            .await;
        w.work().await;
    }
    let stats = w.qbo_admin(Method::GET, "stats", Value::Null).await;
    assert!(stats["replays"].as_u64().unwrap_or(0) >= 1, "{stats}");

    let docs = documents(&w).await;
    let number = |o: &Value| o["number"].as_str().unwrap_or_default().to_string();
    // The invoice is paid, once, by a payment linked to it.
    let (kind, invoice) = &docs[&number(&unpaid)][0];
    assert_eq!(*kind, "Invoice");
    let invoice_id = invoice["Id"].as_str().unwrap_or_default();
    let payments: Vec<Value> = w
        .books("Payment")
        .await
        .into_iter()
        .filter(|p| p["Line"][0]["LinkedTxn"][0]["TxnId"] == invoice_id)
        .collect();
    assert_eq!(payments.len(), 1, "{payments:#?}");
    assert_eq!(amount(&payments[0]["TotalAmt"]), amount(&unpaid["total"]));
    assert_eq!(amount(&invoice["Balance"]), Decimal::ZERO, "{invoice:#}");
    // The refunds are refund documents, once each; the fully refunded order's document
    // is not voided.
    let (_, refunded_doc) = &docs[&number(&fully)][0];
    assert_eq!(amount(&refunded_doc["TotalAmt"]), amount(&fully["total"]));
    assert_refunds_match_orders(&w).await;
    let refund_docs = refund_documents(&w).await;
    let key = format!("{}-R{}", number(&partly), refund["id"]);
    let (_, partial) = &refund_docs[&key][0];
    let product_lines: Vec<&Value> = partial["Line"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["DetailType"] == "SalesItemLineDetail")
        .collect();
    assert_eq!(product_lines.len(), 1, "the refunded line: {partial:#}");
    assert_eq!(
        amount(&product_lines[0]["SalesItemLineDetail"]["Qty"]),
        Decimal::ONE
    );

    // Nothing changed since: polling again writes nothing.
    let before = (
        w.books("Payment").await.len(),
        refund_documents(&w).await.len(),
    );
    assert_eq!(sync_once(&w, &w.store, "orders").await, 0);
    assert_eq!(
        (
            w.books("Payment").await.len(),
            refund_documents(&w).await.len()
        ),
        before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_whose_refunds_cannot_be_read_fails_alone_and_the_rest_of_its_page_syncs() {
    let (w, books) = world().await;
    w.flow(&w.store, &books, &["orders"]).await;
    w.work().await;
    let orders = w.woo.all(Kind::Orders);
    let without_refunds: Vec<&Value> = orders
        .iter()
        .filter(|o| {
            matches!(o["status"].as_str(), Some("completed" | "processing"))
                && o["refunds"].as_array().is_none_or(|r| r.is_empty())
        })
        .collect();
    let (refunded, edited) = (without_refunds[0], without_refunds[1]);
    let id = |o: &Value| o["id"].as_u64().unwrap_or_default();
    let number = |o: &Value| o["number"].as_str().unwrap_or_default().to_string();
    w.store_admin(
        Method::POST,
        &format!("wc/v3/orders/{}/refunds", id(refunded)),
        json!({"amount": "1.00", "reason": "Late"}),
    )
    .await;
    w.store_admin(
        Method::PUT,
        &format!("wc/v3/orders/{}", id(edited)),
        json!({"billing": {"address_1": "12 Birch Road"}}),
    )
    .await;
    // The store fails every read of that order's refunds.
    w.store_admin(
        Method::POST,
        "faults",
        json!({"status": 500, "count": -1, "method": "GET",
               "path": format!("/orders/{}/refunds", id(refunded))}),
    )
    .await;
    let run = run_once(&w, &w.store, "orders").await;
    let text = run.to_string();
    assert!(
        text.contains("its refunds could not be read") && text.contains(&id(refunded).to_string()),
        "the order fails, by name: {run:#}"
    );
    assert!(
        run["counts"]["written"].as_u64().unwrap_or(0) >= 1,
        "{run:#}"
    );
    let (_, doc) = &documents(&w).await[&number(edited)][0];
    assert_eq!(doc["BillAddr"]["Line1"], "12 Birch Road", "{doc:#}");

    // Once the store answers again, the refund is booked.
    w.store_admin(Method::DELETE, "faults", Value::Null).await;
    w.enqueue(&w.job(&w.store, "orders", SyncMode::Incremental, &[]))
        .await;
    w.work().await;
    let key = format!("{}-R", number(refunded));
    assert!(
        refund_documents(&w)
            .await
            .keys()
            .any(|k| k.starts_with(&key)),
        "the refund of {} is booked",
        number(refunded)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_the_bookkeeper_voided_stays_voided_a_cancelled_or_trashed_orders_refunds_are_voided_with_it_and_no_refund_is_left_unread(
) {
    let (w, books) = world().await;
    w.flow(&w.store, &books, &["orders"]).await;
    w.work().await;
    let orders = w.woo.all(Kind::Orders);
    let without_refunds = |statuses: &[&str], skip: usize| {
        orders
            .iter()
            .filter(|o| {
                statuses.iter().any(|s| o["status"] == *s)
                    && o["refunds"].as_array().is_none_or(|r| r.is_empty())
                    && amount(&o["total"]) >= Decimal::from(5)
            })
            .nth(skip)
            .cloned()
            .unwrap_or_else(|| panic!("no {statuses:?} order without refunds"))
    };
    let unpaid = without_refunds(&["pending", "on-hold"], 0);
    let to_cancel = without_refunds(&["completed", "processing"], 0);
    let many = without_refunds(&["completed", "processing"], 1);
    let to_trash = without_refunds(&["completed", "processing"], 2);
    let id = |o: &Value| o["id"].as_u64().unwrap_or_default();
    let number = |o: &Value| o["number"].as_str().unwrap_or_default().to_string();

    // The invoice's order is paid: its payment is recorded.
    w.store_admin(
        Method::PUT,
        &format!("wc/v3/orders/{}", id(&unpaid)),
        json!({"status": "processing", "date_paid": "2026-12-01T10:00:00",
               "date_paid_gmt": "2026-12-01T17:00:00"}),
    )
    .await;
    sync_once(&w, &w.store, "orders").await;
    let invoice_id = documents(&w).await[&number(&unpaid)][0].1["Id"].clone();
    let ours = |payments: Vec<Value>| -> Vec<Value> {
        payments
            .into_iter()
            .filter(|p| p["Line"][0]["LinkedTxn"][0]["TxnId"] == invoice_id)
            .collect()
    };
    let payments = ours(w.books("Payment").await);
    assert_eq!(payments.len(), 1, "{payments:#?}");
    // The bookkeeper voids it (the payout bounced); the order changes in the store later.
    let voided = w
        .qbo_admin(
            Method::POST,
            "void/Payment",
            json!({"Id": payments[0]["Id"], "SyncToken": payments[0]["SyncToken"]}),
        )
        .await;
    assert_eq!(amount(&voided["TotalAmt"]), Decimal::ZERO, "{voided}");
    let (_, invoice) = &documents(&w).await[&number(&unpaid)][0];
    assert_eq!(amount(&invoice["Balance"]), amount(&unpaid["total"]));
    w.store_admin(
        Method::PUT,
        &format!("wc/v3/orders/{}", id(&unpaid)),
        json!({"billing": {"address_1": "9 Larch Lane"}}),
    )
    .await;
    assert!(sync_once(&w, &w.store, "orders").await >= 1);
    let payments = ours(w.books("Payment").await);
    assert_eq!(payments.len(), 1, "no second payment: {payments:#?}");
    let (_, invoice) = &documents(&w).await[&number(&unpaid)][0];
    assert_eq!(
        amount(&invoice["Balance"]),
        amount(&unpaid["total"]),
        "the invoice is the bookkeeper's to settle: {invoice:#}"
    );

    // An order refunded in part and then cancelled: its document and its refund's are
    // voided together.
    let refund = w
        .store_admin(
            Method::POST,
            &format!("wc/v3/orders/{}/refunds", id(&to_cancel)),
            json!({"amount": "2.00", "reason": "Goodwill"}),
        )
        .await;
    sync_once(&w, &w.store, "orders").await;
    let key = format!("{}-R{}", number(&to_cancel), refund["id"]);
    let live = |doc: &Value| {
        !doc["PrivateNote"]
            .as_str()
            .unwrap_or_default()
            .starts_with("Voided")
    };
    let refund_docs = refund_documents(&w).await;
    assert!(live(&refund_docs[&key][0].1), "{:#?}", refund_docs[&key]);
    w.store_admin(
        Method::PUT,
        &format!("wc/v3/orders/{}", id(&to_cancel)),
        json!({"status": "cancelled"}),
    )
    .await;
    sync_once(&w, &w.store, "orders").await;
    let (_, document) = &documents(&w).await[&number(&to_cancel)][0];
    assert!(!live(document), "{document:#}");
    let refund_docs = refund_documents(&w).await;
    let (_, refund_doc) = &refund_docs[&key][0];
    assert!(!live(refund_doc), "{refund_doc:#}");
    assert_eq!(amount(&refund_doc["TotalAmt"]), Decimal::ZERO);

    // One refunded twice and then trashed: it reads as deleted, its refunds no longer
    // known, and still its refund documents are voided with its document.
    let mut keys = Vec::new();
    for amount in ["1.50", "0.75"] {
        let refund = w
            .store_admin(
                Method::POST,
                &format!("wc/v3/orders/{}/refunds", id(&to_trash)),
                json!({"amount": amount, "reason": "Damaged"}),
            )
            .await;
        keys.push(format!("{}-R{}", number(&to_trash), refund["id"]));
    }
    sync_once(&w, &w.store, "orders").await;
    let refund_docs = refund_documents(&w).await;
    for key in &keys {
        assert!(live(&refund_docs[key][0].1), "{:#?}", refund_docs[key]);
    }
    w.store_admin(
        Method::DELETE,
        &format!("wc/v3/orders/{}", id(&to_trash)),
        json!({}),
    )
    .await;
    sync_once(&w, &w.store, "orders").await;
    let (_, document) = &documents(&w).await[&number(&to_trash)][0];
    assert!(!live(document), "{document:#}");
    let refund_docs = refund_documents(&w).await;
    for key in &keys {
        let (_, refund_doc) = &refund_docs[key][0];
        assert!(!live(refund_doc), "{key}: {refund_doc:#}");
    }

    // More refunds than one page of the store's list holds: every one is booked, once.
    for _ in 0..103 {
        let made = w
            .store_admin(
                Method::POST,
                &format!("wc/v3/orders/{}/refunds", id(&many)),
                json!({"amount": "0.01", "reason": "Price match"}),
            )
            .await;
        assert!(made["id"].as_u64().is_some(), "{made}");
    }
    sync_once(&w, &w.store, "orders").await;
    let prefix = format!("{}-R", number(&many));
    let booked: Vec<Value> = refund_documents(&w)
        .await
        .into_iter()
        .filter(|(k, _)| k.starts_with(&prefix))
        .flat_map(|(_, docs)| docs.into_iter().map(|(_, d)| d))
        .collect();
    assert_eq!(booked.len(), 103);
    assert_refunds_match_orders(&w).await;
    assert_eq!(sync_once(&w, &w.store, "orders").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_orders_refund_documents_are_found_by_its_own_number_and_a_refused_look_up_fails_that_order_alone(
) {
    let (w, books) = world().await;
    w.flow(&w.store, &books, &["orders"]).await;
    w.work().await;
    let orders = w.woo.all(Kind::Orders);
    let candidates: Vec<&Value> = orders
        .iter()
        .filter(|o| {
            matches!(o["status"].as_str(), Some("completed" | "processing"))
                && o["refunds"].as_array().is_none_or(|r| r.is_empty())
                && amount(&o["total"]) >= Decimal::from(5)
        })
        .collect();
    let (deleted, other, edited) = (candidates[0], candidates[1], candidates[2]);
    let id = |o: &Value| o["id"].as_u64().unwrap_or_default();
    let number = |o: &Value| o["number"].as_str().unwrap_or_default().to_string();
    let mut keys = HashMap::new();
    for o in [deleted, other] {
        let refund = w
            .store_admin(
                Method::POST,
                &format!("wc/v3/orders/{}/refunds", id(o)),
                json!({"amount": "1.25", "reason": "Damaged"}),
            )
            .await;
        keys.insert(number(o), format!("{}-R{}", number(o), refund["id"]));
    }
    sync_once(&w, &w.store, "orders").await;
    let live = |doc: &Value| {
        !doc["PrivateNote"]
            .as_str()
            .unwrap_or_default()
            .starts_with("Voided")
    };
    let refund_doc = |docs: &HashMap<String, Vec<(&'static str, Value)>>, o: &Value| {
        docs[&keys[&number(o)]][0].1.clone()
    };
    let docs = refund_documents(&w).await;
    assert!(live(&refund_doc(&docs, deleted)) && live(&refund_doc(&docs, other)));

    // The bookkeeper renumbers the order's document as the other order's; the store then
    // trashes the order while QuickBooks refuses the look-up of refund documents by number.
    let (kind, document) = documents(&w).await[&number(deleted)][0].clone();
    w.qbo_admin(
        Method::POST,
        &format!("entities/{kind}"),
        json!({"Id": document["Id"], "DocNumber": format!("{STORE_PREFIX}{}", number(other))}),
    )
    .await;
    w.qbo_admin(
        Method::POST,
        "refuse-queries",
        json!({"containing": "DocNumber LIKE", "count": -1}),
    )
    .await;
    w.store_admin(
        Method::DELETE,
        &format!("wc/v3/orders/{}", id(deleted)),
        json!({}),
    )
    .await;
    w.store_admin(
        Method::PUT,
        &format!("wc/v3/orders/{}", id(edited)),
        json!({"billing": {"address_1": "4 Alder Court"}}),
    )
    .await;
    let run = run_once(&w, &w.store, "orders").await;
    let failures = run["failures"].as_array().cloned().unwrap_or_default();
    let failed: Vec<&str> = failures
        .iter()
        .map(|f| f["record_id"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        failed,
        [id(deleted).to_string()],
        "the deleted order fails alone: {run:#}"
    );
    assert!(
        failures[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("its refund documents could not be looked up")),
        "{run:#}"
    );
    assert_eq!(run["status"], "partial", "{run:#}");
    assert!(run["counts"]["written"].as_u64() >= Some(1), "{run:#}");
    let edited_doc = documents(&w).await[&number(edited)][0].1.clone();
    assert_eq!(edited_doc["BillAddr"]["Line1"], "4 Alder Court");
    let docs = refund_documents(&w).await;
    assert!(live(&refund_doc(&docs, deleted)), "not voided yet");

    // QuickBooks answers again: the order's own refund document is voided, the other
    // order's (whose number its document now carries) is not.
    w.qbo_admin(
        Method::POST,
        "refuse-queries",
        json!({"containing": "DocNumber LIKE", "count": 0}),
    )
    .await;
    w.enqueue(&w.job(&w.store, "orders", SyncMode::Incremental, &[]))
        .await;
    w.work().await;
    let docs = refund_documents(&w).await;
    assert!(
        !live(&refund_doc(&docs, deleted)),
        "{:#}",
        refund_doc(&docs, deleted)
    );
    assert!(
        live(&refund_doc(&docs, other)),
        "another order's refund is left alone: {:#}",
        refund_doc(&docs, other)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quarantined_orders_are_retried_in_bulk_once_quickbooks_answers_again() {
    let (w, books) = world_with(vec![("RECORD_ATTEMPTS".into(), "2".into())]).await;
    w.flow(&w.store, &books, &["orders"]).await;
    w.work().await;
    let orders = w.woo.all(Kind::Orders);
    let order = orders
        .iter()
        .find(|o| {
            matches!(o["status"].as_str(), Some("completed" | "processing"))
                && o["refunds"].as_array().is_none_or(|r| r.is_empty())
                && amount(&o["total"]) >= Decimal::from(5)
        })
        .cloned()
        .unwrap_or_default();
    let id = order["id"].as_u64().unwrap_or_default();
    let refund = w
        .store_admin(
            Method::POST,
            &format!("wc/v3/orders/{id}/refunds"),
            json!({"amount": "1.25", "reason": "Damaged"}),
        )
        .await;
    sync_once(&w, &w.store, "orders").await;
    let key = format!(
        "{}-R{}",
        order["number"].as_str().unwrap_or_default(),
        refund["id"]
    );
    let voided = |docs: &HashMap<String, Vec<(&'static str, Value)>>| {
        docs[&key][0].1["PrivateNote"]
            .as_str()
            .unwrap_or_default()
            .starts_with("Voided")
    };
    // The order is deleted while QuickBooks refuses to look its refund documents up: after
    // two tries it is quarantined and the stream moves on.
    w.qbo_admin(
        Method::POST,
        "refuse-queries",
        json!({"containing": "DocNumber LIKE", "count": -1}),
    )
    .await;
    w.store_admin(Method::DELETE, &format!("wc/v3/orders/{id}"), json!({}))
        .await;
    run_once(&w, &w.store, "orders").await;
    let second = run_once(&w, &w.store, "orders").await;
    assert_eq!(second["failures"][0]["quarantined"], true, "{second:#}");
    // A retry of a run that failed nothing is refused, and changes nothing.
    let clean = w
        .runs("status=succeeded")
        .await
        .first()
        .cloned()
        .unwrap_or_default();
    let (status, refused) = w
        .api
        .send(
            Method::POST,
            &format!(
                "/api/sync/runs/{}/retry",
                clean["id"].as_str().unwrap_or_default()
            ),
            Some("acme"),
            None,
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CONFLICT, "{refused}");
    // QuickBooks answers again; a bulk retry by the error's text runs the order alone.
    w.qbo_admin(
        Method::POST,
        "refuse-queries",
        json!({"containing": "DocNumber LIKE", "count": 0}),
    )
    .await;
    assert!(!voided(&refund_documents(&w).await));
    let (status, retried) = w
        .api
        .send(
            Method::POST,
            "/api/sync/failures/retry",
            Some("acme"),
            Some(json!({"connection_id": w.store, "error_contains": "refund documents"})),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{retried}");
    assert_eq!(retried["records"], 1, "{retried}");
    assert_eq!(retried["runs"][0]["trigger"], "retry", "{retried}");
    assert_eq!(retried["runs"][0]["ids_requested"], 1, "{retried}");
    w.work().await;
    let run_id = retried["runs"][0]["id"].as_str().unwrap_or_default();
    let (_, ran) = w
        .api
        .send(
            Method::GET,
            &format!("/api/sync/runs/{run_id}"),
            Some("acme"),
            None,
        )
        .await;
    assert_eq!(ran["status"], "succeeded", "{ran:#}");
    assert!(
        voided(&refund_documents(&w).await),
        "the refund is voided with its order"
    );
    let (_, page) = w
        .api
        .send(
            Method::GET,
            &format!("/api/sync/failures?connection_id={}", w.store),
            Some("acme"),
            None,
        )
        .await;
    assert_eq!(page["failures"], json!([]), "{page:#}");
    // Nothing left to retry.
    let (status, none) = w
        .api
        .send(
            Method::POST,
            "/api/sync/failures/retry",
            Some("acme"),
            Some(json!({"connection_id": w.store})),
        )
        .await;
    assert_eq!(
        (status, none["records"].clone()),
        (reqwest::StatusCode::OK, json!(0))
    );
}

/// How several worker processes calling one company at once fared.
#[derive(Debug)]
struct Crowd {
    calls: usize,
    failed: usize,
    seconds: f64,
    stats: Value,
}

/// `processes` worker processes, each with its own connectors (its own limits, as a Lambda
/// container has) and, if `shared`, the quota in the table, each reading the company's
/// customers `calls` times, as many at once as one process allows.
async fn crowd(w: &SyncWorld, books: &str, processes: usize, calls: usize, shared: bool) -> Crowd {
    use std::sync::Arc;
    use sync_core::domain::{EntityType, Platform};
    use sync_core::platforms::http::RetryPolicy;
    use sync_core::ports::Connectors;
    use sync_core::service::PlatformConnectors;

    let aws = &w.api.aws;
    let table = aws.resources.table_name.clone();
    let connection = w.stored_connection(books).await;
    let app = w.qbo.config().clone();
    let app = sync_core::config::QuickBooksApp {
        client_id: Some(app.client_id.clone()),
        client_secret: Some(app.client_secret.clone()),
        token_url: Some(format!("{}/oauth2/v1/tokens/bearer", w.qbo_url)),
        api_url: Some(w.qbo_url.clone()),
    };
    w.qbo_admin(Method::POST, "stats/reset", Value::Null).await;
    w.qbo_admin(
        Method::POST,
        "limits",
        json!({"concurrent": 10, "per_minute": 500, "latency_ms": 40}),
    )
    .await;
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..processes {
        let mut connectors = PlatformConnectors::new(
            Arc::new(sync_aws::KmsSealer::new(
                aws_sdk_kms::Client::new(&aws.sdk),
                aws.resources.kms_key_id.clone(),
            )),
            Arc::new(sync_http::ReqwestClient::new().unwrap_or_else(|e| panic!("{e}"))),
            Arc::new(sync_core::clock::SystemClock),
            RetryPolicy {
                throttle_wait: Some(std::time::Duration::from_millis(250)),
                ..RetryPolicy::default()
            },
        )
        .with_tokens(Arc::new(sync_aws::DynamoTokens::new(
            aws.dynamodb(),
            table.clone(),
        )))
        .with_app(Platform::QuickBooks, app.secrets());
        if shared {
            connectors = connectors.with_call_quota(Arc::new(sync_aws::DynamoCallQuota::new(
                aws.dynamodb(),
                table.clone(),
            )));
        }
        let connector = connectors
            .open(&connection)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let at_once = sync_core::platforms::quickbooks::connector::LIMITS.in_flight_here;
        for lane in 0..at_once {
            let connector = connector.clone();
            let reads = calls / at_once + usize::from(lane < calls % at_once);
            tasks.push(tokio::spawn(async move {
                let mut failed = 0;
                for _ in 0..reads {
                    let source = connector.source().unwrap_or_else(|| panic!("no source"));
                    if source
                        .changes(EntityType::Customers, None, None)
                        .await
                        .is_err()
                    {
                        failed += 1;
                    }
                }
                (reads, failed)
            }));
        }
    }
    let (mut total, mut failed) = (0, 0);
    for task in tasks {
        let (reads, fails) = task.await.unwrap_or_else(|e| panic!("{e}"));
        total += reads;
        failed += fails;
    }
    Crowd {
        calls: total,
        failed,
        seconds: started.elapsed().as_secs_f64(),
        stats: w.qbo_admin(Method::GET, "stats", Value::Null).await,
    }
}

/// Worker processes crowding one company keep to its 10 calls at once and 500 a minute
/// together through the shared quota; each process alone keeps only its own share, and
/// together they are throttled. `QUOTA_PROCESSES` and `QUOTA_CALLS` (per process) size it
/// (`./infra/bench.sh quota` runs it past a minute's budget); `QUOTA_REPORT` names a file
/// for the figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_processes_crowding_one_company_stay_within_its_limits_together_through_the_shared_quota(
) {
    let env = integration_tests::env_size;
    let processes = env("QUOTA_PROCESSES", 4);
    let calls = env("QUOTA_CALLS", 24);
    let (w, books) = world().await;
    let together = crowd(&w, &books, processes, calls, true).await;
    let alone = crowd(&w, &books, processes, calls, false).await;
    let figure = |c: &Crowd, field: &str| c.stats[field].as_u64().unwrap_or(u64::MAX);
    if let Ok(path) = std::env::var("QUOTA_REPORT") {
        let mut report = format!(
            "{processes} worker processes, {calls} reads each, one company (10 at once, 500 a \
             minute; 40 ms a call):\n\n\
             | limits held | reads | failed | seconds | reads/s | 429s | most at once (tried) | \
             most in a minute |\n|---|---|---|---|---|---|---|---|\n"
        );
        for (name, c) in [
            ("together (shared quota)", &together),
            ("per process", &alone),
        ] {
            report.push_str(&format!(
                "| {name} | {} | {} | {:.1} | {:.1} | {} | {} ({}) | {} |\n",
                c.calls,
                c.failed,
                c.seconds,
                c.calls as f64 / c.seconds.max(0.001),
                figure(c, "throttled"),
                figure(c, "max_in_flight"),
                figure(c, "max_attempted"),
                figure(c, "max_per_minute"),
            ));
        }
        std::fs::write(&path, report).unwrap_or_else(|e| panic!("{path}: {e}"));
    }
    assert_eq!(together.failed, 0, "{together:?}");
    assert_eq!(figure(&together, "throttled"), 0, "{together:?}");
    assert!(figure(&together, "max_attempted") <= 10, "{together:?}");
    assert!(figure(&together, "max_per_minute") <= 490, "{together:?}");
    // The processes did call together (more than one process's four at once).
    assert!(figure(&together, "max_in_flight") > 4, "{together:?}");
    // Alone, each process keeps its own four: together they go past ten and are refused.
    assert!(figure(&alone, "max_attempted") > 10, "{alone:?}");
    assert!(figure(&alone, "throttled") > 0, "{alone:?}");
}
