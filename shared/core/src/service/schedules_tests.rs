//! Schedule use cases against in-memory fakes.

use super::*;
use crate::clock::FixedClock;
use crate::domain::{ConnectionId, EntityType, Platform, SyncMode};
use crate::memory::{
    connection_fixture, MemoryConnectionStore, MemoryScheduleStore, MemoryTrigger,
};
use crate::ports::{TriggerAligner, TriggerError, TriggerWrite};
use futures::future::BoxFuture;
use std::sync::Mutex;

/// A trigger that lets another request run just before its first `update` lands, the way
/// a concurrent request's writes can slip between a writer's store write and its trigger
/// write.
struct Interleaved {
    inner: Arc<MemoryTrigger>,
    before_update: Mutex<Option<BoxFuture<'static, ()>>>,
}

#[async_trait::async_trait]
impl ScheduleTrigger for Interleaved {
    async fn create(&self, schedule: &Schedule) -> Result<(), TriggerError> {
        self.inner.create(schedule).await
    }
}

#[async_trait::async_trait]
impl TriggerAligner for Interleaved {
    async fn update(&self, schedule: &Schedule) -> Result<TriggerWrite, TriggerError> {
        let other = self
            .before_update
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(other) = other {
            other.await;
        }
        self.inner.update(schedule).await
    }

    async fn remove(&self, name: &str) -> Result<(), TriggerError> {
        self.inner.remove(name).await
    }
}

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
    let connections = Arc::new(MemoryConnectionStore::default());
    let store = Arc::new(MemoryScheduleStore::checking(connections.clone()));
    let trigger = Arc::new(MemoryTrigger::default());
    let clock = Arc::new(FixedClock::new(at("2026-11-24T12:00:00Z")));
    let service = ScheduleService::new(
        store.clone(),
        trigger.clone(),
        connections.clone(),
        clock.clone(),
    )
    .creating(store.clone());
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
        options: Default::default(),
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
    assert!(w
        .service
        .list(&other)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .is_empty());
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
        .preview(&e, zone, Some(at("2026-01-01T00:00:30Z")), 1_000)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.next_runs.len(), MAX_PREVIEW_COUNT);
    assert_eq!(p.next_runs[0], at("2026-01-01T00:01:00Z"));
    assert_eq!(p.schedule_expression, "cron(* * * * ? *)");
}

#[test]
fn a_preview_of_an_expression_that_never_fires_is_refused_as_create_refuses_it() {
    let w = world();
    let zone: Zone = "UTC".parse().unwrap_or_else(|e| panic!("{e}"));
    for text in [
        "0 12 30 2 *",
        "cron(0 12 31 2 ? *)",
        "cron(0 0 31W 2 ? *)",
        "cron(0 0 29 2 ? 2100)",
    ] {
        let e = ScheduleExpression::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let refused = w
            .service
            .preview(&e, zone, Some(at("2026-01-01T00:00:00Z")), 5);
        assert!(
            matches!(&refused, Err(ServiceError::Invalid { field, message })
                if field == "cron_expression" && message.contains("never fires")),
            "{text}: {refused:?}"
        );
    }
}

#[test]
fn a_rate_preview_has_whole_seconds_like_a_cron_preview() {
    let w = world();
    let e = ScheduleExpression::parse("rate(5 minutes)").unwrap_or_else(|e| panic!("{e}"));
    let zone: Zone = "UTC".parse().unwrap_or_else(|e| panic!("{e}"));
    let after = at("2026-11-26T02:18:58Z") + chrono::Duration::nanoseconds(409_988_621);
    let p = w
        .service
        .preview(&e, zone, Some(after), 2)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        p.next_runs,
        vec![at("2026-11-26T02:23:58Z"), at("2026-11-26T02:28:58Z")]
    );
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

#[tokio::test]
async fn an_update_racing_a_delete_never_brings_the_trigger_back() {
    // GIVEN a schedule, and a DELETE that completes between a PUT's store write and its
    // trigger update (the interleaving that used to re-create the EventBridge schedule)
    let w = world();
    let s = created(&w, "@daily").await;
    let (service, tenant, id) = (w.service.clone(), w.tenant.clone(), s.id);
    let interleaved = Interleaved {
        inner: w.trigger.clone(),
        before_update: Mutex::new(Some(Box::pin(async move {
            service
                .delete(&tenant, id)
                .await
                .unwrap_or_else(|e| panic!("the racing delete failed: {e}"));
        }))),
    };
    let racing = ScheduleService::new(
        w.store.clone(),
        Arc::new(interleaved),
        w.connections.clone(),
        w.clock.clone(),
    )
    .creating(w.store.clone());
    // WHEN the PUT goes ahead
    let patch = SchedulePatch {
        is_active: Some(false),
        ..SchedulePatch::default()
    };
    let put = racing.update(&w.tenant, s.id, patch).await;
    // THEN the delete won: the schedule is gone from both sides, whatever the PUT answered
    assert!(
        put.is_ok()
            || put
                == Err(ServiceError::Conflict(
                    "the schedule was changed by another request; fetch it and try again".into()
                )),
        "{put:?}"
    );
    assert!(w.store.is_empty());
    assert!(w.trigger.is_empty(), "an orphaned trigger was left behind");
}

