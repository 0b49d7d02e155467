//! The sweeper against in-memory fakes: abandoned runs (with the races a worker and a
//! dying sweep bring), missed fire times inside and outside the catch-up window, drift.

use super::*;
use async_trait::async_trait;
use chrono::TimeZone;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::clock::FixedClock;
use crate::domain::{
    ConnectionId, EntityType, NewSchedule, Platform, ScheduleOptions, SyncMode, TenantId,
};
use crate::memory::{connection_fixture, MemorySweepLog, MemoryWorld};
use crate::ports::{
    ConnectionReader, RunLog, ScheduleRuns, StoreError, StreamWatch, SyncLeases, TriggerAligner,
};
use crate::service::ScheduleService;
use crate::time::ScheduleExpression;

struct World {
    mem: MemoryWorld,
    clock: Arc<FixedClock>,
    schedules: ScheduleService,
    tenant: TenantId,
    connection: ConnectionId,
    log: Arc<MemorySweepLog>,
    /// Where alert notices go.
    receiver: Arc<crate::memory::MemoryReceiver>,
}

fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 6, h, m, 0)
        .single()
        .unwrap_or_default()
}

fn world() -> World {
    let mem = MemoryWorld::default();
    let clock = Arc::new(FixedClock::new(at(9, 0)));
    let schedules = ScheduleService::new(
        mem.schedules.clone(),
        mem.trigger.clone(),
        mem.connections.clone(),
        clock.clone(),
    )
    .creating(mem.schedules.clone());
    let tenant = TenantId::parse("acme").unwrap_or_else(|e| panic!("{e}"));
    let c = connection_fixture(&tenant, Platform::WooCommerce);
    let connection = c.id;
    mem.connections.seed(c);
    World {
        mem,
        clock,
        schedules,
        tenant,
        connection,
        log: Arc::default(),
        receiver: Arc::default(),
    }
}

impl World {
    fn sweeper_with(&self, runs: Arc<dyn RunSweep>) -> Sweeper {
        let repair = ScheduleRepair::new(
            self.mem.schedules.clone(),
            self.mem.trigger.clone(),
            self.mem.trigger.clone(),
            self.mem.connections.clone(),
            self.schedules.clone(),
        );
        Sweeper::new(
            SweeperPorts {
                runs,
                streams: self.mem.leases.clone(),
                jobs: self.mem.queue.clone(),
                schedules: self.mem.schedules.clone(),
                connections: self.mem.connections.clone(),
                service: self.schedules.clone(),
                log: self.log.clone(),
                repair,
                alerts: crate::service::AlertRaiser::new(
                    self.mem.alerts.clone(),
                    self.clock.clone(),
                ),
                delivery: crate::service::AlertDelivery {
                    issues: self.mem.alerts.clone(),
                    destinations: self.mem.alerts.clone(),
                    opener: self.mem.sealer.clone(),
                    http: self.receiver.clone(),
                    topic: None,
                    clock: self.clock.clone(),
                    settings: crate::service::DeliverySettings {
                        allow_internal: true,
                        ..Default::default()
                    },
                },
                clock: self.clock.clone(),
            },
            SweeperSettings::default(),
        )
    }

    fn sweeper(&self) -> Sweeper {
        self.sweeper_with(self.mem.runs.clone())
    }

    /// A sweeper that looks at no more than `schedules` schedules and `triggers` triggers
    /// a sweep.
    fn slicing_sweeper(&self, schedules: usize, triggers: usize) -> Sweeper {
        let mut sweeper = self.sweeper();
        sweeper.settings.max_schedules = schedules;
        sweeper.settings.max_triggers = triggers;
        sweeper
    }

    /// The schedules and fire times of the catch-up runs queued, in the order queued.
    fn caught_up(&self) -> Vec<(ScheduleId, DateTime<Utc>)> {
        self.mem
            .queue
            .delayed_jobs()
            .iter()
            .filter_map(|(job, _)| match job.trigger {
                Trigger::CatchUp { schedule_id } => Some((schedule_id, job.triggered_at)),
                _ => None,
            })
            .collect()
    }

    async fn status(&self) -> SweepStatus {
        self.log
            .last()
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("no status"))
    }

    /// A run of the connection's orders, in `status`, last written at `written`.
    fn open_run(&self, job: &str, status: RunStatus, written: DateTime<Utc>) -> Run {
        let mut run = crate::fixtures::run(&self.tenant, self.connection, job, written);
        run.status = status;
        run.finished_at = None;
        run.updated_at = written;
        run.attempts = u32::from(status != RunStatus::Queued);
        self.mem.runs.seed(run.clone());
        run
    }

    fn key(&self) -> SyncKey {
        SyncKey {
            connection: self.connection,
            entity: EntityType::Orders,
        }
    }

    async fn schedule(&self, expression: &str, options: ScheduleOptions) -> Schedule {
        self.schedules
            .create(
                &self.tenant,
                NewSchedule {
                    credential_id: self.connection,
                    platform: Platform::WooCommerce,
                    entity_type: EntityType::Orders,
                    cron_expression: expression.into(),
                    expression: ScheduleExpression::parse(expression)
                        .unwrap_or_else(|e| panic!("{e}")),
                    sync_mode: SyncMode::Incremental,
                    timezone: "UTC".parse().unwrap_or_else(|e| panic!("{e}")),
                    is_active: true,
                    options,
                },
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// A run of `schedule` fired at `fire`.
    fn fired(&self, schedule: &Schedule, fire: DateTime<Utc>) {
        let mut run = crate::fixtures::run(
            &self.tenant,
            self.connection,
            &format!("fire-{}-{fire}", schedule.id),
            fire,
        );
        run.schedule_id = Some(schedule.id);
        run.trigger = Trigger::Schedule {
            schedule_id: schedule.id,
            schedule_version: schedule.version,
        };
        self.mem.runs.seed(run);
    }

    fn stored(&self, run: &Run) -> Run {
        self.mem
            .runs
            .all()
            .into_iter()
            .find(|r| r.id == run.id)
            .unwrap_or_else(|| panic!("run {} is gone", run.id))
    }
}

#[tokio::test]
async fn a_running_run_nobody_has_touched_while_its_stream_is_free_is_abandoned_and_its_work_queued_once(
) {
    let w = world();
    let lost = w.open_run("lost", RunStatus::Running, at(8, 0));
    w.clock.set(at(9, 0));
    let report = w.sweeper().sweep().await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.counts.abandoned, 1);
    let ended = w.stored(&lost);
    assert_eq!(ended.status, RunStatus::Failed);
    let redone_by = ended.redone_by.clone();
    let message = ended.message.unwrap_or_default();
    assert!(
        message.starts_with("abandoned: its worker stopped"),
        "{message}"
    );
    let jobs = w.mem.queue.jobs();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].trigger, Trigger::Retry);
    assert!(jobs[0].ids.is_empty());
    assert_eq!(jobs[0].connection_id, w.connection);
    let redo = w.stored(&Run::of_job(
        &jobs[0],
        jobs[0].run_id(),
        None,
        at(9, 0),
        RunStatus::Queued,
    ));
    assert_eq!(redo.status, RunStatus::Queued);
    assert!(message.contains(redo.id.as_str()), "{message}");
    assert_eq!(redone_by, Some(redo.id.clone()));
    // A second sweep finds nothing more to do.
    w.clock.set(at(9, 5));
    let again = w.sweeper().sweep().await;
    assert_eq!(again.counts.abandoned, 0);
    assert_eq!(w.mem.queue.jobs().len(), 1);
}

