//! The repair use case against in-memory fakes with drift put in place by hand.

use super::*;
use crate::clock::FixedClock;
use crate::domain::{EntityType, NewSchedule, Platform, Schedule, SyncMode, TriggerDefinition};
use crate::memory::{connection_fixture, MemoryWorld};
use crate::ports::{ScheduleRuns, TriggerAligner, TriggerState};
use crate::time::ScheduleExpression;

struct World {
    mem: MemoryWorld,
    service: ScheduleService,
    repair: ScheduleRepair,
    tenant: TenantId,
    connection: ConnectionId,
}

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap_or_else(|e| panic!("{e}"))
}

fn world() -> World {
    let mem = MemoryWorld::default();
    let clock = Arc::new(FixedClock::new(
        chrono::DateTime::from_timestamp(1_795_521_600, 0).unwrap_or_default(),
    ));
    let service = ScheduleService::new(
        mem.schedules.clone(),
        mem.trigger.clone(),
        mem.connections.clone(),
        clock,
    )
    .creating(mem.schedules.clone());
    let repair = ScheduleRepair::new(
        mem.schedules.clone(),
        mem.trigger.clone(),
        mem.trigger.clone(),
        mem.connections.clone(),
        service.clone(),
    );
    let tenant = tenant("acme");
    let c = connection_fixture(&tenant, Platform::WooCommerce);
    let connection = c.id;
    mem.connections.seed(c);
    World {
        mem,
        service,
        repair,
        tenant,
        connection,
    }
}

async fn schedule(w: &World, tenant: &TenantId, connection: ConnectionId) -> Schedule {
    w.service
        .create(
            tenant,
            NewSchedule {
                credential_id: connection,
                platform: Platform::WooCommerce,
                entity_type: EntityType::Orders,
                cron_expression: "@daily".into(),
                expression: ScheduleExpression::parse("@daily").unwrap_or_else(|e| panic!("{e}")),
                sync_mode: SyncMode::Incremental,
                timezone: "UTC".parse().unwrap_or_else(|e| panic!("{e}")),
                is_active: true,
                options: Default::default(),
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// One drift of every kind: a schedule without its trigger, a trigger that lags behind its
/// schedule, a trigger without a schedule, and a schedule whose connection is gone.
async fn drifted(w: &World) -> (Schedule, Schedule, Schedule, String, Schedule) {
    let fine = schedule(w, &w.tenant, w.connection).await;
    let untriggered = schedule(w, &w.tenant, w.connection).await;
    w.mem
        .trigger
        .remove(&untriggered.id.to_string())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let stale = schedule(w, &w.tenant, w.connection).await;
    let mut old = stale.trigger_definition();
    old.expression = "cron(0 3 * * ? *)".into();
    old.enabled = false;
    old.flexible_window_minutes = Some(30);
    w.mem.trigger.put_raw(TriggerState {
        name: stale.id.to_string(),
        definition: old,
        target_current: true,
    });
    let orphan = ScheduleId::new_random().to_string();
    w.mem.trigger.put_raw(TriggerState {
        name: orphan.clone(),
        definition: TriggerDefinition {
            expression: "rate(1 minute)".into(),
            timezone: "UTC".into(),
            enabled: true,
            input: r#"{"tenant_id":"acme","job_id":"<x>"}"#.to_string(),
            flexible_window_minutes: None,
        },
        target_current: true,
    });
    let mut lost = fine.clone();
    lost.id = ScheduleId::new_random();
    lost.credential_id = ConnectionId::new_random();
    w.mem.schedules.seed(lost.clone());
    w.mem
        .trigger
        .create(&lost)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (fine, untriggered, stale, orphan, lost)
}

#[tokio::test]
async fn a_dry_run_reports_every_kind_of_drift_and_changes_nothing() {
    let w = world();
    let (_, untriggered, stale, orphan, lost) = drifted(&w).await;
    let triggers_before = w.mem.trigger.len();
    let report = w
        .repair
        .run(&Scope::All, false)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.schedules, 4);
    assert_eq!(report.fixed, 0);
    assert!(report.drifts.contains(&Drift::MissingTrigger {
        tenant: w.tenant.clone(),
        schedule: untriggered.id
    }));
    assert!(report.drifts.contains(&Drift::Mismatch {
        tenant: w.tenant.clone(),
        schedule: stale.id,
        fields: vec!["expression", "state", "flexible_window"]
    }));
    assert!(report.drifts.contains(&Drift::OrphanTrigger {
        name: orphan.clone(),
        tenant: Some(w.tenant.clone())
    }));
    assert!(report.drifts.contains(&Drift::OrphanSchedule {
        tenant: w.tenant.clone(),
        schedule: lost.id,
        connection: lost.credential_id
    }));
    assert_eq!(report.drifts.len(), 4, "{:?}", report.drifts);
    assert_eq!(w.mem.trigger.len(), triggers_before);
    assert!(w.mem.trigger.state(&orphan).is_some());
    assert!(w.mem.trigger.get(untriggered.id).is_none());
}

#[tokio::test]
async fn applying_fixes_every_drift_and_a_second_run_finds_none() {
    let w = world();
    let (fine, untriggered, stale, orphan, lost) = drifted(&w).await;
    let report = w
        .repair
        .run(&Scope::All, true)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.fixed, 4, "{report:?}");
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    for s in [&fine, &untriggered, &stale] {
        assert_eq!(
            w.mem.trigger.state(&s.id.to_string()).map(|t| t.definition),
            Some(s.trigger_definition())
        );
    }
    assert!(w.mem.trigger.state(&orphan).is_none());
    assert!(w.mem.trigger.state(&lost.id.to_string()).is_none());
    assert_eq!(
        w.mem.schedules.get(&w.tenant, lost.id).await,
        Ok(None),
        "the schedule of a deleted connection is deleted"
    );
    let again = w
        .repair
        .run(&Scope::All, true)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(again.drifts.is_empty(), "{:?}", again.drifts);
}

#[tokio::test]
async fn a_tenant_repair_leaves_other_tenants_alone() {
    let w = world();
    let other = tenant("globex");
    let theirs = connection_fixture(&other, Platform::WooCommerce);
    let their_connection = theirs.id;
    w.mem.connections.seed(theirs);
    let their_schedule = schedule(&w, &other, their_connection).await;
    w.mem
        .trigger
        .remove(&their_schedule.id.to_string())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let ours = schedule(&w, &w.tenant, w.connection).await;
    let report = w
        .repair
        .run(&Scope::Tenant(w.tenant.clone()), true)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(report.drifts.is_empty(), "{:?}", report.drifts);
    assert_eq!(report.schedules, 1);
    assert!(w.mem.trigger.get(ours.id).is_some());
    assert!(
        w.mem.trigger.get(their_schedule.id).is_none(),
        "another tenant's drift is not touched"
    );
}

#[tokio::test]
async fn a_trigger_that_looks_orphaned_is_kept_when_its_schedule_exists_by_the_time_it_is_fixed() {
    // GIVEN a trigger whose schedule the sweep's listing did not include (a lagging index,
    // a create in flight): the fix re-reads the store, which holds it
    let w = world();
    let s = schedule(&w, &w.tenant, w.connection).await;
    let report = RepairReport {
        drifts: vec![Drift::OrphanTrigger {
            name: s.id.to_string(),
            tenant: Some(w.tenant.clone()),
        }],
        ..RepairReport::default()
    };
    for drift in &report.drifts {
        w.repair.fix(drift).await.unwrap_or_else(|e| panic!("{e}"));
    }
    assert!(w.mem.trigger.get(s.id).is_some());
}
