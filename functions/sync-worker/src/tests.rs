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
use sync_core::service::ScheduleService;

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
            schedules: ScheduleService::new(
                mem.schedules.clone(),
                mem.trigger.clone(),
                mem.connections.clone(),
                clock.clone(),
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
        app: App { worker },
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
