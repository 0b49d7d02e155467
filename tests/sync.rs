//! Sync end to end: the worker's own handler fed by the sync queue as Lambda's event source
//! mapping feeds it, against the WooCommerce store simulator and a real PostgreSQL behind
//! the PostgREST layer. Afterwards each target is compared with its source field by field.

use integration_tests::platforms::{sync_world, sync_world_with, SyncWorld};
use integration_tests::syncctl;
use platform_sims::woo::{Kind, Seed};
use reqwest::Method;
use serde_json::{json, Value};
use sync_core::domain::SyncMode;

fn seed(orders: usize) -> Seed {
    Seed {
        products: 12,
        customers: 9,
        orders,
        seed: 7,
    }
}

/// A decimal as text without trailing zeros (PostgreSQL `numeric` comes back as a JSON number,
/// WooCommerce money as a string); compared as text, never as a float.
fn dec(v: &Value) -> String {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Null => return String::new(),
        other => other.to_string(),
    };
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// Every store order is in PostgreSQL once, with the same fields.
async fn assert_orders_match(w: &SyncWorld) {
    let rows = w.rows("orders").await;
    let source = w.woo.all(Kind::Orders);
    let live: Vec<&Value> = source.iter().filter(|o| o["status"] != "trash").collect();
    assert_eq!(
        rows.iter().filter(|r| r["deleted_at"].is_null()).count(),
        live.len(),
        "live orders"
    );
    for order in &live {
        let id = order["id"].to_string();
        let matching: Vec<&Value> = rows.iter().filter(|r| r["source_id"] == id).collect();
        assert_eq!(matching.len(), 1, "order {id} is in the table once");
        let row = matching[0];
        assert_eq!(row["number"], order["number"], "order {id} number");
        assert_eq!(row["status"], order["status"], "order {id} status");
        assert_eq!(row["currency"], order["currency"], "order {id} currency");
        for field in ["total", "total_tax", "shipping_total", "discount_total"] {
            assert_eq!(dec(&row[field]), dec(&order[field]), "order {id} {field}");
        }
        assert_eq!(
            row["lines"].as_array().map(Vec::len),
            order["line_items"].as_array().map(Vec::len),
            "order {id} lines"
        );
    }
}

/// Every store product is in PostgreSQL once (by SKU), with the same fields.
async fn assert_products_match(w: &SyncWorld) {
    let rows = w.rows("products").await;
    for product in w.woo.all(Kind::Products) {
        let sku = &product["sku"];
        let matching: Vec<&Value> = rows.iter().filter(|r| &r["sku"] == sku).collect();
        assert_eq!(matching.len(), 1, "product {sku} is in the table once");
        let row = matching[0];
        assert_eq!(row["name"], product["name"], "product {sku} name");
        assert_eq!(
            dec(&row["price"]),
            dec(&product["regular_price"]),
            "product {sku} price"
        );
    }
}

#[tokio::test]
async fn a_new_flow_backfills_every_order_customer_and_product_into_postgresql() {
    let w = sync_world(seed(30)).await;
    w.flow(&w.store, &w.project, &["orders", "customers", "products"])
        .await;
    assert!(w.work().await >= 1);
    assert_orders_match(&w).await;
    assert_products_match(&w).await;
    assert_eq!(
        w.rows("customers").await.len(),
        w.woo.all(Kind::Customers).len()
    );
    let runs = w.runs("limit=20").await;
    assert_eq!(runs.len(), 3, "{runs:#?}");
    assert!(runs.iter().all(|r| r["status"] == "succeeded"), "{runs:#?}");
}

