//! The sync engine, measured end to end: `woocommerce → supabase` orders through the
//! worker's own handler (fed from moto's SQS as Lambda's event source would), reading the
//! store simulator and writing a real PostgreSQL through the PostgREST layer.
//!
//! 1. Orders per second of a full sync, with the simulators answering at once and with
//!    50 ms added to every platform call.
//! 2. Platform calls per 1,000 orders, against the least the platforms allow: 10 pages of
//!    100 from WooCommerce and one upsert per chunk to PostgREST.
//! 3. Memory: the process's resident set sampled while syncing many orders. The simulators
//!    run in this process too and hold their data from before the sync starts, so what is
//!    reported is the growth over the resident set just before the sync (the worker's and
//!    the PostgREST layer's working set), sampled every 100 ms, with the peak.
//!
//! Run with `cargo bench -p integration-tests --bench sync` (set `SYNC_BENCH_BIG_ORDERS` to
//! change the size of part 3, default 100000). Figures from a shared machine are orders of
//! magnitude; compare runs on one machine.

use std::time::{Duration, Instant};

use integration_tests::platforms::{sync_world, SyncWorld};
use platform_sims::woo::Seed;
use serde_json::{json, Value};

fn seed(orders: usize) -> Seed {
    Seed {
        products: 20,
        customers: 20,
        orders,
        seed: 11,
    }
}

/// Calls the simulator counted, by "METHOD path".
async fn calls(http: &reqwest::Client, base: &str) -> Value {
    http.get(format!("{base}/__admin/calls"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default()
}

fn count(calls: &Value, key: &str) -> u64 {
    calls[key].as_u64().unwrap_or(0)
}

/// Resident set of this process, in KiB (Linux).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

async fn full_sync(w: &SyncWorld) -> Duration {
    let started = Instant::now();
    w.flow(&w.store, &w.project, &["orders"]).await;
    w.work().await;
    started.elapsed()
}

async fn throughput(orders: usize, latency_ms: u64) {
    let w = sync_world(seed(orders)).await;
    for base in [&w.woo_url, &w.rest_url] {
        w.api
            .http
            .post(format!("{base}/__admin/faults"))
            .json(&json!({ "latency_ms": latency_ms }))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        w.api
            .http
            .post(format!("{base}/__admin/calls/reset"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let took = full_sync(&w).await;
    let rows = w.rows("orders").await.len();
    assert_eq!(rows, orders, "every order reached PostgreSQL");
    let store = calls(&w.api.http, &w.woo_url).await;
    let project = calls(&w.api.http, &w.rest_url).await;
    let reads = count(&store, "GET /wp-json/wc/v3/orders");
    let upserts = count(&project, "POST /rest/v1/orders");
    let project_reads = count(&project, "GET /rest/v1/orders");
    let per_k = |n: u64| n as f64 * 1000.0 / orders as f64;
    println!(
        "woocommerce → supabase, {orders} orders, {latency_ms} ms per call: {:.1} s, {:.0} orders/s",
        took.as_secs_f64(),
        orders as f64 / took.as_secs_f64()
    );
    println!(
        "  calls per 1,000 orders: store reads {:.1} (least: 10), project upserts {:.1}, project reads {:.1}",
        per_k(reads),
        per_k(upserts),
        per_k(project_reads)
    );
    println!("  store calls: {store}");
    println!("  project calls: {project}");
}

async fn memory(orders: usize) {
    let w = sync_world(seed(orders)).await;
    let before = rss_kib();
    let samples = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sampling = samples.clone();
    let sampler = tokio::spawn(async move {
        loop {
            if let Ok(mut s) = sampling.lock() {
                s.push(rss_kib());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let took = full_sync(&w).await;
    sampler.abort();
    let rows = w.rows("orders").await.len();
    let samples = samples.lock().map(|s| s.clone()).unwrap_or_default();
    let growth = |kib: u64| kib.saturating_sub(before) as f64 / 1024.0;
    let peak = samples.iter().copied().max().unwrap_or(before);
    let at = |fraction: f64| {
        let i = ((samples.len().saturating_sub(1)) as f64 * fraction) as usize;
        samples.get(i).copied().map(growth).unwrap_or(0.0)
    };
    println!(
        "memory, {orders} orders synced in {:.1} s ({rows} rows): resident set before the sync {:.0} MiB; growth over it at 25/50/75/100% of the run {:.1}/{:.1}/{:.1}/{:.1} MiB, peak growth {:.1} MiB",
        took.as_secs_f64(),
        before as f64 / 1024.0,
        at(0.25),
        at(0.5),
        at(0.75),
        at(1.0),
        growth(peak)
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let big: usize = std::env::var("SYNC_BENCH_BIG_ORDERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    throughput(5_000, 0).await;
    throughput(1_000, 50).await;
    memory(big).await;
}
