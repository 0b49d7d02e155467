//! The sync engine, measured: `woocommerce → supabase` orders, reading the store simulator
//! and writing a real PostgreSQL through the PostgREST layer, over HTTP; and
//! `woocommerce → quickbooks` orders into the QuickBooks simulator (part 5).
//!
//! 1. Orders per second of a full sync by the worker use case with its AWS side replaced by
//!    zero-latency in-memory stubs (leases, runs, flows, connections; a record index that
//!    keeps nothing, which is what a first backfill reads from it anyway), with the
//!    simulators answering at once and with 50 ms added to every platform call.
//! 2. The same through the whole local stack: the worker's Lambda handler fed from moto's
//!    SQS, its state in moto's DynamoDB. moto answers one request at a time from one Python
//!    process, so this figure is moto's, not the worker's; it is printed for comparison.
//! 3. Platform calls per 1,000 orders, against the least the platforms allow: 10 pages of
//!    100 from WooCommerce; one upsert per page written (the engine commits page by page).
//! 4. Memory while syncing many orders (part 1's setup): this process's resident set,
//!    sampled every 100 ms. The simulators run in this process and hold their data from
//!    before the sync starts, so what is reported is the growth over the resident set just
//!    before the sync: the worker's working set plus the PostgREST layer's.
//!
//! 5. `woocommerce → quickbooks`: orders per second (AWS stubbed as in part 1) at zero
//!    latency and at 50 ms per platform call, QuickBooks calls per 1,000 orders against the
//!    least batching allows, and the peak growth of the resident set.
//!
//! Run with `cargo bench -p integration-tests --bench sync` (`SYNC_BENCH_BIG_ORDERS` sets
//! part 4's size, default 100000; `SYNC_BENCH_ONLY=quickbooks` runs part 5 alone). Figures
//! from a shared machine are orders of magnitude.

use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use integration_tests::platforms::sync_world;
use platform_sims::woo::Seed;
use serde_json::{json, Value};
use sync_core::clock::{Clock, SystemClock};
use sync_core::domain::{
    ConflictPolicy, Connection, ConnectionId, EntityType, Flow, FlowId, NewConnection, Platform,
    Secret, SyncJob, SyncMode, TenantId, Trigger,
};
use sync_core::memory::{MemoryFlows, MemoryRuns, MemorySyncLeases, MemoryTokenVault};
use sync_core::platforms::http::RetryPolicy;
use sync_core::ports::{RecordIndex, RecordState, RecordUpdate, StateError};
use sync_core::service::sync::{JobOutcome, SyncWorker, WorkerPorts, WorkerSettings};
use sync_core::service::{PlatformConnectors, Services};

fn seed(orders: usize) -> Seed {
    Seed {
        products: 20,
        customers: 20,
        orders,
        seed: 11,
    }
}

/// A record index that keeps nothing: every record reads as not yet linked (true of a
/// first backfill), and updates are only counted.
#[derive(Default)]
struct FreshIndex {
    updates: AtomicUsize,
}

#[async_trait]
impl RecordIndex for FreshIndex {
    async fn get(
        &self,
        _connection: ConnectionId,
        _entity: EntityType,
        _ids: &[String],
    ) -> Result<HashMap<String, RecordState>, StateError> {
        Ok(HashMap::new())
    }

    async fn update(&self, updates: &[RecordUpdate]) -> Result<(), StateError> {
        self.updates.fetch_add(updates.len(), Ordering::Relaxed);
        Ok(())
    }

    async fn list(
        &self,
        _connection: ConnectionId,
        _entity: EntityType,
        _after: Option<&str>,
        _limit: usize,
    ) -> Result<(Vec<(String, RecordState)>, Option<String>), StateError> {
        Ok((Vec::new(), None))
    }
}