#[tokio::test]
async fn an_incremental_run_writes_what_changed_and_the_same_job_delivered_twice_runs_once() {
    let w = sync_world(seed(20)).await;
    w.flow(&w.store, &w.project, &["orders"]).await;
    w.work().await;
    let order = w.woo.all(Kind::Orders)[3].clone();
    let id = order["id"].as_u64().unwrap_or_default();
    // The store's clock is second-granular: let the change land in a later second.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    w.store_admin(
        Method::PUT,
        &format!("wc/v3/orders/{id}"),
        json!({"status": "completed"}),
    )
    .await;
    let job = w.job(&w.store, "orders", SyncMode::Incremental, &[]);
    w.enqueue(&job).await;
    w.enqueue(&job).await;
    w.work().await;
    assert_orders_match(&w).await;
    let runs = w.runs("limit=10").await;
    let incremental: Vec<&Value> = runs
        .iter()
        .filter(|r| r["sync_mode"] == "incremental")
        .collect();
    // The second delivery of the same job is the same run (its id is the job's), not a
    // second sync.
    assert_eq!(incremental.len(), 1, "{runs:#?}");
    let written: u64 = incremental
        .iter()
        .map(|r| r["counts"]["written"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(written, 1, "only the changed order is written: {runs:#?}");
}

#[tokio::test]
async fn a_webhook_job_syncs_exactly_the_ids_it_names() {
    let w = sync_world(seed(20)).await;
    w.flow(&w.store, &w.project, &["products"]).await;
    w.work().await;
    let products = w.woo.all(Kind::Products);
    let (a, b) = (products[1]["id"].to_string(), products[5]["id"].to_string());
    for (id, price) in [(&a, "77.70"), (&b, "88.80")] {
        w.store_admin(
            Method::PUT,
            &format!("wc/v3/products/{id}"),
            json!({"regular_price": price}),
        )
        .await;
    }
    // A third change that no webhook names waits for the next incremental run.
    let c = products[7]["id"].to_string();
    w.store_admin(
        Method::PUT,
        &format!("wc/v3/products/{c}"),
        json!({"regular_price": "99.90"}),
    )
    .await;
    w.enqueue(&w.job(&w.store, "products", SyncMode::Incremental, &[&a, &b]))
        .await;
    w.work().await;
    let runs = w.runs("limit=1").await;
    assert_eq!(runs[0]["ids_requested"], 2);
    assert_eq!(runs[0]["counts"]["read"], 2, "{:#?}", runs[0]);
    assert_eq!(runs[0]["counts"]["written"], 2, "{:#?}", runs[0]);
    let price_of = |rows: &[Value], id: &str| {
        rows.iter()
            .find(|r| r["source_id"] == id)
            .map(|r| dec(&r["price"]))
            .unwrap_or_default()
    };
    let rows = w.rows("products").await;
    assert_eq!(price_of(&rows, &a), "77.7");
    assert_eq!(price_of(&rows, &b), "88.8");
    assert_ne!(price_of(&rows, &c), "99.9");
}

#[tokio::test]
async fn a_poisoned_record_fails_alone_and_the_run_is_partial() {
    let w = sync_world(seed(15)).await;
    let orders = w.woo.all(Kind::Orders);
    let bad = orders[4]["id"].to_string();
    // A plugin broke one order: its total is not an amount.
    w.store_admin(
        Method::PATCH,
        &format!("raw/orders/{bad}"),
        json!({"total": "twelve dollars"}),
    )
    .await;
    w.flow(&w.store, &w.project, &["orders"]).await;
    w.work().await;
    let runs = w.runs("limit=1").await;
    let run = &runs[0];
    assert_eq!(run["status"], "partial", "{run:#?}");
    assert_eq!(run["counts"]["failed"], 1, "{run:#?}");
    assert_eq!(run["failures"][0]["record_id"], json!(bad), "{run:#?}");
    assert_eq!(run["failures"][0]["error_code"], "unreadable", "{run:#?}");
    let rows = w.rows("orders").await;
    assert_eq!(rows.len(), orders.len() - 1);
    assert!(rows.iter().all(|r| r["source_id"] != json!(bad)));
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried_until_the_sync_converges() {
    let w = sync_world_with(seed(40), vec![("HTTP_ATTEMPTS".into(), "6".into())]).await;
    w.store_admin(
        Method::POST,
        "faults",
        json!({"status": 429, "retry_after": "1", "count": 2}),
    )
    .await;
    w.project_admin(Method::POST, "faults", json!({"status": 503, "count": 3}))
        .await;
    w.flow(&w.store, &w.project, &["orders", "products"]).await;
    // A run that still fails is handed back to the queue and retried after its visibility
    // timeout; here the handler's own retries are enough.
    w.work().await;
    assert_orders_match(&w).await;
    assert_products_match(&w).await;
}

#[tokio::test]
async fn a_large_sync_with_a_tiny_time_budget_ends_as_an_uninterrupted_one_would() {
    // (1,000 orders make dozens of continuations; `./infra/bench.sh continuations` runs
    // 5,000, which take minutes through the local stack.)
    let orders = integration_tests::env_size("CONTINUATION_ORDERS", 1_000);
    let w = sync_world_with(
        Seed {
            products: 5,
            customers: 5,
            orders,
            seed: 3,
        },
        vec![("TIME_BUDGET_MS".into(), "1500".into())],
    )
    .await;
    w.flow(&w.store, &w.project, &["orders"]).await;
    w.work().await;
    assert_orders_match(&w).await;
    let runs = w.runs("limit=5").await;
    assert_eq!(runs.len(), 1, "one run, continued: {runs:#?}");
    assert_eq!(runs[0]["status"], "succeeded");
    assert!(
        runs[0]["continuations"].as_u64().unwrap_or(0) >= 1,
        "{:#?}",
        runs[0]
    );
    assert_eq!(runs[0]["counts"]["written"], orders);
}

#[tokio::test]
async fn flows_both_ways_converge_without_ping_pong() {
    let w = sync_world(seed(5)).await;
    w.flow(&w.store, &w.project, &["products"]).await;
    w.work().await;
    w.flow(&w.project, &w.store, &["products"]).await;
    w.work().await;
    assert_products_match(&w).await;
    let before = w.woo.all(Kind::Products).len();
    // A genuine edit in PostgreSQL flows to the store...
    let sku = w.woo.all(Kind::Products)[2]["sku"].clone();
    w.db.execute(
        "update public.products set price = 123.45 where sku = $1",
        &[&sku.as_str().unwrap_or_default()],
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    w.enqueue(&w.job(&w.project, "products", SyncMode::Incremental, &[]))
        .await;
    w.work().await;
    let in_store = w.store_product(&sku).map(|p| dec(&p["regular_price"]));
    assert_eq!(in_store.as_deref(), Some("123.45"));
    // ...and the store's change (our own write) does not come back to PostgreSQL.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    w.enqueue(&w.job(&w.store, "products", SyncMode::Incremental, &[]))
        .await;
    w.work().await;
    let runs = w.runs("limit=1").await;
    assert_eq!(runs[0]["counts"]["written"], 0, "{:#?}", runs[0]);
    assert!(
        runs[0]["counts"]["echo_skipped"].as_u64().unwrap_or(0) >= 1,
        "{:#?}",
        runs[0]
    );
    assert_eq!(w.woo.all(Kind::Products).len(), before, "nothing doubled");
    assert_products_match(&w).await;
}

#[tokio::test]
async fn two_jobs_for_one_stream_at_once_never_overlap_and_the_second_runs_after() {
    let w = sync_world(seed(200)).await;
    w.flow(&w.store, &w.project, &["orders"]).await;
    w.work().await;
    let before: Vec<Value> = w.runs("limit=100").await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    for n in [2, 9] {
        let id = w.woo.all(Kind::Orders)[n]["id"].to_string();
        w.store_admin(
            Method::PUT,
            &format!("wc/v3/orders/{id}"),
            json!({"status": "on-hold"}),
        )
        .await;
    }
    // Both land in one batch, which the handler runs side by side: one runs, the other is
    // kept as the stream's follow-up and runs when the first is done.
    w.enqueue(&w.job(&w.store, "orders", SyncMode::Full, &[]))
        .await;
    w.enqueue(&w.job(&w.store, "orders", SyncMode::Full, &[]))
        .await;
    w.work().await;
    let runs = w.runs("limit=100").await;
    let new: Vec<&Value> = runs
        .iter()
        .filter(|r| !before.iter().any(|b| b["id"] == r["id"]))
        .collect();
    assert_eq!(new.len(), 2, "both jobs ran: {new:#?}");
    assert!(new.iter().all(|r| r["status"] == "succeeded"), "{new:#?}");
    // No run overlapped another in time.
    let mut spans: Vec<(String, String)> = runs
        .iter()
        .map(|r| {
            (
                r["started_at"].as_str().unwrap_or_default().to_string(),
                r["finished_at"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    spans.sort();
    for pair in spans.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "runs overlapped: {spans:?}");
    }
    assert_orders_match(&w).await;
}

#[tokio::test]
async fn a_run_cut_off_mid_way_is_completed_by_the_next_one_without_duplicates() {
    let w = sync_world_with(seed(600), vec![("LEASE_SECONDS".into(), "2".into())]).await;
    w.flow(&w.store, &w.project, &["orders"]).await;
    // The invocation dies part-way (its handler is dropped mid-run, as a crash would end it).
    let _ = tokio::time::timeout(
        std::time::Duration::from_millis(700),
        w.api.stack.work_once(),
    )
    .await;
    let partly = w.rows("orders").await.len();
    // Its lease runs out; the next job for the stream finishes the work.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    w.enqueue(&w.job(&w.store, "orders", SyncMode::Full, &[]))
        .await;
    w.work().await;
    assert!(
        partly < 600,
        "the first run was cut off after {partly} orders"
    );
    assert_orders_match(&w).await;
}

#[tokio::test]
async fn registering_the_stores_webhooks_is_idempotent_and_the_store_then_delivers_to_us() {
    let w = sync_world(seed(3)).await;
    let path = format!("/api/connections/{}/webhooks", w.store);
    let (status, first) = w.api.send(Method::POST, &path, Some("acme"), None).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{first}");
    let created = first["subscriptions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(created.len(), 12, "{first}");
    assert!(created.iter().all(|s| s["change"] == "created"));
    let (status, second) = w.api.send(Method::POST, &path, Some("acme"), None).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{second}");
    assert!(second["subscriptions"]
        .as_array()
        .is_some_and(|a| a.len() == 12 && a.iter().all(|s| s["change"] == "updated")));
    let hooks = w
        .store_admin(Method::GET, "wc/v3/webhooks?per_page=100", json!({}))
        .await;
    assert_eq!(hooks.as_array().map(Vec::len), Some(12), "nothing doubled");
    // A change in the store is delivered, signed with the secret we stored, and accepted.
    let order = w.woo.all(Kind::Orders)[0]["id"].to_string();
    w.store_admin(
        Method::PUT,
        &format!("wc/v3/orders/{order}"),
        json!({"status": "completed"}),
    )
    .await;
    let log = format!("/api/connections/{}/events", w.store);
    let mut events = Vec::new();
    for _ in 0..40 {
        let (_, got) = w.api.send(Method::GET, &log, Some("acme"), None).await;
        events = got["events"].as_array().cloned().unwrap_or_default();
        if !events.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(
        events.iter().any(|e| e["entity_id"] == json!(order)),
        "{events:#?}"
    );
    // Another tenant cannot touch them; removing takes them all away.
    let (status, _) = w
        .api
        .send(Method::DELETE, &path, Some("globex"), None)
        .await;
    assert_eq!(status, reqwest::StatusCode::NOT_FOUND);
    let (status, removed) = w.api.send(Method::DELETE, &path, Some("acme"), None).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{removed}");
    let hooks = w
        .store_admin(Method::GET, "wc/v3/webhooks?per_page=100", json!({}))
        .await;
    assert_eq!(hooks.as_array().map(Vec::len), Some(0));
}

#[tokio::test]
async fn an_order_trashed_in_the_store_is_marked_deleted_in_postgresql() {
    let w = sync_world(seed(6)).await;
    w.flow(&w.store, &w.project, &["orders"]).await;
    w.work().await;
    let order = w.woo.all(Kind::Orders)[2]["id"].to_string();
    w.store_admin(Method::DELETE, &format!("wc/v3/orders/{order}"), json!({}))
        .await;
    w.enqueue(&w.job(&w.store, "orders", SyncMode::Incremental, &[&order]))
        .await;
    w.work().await;
    let rows = w.rows("orders").await;
    let row = rows
        .iter()
        .find(|r| r["source_id"] == json!(order))
        .cloned()
        .unwrap_or_default();
    assert!(row["deleted_at"].is_string(), "{row}");
    assert_eq!(rows.iter().filter(|r| r["deleted_at"].is_null()).count(), 5);
}

#[tokio::test]
async fn customers_and_products_flow_from_postgresql_to_the_store_and_a_deleted_row_trashes_the_product(
) {
    let w = sync_world(seed(2)).await;
    w.flow(&w.project, &w.store, &["products", "customers"])
        .await;
    w.work().await;
    // Rows created in the project (by the user, not by us) reach the store.
    w.sql("insert into public.products (id, sku, name, price, status) values ('p-new', 'SB-NEW-1', 'From Supabase', 12.50, 'active');
         insert into public.customers (id, email, first_name, last_name) values ('c-new', 'new.customer@example.com', 'Ada', 'Lovelace');").await;
    for entity in ["products", "customers"] {
        w.enqueue(&w.job(&w.project, entity, SyncMode::Incremental, &[]))
            .await;
    }
    w.work().await;
    let product = w
        .store_product(&json!("SB-NEW-1"))
        .unwrap_or_else(|| panic!("the product did not reach the store"));
    assert_eq!(product["name"], "From Supabase");
    assert_eq!(dec(&product["regular_price"]), "12.5");
    assert_eq!(product["status"], "publish");
    let customer = w
        .woo
        .all(Kind::Customers)
        .into_iter()
        .find(|c| c["email"] == "new.customer@example.com")
        .unwrap_or_else(|| panic!("the customer did not reach the store"));
    assert_eq!(customer["first_name"], "Ada");
    // Marking the row deleted trashes the product in the store.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    w.sql("update public.products set deleted_at = now() where id = 'p-new'")
        .await;
    w.enqueue(&w.job(&w.project, "products", SyncMode::Incremental, &[]))
        .await;
    w.work().await;
    let product = w.store_product(&json!("SB-NEW-1")).unwrap_or_default();
    assert_eq!(product["status"], "trash", "{product}");
}

/// The project's price of the product with store id `id`, as text.
async fn project_price(w: &SyncWorld, id: &str) -> String {
    w.rows("products")
        .await
        .iter()
        .find(|r| r["source_id"] == id)
        .map(|r| dec(&r["price"]))
        .unwrap_or_default()
}

/// Changes the store product `id`'s price in a later second than anything before it.
async fn reprice(w: &SyncWorld, id: &str, price: &str) {
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    w.store_admin(
        Method::PUT,
        &format!("wc/v3/products/{id}"),
        json!({ "regular_price": price }),
    )
    .await;
}

#[tokio::test]
async fn a_follow_up_whose_run_fails_stays_kept_and_runs_with_the_streams_next_job() {
    let w = sync_world_with(seed(5), vec![("HTTP_ATTEMPTS".into(), "1".into())]).await;
    w.flow(&w.store, &w.project, &["products"]).await;
    w.work().await;
    let products = w.woo.all(Kind::Products);
    let (changed, other) = (products[1]["id"].to_string(), products[3]["id"].to_string());
    reprice(&w, &changed, "77.70").await;
    // Another worker holds the stream while the change's webhook job arrives: it is kept as
    // the stream's follow-up.
    w.hold_stream(&w.store, "products", "elsewhere", 60_000)
        .await;
    w.enqueue(&w.job(&w.store, "products", SyncMode::Incremental, &[&changed]))
        .await;
    w.work().await;
    assert!(w.kept(&w.store, "products").await.is_some());
    // That worker dies; the wake-up comes while the project is down.
    w.hold_stream(&w.store, "products", "elsewhere", -1).await;
    w.project_admin(Method::POST, "faults", json!({"status": 503, "count": -1}))
        .await;
    let mut wake = w.job(&w.store, "products", SyncMode::Incremental, &[]);
    wake.trigger = sync_core::domain::Trigger::FollowUp;
    w.enqueue(&wake).await;
    let report = w
        .api
        .stack
        .work_once()
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(report.received, 1, "{report:?}");
    assert_ne!(project_price(&w, &changed).await, "77.7");
    assert!(
        w.kept(&w.store, "products").await.is_some(),
        "still kept, with a wake-up queued for later"
    );
    // The project is back; the stream's next job (for another product) runs, and then the
    // follow-up that failed, which was kept.
    w.project_admin(Method::POST, "faults", json!({"status": null, "count": 0}))
        .await;
    w.enqueue(&w.job(&w.store, "products", SyncMode::Incremental, &[&other]))
        .await;
    w.work().await;
    assert_eq!(project_price(&w, &changed).await, "77.7");
    assert!(w.kept(&w.store, "products").await.is_none());
}

#[tokio::test]
async fn a_5xx_on_a_batch_create_is_tried_again_later_and_the_product_lands_once() {
    let w = sync_world_with(seed(2), vec![("RECORD_RETRY_SECONDS".into(), "1".into())]).await;
    w.flow(&w.project, &w.store, &["products"]).await;
    w.work().await;
    w.sql("insert into public.products (id, sku, name, price, status) values ('p-retry', 'SB-RETRY-1', 'Tried again', 9.50, 'active')").await;
    // The store answers 503 to the batch that creates it (it may or may not have made it:
    // a create is never resent blindly).
    w.store_admin(
        Method::POST,
        "faults",
        json!({"status": 503, "count": 1, "method": "POST", "path": "/products/batch"}),
    )
    .await;
    w.enqueue(&w.job(&w.project, "products", SyncMode::Incremental, &["p-retry"]))
        .await;
    w.work().await;
    // (On a slow machine the retry may already have come due and run: look the webhook
    // job's run up by its trigger.)
    let runs = w.runs("limit=5").await;
    let first = runs
        .iter()
        .find(|r| r["trigger"] == "webhook")
        .unwrap_or_else(|| panic!("no webhook run: {runs:#?}"));
    assert_eq!(first["status"], "partial", "{first:#?}");
    assert_eq!(first["failures"][0]["retryable"], true, "{first:#?}");
    // The retry is queued with a delay; once due, it writes the product.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    w.work().await;
    let landed: Vec<Value> = w
        .woo
        .all(Kind::Products)
        .into_iter()
        .filter(|p| p["sku"] == "SB-RETRY-1")
        .collect();
    assert_eq!(landed.len(), 1, "{landed:#?}");
    let runs = w.runs("limit=1").await;
    assert_eq!(
        (runs[0]["trigger"].clone(), runs[0]["status"].clone()),
        (json!("retry"), json!("succeeded")),
        "{:#?}",
        runs[0]
    );
}

#[tokio::test]
async fn a_webhook_job_whose_lease_is_taken_over_mid_page_is_kept_and_runs_after_the_new_holder() {
    let w = sync_world_with(seed(5), vec![("LEASE_SECONDS".into(), "3".into())]).await;
    w.flow(&w.store, &w.project, &["products"]).await;
    w.work().await;
    let id = w.woo.all(Kind::Products)[2]["id"].to_string();
    reprice(&w, &id, "55.50").await;
    // The store is slow: the fetch takes longer than the lease's renewal period.
    w.store_admin(
        Method::POST,
        "faults",
        json!({"latency_ms": 5000, "count": 1, "method": "GET"}),
    )
    .await;
    w.enqueue(&w.job(&w.store, "products", SyncMode::Incremental, &[&id]))
        .await;
    let worker = w.api.stack.work_once();
    let thief = async {
        // While the fetch is in flight, another worker takes the stream over.
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        w.hold_stream(&w.store, "products", "thief", 60_000).await;
    };
    let (report, ()) = tokio::join!(worker, thief);
    assert_eq!(report.unwrap_or_else(|e| panic!("{e:#}")).returned, 0);
    // Nothing was written after the take-over, and the job waits for the new holder.
    assert_ne!(project_price(&w, &id).await, "55.5");
    let kept = w.kept(&w.store, "products").await;
    assert_eq!(kept.map(|j| j.ids), Some(vec![id.clone()]));
    // The new holder finishes; the stream's next job runs the kept one after its own.
    w.hold_stream(&w.store, "products", "thief", -1).await;
    w.enqueue(&w.job(&w.store, "products", SyncMode::Incremental, &[]))
        .await;
    w.work().await;
    assert_eq!(project_price(&w, &id).await, "55.5");
}

#[tokio::test]
async fn a_customer_deleted_between_two_page_reads_shifts_no_other_customer_out_of_the_scan() {
    let w = sync_world_with(
        Seed {
            products: 1,
            customers: 150,
            orders: 0,
            seed: 5,
        },
        // Every page is its own invocation: the store can change between two page reads.
        vec![("TIME_BUDGET_MS".into(), "1".into())],
    )
    .await;
    w.flow(&w.store, &w.project, &["customers"]).await;
    // The backfill reads its first page of customers, then checkpoints.
    w.api
        .stack
        .work_once()
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    // A customer of that first page is deleted before the second page is read.
    let gone = w.woo.all(Kind::Customers)[10]["id"].to_string();
    w.store_admin(
        Method::DELETE,
        &format!("wc/v3/customers/{gone}?force=true"),
        Value::Null,
    )
    .await;
    w.work().await;
    let rows = w.rows("customers").await;
    for customer in w.woo.all(Kind::Customers) {
        assert!(
            rows.iter().any(|r| r["email"] == customer["email"]),
            "customer {} was never read",
            customer["id"]
        );
    }
}

#[tokio::test]
async fn a_bulk_edit_in_one_second_is_read_whole_whatever_order_the_store_gives_its_ties() {
    let w = sync_world(Seed {
        products: 150,
        customers: 1,
        orders: 0,
        seed: 9,
    })
    .await;
    w.flow(&w.store, &w.project, &["products"]).await;
    w.work().await;
    // The store lists records of one second newest id first (WordPress promises no order),
    // and a bulk edit changes every product in the same second.
    w.store_admin(Method::POST, "ties", json!({"newest_id_first": true}))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    w.store_admin(
        Method::POST,
        "touch/products",
        json!({"set": {"regular_price": "1.23", "price": "1.23"}}),
    )
    .await;
    w.enqueue(&w.job(&w.store, "products", SyncMode::Incremental, &[]))
        .await;
    w.work().await;
    let stale: Vec<Value> = w
        .rows("products")
        .await
        .into_iter()
        .filter(|r| dec(&r["price"]) != "1.23")
        .map(|r| r["source_id"].clone())
        .collect();
    assert!(stale.is_empty(), "never read: {stale:?}");
}

#[tokio::test]
async fn a_page_whose_retries_would_outlast_the_deadline_checkpoints_instead_of_waiting() {
    // The invocation's last 296 of its 300 s are the safety margin: a run has 4 s.
    let w = sync_world_with(
        seed(250),
        vec![("SAFETY_MARGIN_SECONDS".into(), "296".into())],
    )
    .await;
    // The store throttles the order list and asks for 6 s: more than a run has left.
    w.store_admin(
        Method::POST,
        "faults",
        json!({"status": 429, "retry_after": "6", "count": 2, "method": "GET", "path": "/orders"}),
    )
    .await;
    w.flow(&w.store, &w.project, &["orders"]).await;
    let report = w
        .api
        .stack
        .work_once()
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    // Nothing is handed back to wait out the queue's visibility timeout: the run stopped
    // in time and queued its own continuation.
    assert_eq!(report.returned, 0, "{report:?}");
    w.work().await;
    assert_orders_match(&w).await;
    let runs = w.runs("limit=5").await;
    assert_eq!(runs.len(), 1, "one run, continued: {runs:#?}");
    assert_eq!(runs[0]["status"], "succeeded");
    assert!(
        runs[0]["continuations"].as_u64().unwrap_or(0) >= 2,
        "it checkpointed rather than wait: {:#?}",
        runs[0]
    );
}

/// `GET /api/sync/failures` with this query, as `tenant`.
async fn failures(w: &SyncWorld, tenant: &str, query: &str) -> (reqwest::StatusCode, Value) {
    w.api
        .send(
            Method::GET,
            &format!("/api/sync/failures?{query}"),
            Some(tenant),
            None,
        )
        .await
}

#[tokio::test]
async fn a_record_that_always_fails_is_quarantined_shown_and_leaves_once_fixed_at_the_source() {
    let w = sync_world_with(seed(2), vec![("RECORD_ATTEMPTS".into(), "3".into())]).await;
    w.flow(&w.project, &w.store, &["products"]).await;
    w.work().await;
    // A product row without a SKU: the store cannot take it (a retry could not find it).
    w.sql("insert into public.products (id, name, price, status) values ('p-nosku', 'No SKU', 5, 'active')").await;
    let poll = || w.poll(&w.project, "products");
    let first = poll().await;
    assert_eq!(first["failures"][0]["attempts"], 1, "{first:#}");
    assert_eq!(first["failures"][0]["quarantined"], false);
    assert!(
        first["cursor_after"].is_null(),
        "the cursor waits: {first:#}"
    );
    poll().await;
    let third = poll().await;
    // The third try quarantines it, and the cursor moves past it.
    assert_eq!(third["status"], "partial", "{third:#}");
    assert_eq!(third["failures"][0]["quarantined"], true, "{third:#}");
    assert!(third["cursor_after"].is_object(), "{third:#}");
    // The user sees it, with why, how often and since when.
    let (status, page) = failures(&w, "acme", &format!("connection_id={}", w.project)).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{page}");
    let listed = page["failures"].as_array().cloned().unwrap_or_default();
    assert_eq!(listed.len(), 1, "{page:#}");
    assert_eq!(listed[0]["record_id"], "p-nosku");
    assert_eq!(listed[0]["entity_type"], "products");
    assert_eq!(listed[0]["attempts"], 3);
    assert_eq!(listed[0]["quarantined"], true);
    assert!(listed[0]["error"]
        .as_str()
        .unwrap_or_default()
        .contains("SKU"));
    assert_eq!(listed[0]["error_code"], "missing_key", "{page:#}");
    // And the stream's records_quarantined alert is open, once, naming the record.
    let subject = format!("stream:{}/products", w.project);
    let quarantine_alert = |status: &'static str| {
        let (w, subject) = (&w, subject.clone());
        async move {
            alerts(w, status)
                .await
                .into_iter()
                .filter(|a| a["kind"] == "records_quarantined" && a["subject"] == subject.as_str())
                .collect::<Vec<Value>>()
        }
    };
    let open = quarantine_alert("open").await;
    assert_eq!(open.len(), 1, "{open:#?}");
    assert!(
        open[0]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("p-nosku")),
        "{open:#?}"
    );
    assert!(listed[0]["next_try_at"].is_string());
    // Only the connection's tenant sees it; a bad request changes nothing and says why.
    let (status, _) = failures(&w, "other", &format!("connection_id={}", w.project)).await;
    assert_eq!(status, reqwest::StatusCode::NOT_FOUND);
    for (query, field) in [
        (String::new(), "connection_id"),
        (
            format!("connection_id={}&entity_type=invoices", w.project),
            "entity_type",
        ),
        (format!("connection_id={}&limit=0", w.project), "limit"),
    ] {
        let (status, got) = failures(&w, "acme", &query).await;
        assert_eq!(status, reqwest::StatusCode::BAD_REQUEST, "{query}: {got}");
        assert_eq!(got["error"]["field"], field, "{got}");
    }
    // Fixed at the source: the next run writes it and it leaves the quarantine.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    w.sql("update public.products set sku = 'SB-FIXED-1' where id = 'p-nosku'")
        .await;
    let fixed = poll().await;
    assert_eq!(fixed["status"], "succeeded", "{fixed:#}");
    assert!(w.store_product(&json!("SB-FIXED-1")).is_some());
    let (_, page) = failures(&w, "acme", &format!("connection_id={}", w.project)).await;
    assert_eq!(page["failures"], json!([]), "{page:#}");
    // Its alert resolved with it.
    assert!(quarantine_alert("open").await.is_empty());
    assert_eq!(quarantine_alert("resolved").await.len(), 1);
}

#[tokio::test]
async fn a_customer_deleted_at_the_store_is_created_again_when_its_row_changes() {
    let w = sync_world(seed(2)).await;
    w.flow(&w.project, &w.store, &["customers"]).await;
    w.work().await;
    w.sql("insert into public.customers (id, email, first_name, last_name) values ('c-back', 'back@example.com', 'Ada', 'Lovelace')").await;
    let sync = || w.poll(&w.project, "customers");
    sync().await;
    let at_store = |email: &str| {
        w.woo
            .all(Kind::Customers)
            .into_iter()
            .find(|c| c["email"] == email)
    };
    let id = at_store("back@example.com")
        .map(|c| c["id"].to_string())
        .unwrap_or_else(|| panic!("the customer did not reach the store"));
    // The shop manager deletes the customer (WooCommerce deletes customers outright).
    w.store_admin(
        Method::DELETE,
        &format!("wc/v3/customers/{id}?force=true"),
        Value::Null,
    )
    .await;
    // Then the row changes in the project: the customer is created again, not failed.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    w.sql("update public.customers set first_name = 'Grace' where id = 'c-back'")
        .await;
    let run = sync().await;
    assert_eq!(run["status"], "succeeded", "{run:#}");
    let again = at_store("back@example.com").unwrap_or_else(|| panic!("not created again"));
    assert_eq!(again["first_name"], "Grace");
    assert_ne!(again["id"].to_string(), id);
}

#[tokio::test]
async fn clearing_a_column_in_the_project_clears_the_field_in_the_store() {
    let w = sync_world(seed(2)).await;
    w.flow(&w.project, &w.store, &["products"]).await;
    w.work().await;
    w.sql(
        "insert into public.products (id, sku, name, price, sale_price, stock_quantity, status) values ('p-clear', 'SB-CLEAR-1', 'On sale', 20, 15, 7, 'active')",
    )
    .await;
    w.poll(&w.project, "products").await;
    let before = w.store_product(&json!("SB-CLEAR-1")).unwrap_or_default();
    assert_eq!(dec(&before["sale_price"]), "15", "{before}");
    assert_eq!(
        (
            before["manage_stock"].clone(),
            before["stock_quantity"].clone()
        ),
        (json!(true), json!(7))
    );
    // The sale ends and stock stops being tracked: the columns are set to NULL.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    w.sql(
        "update public.products set sale_price = null, stock_quantity = null where id = 'p-clear'",
    )
    .await;
    let run = w.poll(&w.project, "products").await;
    assert_eq!(run["counts"]["written"], 1, "{run:#}");
    let after = w.store_product(&json!("SB-CLEAR-1")).unwrap_or_default();
    assert_eq!(after["sale_price"], "", "{after}");
    assert_eq!(after["manage_stock"], false, "{after}");
    assert_eq!(
        dec(&after["regular_price"]),
        "20",
        "the price is left as it is"
    );
}

/// The store product with this SKU's regular price, as text without trailing zeros.
fn store_price(w: &SyncWorld, sku: &str) -> Option<String> {
    w.store_product(&json!(sku))
        .map(|p| dec(&p["regular_price"]))
}

/// How many product batch writes reached the store so far (counted as they arrive).
async fn batch_writes(w: &SyncWorld) -> u64 {
    let calls = w.store_admin(Method::GET, "calls", json!(null)).await;
    calls
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| k.starts_with("POST ") && k.ends_with("/products/batch"))
                .filter_map(|(_, n)| n.as_u64())
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn with_newest_wins_an_edit_made_while_our_write_is_in_flight_still_reaches_the_target() {
    let w = sync_world(seed(2)).await;
    w.flow_with(
        &w.project,
        &w.store,
        &["products"],
        json!({"conflict_policy": "newest_wins"}),
    )
    .await;
    w.work().await;
    w.sql("insert into public.products (id, sku, name, price, status) values ('p-race', 'SB-RACE-1', 'Raced', 10, 'active')").await;
    w.enqueue(&w.job(&w.project, "products", SyncMode::Incremental, &[]))
        .await;
    w.work().await;
    assert_eq!(store_price(&w, "SB-RACE-1").as_deref(), Some("10"));

    // The row is edited; the store is slow to take the write of it...
    w.sql("update public.products set price = 20 where id = 'p-race'")
        .await;
    let before = batch_writes(&w).await;
    w.store_admin(
        Method::POST,
        "faults",
        json!({"latency_ms": 2500, "count": 1, "method": "POST", "path": "/products/batch"}),
    )
    .await;
    w.enqueue(&w.job(&w.project, "products", SyncMode::Incremental, &[]))
        .await;
    let worker = w.api.stack.work_once();
    let editor = async {
        // ...and while that write is in flight the row is edited again: this edit is older
        // than the store's modification time once our write lands.
        while batch_writes(&w).await <= before {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        w.sql("update public.products set price = 30 where id = 'p-race'")
            .await;
    };
    let (report, ()) = tokio::join!(worker, editor);
    report.unwrap_or_else(|e| panic!("{e:#}"));

    // The second edit reaches the store (the same run reads the row again, or the next poll
    // does): the store's copy is what we wrote, unchanged, however late its time.
    w.enqueue(&w.job(&w.project, "products", SyncMode::Incremental, &[]))
        .await;
    w.work().await;
    assert_eq!(store_price(&w, "SB-RACE-1").as_deref(), Some("30"));
    let runs = w.runs("limit=1").await;
    assert_eq!(runs[0]["counts"]["conflicts"], 0, "{:#?}", runs[0]);

    // Both sides edited since they last agreed: the later edit wins, and the run says so.
    let id = w
        .store_product(&json!("SB-RACE-1"))
        .map(|p| p["id"].to_string())
        .unwrap_or_default();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    w.store_admin(
        Method::PUT,
        &format!("wc/v3/products/{id}"),
        json!({"regular_price": "40"}),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    w.sql("update public.products set price = 50 where id = 'p-race'")
        .await;
    w.enqueue(&w.job(&w.project, "products", SyncMode::Incremental, &[]))
        .await;
    w.work().await;
    assert_eq!(store_price(&w, "SB-RACE-1").as_deref(), Some("50"));
    let runs = w.runs("limit=1").await;
    assert_eq!(runs[0]["counts"]["conflicts"], 1, "{:#?}", runs[0]);
    let conflict = &runs[0]["conflicts"][0];
    assert_eq!(
        (conflict["record_id"].clone(), conflict["winner"].clone()),
        (json!("p-race"), json!("source")),
        "{conflict:#}"
    );

    // The store's edit is the later one now: it is kept, and recorded as the winner.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    w.sql("update public.products set price = 60 where id = 'p-race'")
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    w.store_admin(
        Method::PUT,
        &format!("wc/v3/products/{id}"),
        json!({"regular_price": "70"}),
    )
    .await;
    w.enqueue(&w.job(&w.project, "products", SyncMode::Incremental, &[]))
        .await;
    w.work().await;
    assert_eq!(store_price(&w, "SB-RACE-1").as_deref(), Some("70"));
    let runs = w.runs("limit=1").await;
    assert_eq!(
        runs[0]["conflicts"][0]["winner"], "target",
        "{:#?}",
        runs[0]
    );
}

#[tokio::test]
async fn a_full_run_deletes_at_the_target_what_the_source_deleted_without_telling_us() {
    let w = sync_world(seed(2)).await;
    w.flow(&w.store, &w.project, &["customers"]).await;
    w.flow(&w.project, &w.store, &["products"]).await;
    w.work().await;
    w.sql("insert into public.products (id, sku, name, price, status) values ('p-gone', 'SB-GONE-1', 'Soon gone', 4, 'active')").await;
    w.poll(&w.project, "products").await;
    assert!(w.store_product(&json!("SB-GONE-1")).is_some());
    let customers = w.woo.all(Kind::Customers);
    let gone = customers[3]["id"].to_string();
    // WooCommerce deletes a customer outright, and a row is deleted from the project's table:
    // neither leaves anything a later read would see, and no webhook reached us.
    w.store_admin(
        Method::DELETE,
        &format!("wc/v3/customers/{gone}?force=true"),
        Value::Null,
    )
    .await;
    w.sql("delete from public.products where id = 'p-gone'")
        .await;
    // Incremental runs cannot know.
    w.poll(&w.store, "customers").await;
    w.poll(&w.project, "products").await;
    assert_ne!(
        w.store_product(&json!("SB-GONE-1"))
            .map(|p| p["status"].clone()),
        Some(json!("trash"))
    );
    // A full run compares what it read with what was synced, and asks about the rest.
    for (connection, entity) in [(&w.store, "customers"), (&w.project, "products")] {
        w.enqueue(&w.job(connection, entity, SyncMode::Full, &[]))
            .await;
    }
    w.work().await;
    let rows = w.rows("customers").await;
    let row = rows
        .iter()
        .find(|r| r["source_id"] == gone.as_str())
        .unwrap_or_else(|| panic!("no row for customer {gone}"));
    assert!(row["deleted_at"].is_string(), "{row}");
    assert_eq!(
        rows.iter().filter(|r| r["deleted_at"].is_null()).count(),
        customers.len() - 1,
        "only the deleted customer is marked deleted"
    );
    assert_eq!(
        w.store_product(&json!("SB-GONE-1"))
            .map(|p| p["status"].clone()),
        Some(json!("trash"))
    );
    // Another full run finds nothing more to delete and writes nothing.
    w.enqueue(&w.job(&w.store, "customers", SyncMode::Full, &[]))
        .await;
    w.work().await;
    let runs = w.runs("limit=1").await;
    assert_eq!(runs[0]["counts"]["written"], 0, "{:#?}", runs[0]);
}

/// `POST /api/sync/trigger` as the demo tenant: the status and the queued run.
async fn trigger(w: &SyncWorld, body: Value) -> (reqwest::StatusCode, Value) {
    w.api
        .send(Method::POST, "/api/sync/trigger", Some("acme"), Some(body))
        .await
}

/// A run of the tenant's, as `GET /api/sync/runs/{id}` answers it.
async fn run(w: &SyncWorld, id: &str) -> Value {
    w.get(&format!("/api/sync/runs/{id}")).await
}

#[tokio::test]
async fn runs_asked_for_through_the_api_run_under_the_ids_answered_and_wait_their_turn_on_a_busy_stream(
) {
    let w = sync_world(seed(20)).await;
    w.flow(&w.store, &w.project, &["orders"]).await;
    w.work().await;
    // One order changes; a person asks for just that one.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let order = w.woo.all(Kind::Orders)[3]["id"].to_string();
    w.store_admin(
        Method::PUT,
        &format!("wc/v3/orders/{order}"),
        json!({"status": "on-hold"}),
    )
    .await;
    let (status, queued) = trigger(
        &w,
        json!({"connection_id": w.store, "entity_type": "orders", "ids": [order]}),
    )
    .await;
    assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{queued}");
    let id = queued["run_id"].as_str().unwrap_or_default().to_string();
    assert_eq!(run(&w, &id).await["status"], "queued");
    w.work().await;
    let ran = run(&w, &id).await;
    assert_eq!(ran["status"], "succeeded", "{ran}");
    assert_eq!(ran["trigger"], "manual");
    assert_eq!(ran["counts"]["read"], 1, "{ran}");
    assert_orders_match(&w).await;
    // While another worker holds the stream, two more are asked for: neither runs
    // alongside it; both wait, merged into the stream's one follow-up.
    let before: Vec<Value> = w.runs("limit=100").await;
    w.hold_stream(&w.store, "orders", "elsewhere", 60_000).await;
    let mut asked = Vec::new();
    for mode in ["incremental", "full"] {
        let (status, queued) = trigger(
            &w,
            json!({"connection_id": w.store, "entity_type": "orders", "sync_mode": mode}),
        )
        .await;
        assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{queued}");
        asked.push(queued["run_id"].as_str().unwrap_or_default().to_string());
    }
    w.work().await;
    for id in &asked {
        assert_eq!(run(&w, id).await["status"], "queued");
    }
    assert!(w.kept(&w.store, "orders").await.is_some());
    // That worker lets go; the stream's wake-up runs what waited, once, as a full run.
    w.hold_stream(&w.store, "orders", "elsewhere", -1).await;
    let mut wake = w.job(&w.store, "orders", SyncMode::Incremental, &[]);
    wake.trigger = sync_core::domain::Trigger::FollowUp;
    w.enqueue(&wake).await;
    w.work().await;
    let full: Vec<Value> = w
        .runs("limit=100")
        .await
        .into_iter()
        .filter(|r| {
            !before.iter().any(|b| b["id"] == r["id"]) && !asked.iter().any(|a| r["id"] == **a)
        })
        .collect();
    // One run did the work of both (a full one), under an identity of its own.
    assert_eq!(full.len(), 1, "{full:#?}");
    assert_eq!(full[0]["status"], "succeeded", "{full:#?}");
    assert_eq!(full[0]["sync_mode"], "full", "{full:#?}");
    let did = full[0]["id"].as_str().unwrap_or_default();
    for id in &asked {
        let settled = run(&w, id).await;
        assert_eq!(settled["status"], "skipped", "{settled}");
        let message = settled["message"].as_str().unwrap_or_default();
        assert!(message.contains(did), "{message}");
    }
    assert!(w.kept(&w.store, "orders").await.is_none());
}

/// A schedule of the store's orders in Paris, with `fields` besides; its id.
async fn orders_schedule(w: &SyncWorld, fields: Value) -> String {
    let mut body = json!({"credential_id": w.store, "platform": "woocommerce",
                          "entity_type": "orders", "timezone": "Europe/Paris"});
    if let (Some(body), Some(fields)) = (body.as_object_mut(), fields.as_object()) {
        body.extend(fields.clone());
    }
    let (status, created) = w
        .api
        .send(
            Method::POST,
            "/api/sync/schedules",
            Some("acme"),
            Some(body),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{created}");
    created["id"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn a_paused_schedule_run_now_syncs_and_counts_as_the_schedules_last_run() {
    let w = sync_world(seed(8)).await;
    w.flow(&w.store, &w.project, &["orders"]).await;
    w.work().await;
    let schedule = orders_schedule(
        &w,
        json!({"cron_expression": "0 9 * * *", "sync_mode": "full", "is_active": false}),
    )
    .await;
    let path = format!("/api/sync/schedules/{schedule}");
    // Asked for with `syncctl`, which calls the API.
    let url = w.api.stack.api_url.clone();
    let (code, out, err) =
        syncctl(&["run-schedule", &schedule, "--tenant", "acme", "--url", &url]).await;
    assert_eq!(code, 0, "{err}");
    let queued: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(queued["status"], "queued", "{queued}");
    let (code, _, err) = syncctl(&[
        "trigger",
        "--connection-id",
        &w.store,
        "--entity",
        "invoices",
        "--tenant",
        "acme",
        "--url",
        &url,
    ])
    .await;
    assert_eq!(code, 2, "a request the API refuses: {err}");
    assert!(err.contains("entity_type"), "{err}");
    w.work().await;
    let ran = run(&w, queued["run_id"].as_str().unwrap_or_default()).await;
    assert_eq!(ran["status"], "succeeded", "{ran}");
    assert_eq!(ran["schedule_id"], json!(schedule));
    assert_eq!(ran["sync_mode"], "full");
    let (_, now) = w.api.send(Method::GET, &path, Some("acme"), None).await;
    assert_eq!(now["last_run_status"], "succeeded", "{now}");
    assert_eq!(now["is_active"], false, "still paused");
    assert_orders_match(&w).await;
}

#[tokio::test]
async fn a_run_cancelled_mid_way_keeps_whole_pages_one_cancelled_while_queued_never_runs_and_nothing_is_lost(
) {
    let w = sync_world_with(
        Seed {
            products: 5,
            customers: 5,
            orders: 400,
            seed: 5,
        },
        vec![("TIME_BUDGET_MS".into(), "300".into())],
    )
    .await;
    w.flow(&w.store, &w.project, &["orders"]).await;
    // The backfill's first invocation stops part way, its continuation queued.
    w.api
        .stack
        .work_once()
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let runs = w.runs("limit=5").await;
    let id = runs
        .iter()
        .find(|r| r["status"] == "running")
        .and_then(|r| r["id"].as_str())
        .unwrap_or_else(|| panic!("no run left running: {runs:#?}"))
        .to_string();
    // Asked to stop with `syncctl`: the run says it will.
    let url = w.api.stack.api_url.clone();
    let (code, out, err) = syncctl(&["cancel-run", &id, "--tenant", "acme", "--url", &url]).await;
    assert_eq!(code, 0, "{err}");
    let asked: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(asked["status"], "running", "{asked}");
    assert!(asked["cancel_requested_at"].is_string(), "{asked}");
    // Its continuation arrives and stops: what it wrote stays, each order once.
    w.work().await;
    let ended = run(&w, &id).await;
    assert_eq!(ended["status"], "cancelled", "{ended}");
    let written = ended["counts"]["written"].as_u64().unwrap_or(0) as usize;
    assert!((1..400).contains(&written), "{ended}");
    let rows = w.rows("orders").await;
    assert_eq!(rows.len(), written);
    let mut ids: Vec<String> = rows.iter().map(|r| r["source_id"].to_string()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), written, "each order once");
    // A person's run cancelled before a worker takes it up never runs.
    let (status, queued) = trigger(
        &w,
        json!({"connection_id": w.store, "entity_type": "orders"}),
    )
    .await;
    assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{queued}");
    let queued_id = queued["run_id"].as_str().unwrap_or_default().to_string();
    let (status, cancelled) = w
        .api
        .send(
            Method::POST,
            &format!("/api/sync/runs/{queued_id}/cancel"),
            Some("acme"),
            None,
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    w.work().await;
    assert_eq!(run(&w, &queued_id).await["status"], "cancelled");
    assert_eq!(w.rows("orders").await.len(), written, "nothing ran");
    // The next run goes on from the stream's cursor: the project ends as the store is.
    let (status, again) = trigger(
        &w,
        json!({"connection_id": w.store, "entity_type": "orders"}),
    )
    .await;
    assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{again}");
    w.work().await;
    assert_orders_match(&w).await;
}

#[tokio::test]
async fn a_resync_by_date_range_rewrites_exactly_the_orders_changed_in_it_and_a_cursor_is_set_by_hand(
) {
    let w = sync_world(seed(30)).await;
    w.flow(&w.store, &w.project, &["orders"]).await;
    w.work().await;
    assert_orders_match(&w).await;
    // Someone edits every order row in the project by hand; our record index does not know.
    w.sql("update orders set status = 'tampered'").await;
    // A span covering the middle of the store's orders by modification time.
    let modified = |o: &Value| {
        chrono::NaiveDateTime::parse_from_str(
            o["date_modified_gmt"].as_str().unwrap_or_default(),
            "%Y-%m-%dT%H:%M:%S",
        )
        .map(|t| t.and_utc())
        .unwrap_or_else(|e| panic!("{e}: {o}"))
    };
    let orders = w.woo.all(Kind::Orders);
    let mut times: Vec<chrono::DateTime<chrono::Utc>> = orders.iter().map(modified).collect();
    times.sort();
    times.dedup();
    assert!(times.len() > 4, "{times:?}");
    let (from, to) = (times[1], times[times.len() - 2]);
    let inside: Vec<String> = orders
        .iter()
        .filter(|o| (from..to).contains(&modified(o)))
        .map(|o| o["id"].to_string())
        .collect();
    assert!(!inside.is_empty() && inside.len() < orders.len());
    let url = w.api.stack.api_url.clone();
    let (code, out, err) = syncctl(&[
        "resync",
        "--connection-id",
        &w.store,
        "--entity",
        "orders",
        "--from",
        &from.to_rfc3339(),
        "--to",
        &to.to_rfc3339(),
        "--tenant",
        "acme",
        "--url",
        &url,
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let queued: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(queued["status"], "queued", "{queued}");
    let cursor_before = w.cursor(&w.store, "orders").await;
    w.work().await;
    let ran = run(&w, queued["run_id"].as_str().unwrap_or_default()).await;
    assert_eq!(ran["status"], "succeeded", "{ran}");
    assert_eq!(ran["counts"]["written"], inside.len(), "{ran}");
    assert!(ran["window"]["modified_from"].is_string(), "{ran}");
    // Exactly the orders in the span are as the store has them again.
    for row in w.rows("orders").await {
        let id = row["source_id"].as_str().unwrap_or_default().to_string();
        let order = orders
            .iter()
            .find(|o| o["id"].as_u64().map(|n| n.to_string()) == Some(id.clone()))
            .unwrap_or_else(|| panic!("no order {id}"));
        if inside.contains(&id) {
            assert_eq!(row["status"], order["status"], "order {id} rewritten");
        } else {
            assert_eq!(row["status"], "tampered", "order {id} left alone");
        }
    }
    // The stream's cursor did not move.
    assert_eq!(w.cursor(&w.store, "orders").await, cursor_before);
    // The cursor set by hand, noting who; refused while a run holds the stream.
    let cursor_args = |at: &str| {
        vec![
            "resync".to_string(),
            "--connection-id".into(),
            w.store.clone(),
            "--entity".into(),
            "orders".into(),
            "--cursor".into(),
            at.to_string(),
            "--tenant".into(),
            "acme".into(),
            "--url".into(),
            url.clone(),
        ]
    };
    let args = cursor_args(&from.to_rfc3339());
    let (code, out, err) = syncctl(&args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert_eq!(code, 0, "{err}");
    let set: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert!(set["previous_cursor"]["modified_at"].is_string(), "{set}");
    assert!(set["cursor_set_by"].is_string(), "{set}");
    assert_eq!(
        w.cursor(&w.store, "orders").await.map(|c| c.stamp),
        Some(from)
    );
    w.hold_stream(&w.store, "orders", "elsewhere", 60_000).await;
    let (code, _, err) = syncctl(&args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert_eq!(code, 2, "refused while held: {err}");
    assert!(err.contains("409"), "{err}");
}

#[tokio::test]
async fn a_run_whose_job_was_lost_between_two_invocations_is_abandoned_by_the_sweeper_and_its_work_redone_once(
) {
    let w = sync_world_with(
        seed(250),
        vec![
            // Each invocation reads one page, then checkpoints and queues the next.
            ("TIME_BUDGET_MS".into(), "1".into()),
            ("LEASE_SECONDS".into(), "2".into()),
            ("STALE_AFTER_SECONDS".into(), "4".into()),
            ("STREAM_QUIET_SECONDS".into(), "1".into()),
        ],
    )
    .await;
    w.flow(&w.store, &w.project, &["orders"]).await;
    // The backfill's first invocation writes a page and queues its continuation; then the
    // continuation is lost (as when the queue gives up on a message its worker keeps
    // dying on): the run says `running`, and nothing will ever go on with it.
    let first = w
        .api
        .stack
        .work_once()
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(first.received, 1);
    w.api
        .aws
        .sqs()
        .purge_queue()
        .queue_url(&w.api.aws.provisioned.sync_queue_url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let partly = w.rows("orders").await.len();
    assert!(
        partly > 0 && partly < 250,
        "the run was cut off after {partly} orders"
    );
    let open: Vec<Value> = w.runs("status=running").await;
    assert_eq!(open.len(), 1, "{open:#?}");
    let lost = open[0]["id"].as_str().unwrap_or_default().to_string();
    // Before the run has been quiet for long enough, the sweeper leaves it alone.
    let early = w
        .api
        .stack
        .sweep_once()
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(early["counts"]["abandoned"], 0, "{early}");
    // Its lease runs out and nothing writes it: abandoned, and its work queued again.
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    let swept = w
        .api
        .stack
        .sweep_once()
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(swept["counts"]["abandoned"], 1, "{swept}");
    let redo = swept["abandoned"][0]["redo_run_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let ended = run(&w, &lost).await;
    assert_eq!(ended["status"], "failed", "{ended}");
    let message = ended["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("abandoned"), "{message}");
    assert!(message.contains(&redo), "{message}");
    assert_eq!(run(&w, &redo).await["status"], "queued");
    w.work().await;
    let redone = run(&w, &redo).await;
    assert_eq!(redone["status"], "succeeded", "{redone}");
    assert_eq!(redone["trigger"], "retry");
    assert_eq!(redone["sync_mode"], "full");
    assert_orders_match(&w).await;
    // Nothing is left open, and the next sweep has nothing to do.
    assert!(w.runs("status=running").await.is_empty());
    assert!(w.runs("status=queued").await.is_empty());
    let again = w
        .api
        .stack
        .sweep_once()
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(again["counts"]["abandoned"], 0, "{again}");
}

/// A receiver of alert notices on loopback, and its URL.
async fn receiver(
    kind: platform_sims::receiver::Kind,
) -> (std::sync::Arc<platform_sims::receiver::Receiver>, String) {
    let receiver = platform_sims::receiver::Receiver::new(kind);
    let (url, _task) = platform_sims::server::start(0, receiver.clone())
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    (receiver, url)
}

/// Works the queues empty, then sweeps once, which must go without an error.
async fn work_and_sweep(w: &SyncWorld) {
    w.work().await;
    let swept = w
        .api
        .stack
        .sweep_once()
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(swept["errors"], json!([]), "{swept}");
}

/// The tenant's alerts of `status` (`open` or `resolved`).
async fn alerts(w: &SyncWorld, status: &str) -> Vec<Value> {
    let got = w.get(&format!("/api/alerts?status={status}")).await;
    got["alerts"].as_array().cloned().unwrap_or_default()
}

/// The same as `(kind, count)`, sorted.
async fn alert_kinds(w: &SyncWorld, status: &str) -> Vec<(String, u64)> {
    let mut kinds: Vec<(String, u64)> = alerts(w, status)
        .await
        .iter()
        .map(|a| {
            (
                a["kind"].as_str().unwrap_or_default().to_string(),
                a["count"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    kinds.sort();
    kinds
}

#[tokio::test]
async fn a_schedule_that_keeps_failing_is_alerted_once_per_condition_paused_and_each_recovery_told_once_on_slack_a_signed_webhook_and_sns(
) {
    // (A resolution is told once the condition has stayed clear for the flap period: none
    // here, so the sweep after the recovery tells it.)
    let w = sync_world_with(
        seed(5),
        vec![("ALERT_FLAP_MINUTES".to_string(), "0".to_string())],
    )
    .await;
    w.flow(&w.store, &w.project, &["orders"]).await;
    w.work().await;
    let (slack, slack_url) = receiver(platform_sims::receiver::Kind::Slack).await;
    let (hook, hook_url) =
        receiver(platform_sims::receiver::Kind::Webhook(Default::default())).await;
    // SNS: a queue subscribed to the deployment's alert topic sees what is published.
    let aws = &w.api.aws;
    let sqs = aws.sqs();
    let watch = sqs
        .create_queue()
        .queue_name(format!("alerts-watch-{}", uuid::Uuid::new_v4().simple()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let watch_url = watch.queue_url().unwrap_or_default().to_string();
    let watch_arn = sqs
        .get_queue_attributes()
        .queue_url(&watch_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .ok()
        .and_then(|a| {
            a.attributes().and_then(|m| {
                m.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                    .cloned()
            })
        })
        .unwrap_or_default();
    aws_sdk_sns::Client::new(&aws.sdk)
        .subscribe()
        .topic_arn(&aws.provisioned.alert_topic_arn)
        .protocol("sqs")
        .endpoint(&watch_arn)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut secret = String::new();
    for body in [
        json!({"kind": "slack", "name": "ops channel", "url": format!("{slack_url}/services/T0/B0/x")}),
        json!({"kind": "webhook", "name": "pager", "url": format!("{hook_url}/alerts")}),
        json!({"kind": "sns"}),
    ] {
        let (status, made) = w
            .api
            .send(
                Method::POST,
                "/api/alerts/destinations",
                Some("acme"),
                Some(body),
            )
            .await;
        assert_eq!(status, reqwest::StatusCode::CREATED, "{made}");
        if let Some(s) = made["secret"].as_str() {
            secret = s.to_string();
        }
    }
    hook.set_secret(&secret);
    // A schedule (of a fire time not due in the test) that pauses itself after 4 failed
    // runs in a row, run now again and again while the store refuses the credentials.
    let schedule = orders_schedule(
        &w,
        json!({"cron_expression": "0 9 1 1 *", "auto_pause_after_failures": 4}),
    )
    .await;
    let path = format!("/api/sync/schedules/{schedule}");
    w.store_admin(Method::POST, "faults", json!({"status": 401, "count": -1}))
        .await;
    let run_now = || async {
        let (status, queued) = w
            .api
            .send(Method::POST, &format!("{path}/run"), Some("acme"), None)
            .await;
        assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{queued}");
        work_and_sweep(&w).await;
    };
    for _ in 0..4 {
        run_now().await;
    }
    // One issue per condition, each counting what it saw, each told once.
    assert_eq!(
        alert_kinds(&w, "open").await,
        [
            ("auto_paused".to_string(), 1),
            ("failing_schedule".to_string(), 1),
            ("run_failed".to_string(), 4)
        ]
    );
    let (_, paused) = w.api.send(Method::GET, &path, Some("acme"), None).await;
    assert_eq!(paused["is_active"], false, "{paused}");
    assert_eq!(paused["consecutive_failures"], 4, "{paused}");
    assert!(
        paused["pause_note"]
            .as_str()
            .is_some_and(|n| n.contains("4 failed runs")),
        "{paused}"
    );
    assert_eq!(slack.taken().len(), 3);
    assert!(
        slack.taken()[0].body["text"]
            .as_str()
            .unwrap_or_default()
            .contains("acme"),
        "{:?}",
        slack.taken()
    );
    let told = hook.taken();
    assert_eq!(told.len(), 3);
    assert!(told
        .iter()
        .all(|t| t.verified == Some(true) && t.body["event"] == "open"));
    let first = &told[0];
    assert!(first.body["link"]
        .as_str()
        .unwrap_or_default()
        .starts_with(&w.api.url("/api/sync/runs/")));
    // The store takes the credentials again and a person resumes the schedule: its next
    // run succeeds and every condition clears, each told once more.
    w.store_admin(Method::POST, "faults", json!({"status": null, "count": 0}))
        .await;
    let (status, resumed) = w
        .api
        .send(
            Method::PUT,
            &path,
            Some("acme"),
            Some(json!({"is_active": true})),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{resumed}");
    run_now().await;
    w.api
        .stack
        .sweep_once()
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(alert_kinds(&w, "open").await, []);
    assert_eq!(alert_kinds(&w, "resolved").await.len(), 3);
    assert_eq!(slack.taken().len(), 6);
    let told = hook.taken();
    assert_eq!(told.len(), 6);
    assert!(told[3..]
        .iter()
        .all(|t| t.verified == Some(true) && t.body["event"] == "resolved"));
    let published = sqs
        .receive_message()
        .queue_url(&watch_url)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let messages: Vec<Value> = published
        .messages()
        .iter()
        .filter_map(|m| serde_json::from_str(m.body().unwrap_or_default()).ok())
        .collect();
    assert_eq!(messages.len(), 6, "{messages:?}");
    assert_eq!(
        messages[0]["MessageAttributes"]["tenant_id"]["Value"], "acme",
        "{messages:?}"
    );
}

#[tokio::test]
async fn polls_that_find_changes_no_webhook_brought_open_one_webhooks_silent_alert_told_once() {
    use chrono::{Duration, SecondsFormat, Utc};
    use sync_core::ports::WebhookArrivals;
    let w = sync_world(seed(5)).await;
    w.flow(&w.store, &w.project, &["orders"]).await;
    w.work().await;
    let (hook, hook_url) =
        receiver(platform_sims::receiver::Kind::Webhook(Default::default())).await;
    let (status, made) = w
        .api
        .send(
            Method::POST,
            "/api/alerts/destinations",
            Some("acme"),
            Some(json!({"kind": "webhook", "name": "pager", "url": format!("{hook_url}/alerts")})),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{made}");
    hook.set_secret(made["secret"].as_str().unwrap_or_default());
    // The store's connection takes webhooks (since three hours ago), and its orders' last
    // webhook arrived two hours ago: since then the store has sent none.
    let (status, got) = w
        .api
        .send(
            Method::PUT,
            &format!("/api/connections/{}", w.store),
            Some("acme"),
            Some(json!({"webhooks_enabled": true})),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{got}");
    let now = Utc::now();
    let aws = &w.api.aws;
    aws.dynamodb()
        .update_item()
        .table_name(&aws.resources.table_name)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("CONNECTION#{}", w.store)),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("CONNECTION".into()),
        )
        .update_expression("SET updated_at = :then")
        .expression_attribute_values(
            ":then",
            aws_sdk_dynamodb::types::AttributeValue::S(
                (now - Duration::hours(3)).to_rfc3339_opts(SecondsFormat::Millis, true),
            ),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let key = sync_core::ports::SyncKey {
        connection: w.store.parse().unwrap_or_else(|e| panic!("{e}")),
        entity: sync_core::domain::EntityType::Orders,
    };
    sync_aws::DynamoWebhookArrivals::new(aws.dynamodb(), aws.resources.table_name.clone())
        .arrived(key, now - Duration::hours(2))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // A plugin's batch job changed every order half an hour ago, and later again, with no
    // webhook; the stream's cursor is set back an hour so that its polls read them.
    let (status, set) = w
        .api
        .send(
            Method::POST,
            "/api/sync/resync",
            Some("acme"),
            Some(json!({"connection_id": w.store, "entity_type": "orders",
                        "cursor": (now - Duration::hours(1)).to_rfc3339()})),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{set}");
    for (minutes_ago, currency) in [(30, "EUR"), (20, "GBP")] {
        w.store_admin(
            Method::POST,
            "touch/orders",
            json!({"set": {"currency": currency},
                   "at": (now - Duration::minutes(minutes_ago)).to_rfc3339()}),
        )
        .await;
        // WHEN a poll runs
        w.enqueue(&w.job(&w.store, "orders", SyncMode::Incremental, &[]))
            .await;
        work_and_sweep(&w).await;
    }
    // THEN the stream's webhooks_silent alert is open, raised by both polls, told once
    let silent: Vec<Value> = alerts(&w, "open")
        .await
        .into_iter()
        .filter(|a| a["kind"] == "webhooks_silent")
        .collect();
    assert_eq!(silent.len(), 1, "{silent:#?}");
    assert_eq!(silent[0]["subject"], format!("stream:{}/orders", w.store));
    assert_eq!(silent[0]["count"], 2, "{silent:#?}");
    assert!(
        silent[0]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("no webhook had brought")),
        "{silent:#?}"
    );
    let told = hook.taken();
    assert_eq!(told.len(), 1, "{told:#?}");
    assert_eq!(told[0].verified, Some(true));
    assert_eq!(told[0].body["event"], "open");
}

// Fault injection end to end: the worker, in a process of its own, killed with SIGKILL at
// random points of a large backfill while the platforms and AWS fail at a steady rate.

/// Seeds of the killed-worker runs: `KILL_SEEDS` (comma-separated) reruns chosen ones.
/// The test command runs one (each takes minutes on a loaded machine, and the whole command
/// is to stay under 45); `./infra/bench.sh faults` runs five, with more orders.
fn kill_seeds() -> Vec<u64> {
    std::env::var("KILL_SEEDS")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![23])
}

/// Orders in the store of each killed-worker run (`KILL_ORDERS`).
fn kill_orders() -> usize {
    integration_tests::env_size("KILL_ORDERS", 1_000)
}

/// A small deterministic generator (xorshift), so that a seed replays the same kills.
struct Dice(u64);

impl Dice {
    fn between(&mut self, low: u64, high: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        low + self.0 % (high - low)
    }
}

/// The worker's handler in a process of its own (`src/bin/worker_process.rs`), configured
/// as the stack's worker is, reaching AWS at `endpoint`; its log goes to `log`.
fn worker_process(w: &SyncWorld, endpoint: &str, log: &std::path::Path) -> std::process::Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    std::process::Command::new(env!("CARGO_BIN_EXE_worker-process"))
        .envs(w.api.stack.environment())
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("VISIBILITY_SECONDS", "3")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("worker process: {e}"))
}

/// Jobs on the sync queue, visible, in flight or delayed.
async fn jobs_waiting(w: &SyncWorld) -> u64 {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let got = w
        .api
        .aws
        .sqs()
        .get_queue_attributes()
        .queue_url(&w.api.aws.resources.sync_queue_url)
        .attribute_names(A::All)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    [
        A::ApproximateNumberOfMessages,
        A::ApproximateNumberOfMessagesNotVisible,
        A::ApproximateNumberOfMessagesDelayed,
    ]
    .iter()
    .map(|name| {
        got.attributes()
            .and_then(|a| a.get(name))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    })
    .sum()
}

/// One killed-worker run; panics on the first thing that is not as it must be. What it
/// did, as a row of the report's table.
async fn sync_through_kills_and_faults(seed: u64) -> String {
    use platform_sims::server::{Fault, Handler};
    let mut dice = Dice(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let orders = kill_orders();
    let w = sync_world_with(
        Seed {
            products: 5,
            customers: 5,
            orders,
            seed,
        },
        vec![
            ("LEASE_SECONDS".into(), "2".into()),
            ("TIME_BUDGET_MS".into(), "2000".into()),
            ("HTTP_ATTEMPTS".into(), "6".into()),
            // The sweeper (run below as on its schedule) finds a run whose job the queue
            // gave up on (a job killed or failed five times goes to the dead-letter queue).
            ("STALE_AFTER_SECONDS".into(), "8".into()),
            ("STREAM_QUIET_SECONDS".into(), "2".into()),
        ],
    )
    .await;
    let (proxy, endpoint, _serving) =
        platform_sims::aws_proxy::AwsProxy::start(&integration_tests::moto().endpoint())
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
    // Steady faults: the store throttles, fails and resets connections; the project fails;
    // DynamoDB and SQS answer 500 (after the SDK's own retries some reach the adapters).
    let fault = |status: Option<u16>, one_in: u64| Fault {
        status,
        drop: status.is_none(),
        retry_after: (status == Some(429)).then(|| "0".to_string()),
        count: -1,
        one_in,
        ..Fault::default()
    };
    w.woo.faults().set(fault(Some(429), 11));
    w.woo.faults().add(fault(Some(500), 13));
    w.woo.faults().add(fault(None, 17));
    w.rest.faults().set(fault(Some(503), 9));
    w.rest.faults().add(fault(None, 19));
    let aws_fault = |target: &str, one_in: u64, count: i64| Fault {
        target: Some(target.into()),
        count,
        ..fault(Some(500), one_in)
    };
    proxy.faults().add(aws_fault("DynamoDB_20120810.", 50, -1));
    proxy.faults().add(aws_fault("AmazonSQS.", 10, -1));
    w.flow(&w.store, &w.project, &["orders"]).await;

    let log = std::env::temp_dir().join(format!("worker-process-{seed}.log"));
    let began = std::time::Instant::now();
    // Each kill lands while orders are still to be written (a sync that ended stops them).
    let mut kills = 0;
    for _ in 0..dice.between(3, 6) {
        let mut worker = worker_process(&w, &endpoint, &log);
        tokio::time::sleep(std::time::Duration::from_millis(dice.between(200, 1_500))).await;
        // Now and then a burst of DynamoDB failures outlasting the SDK's three tries: the
        // adapters see them.
        if dice.between(0, 2) == 0 {
            proxy.faults().add(aws_fault(
                "DynamoDB_20120810.",
                1,
                dice.between(3, 5) as i64,
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(dice.between(200, 1_500))).await;
        let written = w.rows("orders").await.len();
        // `kill` is SIGKILL: no destructor, no flush, no goodbye.
        worker.kill().unwrap_or_else(|e| panic!("{e}"));
        let _ = worker.wait();
        if written == orders {
            break;
        }
        kills += 1;
    }
    assert!(
        kills > 0,
        "the sync ended before the first kill: the kills proved nothing"
    );
    let killed_at = w.rows("orders").await.len();

    // One last worker, left alone until nothing waits on the queue or runs.
    let mut worker = worker_process(&w, &endpoint, &log);
    let started = std::time::Instant::now();
    let mut quiet = 0;
    while quiet < 3 {
        if started.elapsed() > std::time::Duration::from_secs(240) {
            let runs = w.runs("limit=100").await;
            panic!(
                "the sync never settled: {} jobs wait, {} of {orders} orders written, runs {runs:#?} (log: {})",
                jobs_waiting(&w).await,
                w.rows("orders").await.len(),
                log.display()
            );
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        w.api
            .stack
            .sweep_once()
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        let open = w
            .runs("limit=100")
            .await
            .iter()
            .any(|r| r["status"] == "queued" || r["status"] == "running");
        quiet = if jobs_waiting(&w).await == 0 && !open {
            quiet + 1
        } else {
            0
        };
    }
    worker.kill().unwrap_or_else(|e| panic!("{e}"));
    let _ = worker.wait();
    assert!(
        proxy.faults().injected() > 0 && w.woo.faults().injected() > 0,
        "no fault was injected"
    );

    // Every order once, as the store has it.
    w.woo.faults().clear();
    w.rest.faults().clear();
    assert_orders_match(&w).await;
    // Every run ended: it succeeded, or it was abandoned after its job went to the
    // dead-letter queue and a run that succeeded did its work again. The runs show the
    // retries the kills caused.
    let runs = w.runs("limit=100").await;
    for run in &runs {
        if run["status"] != "succeeded" {
            let message = run["message"].as_str().unwrap_or_default();
            assert!(
                run["status"] == "failed" && message.contains("abandoned"),
                "{run:#}"
            );
            let redo = runs.iter().find(|r| {
                r["id"]
                    .as_str()
                    .is_some_and(|id| message.contains(&format!("run {id} ")))
            });
            assert_eq!(
                redo.map(|r| r["status"].clone()),
                Some(json!("succeeded")),
                "{run:#}"
            );
        }
    }
    let tries: u64 = runs
        .iter()
        .map(|r| r["attempts"].as_u64().unwrap_or(0) + r["continuations"].as_u64().unwrap_or(0))
        .sum();
    assert!(tries > runs.len() as u64, "no retry shows: {runs:#?}");
    // The cursor stands at the newest order.
    let newest = w
        .woo
        .all(Kind::Orders)
        .iter()
        .filter_map(|o| o["date_modified_gmt"].as_str().map(str::to_string))
        .max()
        .unwrap_or_default();
    let cursor = w.cursor(&w.store, "orders").await;
    assert_eq!(
        cursor.map(|c| c.stamp.format("%Y-%m-%dT%H:%M:%S").to_string()),
        Some(newest),
        "the stream's cursor"
    );
    let sum = |field: &str| -> u64 { runs.iter().map(|r| r[field].as_u64().unwrap_or(0)).sum() };
    format!(
        "| {seed} | {orders} | {kills} | {killed_at} | {} | {} | {} | {} | {} | {} | {:.0} |",
        w.woo.faults().injected() + w.rest.faults().injected(),
        proxy.faults().injected(),
        runs.len(),
        sum("attempts"),
        sum("continuations"),
        runs.iter().filter(|r| !r["redone_by"].is_null()).count(),
        began.elapsed().as_secs_f64()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_at_random_points_under_platform_and_aws_faults_leaves_every_order_once() {
    use futures::FutureExt;
    let mut report = String::from(
        "| seed | orders | kills | orders written before the last worker | platform faults | AWS faults | runs | attempts | continuations | runs abandoned and redone | seconds |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for seed in kill_seeds() {
        let outcome = std::panic::AssertUnwindSafe(sync_through_kills_and_faults(seed))
            .catch_unwind()
            .await;
        match outcome {
            Ok(row) => {
                report.push_str(&row);
                report.push('\n');
            }
            Err(panic) => {
                let why = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                panic!("seed {seed} failed (rerun it with KILL_SEEDS={seed}): {why}");
            }
        }
    }
    eprintln!("{report}");
    if let Ok(path) = std::env::var("KILL_REPORT") {
        std::fs::write(&path, report).unwrap_or_else(|e| panic!("{path}: {e}"));
    }
}