#[tokio::test]
async fn the_records_a_lost_run_named_are_named_by_its_redo_and_a_redo_left_in_turn_is_not_redone()
{
    let w = world();
    let mut named = w.open_run("webhook", RunStatus::Running, at(8, 0));
    named.ids = vec!["7".into(), "9".into()];
    named.ids_requested = 2;
    named.reported = true;
    w.mem.runs.seed(named.clone());
    w.sweeper().sweep().await;
    let jobs = w.mem.queue.drain_jobs();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].ids, ["7", "9"]);
    // They were a platform's: the redo, queued, carries them on (nobody may drop it).
    assert!(jobs[0].is_reported());
    // The redo is taken up and left too: ended, and not redone again.
    let redo_id = jobs[0].run_id();
    let mut redo = w.stored(&Run::of_job(
        &jobs[0],
        redo_id,
        None,
        at(9, 0),
        RunStatus::Queued,
    ));
    assert!(
        redo.reported && redo.status == RunStatus::Queued,
        "{redo:?}"
    );
    redo.status = RunStatus::Running;
    redo.attempts = 1;
    redo.updated_at = at(9, 1);
    w.mem.runs.seed(redo.clone());
    w.clock.set(at(10, 0));
    let report = w.sweeper().sweep().await;
    assert_eq!(report.counts.abandoned, 1, "{:?}", report.errors);
    assert_eq!(report.abandoned[0].1, None);
    let ended = w.stored(&redo);
    assert_eq!(ended.status, RunStatus::Failed);
    assert!(
        ended
            .message
            .unwrap_or_default()
            .contains("not redone again"),
        "{:?}",
        w.stored(&redo).message
    );
    assert!(w.mem.queue.jobs().is_empty());
}

#[tokio::test]
async fn a_queued_run_whose_job_never_arrived_has_it_sent_again_as_it_was_then_is_ended_after_a_day(
) {
    let w = world();
    let mut lost = w.open_run("never-sent", RunStatus::Queued, at(8, 0));
    lost.trigger = Trigger::Manual;
    lost.ids = vec!["42".into()];
    w.mem.runs.seed(lost.clone());
    let report = w.sweeper().sweep().await;
    assert_eq!(report.resent, [lost.id.clone()], "{:?}", report.errors);
    assert_eq!(report.counts.abandoned, 0);
    let jobs = w.mem.queue.drain_jobs();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(
        jobs[0].run_id(),
        lost.id,
        "its own job, which takes its record up"
    );
    assert_eq!(jobs[0].ids, ["42"]);
    let touched = w.stored(&lost);
    assert_eq!(
        (touched.status, touched.updated_at),
        (RunStatus::Queued, at(9, 0))
    );
    // Sent again and again, it never arrives: after a day it is ended.
    w.clock.set(at(9, 30));
    assert!(
        w.sweeper().sweep().await.resent.is_empty(),
        "not yet stale again"
    );
    let mut day_old = w.stored(&lost);
    day_old.updated_at = at(8, 0);
    day_old.started_at = at(8, 0) - Duration::days(1);
    w.mem.runs.seed(day_old);
    let report = w.sweeper().sweep().await;
    assert_eq!(report.counts.abandoned, 1);
    let ended = w.stored(&lost);
    assert_eq!(ended.status, RunStatus::Failed);
    assert!(ended
        .message
        .unwrap_or_default()
        .contains("never reached a worker"));
    assert!(w.mem.queue.jobs().is_empty());
}

#[tokio::test]
async fn a_run_whose_stream_is_held_was_worked_on_a_moment_ago_or_that_was_written_lately_is_left_alone(
) {
    let w = world();
    let held = w.open_run("held", RunStatus::Running, at(8, 0));
    w.mem.leases.hold(w.key(), "a worker", at(9, 1));
    let report = w.sweeper().sweep().await;
    assert_eq!(report.counts.abandoned, 0);
    assert_eq!(w.stored(&held).status, RunStatus::Running);
    // Released a moment ago: a continuation, or a job sent again for later, may be coming.
    w.mem
        .leases
        .release(w.key(), "a worker")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    w.clock.set(at(9, 4));
    assert_eq!(w.sweeper().sweep().await.counts.abandoned, 0);
    w.clock.set(at(9, 7));
    assert_eq!(w.sweeper().sweep().await.counts.abandoned, 1, "quiet since");

    let w = world();
    let recent = w.open_run("recent", RunStatus::Running, at(8, 30));
    let report = w.sweeper().sweep().await;
    assert_eq!(report.counts.abandoned, 0);
    assert_eq!(w.stored(&recent).status, RunStatus::Running);
    assert!(w.mem.queue.jobs().is_empty());
}

#[tokio::test]
async fn a_follow_up_kept_on_a_stream_nobody_works_on_is_woken_and_the_run_left_for_it() {
    let w = world();
    let queued = w.open_run("merged", RunStatus::Queued, at(8, 0));
    let kept = job_of(&queued);
    w.mem
        .leases
        .park(w.key(), &kept)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let report = w.sweeper().sweep().await;
    assert_eq!(report.counts.abandoned, 0);
    assert!(report.resent.is_empty());
    let jobs = w.mem.queue.jobs();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].trigger, Trigger::FollowUp);
    assert_eq!(w.stored(&queued).status, RunStatus::Queued);
}

/// Runs as stored, with a worker that takes the run up (writes it) just after the sweeper
/// queued the redo, before it ends the run; or a sweep that dies at that point.
struct Interleaved {
    inner: Arc<crate::memory::MemoryRuns>,
    worker_writes: AtomicBool,
    sweep_dies: AtomicBool,
    /// Another sweep ends the run first, naming the same redo.
    other_sweep_ends: AtomicBool,
    /// Whether runs of this schedule were had is never answered (throttled, always).
    unanswered: Option<ScheduleId>,
    now: DateTime<Utc>,
}

#[async_trait]
impl RunSweep for Interleaved {
    async fn get(&self, tenant: &TenantId, id: &RunId) -> Result<Option<Run>, StoreError> {
        RunSweep::get(&*self.inner, tenant, id).await
    }
    async fn stale(&self, before: DateTime<Utc>, limit: usize) -> Result<Vec<Run>, StoreError> {
        self.inner.stale(before, limit).await
    }
    async fn replace_if_untouched(
        &self,
        ended: &Run,
        seen: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        if self.worker_writes.swap(false, Ordering::SeqCst) {
            let mut taken = ended.clone();
            taken.status = RunStatus::Running;
            taken.message = None;
            taken.redone_by = None;
            taken.finished_at = None;
            taken.updated_at = self.now;
            self.inner.seed(taken);
        }
        if self.other_sweep_ends.swap(false, Ordering::SeqCst) {
            let mut theirs = ended.clone();
            theirs.updated_at = self.now - Duration::seconds(1);
            self.inner.seed(theirs);
        }
        if self.sweep_dies.swap(false, Ordering::SeqCst) {
            return Err(StoreError::Unavailable(
                "the sweep's invocation ended".into(),
            ));
        }
        self.inner.replace_if_untouched(ended, seen).await
    }
    async fn create(&self, run: &Run) -> Result<bool, StoreError> {
        self.inner.create(run).await
    }
    async fn cancel_requested(
        &self,
        tenant: &TenantId,
        id: &RunId,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        RunSweep::cancel_requested(&*self.inner, tenant, id).await
    }
    async fn ran_since(
        &self,
        tenant: &TenantId,
        schedule: ScheduleId,
        since: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        if self.unanswered == Some(schedule) {
            return Err(StoreError::Unavailable("throttled".into()));
        }
        self.inner.ran_since(tenant, schedule, since).await
    }
}

