//! The worker handler on `events/sync-worker-jobs.json`, with in-memory fakes behind it:
//! the sample WooCommerce connection as an in-memory store, a flow to a Supabase one.

use super::*;
use std::sync::Arc;
use sync_core::clock::{Clock, FixedClock};
use sync_core::domain::{
    ConflictPolicy, ConnectionId, EntityType, Flow, FlowId, Platform, RunStatus,
};
use sync_core::fixtures;
use sync_core::memory::{
    connection_fixture, MemoryConnectors, MemoryPlatform, MemoryRecordIndex, MemorySyncLeases,
    MemoryWorld,
};
use sync_core::records::{Body, Product};
use sync_core::service::sync::{WorkerPorts, WorkerSettings};

struct World {
    app: App,
    mem: MemoryWorld,
    woo: Arc<MemoryPlatform>,
    supabase: Arc<MemoryPlatform>,
}

fn world() -> World {
    let clock = Arc::new(FixedClock::new(
        chrono::DateTime::from_timestamp(1_795_543_200, 0).unwrap_or_default(),
    ));
    let mem = MemoryWorld::default();
    let tenant = fixtures::tenant();
    let mut a = connection_fixture(&tenant, Platform::WooCommerce);
    a.id = Platform::WooCommerce
        .module()
        .sample()
        .connection_id
        .parse::<ConnectionId>()
        .unwrap_or_else(|e| panic!("{e}"));
    let b = connection_fixture(&tenant, Platform::Supabase);
    mem.connections.seed(a.clone());
    mem.connections.seed(b.clone());
    let woo = Arc::new(MemoryPlatform::new(clock.clone(), 50));
    let supabase = Arc::new(MemoryPlatform::new(clock.clone(), 50));
    for id in ["16", "17"] {
        woo.put(
            EntityType::Products,
            id,
            Body::Product(Box::new(Product {
                sku: Some(format!("SKU-{id}")),
                name: "Mug".into(),
                ..Product::default()
            })),
        );
    }
    let connectors = Arc::new(MemoryConnectors::default());
    connectors.attach(a.id, woo.clone());
    connectors.attach(b.id, supabase.clone());
    mem.flows.seed(Flow {
        id: FlowId::new_random(),
        tenant_id: tenant,
        source_connection_id: a.id,
        target_connection_id: b.id,
        entities: vec![EntityType::Products],
        conflict_policy: ConflictPolicy::SourceWins,
        doc_number_prefix: None,
        enabled: true,
        created_at: clock.now(),
        updated_at: clock.now(),
        version: 1,
    });
    let worker = SyncWorker::new(
        WorkerPorts {
            connections: mem.connections.clone(),
            flows: mem.flows.clone(),
            connectors,
            schedules: sync_core::service::FiredCheck::new(
                mem.schedules.clone(),
                mem.trigger.clone(),
            ),
            schedule_store: mem.schedules.clone(),
            leases: Arc::new(MemorySyncLeases::default()),
            index: Arc::new(MemoryRecordIndex::default()),
            failures: mem.failures.clone(),
            runs: mem.runs.clone(),
            jobs: mem.queue.clone(),
            alerts: sync_core::service::AlertRaiser::new(mem.alerts.clone(), clock.clone()),
            clock,
        },
        WorkerSettings::default(),
    );
    World {
        app: App {
            worker,
            metrics_namespace: "SyncService".into(),
        },
        mem,
        woo,
        supabase,
    }
}

fn sample() -> LambdaEvent<SqsEvent> {
    let bytes = fixtures::event_file("sync-worker-jobs.json").unwrap_or_else(|e| panic!("{e}"));
    let event: SqsEvent = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{e}"));
    LambdaEvent::new(event, Context::default())
}

#[tokio::test]
async fn the_sample_batch_runs_its_jobs_and_drops_what_is_not_a_job() {
    let w = world();
    let response = handle(&w.app, sample())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_eq!(w.supabase.live(EntityType::Products).len(), 2);
    let runs = w.mem.runs.all();
    assert_eq!(runs.len(), 2, "{runs:#?}");
    assert!(runs.iter().all(|r| r.status == RunStatus::Succeeded));
}