/// Calls a simulator counted, by "METHOD path".
async fn calls(http: &reqwest::Client, base: &str) -> Value {
    http.get(format!("{base}/__admin/calls"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default()
}

async fn admin(http: &reqwest::Client, base: &str, path: &str, body: Value) {
    http.post(format!("{base}/__admin/{path}"))
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
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

/// Where the benchmarked orders go.
#[derive(Clone, Copy, PartialEq, Eq)]
enum To {
    Supabase,
    QuickBooks,
}

/// The worker use case over zero-latency stubs, connected to the simulated platforms.
struct Stubbed {
    to: To,
    worker: SyncWorker,
    tenant: TenantId,
    store: Connection,
    platforms: infra::demo::Platforms,
    http: reqwest::Client,
}

async fn stubbed(orders: usize, to: To) -> Stubbed {
    let platforms = infra::demo::Platforms::start_seeded(seed(orders))
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let (services, mem) = Services::in_memory(clock.clone());
    let tenant = TenantId::parse("bench").unwrap_or_else(|e| panic!("{e}"));
    let connect = |platform, config: Value, secrets: Vec<(&str, String)>| NewConnection {
        platform,
        display_name: "bench".into(),
        config: config.as_object().cloned().unwrap_or_default(),
        secrets: secrets
            .into_iter()
            .map(|(k, v)| (k.to_string(), Secret::new(v)))
            .collect(),
        webhooks_enabled: Some(false),
    };
    let store = services
        .connections
        .create(
            &tenant,
            connect(
                Platform::WooCommerce,
                json!({"base_url": platforms.store_url}),
                vec![
                    ("consumer_key", platforms.consumer_key.clone()),
                    ("consumer_secret", platforms.consumer_secret.clone()),
                ],
            ),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let app = platforms.quickbooks.config().clone();
    let target = match to {
        To::Supabase => connect(
            Platform::Supabase,
            json!({"project_url": platforms.project_url}),
            vec![("service_key", platforms.service_key.clone())],
        ),
        To::QuickBooks => connect(
            Platform::QuickBooks,
            json!({"realm_id": app.realm_id, "api_url": platforms.quickbooks_url,
                   "token_url": format!("{}/oauth2/v1/tokens/bearer", platforms.quickbooks_url),
                   "income_account": "79"}),
            vec![
                ("client_id", app.client_id.clone()),
                ("client_secret", app.client_secret.clone()),
                ("refresh_token", platforms.quickbooks.grant()),
            ],
        ),
    };
    let project = services
        .connections
        .create(&tenant, target)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let flows = Arc::new(MemoryFlows::new(mem.connections.clone()));
    flows.seed(Flow {
        id: FlowId::new_random(),
        tenant_id: tenant.clone(),
        source_connection_id: store.id,
        target_connection_id: project.id,
        entities: vec![EntityType::Orders],
        conflict_policy: ConflictPolicy::SourceWins,
        doc_number_prefix: None,
        enabled: true,
        created_at: clock.now(),
        updated_at: clock.now(),
        version: 1,
    });
    let http = Arc::new(sync_http::ReqwestClient::new().unwrap_or_else(|e| panic!("{e}")));
    let worker = SyncWorker::new(
        WorkerPorts {
            connections: mem.connections.clone(),
            flows,
            connectors: Arc::new(
                PlatformConnectors::new(
                    mem.sealer.clone(),
                    http,
                    clock.clone(),
                    RetryPolicy::default(),
                )
                .with_tokens(Arc::new(MemoryTokenVault::default())),
            ),
            schedules: sync_core::service::FiredCheck::new(
                mem.schedules.clone(),
                mem.trigger.clone(),
            ),
            schedule_store: mem.schedules.clone(),
            leases: Arc::new(MemorySyncLeases::default()),
            index: Arc::new(FreshIndex::default()),
            failures: mem.failures.clone(),
            runs: Arc::new(MemoryRuns::default()),
            jobs: mem.queue.clone(),
            alerts: sync_core::service::AlertRaiser::new(mem.alerts.clone(), clock.clone()),
            clock,
        },
        WorkerSettings::default(),
    );
    Stubbed {
        to,
        worker,
        tenant,
        store,
        platforms,
        http: reqwest::Client::new(),
    }
}

impl Stubbed {
    async fn full_sync(&self) -> Duration {
        let job = SyncJob {
            job_id: uuid::Uuid::new_v4().to_string(),
            tenant_id: self.tenant.clone(),
            connection_id: self.store.id,
            platform: Platform::WooCommerce,
            entity_type: EntityType::Orders,
            sync_mode: SyncMode::Full,
            trigger: Trigger::Manual,
            triggered_at: chrono::Utc::now(),
            ids: Vec::new(),
            resume: None,
            attempt: 0,
            stands_for: Vec::new(),
            window: None,
            reported: Some(false),
        };
        let started = Instant::now();
        let outcome = self
            .worker
            .handle(job, chrono::Utc::now() + chrono::Duration::hours(2))
            .await;
        assert!(matches!(outcome, JobOutcome::Done), "{outcome:?}");
        started.elapsed()
    }

    /// The orders written: rows in PostgreSQL, or documents in QuickBooks.
    async fn rows(&self) -> i64 {
        if self.to == To::QuickBooks {
            let mut n = 0;
            for kind in ["SalesReceipt", "Invoice"] {
                let url = format!(
                    "{}/__admin/qbo/entities/{kind}",
                    self.platforms.quickbooks_url
                );
                let docs: Value = self
                    .http
                    .get(url)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("{e}"))
                    .json()
                    .await
                    .unwrap_or_default();
                n += docs.as_array().map_or(0, Vec::len) as i64;
            }
            return n;
        }
        let db = platform_sims::pg::connect(&self.platforms.database_url)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        db.query_one("select count(*) from public.orders", &[])
            .await
            .map(|r| r.get::<_, i64>(0))
            .unwrap_or(-1)
    }
}

fn report_calls(orders: usize, store: &Value, project: &Value) {
    let count = |calls: &Value, key: &str| calls[key].as_u64().unwrap_or(0);
    let per_k = |n: u64| n as f64 * 1000.0 / orders as f64;
    println!(
        "  calls per 1,000 orders: store reads {:.1} (least: 10), project upserts {:.1} (one per page written)",
        per_k(count(store, "GET /wp-json/wc/v3/orders")),
        per_k(count(project, "POST /rest/v1/orders")),
    );
}

async fn throughput_stubbed(orders: usize, latency_ms: u64) {
    let s = stubbed(orders, To::Supabase).await;
    for base in [&s.platforms.store_url, &s.platforms.project_url] {
        admin(&s.http, base, "faults", json!({ "latency_ms": latency_ms })).await;
        admin(&s.http, base, "calls/reset", json!({})).await;
    }
    let took = s.full_sync().await;
    assert_eq!(
        s.rows().await,
        orders as i64,
        "every order reached PostgreSQL"
    );
    println!(
        "worker use case, AWS stubbed: {orders} orders, {latency_ms} ms per platform call: {:.2} s, {:.0} orders/s",
        took.as_secs_f64(),
        orders as f64 / took.as_secs_f64()
    );
    let store = calls(&s.http, &s.platforms.store_url).await;
    let project = calls(&s.http, &s.platforms.project_url).await;
    report_calls(orders, &store, &project);
}

async fn throughput_moto(orders: usize) {
    let w = sync_world(seed(orders)).await;
    let started = Instant::now();
    w.flow(&w.store, &w.project, &["orders"]).await;
    w.work().await;
    let took = started.elapsed();
    assert_eq!(w.rows("orders").await.len(), orders);
    println!(
        "whole local stack (handler, moto's SQS and DynamoDB): {orders} orders: {:.1} s, {:.0} orders/s",
        took.as_secs_f64(),
        orders as f64 / took.as_secs_f64()
    );
}

/// The peak growth of the resident set (MiB) while `work` runs, sampled every 100 ms, and
/// the growth at 25/50/75/100% of it.
async fn sample_memory<F: std::future::Future>(work: F) -> (F::Output, f64, f64, [f64; 4]) {
    let before = rss_kib();
    let samples = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sampling = samples.clone();
    let sampler = tokio::spawn(async move {
        loop {
            if let Ok(mut v) = sampling.lock() {
                v.push(rss_kib());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let out = work.await;
    sampler.abort();
    let samples = samples.lock().map(|v| v.clone()).unwrap_or_default();
    let growth = |kib: u64| kib.saturating_sub(before) as f64 / 1024.0;
    let peak = samples.iter().copied().max().unwrap_or(before);
    let at = |fraction: f64| {
        let i = (samples.len().saturating_sub(1) as f64 * fraction) as usize;
        samples.get(i).copied().map(growth).unwrap_or(0.0)
    };
    (
        out,
        before as f64 / 1024.0,
        growth(peak),
        [at(0.25), at(0.5), at(0.75), at(1.0)],
    )
}

async fn memory(orders: usize) {
    let s = stubbed(orders, To::Supabase).await;
    let (took, before, peak, at) = sample_memory(s.full_sync()).await;
    let rows = s.rows().await;
    println!(
        "memory: {orders} orders synced in {:.1} s ({rows} rows); resident set before the sync {before:.0} MiB; growth over it at 25/50/75/100% of the run {:.1}/{:.1}/{:.1}/{:.1} MiB, peak growth {peak:.1} MiB",
        took.as_secs_f64(),
        at[0],
        at[1],
        at[2],
        at[3],
    );
}

/// `woocommerce → quickbooks` orders: throughput, calls per 1,000 orders, memory.
async fn quickbooks(orders: usize, latency_ms: u64) {
    let s = stubbed(orders, To::QuickBooks).await;
    let qbo = s.platforms.quickbooks_url.clone();
    for base in [&s.platforms.store_url, &qbo] {
        admin(&s.http, base, "faults", json!({ "latency_ms": latency_ms })).await;
        admin(&s.http, base, "calls/reset", json!({})).await;
    }
    let (took, _, peak, _) = sample_memory(s.full_sync()).await;
    let documents = s.rows().await;
    let live = s
        .platforms
        .store
        .all(platform_sims::woo::Kind::Orders)
        .iter()
        .filter(|o| !matches!(o["status"].as_str(), Some("cancelled" | "failed")))
        .count();
    assert_eq!(documents, live as i64, "one document per live order");
    let calls = calls(&s.http, &qbo).await;
    let accounting: u64 = calls
        .as_object()
        .map(|c| {
            c.iter()
                .filter(|(k, _)| k.contains("/v3/company/"))
                .map(|(_, v)| v.as_u64().unwrap_or(0))
                .sum()
        })
        .unwrap_or(0);
    let stats: Value = s
        .http
        .get(format!("{qbo}/__admin/qbo/stats"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default();
    println!("  QuickBooks operations: {}", stats["calls"]);
    let per_k = |n: u64| n as f64 * 1000.0 / orders as f64;
    // Least batching allows: every document in batches of 30, and one look-up call per page
    // of 100 orders (customers, items and documents found in one batch of queries).
    let least = (live as f64 / 30.0).ceil() + (orders as f64 / 100.0).ceil();
    println!(
        "woocommerce → quickbooks, AWS stubbed: {orders} orders ({live} documents), {latency_ms} ms per platform call: {:.2} s, {:.0} orders/s; QuickBooks calls per 1,000 orders {:.1} (least batching allows {:.1}); peak memory growth {peak:.1} MiB",
        took.as_secs_f64(),
        orders as f64 / took.as_secs_f64(),
        per_k(accounting),
        per_k(least as u64),
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let big: usize = std::env::var("SYNC_BENCH_BIG_ORDERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    // SYNC_BENCH_ONLY=quickbooks runs part 5 alone.
    if std::env::var("SYNC_BENCH_ONLY").as_deref() != Ok("quickbooks") {
        throughput_stubbed(10_000, 0).await;
        throughput_stubbed(2_000, 50).await;
        throughput_moto(1_000).await;
        memory(big).await;
    }
    quickbooks(2_000, 0).await;
    quickbooks(1_000, 50).await;
}