#[tokio::test]
async fn a_worker_that_takes_the_run_up_while_the_sweeper_decides_keeps_it_and_no_redo_is_sent() {
    let w = world();
    let run = w.open_run("late delivery", RunStatus::Running, at(8, 0));
    let runs = Arc::new(Interleaved {
        inner: w.mem.runs.clone(),
        worker_writes: AtomicBool::new(true),
        sweep_dies: AtomicBool::new(false),
        other_sweep_ends: AtomicBool::new(false),
        unanswered: None,
        now: at(9, 0),
    });
    let report = w.sweeper_with(runs).sweep().await;
    assert_eq!(report.counts.abandoned, 0);
    let stored = w.stored(&run);
    assert_eq!(
        stored.status,
        RunStatus::Running,
        "the worker's write stands"
    );
    assert_eq!(stored.message, None);
    assert!(w.mem.queue.jobs().is_empty(), "no redo sent");
    let redo = w
        .mem
        .runs
        .all()
        .into_iter()
        .find(|r| r.job_id.starts_with("redo-"))
        .unwrap_or_else(|| panic!("no redo record"));
    assert_eq!(redo.status, RunStatus::Skipped, "{redo:?}");
}

#[tokio::test]
async fn a_sweep_that_dies_before_ending_the_run_leaves_the_next_to_end_it_with_one_redo() {
    let w = world();
    let run = w.open_run("lost", RunStatus::Running, at(8, 0));
    let runs = Arc::new(Interleaved {
        inner: w.mem.runs.clone(),
        worker_writes: AtomicBool::new(false),
        sweep_dies: AtomicBool::new(true),
        other_sweep_ends: AtomicBool::new(false),
        unanswered: None,
        now: at(9, 0),
    });
    let first = w.sweeper_with(runs.clone()).sweep().await;
    assert_eq!(first.counts.abandoned, 0);
    assert_eq!(first.errors.len(), 1, "{:?}", first.errors);
    assert_eq!(w.stored(&run).status, RunStatus::Running);
    assert!(w.mem.queue.jobs().is_empty());
    w.clock.set(at(9, 5));
    let second = w.sweeper_with(runs).sweep().await;
    assert_eq!(second.counts.abandoned, 1, "{:?}", second.errors);
    assert_eq!(w.stored(&run).status, RunStatus::Failed);
    assert_eq!(w.mem.queue.jobs().len(), 1, "one redo, not two");
}

#[tokio::test]
async fn when_the_queue_refuses_the_redo_a_later_sweep_sends_it() {
    let w = world();
    let run = w.open_run("lost", RunStatus::Running, at(8, 0));
    w.mem.queue.set_failing(true);
    let report = w.sweeper().sweep().await;
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    assert_eq!(w.stored(&run).status, RunStatus::Failed);
    w.mem.queue.set_failing(false);
    w.clock.set(at(9, 50));
    let later = w.sweeper().sweep().await;
    assert_eq!(later.resent.len(), 1, "{:?}", later.errors);
    let jobs = w.mem.queue.jobs();
    assert_eq!(jobs.len(), 1);
    assert!(jobs[0].job_id.starts_with("redo-"), "{jobs:?}");
}

#[tokio::test]
async fn a_missed_fire_time_inside_the_window_is_caught_up_once_with_one_run() {
    let w = world();
    w.clock.set(at(9, 0));
    let schedule = w.schedule("@hourly", ScheduleOptions::default()).await;
    w.fired(&schedule, at(10, 0));
    // The worker is down from 10:30: 11:00 and 12:00 pass without a run.
    w.clock.set(at(12, 20));
    let report = w.sweeper().sweep().await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.counts.caught_up, 1);
    assert_eq!(report.counts.missed, 0);
    let fires: Vec<_> = report.missed.iter().map(|m| m.fire_time).collect();
    assert_eq!(fires, [at(11, 0), at(12, 0)]);
    let delayed = w.mem.queue.delayed_jobs();
    assert_eq!(delayed.len(), 1, "{delayed:?}");
    let (job, delay) = &delayed[0];
    assert_eq!(
        job.trigger,
        Trigger::CatchUp {
            schedule_id: schedule.id
        }
    );
    assert_eq!(job.triggered_at, at(12, 0));
    assert_eq!(
        job.job_id,
        SyncJob::fire_job_id(schedule.id, at(12, 0)),
        "the fire's own identity"
    );
    assert!(*delay <= std::time::Duration::from_secs(300), "{delay:?}");
    let queued = w.stored(&Run::of_job(
        job,
        job.run_id(),
        None,
        at(12, 20),
        RunStatus::Queued,
    ));
    assert_eq!(
        (queued.status, queued.schedule_id),
        (RunStatus::Queued, Some(schedule.id))
    );
    // The next sweeps, before and after the catch-up has run, queue nothing more.
    for minute in [25, 40] {
        w.clock.set(at(12, minute));
        let again = w.sweeper().sweep().await;
        assert_eq!(again.counts.caught_up, 0);
    }
    // And a sweep whose status was lost looks back over the whole day: still nothing.
    let fresh = World {
        log: Arc::default(),
        ..w
    };
    let again = fresh.sweeper().sweep().await;
    assert_eq!(again.counts.caught_up, 0, "{:?}", again.missed);
    assert_eq!(fresh.mem.queue.delayed_jobs().len(), 1);
}

#[tokio::test]
async fn a_missed_fire_time_outside_the_window_is_counted_and_not_run() {
    let w = world();
    let schedule = w
        .schedule(
            "@hourly",
            ScheduleOptions {
                catch_up_window_minutes: 0,
                ..ScheduleOptions::default()
            },
        )
        .await;
    w.fired(&schedule, at(10, 0));
    w.clock.set(at(12, 20));
    let report = w.sweeper().sweep().await;
    assert_eq!((report.counts.caught_up, report.counts.missed), (0, 2));
    assert!(report.missed.iter().all(|m| m.catch_up.is_none()));
    assert!(w.mem.queue.delayed_jobs().is_empty());
    // Counted once: the next sweep checks only the fire times since.
    w.clock.set(at(12, 25));
    assert_eq!(w.sweeper().sweep().await.counts.missed, 0);
    let status = w
        .log
        .last()
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no status"));
    assert_eq!(status.totals.missed, 2);
    assert_eq!(status.last_sweep_at, at(12, 25));
}