#[tokio::test]
async fn jobs_that_may_succeed_later_are_handed_back_to_the_queue_one_by_one() {
    let w = world();
    w.woo.fail_next(usize::MAX);
    let response = handle(&w.app, sample())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    failed.sort();
    assert_eq!(
        failed,
        [
            "5b4a1f0e-0001-4c1d-9e3a-000000000001",
            "5b4a1f0e-0002-4c1d-9e3a-000000000002"
        ]
    );
}

/// The sample batch as the queue delivers it for the `receive`th time.
fn sample_received(receive: u32) -> LambdaEvent<SqsEvent> {
    let mut event = sample();
    for record in &mut event.payload.records {
        record
            .attributes
            .insert("ApproximateReceiveCount".into(), receive.to_string());
    }
    event
}

#[tokio::test]
async fn a_failure_is_alerted_only_on_the_queues_last_receive_of_its_job() {
    let w = world();
    w.woo.fail_next(usize::MAX);
    for receive in 1..sync_core::ports::MAX_RECEIVES {
        handle(&w.app, sample_received(receive))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(w.mem.alerts.all().is_empty(), "receive {receive}");
    }
    handle(&w.app, sample_received(sync_core::ports::MAX_RECEIVES))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let alerts = w.mem.alerts.all();
    assert!(!alerts.is_empty());
    assert!(alerts
        .iter()
        .all(|a| a.kind == sync_core::domain::AlertKind::RunFailed));
}

#[tokio::test]
async fn the_runs_of_a_batch_are_counted_for_its_metrics_line() {
    let w = world();
    for job in sample().payload.records {
        let job = serde_json::from_str(job.body.as_deref().unwrap_or_default());
        if let Ok(job) = job {
            w.app
                .worker
                .handle(job, chrono::Utc::now() + chrono::Duration::minutes(5))
                .await;
        }
    }
    let counts = w.app.worker.take_counts();
    assert_eq!(counts.succeeded, 2);
    assert_eq!(counts.records_written, 2);
    assert_eq!(w.app.worker.take_counts(), Default::default(), "taken");
    let line: serde_json::Value = serde_json::from_str(&crate::metrics(
        "SyncService/test",
        &counts,
        chrono::Utc::now(),
    ))
    .unwrap_or_default();
    assert_eq!(line["Function"], "SyncWorker");
    assert_eq!(line["RunsSucceeded"], 2.0);
    assert_eq!(line["RunsFailed"], 0.0);
    assert_eq!(line["RecordsWritten"], 2.0);
    assert_eq!(
        line["_aws"]["CloudWatchMetrics"][0]["Namespace"],
        "SyncService/test"
    );
}

#[tokio::test]
async fn the_alerts_a_batchs_runs_raise_are_counted_for_its_metrics_line() {
    let w = world();
    w.woo.fail_next(usize::MAX);
    let mut failing = 0;
    for job in sample().payload.records {
        let job = serde_json::from_str(job.body.as_deref().unwrap_or_default());
        if let Ok(job) = job {
            failing += 1;
            w.app
                .worker
                .handle_delivery(
                    job,
                    chrono::Utc::now() + chrono::Duration::minutes(5),
                    sync_core::ports::MAX_RECEIVES,
                )
                .await;
        }
    }
    let counts = w.app.worker.take_counts();
    assert_eq!(counts.failed, failing);
    assert_eq!(counts.alerts_raised, failing, "{counts:?}");
    assert_eq!(w.app.worker.take_counts().alerts_raised, 0, "taken");
    let line: serde_json::Value = serde_json::from_str(&crate::metrics(
        "SyncService/test",
        &counts,
        chrono::Utc::now(),
    ))
    .unwrap_or_default();
    assert_eq!(line["AlertsRaised"], failing as f64);
}
