//! Sync end to end: the worker's own handler fed by the sync queue as Lambda's event source
//! mapping feeds it, against the WooCommerce store simulator and a real PostgreSQL behind
//! the PostgREST layer.

use integration_tests::platforms::sync_world;
use platform_sims::woo::{Kind, Seed};

#[tokio::test]
async fn a_new_flow_backfills_every_order_customer_and_product_into_postgresql() {
    let w = sync_world(Seed {
        products: 12,
        customers: 9,
        orders: 30,
        seed: 7,
    })
    .await;
    w.flow(&w.store, &w.project, &["orders", "customers", "products"])
        .await;
    assert!(w.work().await >= 1);
    for (table, kind) in [
        ("orders", Kind::Orders),
        ("customers", Kind::Customers),
        ("products", Kind::Products),
    ] {
        let rows = w.rows(table).await;
        assert_eq!(rows.len(), w.woo.all(kind).len(), "{table}: {rows:?}");
    }
    let runs = w.runs("limit=20").await;
    assert!(runs.iter().all(|r| r["status"] == "succeeded"), "{runs:#?}");
}