#[tokio::test]
async fn fire_times_that_had_their_runs_paused_schedules_and_fire_times_not_yet_due_are_not_missed()
{
    let w = world();
    let kept = w.schedule("@hourly", ScheduleOptions::default()).await;
    for h in [10, 11, 12] {
        w.fired(&kept, at(h, 0));
    }
    let paused = w.schedule("@hourly", ScheduleOptions::default()).await;
    w.schedules
        .update(
            &w.tenant,
            paused.id,
            crate::domain::SchedulePatch {
                is_active: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // 13:00 is five minutes old: its job may still be on its way.
    w.clock.set(at(13, 5));
    let report = w.sweeper().sweep().await;
    assert!(report.missed.is_empty(), "{:?}", report.missed);
    assert!(w.mem.queue.delayed_jobs().is_empty());
}

#[tokio::test]
async fn a_trigger_changed_behind_the_stores_back_is_repaired_and_counted() {
    let w = world();
    let schedule = w.schedule("@daily", ScheduleOptions::default()).await;
    w.mem
        .trigger
        .remove(&schedule.id.to_string())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let report = w.sweeper().sweep().await;
    assert_eq!(report.counts.repairs, 1, "{:?}", report.drifts);
    assert!(w.mem.trigger.get(schedule.id).is_some());
    let status = w
        .log
        .last()
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no status"));
    assert_eq!(status.totals.repairs, 1);
}

#[tokio::test]
async fn the_stream_watch_sees_a_lease_until_it_expires_and_when_it_last_ran_after() {
    let w = world();
    w.mem.leases.hold(w.key(), "a worker", at(9, 1));
    let busy = w.mem.leases.state(w.key(), at(9, 0)).await.ok();
    assert_eq!(
        busy.map(|s| (s.busy, s.lease_until)),
        Some((true, Some(at(9, 1))))
    );
    let after = w.mem.leases.state(w.key(), at(9, 2)).await.ok();
    assert_eq!(
        after.map(|s| (s.busy, s.lease_until)),
        Some((false, Some(at(9, 1))))
    );
}

#[tokio::test]
async fn a_schedule_with_a_flexible_window_has_its_fire_times_judged_that_much_later() {
    let w = world();
    let schedule = w
        .schedule(
            "@hourly",
            ScheduleOptions {
                flexible_window_minutes: Some(30),
                ..ScheduleOptions::default()
            },
        )
        .await;
    w.fired(&schedule, at(10, 0));
    w.fired(&schedule, at(11, 0));
    // 12:00 may still be fired up to 12:30: at 12:20 it is not judged.
    w.clock.set(at(12, 20));
    let report = w.sweeper().sweep().await;
    assert!(report.missed.is_empty(), "{:?}", report.missed);
    // At 12:45 it is, once.
    w.clock.set(at(12, 45));
    let report = w.sweeper().sweep().await;
    let fires: Vec<_> = report.missed.iter().map(|m| m.fire_time).collect();
    assert_eq!(fires, [at(12, 0)]);
    assert_eq!(report.counts.caught_up, 1);
}

#[tokio::test]
async fn a_schedule_whose_runs_fail_in_a_row_as_often_as_it_allows_is_paused_once_with_a_note() {
    let w = world();
    let options = |after| ScheduleOptions {
        auto_pause_after_failures: after,
        ..ScheduleOptions::default()
    };
    let failing = w.schedule("@hourly", options(3)).await;
    let fewer = w.schedule("@hourly", options(5)).await;
    let never = w.schedule("@hourly", options(0)).await;
    for s in [&failing, &fewer, &never] {
        for n in 0..3 {
            // (The same run failing twice counts once.)
            for _ in 0..2 {
                let id = RunId::for_job(at(9, n), &format!("{}-{n}", s.id));
                let recorded = w
                    .mem
                    .schedules
                    .record_run(&w.tenant, s.id, at(9, n), RunStatus::Failed, &id)
                    .await;
                assert!(recorded.is_ok());
            }
        }
    }
    // An older run failing again after a newer one did (its retry) is not counted either.
    let older = RunId::for_job(at(9, 0), &format!("{}-0", fewer.id));
    let again = w
        .mem
        .schedules
        .record_run(&w.tenant, fewer.id, at(9, 5), RunStatus::Failed, &older)
        .await;
    assert!(again.is_ok());
    w.clock.set(at(9, 10));
    let report = w.sweeper().sweep().await;
    assert_eq!(report.paused, [failing.id], "{:?}", report.errors);
    let fewer_now = w
        .mem
        .schedules
        .get(&w.tenant, fewer.id)
        .await
        .ok()
        .flatten();
    assert_eq!(fewer_now.map(|s| s.consecutive_failures), Some(3));
    assert_eq!(report.counts.paused, 1);
    let paused = w
        .mem
        .schedules
        .get(&w.tenant, failing.id)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("gone"));
    assert!(!paused.is_active);
    assert_eq!(
        paused.consecutive_failures, 3,
        "the count it was paused for stays"
    );
    let note = paused.options.pause_note.clone().unwrap_or_default();
    assert!(note.contains("after 3 failed runs in a row"), "{note}");
    let trigger = w.mem.trigger.state(&failing.id.to_string());
    assert_eq!(
        trigger.map(|t| t.definition.enabled),
        Some(false),
        "EventBridge paused too"
    );
    // Paused once; resumed by a person, it starts counting again.
    assert!(w.sweeper().sweep().await.paused.is_empty());
    let resumed = w
        .schedules
        .update(
            &w.tenant,
            failing.id,
            crate::domain::SchedulePatch {
                is_active: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resumed.consecutive_failures, 0);
    assert!(w.sweeper().sweep().await.paused.is_empty());
}

#[tokio::test]
async fn when_another_sweep_ends_the_run_first_the_redo_it_names_is_still_sent_once() {
    let w = world();
    let run = w.open_run("lost", RunStatus::Running, at(8, 0));
    let runs = Arc::new(Interleaved {
        inner: w.mem.runs.clone(),
        worker_writes: AtomicBool::new(false),
        sweep_dies: AtomicBool::new(false),
        other_sweep_ends: AtomicBool::new(true),
        unanswered: None,
        now: at(9, 0),
    });
    let report = w.sweeper_with(runs).sweep().await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(w.stored(&run).status, RunStatus::Failed);
    let jobs = w.mem.queue.jobs();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let redo = w.stored(&Run::of_job(
        &jobs[0],
        jobs[0].run_id(),
        None,
        at(9, 0),
        RunStatus::Queued,
    ));
    assert_eq!(redo.status, RunStatus::Queued, "not marked unneeded");
}

#[tokio::test]
async fn a_left_run_with_a_follow_up_waiting_is_abandoned_and_one_never_taken_up_wakes_it_once() {
    let w = world();
    let running = w.open_run("running", RunStatus::Running, at(8, 0));
    let queued = w.open_run("merged", RunStatus::Queued, at(8, 0));
    w.mem
        .leases
        .park(w.key(), &job_of(&queued))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let report = w.sweeper().sweep().await;
    assert_eq!(report.counts.abandoned, 1, "{:?}", report.errors);
    assert_eq!(w.stored(&running).status, RunStatus::Failed);
    let jobs = w.mem.queue.drain_jobs();
    let wakes = jobs
        .iter()
        .filter(|j| j.trigger == Trigger::FollowUp)
        .count();
    assert_eq!(
        (jobs.len(), wakes),
        (2, 1),
        "a redo and a wake-up: {jobs:?}"
    );
    // Woken once: the next sweeps leave it until it has waited as long again.
    w.clock.set(at(9, 30));
    w.sweeper().sweep().await;
    assert!(w.mem.queue.jobs().is_empty());
    assert_eq!(w.stored(&queued).status, RunStatus::Queued);
}

#[tokio::test]
async fn a_left_run_someone_asked_to_stop_is_ended_cancelled_and_not_redone() {
    let w = world();
    let run = w.open_run("stop me", RunStatus::Running, at(8, 0));
    let asked = w
        .mem
        .runs
        .request_cancel(&w.tenant, &run.id, at(8, 1))
        .await;
    assert!(asked.is_ok());
    let report = w.sweeper().sweep().await;
    assert_eq!(report.counts.abandoned, 1, "{:?}", report.errors);
    let ended = w.stored(&run);
    assert_eq!(ended.status, RunStatus::Cancelled);
    assert!(w.mem.queue.jobs().is_empty(), "nothing redone");
    // One carrying a platform's changes, asked to stop before runs said so: redone.
    let mut webhook = w.open_run("webhook", RunStatus::Running, at(8, 0));
    webhook.ids = vec!["7".into()];
    webhook.ids_requested = 1;
    webhook.reported = true;
    w.mem.runs.seed(webhook.clone());
    let asked = w
        .mem
        .runs
        .request_cancel(&w.tenant, &webhook.id, at(8, 1))
        .await;
    assert!(asked.is_ok());
    w.sweeper().sweep().await;
    assert_eq!(w.stored(&webhook).status, RunStatus::Failed);
    let jobs = w.mem.queue.jobs();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].ids, ["7"]);
}

