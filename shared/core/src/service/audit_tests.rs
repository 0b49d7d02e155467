//! The audit against in-memory fakes: each label, from runs put in place by hand.

use super::*;
use chrono::TimeZone;

use crate::clock::FixedClock;
use crate::domain::{EntityType, NewSchedule, Platform, ScheduleOptions, SyncJob, SyncMode};
use crate::memory::{connection_fixture, MemoryWorld};
use crate::service::ScheduleService;
use crate::time::ScheduleExpression;

fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 6, h, m, 0)
        .single()
        .unwrap_or_default()
}

struct World {
    mem: MemoryWorld,
    clock: Arc<FixedClock>,
    tenant: TenantId,
    schedule: Schedule,
}

async fn world(options: ScheduleOptions) -> World {
    let mem = MemoryWorld::default();
    let clock = Arc::new(FixedClock::new(at(5, 30)));
    let tenant = TenantId::parse("acme").unwrap_or_else(|e| panic!("{e}"));
    let c = connection_fixture(&tenant, Platform::WooCommerce);
    let connection = c.id;
    mem.connections.seed(c);
    let schedule = ScheduleService::new(
        mem.schedules.clone(),
        mem.trigger.clone(),
        mem.connections.clone(),
        clock.clone(),
    )
    .creating(mem.schedules.clone())
    .create(
        &tenant,
        NewSchedule {
            credential_id: connection,
            platform: Platform::WooCommerce,
            entity_type: EntityType::Orders,
            cron_expression: "@hourly".into(),
            expression: ScheduleExpression::parse("@hourly").unwrap_or_else(|e| panic!("{e}")),
            sync_mode: SyncMode::Incremental,
            timezone: "UTC".parse().unwrap_or_else(|e| panic!("{e}")),
            is_active: true,
            options,
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    World {
        mem,
        clock,
        tenant,
        schedule,
    }
}

impl World {
    fn audit(&self) -> ScheduleAudit {
        ScheduleAudit::new(
            self.mem.schedules.clone(),
            self.mem.runs.clone(),
            self.clock.clone(),
        )
    }

    /// The fire at `fire`'s run, started at `started`, ended `status` (with `message`).
    fn ran(
        &self,
        fire: DateTime<Utc>,
        trigger: Trigger,
        started: DateTime<Utc>,
        status: RunStatus,
        message: Option<&str>,
    ) -> Run {
        let job_id = SyncJob::fire_job_id(self.schedule.id, fire);
        let mut run =
            crate::fixtures::run(&self.tenant, self.schedule.credential_id, &job_id, fire);
        run.trigger = trigger;
        run.schedule_id = Some(self.schedule.id);
        run.started_at = started;
        run.status = status;
        run.message = message.map(str::to_string);
        self.mem.runs.seed(run.clone());
        run
    }
}

#[tokio::test]
async fn each_fire_time_is_labelled_by_the_run_it_had() {
    let w = world(ScheduleOptions::default()).await;
    let fire = Trigger::Schedule {
        schedule_id: w.schedule.id,
        schedule_version: 1,
    };
    w.ran(at(6, 0), fire.clone(), at(6, 0), RunStatus::Succeeded, None);
    w.ran(
        at(7, 0),
        fire.clone(),
        at(7, 25),
        RunStatus::Succeeded,
        None,
    );
    w.ran(
        at(8, 0),
        fire.clone(),
        at(8, 0),
        RunStatus::Skipped,
        Some("another run was working on the stream; this fire was skipped (overlap_policy skip)"),
    );
    // 09:00 had no run; 10:00 was caught up by the sweeper.
    w.ran(
        at(10, 0),
        Trigger::CatchUp {
            schedule_id: w.schedule.id,
        },
        at(10, 14),
        RunStatus::Succeeded,
        None,
    );
    // A run asked for by hand is not a fire's.
    let mut by_hand = w.ran(
        at(10, 30),
        Trigger::Manual,
        at(10, 30),
        RunStatus::Succeeded,
        None,
    );
    by_hand.trigger = Trigger::ScheduleNow {
        schedule_id: w.schedule.id,
    };
    w.mem.runs.seed(by_hand);
    w.clock.set(at(11, 5));
    let audit = w
        .audit()
        .audit(&w.tenant, w.schedule.id, Some(at(5, 0)), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let labels: Vec<_> = audit.fires.iter().map(|f| (f.fire_time, f.label)).collect();
    assert_eq!(
        labels,
        [
            (at(6, 0), FireLabel::Ran),
            (at(7, 0), FireLabel::Late),
            (at(8, 0), FireLabel::SkippedOverlap),
            (at(9, 0), FireLabel::Missed),
            (at(10, 0), FireLabel::Late),
            (at(11, 0), FireLabel::Due),
        ],
        "the schedule was created at 05:30, so 05:00 is not its"
    );
    assert!(!audit.truncated);
    assert_eq!(
        audit.fires[0].run.as_ref().map(|r| r.status),
        Some(RunStatus::Succeeded)
    );
}

#[tokio::test]
async fn a_paused_schedules_fire_times_since_are_paused_and_the_span_is_checked() {
    let w = world(ScheduleOptions::default()).await;
    w.clock.set(at(7, 10));
    let paused = ScheduleService::new(
        w.mem.schedules.clone(),
        w.mem.trigger.clone(),
        w.mem.connections.clone(),
        w.clock.clone(),
    )
    .creating(w.mem.schedules.clone())
    .update(
        &w.tenant,
        w.schedule.id,
        crate::domain::SchedulePatch {
            is_active: Some(false),
            ..Default::default()
        },
    )
    .await;
    assert!(paused.is_ok(), "{paused:?}");
    w.clock.set(at(9, 30));
    let audit = w
        .audit()
        .audit(&w.tenant, w.schedule.id, Some(at(5, 0)), Some(at(9, 30)))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let labels: Vec<_> = audit.fires.iter().map(|f| f.label).collect();
    assert_eq!(
        labels,
        [
            FireLabel::Missed,
            FireLabel::Missed,
            FireLabel::Paused,
            FireLabel::Paused
        ]
    );
    let backwards = w
        .audit()
        .audit(&w.tenant, w.schedule.id, Some(at(9, 0)), Some(at(8, 0)))
        .await;
    assert!(
        matches!(backwards, Err(ServiceError::Invalid { .. })),
        "{backwards:?}"
    );
    let long = w
        .audit()
        .audit(
            &w.tenant,
            w.schedule.id,
            Some(at(9, 0) - Duration::days(40)),
            Some(at(9, 0)),
        )
        .await;
    assert!(
        matches!(long, Err(ServiceError::Invalid { .. })),
        "{long:?}"
    );
    let other = TenantId::parse("other").unwrap_or_else(|e| panic!("{e}"));
    let hidden = w.audit().audit(&other, w.schedule.id, None, None).await;
    assert!(
        matches!(hidden, Err(ServiceError::NotFound(_))),
        "{hidden:?}"
    );
}

#[tokio::test]
async fn a_flexible_window_moves_when_a_fire_is_judged_late_or_missed() {
    let w = world(ScheduleOptions {
        flexible_window_minutes: Some(30),
        ..ScheduleOptions::default()
    })
    .await;
    let fire = Trigger::Schedule {
        schedule_id: w.schedule.id,
        schedule_version: 1,
    };
    w.ran(at(6, 0), fire, at(6, 25), RunStatus::Succeeded, None);
    w.clock.set(at(7, 30));
    let audit = w
        .audit()
        .audit(&w.tenant, w.schedule.id, Some(at(5, 30)), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let labels: Vec<_> = audit.fires.iter().map(|f| f.label).collect();
    assert_eq!(labels, [FireLabel::Ran, FireLabel::Due]);
}
