//! Schedule use cases against in-memory fakes.

use super::*;
use crate::clock::FixedClock;
use crate::domain::{ConnectionId, EntityType, Platform, SyncMode};
use crate::memory::{
    connection_fixture, MemoryConnectionStore, MemoryScheduleStore, MemoryTrigger,
};

struct World {
    store: Arc<MemoryScheduleStore>,
    trigger: Arc<MemoryTrigger>,
    clock: Arc<FixedClock>,
    service: ScheduleService,
    tenant: TenantId,
    connections: Arc<MemoryConnectionStore>,
    /// A WooCommerce connection of `tenant`.
    woo: ConnectionId,
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn world() -> World {
    let store = Arc::new(MemoryScheduleStore::default());
    let trigger = Arc::new(MemoryTrigger::default());
    let clock = Arc::new(FixedClock::new(at("2026-11-24T12:00:00Z")));
    let connections = Arc::new(MemoryConnectionStore::default());
    let service = ScheduleService::new(
        store.clone(),
        trigger.clone(),
        connections.clone(),
        clock.clone(),
    );
    let tenant = TenantId::parse("tenant-a").unwrap_or_else(|e| panic!("{e}"));
    let woo = connection_fixture(&tenant, Platform::WooCommerce);
    let woo_id = woo.id;
    connections.seed(woo);
    World {
        store,
        trigger,
        clock,
        service,
        tenant,
        connections,
        woo: woo_id,
    }
}

fn new_schedule(w: &World, expr: &str) -> NewSchedule {
    NewSchedule {
        credential_id: w.woo,
        platform: Platform::WooCommerce,
        entity_type: EntityType::Orders,
        cron_expression: expr.to_string(),
        expression: ScheduleExpression::parse(expr).unwrap_or_else(|e| panic!("{e}")),
        sync_mode: SyncMode::Incremental,
        timezone: "America/Edmonton".parse().unwrap_or_else(|e| panic!("{e}")),
        is_active: true,
    }
}

async fn created(w: &World, expr: &str) -> Schedule {
    w.service
        .create(&w.tenant, new_schedule(w, expr))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn creating_a_schedule_stores_it_and_creates_its_trigger() {
    // GIVEN an empty world
    let w = world();
    // WHEN a schedule is created
    let s = created(&w, "0 9 * * 1-5").await;
    // THEN the store and the trigger both hold it
    assert_eq!(w.store.len(), 1);
    assert_eq!(
        w.trigger.get(s.id).map(|t| t.schedule_expression()),
        Some("cron(0 9 ? * MON-FRI *)".into())
    );
    assert_eq!(s.version, 1);
    assert_eq!(s.created_at, w.clock.now());
}

#[tokio::test]
async fn a_failed_trigger_create_leaves_nothing_stored() {
    let w = world();
    w.trigger.set_failing(true);
    let result = w
        .service
        .create(&w.tenant, new_schedule(&w, "@daily"))
        .await;
    assert!(
        matches!(result, Err(ServiceError::Unavailable(_))),
        "{result:?}"
    );
    assert!(w.store.is_empty(), "the stored half must be undone");
    assert!(w.trigger.is_empty());
}

#[tokio::test]
async fn a_failed_store_write_never_reaches_the_trigger() {
    let w = world();
    w.store.set_failing(true);
    let result = w
        .service
        .create(&w.tenant, new_schedule(&w, "@daily"))
        .await;
    assert!(matches!(result, Err(ServiceError::Unavailable(_))));
    assert!(w.trigger.is_empty());
}

#[tokio::test]
async fn an_expression_that_never_fires_is_refused_on_the_expression_field() {
    let w = world();
    let result = w
        .service
        .create(&w.tenant, new_schedule(&w, "0 0 31 2 *"))
        .await;
    assert!(
        matches!(
            &result,
            Err(ServiceError::Invalid { field, .. }) if field == "cron_expression"
        ),
        "{result:?}"
    );
    assert!(w.store.is_empty());
}

#[tokio::test]
async fn an_update_changes_both_sides_and_bumps_the_version() {
    let w = world();
    let s = created(&w, "@daily").await;
    w.clock.advance(chrono::Duration::minutes(5));
    let patch = SchedulePatch {
        cron_expression: Some((
            "*/30 * * * *".into(),
            ScheduleExpression::parse("*/30 * * * *").unwrap_or_else(|e| panic!("{e}")),
        )),
        is_active: Some(false),
        ..SchedulePatch::default()
    };
    let updated = w
        .service
        .update(&w.tenant, s.id, patch)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(updated.version, 2);
    assert_eq!(updated.updated_at, w.clock.now());
    assert_eq!(updated.created_at, s.created_at);
    let on_trigger = w
        .trigger
        .get(s.id)
        .unwrap_or_else(|| panic!("trigger missing"));
    assert_eq!(on_trigger.schedule_expression(), "cron(0,30 * * * ? *)");
    assert!(!on_trigger.is_active);
    // Fields the patch did not name are carried over to the trigger, not dropped.
    assert_eq!(on_trigger.sync_mode, s.sync_mode);
    assert_eq!(on_trigger.timezone, s.timezone);
    assert_eq!(on_trigger.credential_id, s.credential_id);
}

#[tokio::test]
async fn a_failed_trigger_update_restores_the_previous_schedule() {
    let w = world();
    let s = created(&w, "@daily").await;
    w.trigger.set_failing(true);
    let patch = SchedulePatch {
        sync_mode: Some(SyncMode::Full),
        ..SchedulePatch::default()
    };
    let result = w.service.update(&w.tenant, s.id, patch).await;
    assert!(matches!(result, Err(ServiceError::Unavailable(_))));
    w.trigger.set_failing(false);
    let stored = w
        .service
        .get(&w.tenant, s.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stored.sync_mode, SyncMode::Incremental);
    assert_eq!(stored.cron_expression, s.cron_expression);
    // The restore is a new write, so a stale reader still cannot overwrite it.
    assert!(stored.version > s.version);
    assert_eq!(
        w.trigger.get(s.id).map(|t| t.sync_mode),
        Some(SyncMode::Incremental)
    );
}

#[tokio::test]
async fn a_failed_trigger_delete_puts_the_schedule_back() {
    let w = world();
    let s = created(&w, "@daily").await;
    w.trigger.set_failing(true);
    let result = w.service.delete(&w.tenant, s.id).await;
    assert!(matches!(result, Err(ServiceError::Unavailable(_))));
    assert!(w.service.get(&w.tenant, s.id).await.is_ok());
    assert!(w.trigger.get(s.id).is_some());
}

#[tokio::test]
async fn deleting_removes_both_sides() {
    let w = world();
    let s = created(&w, "@daily").await;
    w.service
        .delete(&w.tenant, s.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(w.store.is_empty());
    assert!(w.trigger.is_empty());
    assert_eq!(
        w.service.delete(&w.tenant, s.id).await,
        Err(ServiceError::NotFound("schedule"))
    );
}

#[tokio::test]
async fn another_tenants_schedule_is_not_found() {
    let w = world();
    let s = created(&w, "@daily").await;
    let other = TenantId::parse("tenant-b").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        w.service.get(&other, s.id).await,
        Err(ServiceError::NotFound("schedule"))
    );
    assert_eq!(
        w.service.delete(&other, s.id).await,
        Err(ServiceError::NotFound("schedule"))
    );
    let patch = SchedulePatch {
        is_active: Some(false),
        ..SchedulePatch::default()
    };
    assert_eq!(
        w.service.update(&other, s.id, patch).await.err(),
        Some(ServiceError::NotFound("schedule"))
    );
    assert!(w.service.list(&other).await.unwrap_or_default().is_empty());
    assert_eq!(w.trigger.get(s.id).map(|t| t.is_active), Some(true));
}

#[tokio::test]
async fn next_run_follows_the_zone_and_is_empty_while_paused() {
    let w = world();
    // 2026-11-24 12:00Z is 05:00 in Edmonton (MST, UTC-7): the next 09:00 is 16:00Z today.
    let mut s = created(&w, "0 9 * * *").await;
    assert_eq!(
        s.next_run_at(w.clock.now()),
        Some(at("2026-11-24T16:00:00Z"))
    );
    s.is_active = false;
    assert_eq!(s.next_run_at(w.clock.now()), None);
}

#[test]
fn a_preview_is_capped_and_starts_after_the_given_time() {
    let w = world();
    let e = ScheduleExpression::parse("* * * * *").unwrap_or_else(|e| panic!("{e}"));
    let zone: Zone = "UTC".parse().unwrap_or_else(|e| panic!("{e}"));
    let p = w
        .service
        .preview(&e, zone, Some(at("2026-01-01T00:00:30Z")), 1_000);
    assert_eq!(p.next_runs.len(), MAX_PREVIEW_COUNT);
    assert_eq!(p.next_runs[0], at("2026-01-01T00:01:00Z"));
    assert_eq!(p.schedule_expression, "cron(* * * * ? *)");
}

#[tokio::test]
async fn a_schedule_must_name_one_of_the_tenants_connections_on_its_platform() {
    let w = world();
    // Unknown connection.
    let mut s = new_schedule(&w, "@daily");
    s.credential_id = ConnectionId::new_random();
    let r = w.service.create(&w.tenant, s).await;
    assert!(
        matches!(&r, Err(ServiceError::Invalid { field, .. }) if field == "credential_id"),
        "{r:?}"
    );
    // Another tenant's connection.
    let other = TenantId::parse("tenant-b").unwrap_or_else(|e| panic!("{e}"));
    let theirs = connection_fixture(&other, Platform::WooCommerce);
    let mut s = new_schedule(&w, "@daily");
    s.credential_id = theirs.id;
    w.connections.seed(theirs);
    let r = w.service.create(&w.tenant, s).await;
    assert!(
        matches!(&r, Err(ServiceError::Invalid { field, .. }) if field == "credential_id"),
        "{r:?}"
    );
    // The tenant's connection, but on another platform.
    let mut s = new_schedule(&w, "@daily");
    s.platform = Platform::QuickBooks;
    let r = w.service.create(&w.tenant, s).await;
    assert!(
        matches!(&r, Err(ServiceError::Invalid { field, message }) if field == "credential_id" && message.contains("woocommerce")),
        "{r:?}"
    );
    assert!(w.store.is_empty() && w.trigger.is_empty());
}