#[tokio::test]
async fn a_trigger_written_from_an_older_version_is_corrected_by_the_writer_that_lost() {
    // GIVEN a PUT whose trigger update lands after a second PUT has written the store and
    // the trigger (so the first PUT's older definition arrives last)
    let w = world();
    let s = created(&w, "@daily").await;
    let second = SchedulePatch {
        cron_expression: Some((
            "@hourly".into(),
            ScheduleExpression::parse("@hourly").unwrap_or_else(|e| panic!("{e}")),
        )),
        ..SchedulePatch::default()
    };
    let (service, tenant, id) = (w.service.clone(), w.tenant.clone(), s.id);
    let racing = ScheduleService::new(
        w.store.clone(),
        Arc::new(Interleaved {
            inner: w.trigger.clone(),
            before_update: Mutex::new(Some(Box::pin(async move {
                // The second PUT reads the first PUT's write and goes through entirely.
                service
                    .update(&tenant, id, second)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
            }))),
        }),
        w.connections.clone(),
        w.clock.clone(),
    )
    .creating(w.store.clone());
    let first = SchedulePatch {
        sync_mode: Some(SyncMode::Full),
        ..SchedulePatch::default()
    };
    racing
        .update(&w.tenant, s.id, first)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // THEN the trigger holds the latest stored version, not the one that arrived last
    let stored = w
        .service
        .get(&w.tenant, s.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stored.version, 3);
    let on_trigger = w.trigger.get(s.id).unwrap_or_else(|| panic!("no trigger"));
    assert_eq!(on_trigger.version, stored.version);
    assert_eq!(on_trigger.schedule_expression(), "cron(0 * * * ? *)");
    assert_eq!(on_trigger.sync_mode, SyncMode::Full);
}

#[tokio::test]
async fn a_missing_trigger_is_recreated_on_update_when_the_schedule_still_exists() {
    // GIVEN a stored schedule whose trigger was lost (an earlier failure)
    let w = world();
    let s = created(&w, "@daily").await;
    w.trigger
        .remove(&s.id.to_string())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // WHEN it is updated
    let patch = SchedulePatch {
        sync_mode: Some(SyncMode::Full),
        ..SchedulePatch::default()
    };
    w.service
        .update(&w.tenant, s.id, patch)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // THEN the store said it exists, so the trigger is back, at the new version
    assert_eq!(w.trigger.get(s.id).map(|t| t.version), Some(2));
}

#[tokio::test]
async fn a_job_fired_for_a_deleted_schedule_removes_its_trigger_and_is_dropped() {
    // GIVEN a trigger whose schedule was deleted from the store behind its back
    let w = world();
    let s = created(&w, "@daily").await;
    w.store
        .delete(&w.tenant, s.id, s.version)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(w.trigger.len(), 1);
    // WHEN the job it fired is checked
    let check = w
        .service
        .fired_check()
        .check_fired(&w.tenant, s.id, s.version)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // THEN the job is dropped and the orphaned trigger is gone
    assert_eq!(check, FiredSchedule::Drop("the schedule no longer exists"));
    assert!(w.trigger.is_empty());
}

#[tokio::test]
async fn a_job_fired_by_an_outdated_trigger_rewrites_it_and_runs_the_current_schedule() {
    // GIVEN a schedule updated in the store while its trigger kept the old definition
    let w = world();
    let s = created(&w, "@daily").await;
    let mut newer = s.clone();
    newer.sync_mode = SyncMode::Full;
    newer.version = 2;
    w.store
        .replace(&newer, 1)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // WHEN a job fired from version 1 is checked
    let check = w
        .service
        .fired_check()
        .check_fired(&w.tenant, s.id, 1)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // THEN it runs with the stored definition, and the trigger now holds version 2
    assert!(
        matches!(&check, FiredSchedule::Run(run) if run.sync_mode == SyncMode::Full && run.version == 2),
        "{check:?}"
    );
    assert_eq!(w.trigger.get(s.id).map(|t| t.version), Some(2));
    // AND a paused schedule's job is dropped
    let mut paused = newer.clone();
    paused.is_active = false;
    paused.version = 3;
    w.store
        .replace(&paused, 2)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let check = w
        .service
        .fired_check()
        .check_fired(&w.tenant, s.id, 2)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(check, FiredSchedule::Drop("the schedule is paused"));
    assert_eq!(w.trigger.get(s.id).map(|t| t.is_active), Some(false));
}