#[tokio::test]
async fn a_left_run_recorded_before_runs_kept_their_ids_is_ended_saying_so_not_redone_without_them()
{
    let w = world();
    let mut old = w.open_run("old webhook", RunStatus::Running, at(8, 0));
    old.ids_requested = 3;
    old.ids = Vec::new();
    w.mem.runs.seed(old.clone());
    w.sweeper().sweep().await;
    let ended = w.stored(&old);
    assert_eq!(ended.status, RunStatus::Failed);
    assert!(
        ended
            .message
            .unwrap_or_default()
            .contains("3 record(s) it named were not kept"),
        "{:?}",
        w.stored(&old).message
    );
    assert!(w.mem.queue.jobs().is_empty());
}

impl World {
    /// A Slack-compatible destination of the tenant, on the receiver.
    async fn slack(&self) {
        let console = crate::service::AlertConsole::new(
            self.mem.alerts.clone(),
            self.mem.alerts.clone(),
            self.mem.sealer.clone(),
            self.clock.clone(),
            true,
        );
        let added = console
            .add_destination(
                &self.tenant,
                crate::service::NewDestination {
                    kind: crate::domain::DestinationKind::Slack,
                    name: "ops".into(),
                    url: Some("http://127.0.0.1:9/slack".into()),
                    secret: None,
                },
            )
            .await;
        assert!(added.is_ok(), "{added:?}");
    }