#[tokio::test]
async fn a_fired_jobs_check_never_creates_a_trigger_that_is_gone_it_leaves_that_to_the_repair() {
    // GIVEN a schedule updated in the store, whose trigger was removed meanwhile
    let w = world();
    let s = created(&w, "@daily").await;
    let mut newer = s.clone();
    newer.version = 2;
    w.store
        .replace(&newer, 1)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    w.trigger
        .remove(&s.id.to_string())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // WHEN a job fired from version 1 is checked (as the worker does)
    let check = w
        .service
        .fired_check()
        .check_fired(&w.tenant, s.id, 1)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // THEN it runs the stored schedule, and no trigger was created (the repair does that)
    assert!(
        matches!(&check, FiredSchedule::Run(run) if run.version == 2),
        "{check:?}"
    );
    assert!(w.trigger.is_empty());
}

#[tokio::test]
async fn no_schedule_can_be_created_for_a_connection_being_deleted() {
    // GIVEN the tenant's connection, marked as being deleted
    let w = world();
    let mut marked = connection_fixture(&w.tenant, Platform::WooCommerce);
    marked.deleting_since = Some(w.clock.now());
    let id = marked.id;
    w.connections.seed(marked);
    // WHEN a schedule is created for it
    let mut new = new_schedule(&w, "@daily");
    new.credential_id = id;
    let r = w.service.create(&w.tenant, new).await;
    // THEN it is refused on credential_id and nothing is written
    assert!(
        matches!(&r, Err(ServiceError::Invalid { field, message }) if field == "credential_id" && message.contains("being deleted")),
        "{r:?}"
    );
    assert!(w.store.is_empty() && w.trigger.is_empty());
}

#[tokio::test]
async fn the_store_refuses_a_schedule_whose_connection_went_after_the_check() {
    // GIVEN a store write that happens after the connection was deleted (the read saw it)
    let w = world();
    let mut s = created(&w, "@daily").await;
    s.id = ScheduleId::new_random();
    s.credential_id = ConnectionId::new_random();
    // THEN the store itself refuses it
    assert_eq!(w.store.insert(&s).await, Err(StoreError::ReferenceGone));
}

fn invalid_field<T: std::fmt::Debug>(r: Result<T, ServiceError>) -> String {
    match r {
        Err(ServiceError::Invalid { field, .. }) => field,
        other => panic!("expected a field error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_pause_note_goes_with_a_paused_schedule_and_is_cleared_when_it_resumes() {
    let w = world();
    let s = created(&w, "0 9 * * *").await;
    let note = |text: &str| SchedulePatch {
        pause_note: Some(Some(text.to_string())),
        ..SchedulePatch::default()
    };
    // On an active schedule, blank, or too long: refused.
    assert_eq!(
        invalid_field(w.service.update(&w.tenant, s.id, note("year end")).await),
        "pause_note"
    );
    let paused = SchedulePatch {
        is_active: Some(false),
        pause_note: Some(Some("year end".into())),
        ..SchedulePatch::default()
    };
    let got = w
        .service
        .update(&w.tenant, s.id, paused)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.options.pause_note.as_deref(), Some("year end"));
    for bad in [" ", &"x".repeat(501)] {
        assert_eq!(
            invalid_field(w.service.update(&w.tenant, s.id, note(bad)).await),
            "pause_note"
        );
    }
    let resumed = SchedulePatch {
        is_active: Some(true),
        ..SchedulePatch::default()
    };
    let got = w
        .service
        .update(&w.tenant, s.id, resumed)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.options.pause_note, None);
}

#[tokio::test]
async fn a_flexible_window_reaches_the_trigger_within_its_bounds_and_can_be_turned_off() {
    let w = world();
    let s = created(&w, "0 0 * * *").await;
    let window = |minutes: Option<u32>| SchedulePatch {
        flexible_window_minutes: Some(minutes),
        overlap_policy: Some(crate::domain::OverlapPolicy::Skip),
        ..SchedulePatch::default()
    };
    for bad in [0, 1441] {
        assert_eq!(
            invalid_field(w.service.update(&w.tenant, s.id, window(Some(bad))).await),
            "flexible_window_minutes"
        );
    }
    let got = w
        .service
        .update(&w.tenant, s.id, window(Some(30)))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.options.flexible_window_minutes, Some(30));
    assert_eq!(
        got.options.overlap_policy,
        crate::domain::OverlapPolicy::Skip
    );
    let trigger = w
        .trigger
        .state(&s.id.to_string())
        .unwrap_or_else(|| panic!("no trigger"));
    assert_eq!(trigger.definition.flexible_window_minutes, Some(30));
    let got = w
        .service
        .update(&w.tenant, s.id, window(None))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.options.flexible_window_minutes, None);
}