    /// The Slack texts received so far.
    fn told(&self) -> Vec<String> {
        self.receiver
            .bodies("")
            .iter()
            .map(|b| b["text"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    fn issues(&self, kind: AlertKind) -> Vec<crate::domain::AlertIssue> {
        self.mem
            .alerts
            .all()
            .into_iter()
            .filter(|i| i.kind == kind)
            .collect()
    }

    async fn failed_runs(&self, s: &Schedule, from: u32, count: u32) {
        for n in from..from + count {
            let id = RunId::for_job(at(9, n), &format!("{}-{n}", s.id));
            let recorded = self
                .mem
                .schedules
                .record_run(&self.tenant, s.id, at(9, n), RunStatus::Failed, &id)
                .await;
            assert!(recorded.is_ok());
        }
    }
}

#[tokio::test]
async fn a_schedule_failing_in_a_row_is_alerted_once_while_it_keeps_failing_and_once_when_it_recovers(
) {
    let w = world();
    w.slack().await;
    let s = w.schedule("@hourly", ScheduleOptions::default()).await;
    w.failed_runs(&s, 0, 2).await;
    w.clock.set(at(9, 10));
    w.sweeper().sweep().await;
    assert!(
        w.issues(AlertKind::FailingSchedule).is_empty(),
        "two in a row is not yet a pattern"
    );
    for (n, minute) in [(2, 15), (3, 20), (4, 25), (5, 30)] {
        w.failed_runs(&s, n, 1).await;
        w.clock.set(at(9, minute));
        let report = w.sweeper().sweep().await;
        assert!(report.errors.is_empty(), "{:?}", report.errors);
    }
    let told = w.told();
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(
        told[0].contains("keep failing") && told[0].contains("failed runs in a row"),
        "{}",
        told[0]
    );
    // Its next run succeeds.
    let ok = RunId::for_job(at(9, 40), "ok");
    let recorded = w
        .mem
        .schedules
        .record_run(&w.tenant, s.id, at(9, 40), RunStatus::Succeeded, &ok)
        .await;
    assert!(recorded.is_ok());
    for minute in [45, 50] {
        w.clock.set(at(9, minute));
        w.sweeper().sweep().await;
    }
    assert_eq!(
        w.told().len(),
        1,
        "the resolution waits until it has stayed clear"
    );
    w.clock.set(at(10, 20));
    w.sweeper().sweep().await;
    let told = w.told();
    assert_eq!(told.len(), 2, "{told:?}");
    assert!(told[1].contains("resolved"), "{}", told[1]);
    assert_eq!(
        w.issues(AlertKind::FailingSchedule)[0].status,
        AlertStatus::Resolved
    );
}

#[tokio::test]
async fn an_auto_paused_schedule_is_alerted_and_the_alert_resolves_when_a_person_resumes_it() {
    let w = world();
    w.slack().await;
    let s = w
        .schedule(
            "@hourly",
            ScheduleOptions {
                auto_pause_after_failures: 4,
                ..ScheduleOptions::default()
            },
        )
        .await;
    w.failed_runs(&s, 0, 4).await;
    w.clock.set(at(9, 10));
    let report = w.sweeper().sweep().await;
    assert_eq!(report.paused, [s.id]);
    let paused = w.issues(AlertKind::AutoPaused);
    assert_eq!(paused.len(), 1);
    assert_eq!(paused[0].status, AlertStatus::Open);
    w.clock.set(at(9, 15));
    w.sweeper().sweep().await;
    assert_eq!(
        w.issues(AlertKind::AutoPaused)[0].count,
        1,
        "raised once while it holds"
    );
    let resumed = w
        .schedules
        .update(
            &w.tenant,
            s.id,
            crate::domain::SchedulePatch {
                is_active: Some(true),
                ..Default::default()
            },
        )
        .await;
    assert!(resumed.is_ok());
    w.clock.set(at(9, 20));
    w.sweeper().sweep().await;
    assert_eq!(
        w.issues(AlertKind::AutoPaused)[0].status,
        AlertStatus::Resolved
    );
    assert_eq!(
        w.issues(AlertKind::FailingSchedule)[0].status,
        AlertStatus::Resolved,
        "the edit started the count again"
    );
    w.clock.set(at(9, 50));
    w.sweeper().sweep().await;
    let told = w.told();
    assert!(
        told.iter().any(|t| t.contains("was paused after failing")),
        "{told:?}"
    );
    assert_eq!(
        told.iter().filter(|t| t.contains("resolved")).count(),
        2,
        "{told:?}"
    );
}

#[tokio::test]
async fn fire_times_missed_outside_the_window_are_alerted_and_resolved_by_the_next_fire_that_runs()
{
    let w = world();
    w.slack().await;
    let s = w
        .schedule(
            "@hourly",
            ScheduleOptions {
                catch_up_window_minutes: 0,
                ..ScheduleOptions::default()
            },
        )
        .await;
    w.fired(&s, at(10, 0));
    w.clock.set(at(12, 20));
    w.sweeper().sweep().await;
    let missed = w.issues(AlertKind::MissedFire);
    assert_eq!(missed.len(), 1);
    assert!(
        missed[0].last_error.contains("2 fire time(s)"),
        "{}",
        missed[0].last_error
    );
    assert_eq!(w.told().len(), 1);
    w.fired(&s, at(13, 0));
    w.clock.set(at(13, 20));
    w.sweeper().sweep().await;
    assert_eq!(
        w.issues(AlertKind::MissedFire)[0].status,
        AlertStatus::Resolved
    );
    w.fired(&s, at(14, 0));
    w.clock.set(at(14, 20));
    w.sweeper().sweep().await;
    assert_eq!(w.told().len(), 2);
}

#[tokio::test]
async fn a_deleted_schedules_open_alerts_are_resolved_and_an_abandoned_run_alerts_its_stream_only_once_not_redone(
) {
    let w = world();
    let s = w.schedule("@hourly", ScheduleOptions::default()).await;
    w.failed_runs(&s, 0, 3).await;
    w.clock.set(at(9, 10));
    w.sweeper().sweep().await;
    assert_eq!(
        w.issues(AlertKind::FailingSchedule)[0].status,
        AlertStatus::Open
    );
    let deleted = w.schedules.delete(&w.tenant, s.id).await;
    assert!(deleted.is_ok(), "{deleted:?}");
    w.clock.set(at(9, 15));
    w.sweeper().sweep().await;
    assert_eq!(
        w.issues(AlertKind::FailingSchedule)[0].status,
        AlertStatus::Resolved
    );

    // An abandoned run whose work is redone alerts nobody: the redo may well succeed.
    w.open_run("lost", RunStatus::Running, at(8, 0));
    w.clock.set(at(10, 0));
    w.sweeper().sweep().await;
    assert!(w.issues(AlertKind::RunFailed).is_empty());
    // A redo abandoned in turn is not redone again: that alerts.
    w.open_run("redo-lost-again", RunStatus::Running, at(9, 0));
    w.clock.set(at(11, 0));
    w.sweeper().sweep().await;
    let failed = w.issues(AlertKind::RunFailed);
    assert_eq!(failed.len(), 1);
    assert!(
        failed[0].last_error.contains("abandoned"),
        "{}",
        failed[0].last_error
    );
    assert_eq!(failed[0].subject, format!("stream:{}/orders", w.connection));
}

impl World {
    async fn connection(&self) -> crate::domain::Connection {
        let id = self.connection;
        let found = self.mem.connections.get(id).await.ok().flatten();
        found.unwrap_or_else(|| panic!("connection {id} is seeded"))
    }

    fn raiser(&self) -> crate::service::AlertRaiser {
        crate::service::AlertRaiser::new(self.mem.alerts.clone(), self.clock.clone())
    }

    /// A poll of the connection's orders that wrote `n` changes no webhook had brought.
    fn unannounced_poll(&self, n: u64) -> Run {
        let mut run = crate::fixtures::run(&self.tenant, self.connection, "poll", self.clock.now());
        run.counts.written = n;
        run.counts.unannounced = n;
        run
    }
}

#[tokio::test]
async fn a_needs_reauth_alert_stays_open_until_the_connection_is_connected_again() {
    let w = world();
    let mut refused = w.connection().await;
    refused.needs_reauth = Some("invalid_grant".into());
    w.mem.connections.seed(refused.clone());
    let raised = w.raiser().needs_reauth(&refused).await;
    assert!(raised.is_ok(), "{raised:?}");
    let issue = &w.issues(AlertKind::NeedsReauth)[0];
    assert_eq!(issue.subject, format!("connection:{}", w.connection));
    assert!(
        issue.last_error.contains("invalid_grant"),
        "{}",
        issue.last_error
    );
    w.clock.set(at(9, 10));
    w.sweeper().sweep().await;
    assert_eq!(
        w.issues(AlertKind::NeedsReauth)[0].status,
        AlertStatus::Open
    );
    // Connected again: the mark is cleared, and the next sweep resolves the alert.
    let mut renewed = refused;
    renewed.needs_reauth = None;
    w.mem.connections.seed(renewed);
    w.clock.set(at(9, 15));
    let report = w.sweeper().sweep().await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(
        w.issues(AlertKind::NeedsReauth)[0].status,
        AlertStatus::Resolved
    );
}

#[tokio::test]
async fn alerts_about_a_connection_deleted_or_being_deleted_for_minutes_are_resolved_by_the_sweep()
{
    let w = world();
    let mut refused = w.connection().await;
    refused.needs_reauth = Some("invalid_grant".into());
    refused.webhooks_enabled = true;
    w.mem.connections.seed(refused.clone());
    let mut failed = crate::fixtures::run(&w.tenant, w.connection, "failed", w.clock.now());
    failed.status = RunStatus::Failed;
    for raised in [
        w.raiser().needs_reauth(&refused).await,
        w.raiser().run_ended(&failed).await,
        w.raiser().unannounced(&w.unannounced_poll(1)).await,
    ] {
        assert!(raised.is_ok(), "{raised:?}");
    }
    let open = |w: &World| {
        w.mem
            .alerts
            .all()
            .into_iter()
            .filter(|i| i.status == AlertStatus::Open)
            .count()
    };
    assert_eq!(open(&w), 3);
    // Marked for deletion a moment ago: perhaps a delete refused for the schedules that
    // still use it (it is unmarked at once). Nothing resolves yet.
    let mut deleting = refused.clone();
    deleting.deleting_since = Some(at(9, 5));
    w.mem.connections.seed(deleting);
    w.clock.set(at(9, 10));
    let report = w.sweeper().sweep().await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(open(&w), 3);
    // A delete that has gone on for minutes is as good as done.
    w.clock.set(at(9, 20));
    let report = w.sweeper().sweep().await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(open(&w), 0, "{:#?}", w.mem.alerts.all());
    // And one deleted outright.
    let w = world();
    let mut failed = crate::fixtures::run(&w.tenant, w.connection, "f", w.clock.now());
    failed.status = RunStatus::Failed;
    let raised = w.raiser().run_ended(&failed).await;
    assert!(raised.is_ok(), "{raised:?}");
    let version = w.connection().await.version;
    let deleted =
        crate::ports::ConnectionRemoval::delete(&*w.mem.connections, w.connection, version).await;
    assert!(deleted.is_ok(), "{deleted:?}");
    w.sweeper().sweep().await;
    assert_eq!(open(&w), 0, "{:#?}", w.mem.alerts.all());
}

#[tokio::test]
async fn a_silent_webhooks_alert_resolves_once_the_streams_webhooks_arrive_and_no_poll_raised_it_for_a_day(
) {
    let w = world();
    let mut takes_webhooks = w.connection().await;
    takes_webhooks.webhooks_enabled = true;
    w.mem.connections.seed(takes_webhooks);
    let raised = w.raiser().unannounced(&w.unannounced_poll(3)).await;
    assert!(raised.is_ok(), "{raised:?}");
    let issue = &w.issues(AlertKind::WebhooksSilent)[0];
    assert_eq!(issue.subject, format!("stream:{}/orders", w.connection));
    assert!(
        issue.last_error.contains("3 write(s)"),
        "{}",
        issue.last_error
    );
    let silent = |w: &World| w.issues(AlertKind::WebhooksSilent)[0].status;
    let arrived = |at| {
        let leases = w.mem.leases.clone();
        let key = w.key();
        async move {
            let noted = crate::ports::WebhookArrivals::arrived(&*leases, key, at).await;
            assert!(noted.is_ok(), "{noted:?}");
        }
    };
    let day = Duration::days(1);
    // Webhooks that arrived before the poll that raised it prove nothing, a day later too.
    arrived(at(8, 0)).await;
    w.clock.set(at(9, 10) + day);
    w.sweeper().sweep().await;
    assert_eq!(silent(&w), AlertStatus::Open);
    // Webhooks arrive again; acknowledged after that (no sighting of the condition).
    arrived(at(9, 12) + day).await;
    w.clock.set(at(9, 13) + day);
    let id = w.issues(AlertKind::WebhooksSilent)[0].id.clone();
    let acked = crate::service::AlertConsole::new(
        w.mem.alerts.clone(),
        w.mem.alerts.clone(),
        w.mem.sealer.clone(),
        w.clock.clone(),
        true,
    )
    .ack(&w.tenant, &id, "ops")
    .await;
    assert!(acked.is_ok(), "{acked:?}");
    w.clock.set(at(9, 15) + day);
    let report = w.sweeper().sweep().await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(silent(&w), AlertStatus::Resolved);

    // Raised again; webhooks arrive (those of another topic, say) but the next poll raises
    // it again within the day: it stays open, one episode.
    w.clock.set(at(12, 0) + day);
    let raised = w.raiser().unannounced(&w.unannounced_poll(1)).await;
    assert!(raised.is_ok(), "{raised:?}");
    arrived(at(12, 5) + day).await;
    w.clock.set(at(13, 0) + day);
    let raised = w.raiser().unannounced(&w.unannounced_poll(1)).await;
    assert!(raised.is_ok(), "{raised:?}");
    w.clock.set(at(13, 5) + day * 2);
    w.sweeper().sweep().await;
    assert_eq!(silent(&w), AlertStatus::Open, "nothing arrived since");
    // Raised once more between a sweep's listing and its resolving: it stays open.
    arrived(at(13, 10) + day * 2).await;
    let listed = w.issues(AlertKind::WebhooksSilent)[0].clone();
    w.clock.set(at(13, 15) + day * 2);
    let raised = w.raiser().unannounced(&w.unannounced_poll(1)).await;
    assert!(raised.is_ok(), "{raised:?}");
    let resolved = w.raiser().resolve_listed(&listed).await;
    assert!(resolved.is_ok(), "{resolved:?}");
    assert_eq!(silent(&w), AlertStatus::Open);
    // The connection stops taking webhooks: resolved at once.
    let mut off = w.connection().await;
    off.webhooks_enabled = false;
    w.mem.connections.seed(off);
    w.clock.set(at(13, 20) + day * 2);
    w.sweeper().sweep().await;
    assert_eq!(silent(&w), AlertStatus::Resolved);
}

#[tokio::test]
async fn a_sweep_looks_at_as_many_schedules_as_it_may_the_next_goes_on_and_each_missed_fire_is_caught_up_once(
) {
    let w = world();
    let mut made = Vec::new();
    for _ in 0..7 {
        let s = w.schedule("@hourly", ScheduleOptions::default()).await;
        w.fired(&s, at(10, 0));
        made.push(s.id);
    }
    // The worker is down from 10:30; sweeps look at three schedules each.
    w.clock.set(at(12, 20));
    let first = w.slicing_sweeper(3, 100).sweep().await;
    assert!(first.errors.is_empty(), "{:?}", first.errors);
    assert_eq!((first.counts.schedules, first.counts.caught_up), (3, 3));
    let status = w.status().await;
    let pass = status
        .pass
        .clone()
        .unwrap_or_else(|| panic!("the pass goes on"));
    assert_eq!(
        (pass.from, pass.until),
        (at(12, 20) - Duration::hours(24), at(12, 10)),
        "a first pass looks back a day"
    );
    assert!(
        status.checked_until < at(12, 10),
        "not checked until every schedule was"
    );
    w.clock.set(at(12, 25));
    let second = w.slicing_sweeper(3, 100).sweep().await;
    assert_eq!((second.counts.schedules, second.counts.caught_up), (3, 3));
    // The last one is looked at; the rest of the shards are empty: the pass ends.
    w.clock.set(at(12, 30));
    let third = w.slicing_sweeper(3, 100).sweep().await;
    assert_eq!((third.counts.schedules, third.counts.caught_up), (1, 1));
    let status = w.status().await;
    assert_eq!(status.pass, None);
    assert_eq!(
        status.checked_until,
        at(12, 10),
        "as of when the pass began"
    );
    assert_eq!(status.totals.caught_up, 7);
    let mut caught: Vec<ScheduleId> = w.caught_up().into_iter().map(|(s, _)| s).collect();
    caught.sort();
    made.sort();
    assert_eq!(caught, made, "each schedule caught up once");
    // A new pass checks only the fire times since: nothing more.
    w.clock.set(at(12, 35));
    let fourth = w.slicing_sweeper(3, 100).sweep().await;
    assert_eq!(fourth.counts.caught_up, 0);
    assert_eq!(w.mem.queue.delayed_jobs().len(), 7);
}

#[tokio::test]
async fn a_page_of_schedules_that_cannot_be_read_is_the_next_sweeps_first_and_nothing_is_checked_twice(
) {
    let w = world();
    for _ in 0..4 {
        let s = w.schedule("@hourly", ScheduleOptions::default()).await;
        w.fired(&s, at(10, 0));
    }
    w.clock.set(at(12, 20));
    let first = w.slicing_sweeper(2, 100).sweep().await;
    assert_eq!(first.counts.caught_up, 2);
    let before = w.status().await.pass;
    w.mem.schedules.set_failing(true);
    w.clock.set(at(12, 25));
    let failed = w.slicing_sweeper(2, 100).sweep().await;
    assert_eq!(failed.counts.schedules, 0);
    assert!(
        failed.errors.iter().any(|e| e.contains("not read")),
        "{:?}",
        failed.errors
    );
    assert_eq!(w.status().await.pass, before, "the walk stays where it was");
    w.mem.schedules.set_failing(false);
    w.clock.set(at(12, 30));
    let resumed = w.slicing_sweeper(2, 100).sweep().await;
    assert_eq!(resumed.counts.caught_up, 2);
    // (It may have stopped at its two before the last, empty, shards: one more ends it.)
    w.clock.set(at(12, 35));
    let last = w.slicing_sweeper(2, 100).sweep().await;
    assert_eq!(last.counts.caught_up, 0);
    assert!(
        w.status().await.checked_until >= at(12, 10),
        "the pass ended"
    );
    assert_eq!(w.mem.queue.delayed_jobs().len(), 4);
}

#[tokio::test]
async fn a_trigger_whose_schedule_is_gone_is_found_by_a_later_sweeps_slice_of_triggers_and_live_ones_are_kept(
) {
    let w = world();
    let mut live = Vec::new();
    for _ in 0..3 {
        live.push(w.schedule("@daily", ScheduleOptions::default()).await);
    }
    // Deleted from the store, its trigger left behind.
    let gone = w.schedule("@daily", ScheduleOptions::default()).await;
    w.mem
        .schedules
        .delete(&w.tenant, gone.id, gone.version)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // And one named like a schedule whose job names no tenant: its schedule cannot be
    // looked for, so a sweep that has not seen every schedule leaves it alone.
    let unnamed = ScheduleId::new_random().to_string();
    w.mem.trigger.put_raw(crate::ports::TriggerState {
        name: unnamed.clone(),
        definition: crate::domain::TriggerDefinition {
            expression: "cron(0 0 * * ? *)".into(),
            timezone: "UTC".into(),
            enabled: true,
            input: "{}".into(),
            flexible_window_minutes: None,
        },
        target_current: true,
    });
    assert_eq!(w.mem.trigger.len(), 5);
    // One schedule and one trigger a sweep: the triggers seen are mostly of schedules
    // not walked in the same sweep, and must be looked up, not taken for orphans.
    let mut repairs = 0;
    let mut triggers = 0;
    // (Sweeps see a trigger each, until every prefix was listed once.)
    for minute in 0..10 {
        w.clock.set(at(9, 5 + minute * 5));
        let report = w.slicing_sweeper(1, 1).sweep().await;
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        repairs += report.counts.repairs;
        triggers += report.counts.triggers;
        if triggers >= 5 && w.status().await.triggers_at.is_none() {
            break;
        }
    }
    assert_eq!(triggers, 5, "each trigger looked at once");
    assert!(w.mem.trigger.state(&unnamed).is_some(), "left alone");
    assert_eq!(repairs, 1);
    assert!(w.mem.trigger.get(gone.id).is_none(), "the orphan removed");
    for s in &live {
        assert!(w.mem.trigger.get(s.id).is_some(), "a live trigger kept");
    }
    assert_eq!(
        w.status().await.triggers_at,
        None,
        "every trigger listed: from the first again"
    );
}

#[tokio::test]
async fn a_pass_that_takes_many_sweeps_still_catches_each_miss_up_inside_its_window_and_counts_each_miss_outside_once(
) {
    let w = world();
    let mut windowed = Vec::new();
    for _ in 0..8 {
        windowed.push(w.schedule("@hourly", ScheduleOptions::default()).await);
    }
    let never = w
        .schedule(
            "@hourly",
            ScheduleOptions {
                catch_up_window_minutes: 0,
                ..ScheduleOptions::default()
            },
        )
        .await;
    for s in windowed.iter().chain([&never]) {
        for h in [10, 11, 12] {
            w.fired(s, at(h, 0));
        }
    }
    // The worker stops before 13:00. One schedule a sweep, every five minutes: a pass
    // takes 45 minutes, so a miss waits up to one pass (not two) to be found.
    let mut outside = Vec::new();
    let mut minute = 20;
    // (After 13:55, whole passes a sweep: the pass under way ends and another begins.)
    while minute <= 125 {
        w.clock.set(at(12, 0) + Duration::minutes(minute));
        let per_sweep = if minute <= 115 { 1 } else { 100 };
        let report = w.slicing_sweeper(per_sweep, 100).sweep().await;
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        outside.extend(
            report
                .missed
                .iter()
                .filter(|m| m.catch_up.is_none())
                .map(|m| (m.schedule, m.fire_time)),
        );
        // (13:55: before the 14:00 fire is judged.)
        if at(12, 0) + Duration::minutes(minute) == at(13, 55) {
            let caught: std::collections::HashSet<ScheduleId> = w
                .caught_up()
                .into_iter()
                .filter(|(_, fire)| *fire == at(13, 0))
                .map(|(s, _)| s)
                .collect();
            for s in &windowed {
                assert!(
                    caught.contains(&s.id),
                    "each schedule's 13:00 caught up within its hour"
                );
            }
            assert_eq!(caught.len(), 8, "and only theirs");
        }
        minute += 5;
    }
    let mut once = outside.clone();
    once.sort();
    once.dedup();
    assert_eq!(
        once.len(),
        outside.len(),
        "no miss counted twice: {outside:?}"
    );
    assert!(
        outside.contains(&(never.id, at(13, 0))),
        "the miss outside the window counted: {outside:?}"
    );
    assert!(outside.iter().all(|(s, _)| *s == never.id));
}

#[tokio::test]
async fn a_schedule_that_cannot_be_checked_holds_its_page_back_three_sweeps_then_the_pass_goes_on_without_it(
) {
    let w = world();
    let mut all = Vec::new();
    for _ in 0..3 {
        let s = w.schedule("@hourly", ScheduleOptions::default()).await;
        w.fired(&s, at(10, 0));
        all.push(s);
    }
    let runs = Arc::new(Interleaved {
        inner: w.mem.runs.clone(),
        worker_writes: AtomicBool::new(false),
        sweep_dies: AtomicBool::new(false),
        other_sweep_ends: AtomicBool::new(false),
        unanswered: Some(all[0].id),
        now: at(12, 0),
    });
    let sweeper = |w: &World| {
        let mut s = w.sweeper_with(runs.clone());
        s.settings.max_schedules = 1;
        s
    };
    let mut minute = 20;
    let mut errors = Vec::new();
    // Enough sweeps for three tries of the broken page and a page each of the others.
    while minute <= 20 + 5 * 8 {
        w.clock.set(at(12, 0) + Duration::minutes(minute));
        errors.extend(sweeper(&w).sweep().await.errors);
        minute += 5;
    }
    assert!(
        errors.iter().any(|e| e.contains("passed over")),
        "{errors:?}"
    );
    let caught: std::collections::HashSet<ScheduleId> =
        w.caught_up().into_iter().map(|(s, _)| s).collect();
    assert!(
        caught.contains(&all[1].id) && caught.contains(&all[2].id),
        "the others checked: {caught:?}"
    );
    assert!(!caught.contains(&all[0].id));
    assert!(
        w.status().await.checked_until > at(11, 0),
        "the pass ended all the same"
    );
}
