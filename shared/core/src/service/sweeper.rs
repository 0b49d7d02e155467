//! The sweeper: what no request and no queue would notice, looked for on a rate (an
//! EventBridge Scheduler `rate` schedule invokes its function every few minutes). Each
//! sweep, in this order:
//!
//! 1. **Runs left open.** A run still `queued` or `running` whose record nobody has written
//!    for [`SweeperSettings::stale_after`] (longer than the sync queue takes to hand a job
//!    back), on a stream nobody has worked on for [`SweeperSettings::quiet`], lost its job:
//!    its worker was killed and the queue gave up on the message, or the message never left.
//!    A follow-up kept on such a stream is woken; a queued run never taken up has its job
//!    sent again (as it was, ids included); a run taken up and left is ended `failed`
//!    (abandoned) and its work queued as a new run (its ids, sync mode and span), once: a
//!    redo that is itself abandoned is ended without another.
//! 2. **Schedules, a slice at a time.** The sweeper walks every schedule through the sweep
//!    index (16 shards, a page of 100 at a time), from where the last sweep stopped, until
//!    [`SweeperSettings::max_schedules`] were looked at or [`WALK_TIME`] is spent; where it
//!    stopped is kept in its status (recorded before alerts are looked at, so a sweep cut
//!    short after it does not make the next walk the same slice), and the next sweep goes
//!    on from there. A *pass* over every schedule checks fire times from where the last
//!    pass ended; each page is checked up to the sweep's own time (less the grace), so a
//!    pass that takes many sweeps still finds a miss while it can be caught up, and
//!    `checked_until` moves, when the pass ends, to where the pass began (what lies after
//!    is checked again by the next pass; a miss outside the window is counted by the pass
//!    whose span holds it, so once). For each schedule on a page:
//!    - **auto-pause**: one whose runs failed in a row as often as it allows is paused;
//!    - **missed fire times**: its fire times in the pass (each judged
//!      [`SweeperSettings::grace`] after it, plus its flexible window) are checked against
//!      the runs it had. A fire time with no run at or after it is missed; if the last
//!      missed one is within the schedule's catch-up window, one `catch_up` run is queued
//!      for it (one per schedule, not one per missed tick, its start spread over a few
//!      minutes so that an outage does not end in every tenant's catch-up at once). The
//!      catch-up has the fire's own identity, so a fire that turns up after all is the
//!      same run. One outside the window is counted and alerted, not run;
//!    - **drift**: its EventBridge schedule is read and brought in step with it (the
//!      repair use case, which re-reads the store before it writes).
//!
//!    A page that could not be read, or not wholly checked, is the next sweep's first; one
//!    not wholly checked [`MAX_PAGE_TRIES`] sweeps in a row is passed over for this pass
//!    (one schedule that cannot be checked does not hold every other up).
//! 3. **Triggers whose schedule is gone**, a slice at a time as well: the EventBridge
//!    group's names a page after another, by their first hex digit (a listing token that
//!    expires costs that prefix's progress only), from where the last sweep stopped, at
//!    most [`SweeperSettings::max_triggers`]; one not among the schedules just walked is
//!    read and its schedule looked up (consistently) under the tenant its job names; an
//!    orphan is removed. One named like a schedule whose job names no tenant is left to
//!    `syncctl repair`, which sees every schedule.
//! 4. **Alerts** of the schedules walked, and of the open issues (about connections and
//!    streams, and about schedules deleted), raised or resolved; then told.
//!
//! Every write is idempotent, so two sweeps at once (EventBridge delivers at least once)
//! or a sweep that dies half-way change nothing twice: a run is changed only while it is as
//! it was read, and the runs the sweeper queues have ids derived from what they stand for.
//! Reads are bounded: open runs through an index, least recently written first, at most
//! [`SweeperSettings::max_runs`] a sweep; schedules and triggers a page at a time, as many
//! as a sweep may; a schedule's runs by key-range queries (a binary search over its fire
//! times), made only for a schedule that had a fire time in the pass.

use chrono::{DateTime, Duration, Utc};
use std::sync::Arc;

use super::alerts::stamp;
use super::{
    AlertDelivery, AlertRaiser, DeliveryReport, Drift, RepairReport, ScheduleRepair,
    ScheduleService, Scope, ServiceError,
};
use crate::clock::Clock;
use crate::crypto::sha256_hex;
use crate::domain::{
    AlertIssue, AlertKind, AlertStatus, AlertSubject, Connection, ConnectionId, Raised, Run, RunId,
    RunStatus, Schedule, ScheduleId, SchedulePatch, SyncJob, Trigger, ALERT_AFTER_FAILURES,
    WEBHOOK_QUIET,
};
use crate::ports::{
    ConnectionStore, JobQueue, RunSweep, ScheduleStore, StreamWatch, SweepCounts, SweepLog,
    SweepPass, SweepStatus, SyncKey, TriggerWalk, SWEEP_SHARDS,
};

/// A connection marked for deletion this long is taken for gone (a delete refused for what
/// still uses the connection unmarks it at once).
const DELETE_SETTLES: Duration = Duration::minutes(10);
/// Most fire times of one schedule looked at in one sweep (a rate of one minute over a day).
const MAX_FIRES_PER_SCHEDULE: usize = 1_500;
/// The job id prefix of a run that redoes an abandoned one.
const REDO_PREFIX: &str = "redo-";
/// How long a sweep may take, telling alerts included: the sweeper function's timeout in
/// `template.yaml` (120 s) less a margin.
const SWEEP_TIME: std::time::Duration = std::time::Duration::from_secs(100);
/// How long a sweep walks schedules; the triggers' walk has until [`TRIGGERS_TIME`], and
/// telling alerts the rest of [`SWEEP_TIME`].
const WALK_TIME: std::time::Duration = std::time::Duration::from_secs(60);
const TRIGGERS_TIME: std::time::Duration = std::time::Duration::from_secs(75);
/// Sweeps in a row a page may fail to be checked before the pass goes on without it.
const MAX_PAGE_TRIES: u32 = 3;
/// Most open alerts about schedules not walked whose schedule is looked up in one sweep.
const MAX_GONE_CHECKS: usize = 100;
/// Schedules read a page at a time, and triggers (EventBridge lists at most 100 a call).
const SCHEDULE_PAGE: usize = 100;
const TRIGGER_PAGE: usize = 100;
/// How the note of a schedule the sweeper paused begins.
const AUTO_PAUSE_NOTE: &str = "paused by the sweeper after";

/// What the sweeper did with one open run.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Settled {
    Left,
    Woken,
    Resent,
    /// Ended; the run queued to redo its work, if one was.
    Abandoned(Option<RunId>),
}

/// The job a run was recorded for, as it was sent (a continuation's place is not kept:
/// the job starts over, and runs already written are written once).
fn job_of(run: &Run) -> SyncJob {
    SyncJob {
        job_id: run.job_id.clone(),
        tenant_id: run.tenant_id.clone(),
        connection_id: run.connection_id,
        platform: run.platform,
        entity_type: run.entity_type,
        sync_mode: run.sync_mode,
        trigger: run.trigger.clone(),
        triggered_at: run.triggered_at,
        ids: run.ids.clone(),
        resume: None,
        attempt: 0,
        stands_for: Vec::new(),
        window: run.window,
        reported: Some(run.reported),
    }
}

/// What the sweeper needs: exactly what its function's IAM policy allows.
#[derive(Clone)]
pub struct SweeperPorts {
    pub runs: Arc<dyn RunSweep>,
    pub streams: Arc<dyn StreamWatch>,
    pub jobs: Arc<dyn JobQueue>,
    pub schedules: Arc<dyn ScheduleStore>,
    /// To see whether the connection an open alert is about was connected again, stopped
    /// taking webhooks, or is gone.
    pub connections: Arc<dyn ConnectionStore>,
    /// To pause a schedule (the store and EventBridge both).
    pub service: ScheduleService,
    pub log: Arc<dyn SweepLog>,
    pub repair: ScheduleRepair,
    /// Alerts raised and resolved from what a sweep sees.
    pub alerts: AlertRaiser,
    /// And told to whoever is to hear them.
    pub delivery: AlertDelivery,
    pub clock: Arc<dyn Clock>,
}

/// How the sweeper judges time.
#[derive(Debug, Clone)]
pub struct SweeperSettings {
    /// An open run unwritten for this long, with its stream free, is abandoned. Longer than
    /// the sync queue's visibility timeout (a killed worker's job comes back after it).
    pub stale_after: Duration,
    /// A stream worked on this recently is left to the next sweep (a continuation, or a
    /// job sent again for later, may be on its way).
    pub quiet: Duration,
    /// A queued run whose job never reaches a worker is sent again for this long.
    pub give_up_after: Duration,
    /// Most open runs looked at in one sweep (the next sweep goes on).
    pub max_runs: usize,
    /// Most schedules looked at in one sweep (the next goes on where it stopped).
    pub max_schedules: usize,
    /// Most triggers listed in one sweep, looking for those whose schedule is gone.
    pub max_triggers: usize,
    /// A fire time is judged only this long after it: its job may still be on its way.
    pub grace: Duration,
    /// Catch-up runs start within this long of the sweep, each schedule at its own offset.
    pub spread: Duration,
    /// Fire times further back than this are not looked for (the first sweep, or one after
    /// a long outage of the sweeper itself).
    pub lookback: Duration,
}

impl Default for SweeperSettings {
    fn default() -> Self {
        Self {
            stale_after: Duration::minutes(45),
            quiet: Duration::minutes(5),
            give_up_after: Duration::hours(24),
            max_runs: 200,
            max_schedules: 5_000,
            max_triggers: 1_000,
            grace: Duration::minutes(10),
            spread: Duration::minutes(5),
            lookback: Duration::hours(24),
        }
    }
}

/// One missed fire time found by a sweep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissedFire {
    pub schedule: ScheduleId,
    pub tenant: crate::domain::TenantId,
    pub fire_time: DateTime<Utc>,
    /// The `catch_up` run queued for it; `None` when it was outside the catch-up window.
    pub catch_up: Option<RunId>,
}

/// What a sweep's walk over the schedules did.
struct Walk {
    /// Up to where every schedule's fire times are now checked.
    checked_until: DateTime<Utc>,
    /// The pass to go on with, unless it was finished.
    pass: Option<SweepPass>,
    /// The schedules looked at.
    schedules: Vec<Schedule>,
}

/// What one sweep found and did.
#[derive(Debug, Clone, Default)]
pub struct SweepReport {
    pub counts: SweepCounts,
    /// Each abandoned run, with the run queued to redo its work (none for one that was
    /// itself a redo, or that never reached a worker).
    pub abandoned: Vec<(RunId, Option<RunId>)>,
    /// Queued runs whose job was sent again.
    pub resent: Vec<RunId>,
    /// Schedules paused after failing in a row.
    pub paused: Vec<ScheduleId>,
    pub missed: Vec<MissedFire>,
    pub drifts: Vec<Drift>,
    /// Schedules whose last fire time checked had its run.
    pub on_time: Vec<ScheduleId>,
    /// Alert issues this sweep opened, or saw again.
    pub alerts_raised: u64,
    /// What telling the alerts' destinations did.
    pub alerts: DeliveryReport,
    /// What could not be done; the next sweep tries again.
    pub errors: Vec<String>,
}

#[derive(Clone)]
pub struct Sweeper {
    ports: SweeperPorts,
    settings: SweeperSettings,
}

impl Sweeper {
    pub fn new(ports: SweeperPorts, settings: SweeperSettings) -> Self {
        Self { ports, settings }
    }

    /// One sweep; its status is recorded for the next (and for `GET /api/sync/sweeper`).
    pub async fn sweep(&self) -> SweepReport {
        let started = std::time::Instant::now();
        let now = self.ports.clock.now();
        let mut report = SweepReport::default();
        let (previous, known) = match self.ports.log.last().await {
            Ok(p) => (p, true),
            Err(e) => {
                report.errors.push(format!("sweep status not read: {e}"));
                (None, false)
            }
        };
        self.abandoned_runs(now, &mut report).await;
        let walk = self
            .walk(now, previous.as_ref(), started, &mut report)
            .await;
        let triggers_at = self
            .orphaned_triggers(
                previous.as_ref().and_then(|p| p.triggers_at.clone()),
                &walk.schedules,
                started,
                &mut report,
            )
            .await;
        let totals_before = previous.map(|p| p.totals).unwrap_or_default();
        let mut status = SweepStatus {
            last_sweep_at: now,
            checked_until: walk.checked_until,
            pass: walk.pass,
            triggers_at,
            last: report.counts,
            totals: totals_before,
            errors: report.errors.clone(),
        };
        status.totals.add(&report.counts);
        // Where the walks stopped is recorded before anything else can run long (alerts
        // read and write per open issue): a sweep cut short by its timeout after this
        // leaves the next to go on, not to walk the same slice again.
        // (Not over a status that could not be read: its totals would be lost.)
        if known {
            self.record(&status, &mut report).await;
        }
        self.alert(&walk.schedules, &mut report).await;
        status.last = report.counts;
        status.totals = totals_before;
        status.totals.add(&report.counts);
        status.errors = report.errors.clone();
        if known {
            self.record(&status, &mut report).await;
        }
        tracing::info!(
            abandoned = report.counts.abandoned,
            caught_up = report.counts.caught_up,
            missed = report.counts.missed,
            repairs = report.counts.repairs,
            errors = report.errors.len(),
            "sweep done"
        );
        // Telling people comes last, after the status is recorded, and within its own
        // budget: a slow destination can hold up nothing else.
        let mut told = DeliveryReport::default();
        let left = SWEEP_TIME.saturating_sub(started.elapsed());
        self.ports.delivery.deliver_within(left, &mut told).await;
        report.errors.append(&mut told.errors);
        report.alerts = told;
        report
    }

    async fn record(&self, status: &SweepStatus, report: &mut SweepReport) {
        if let Err(e) = self.ports.log.record(status).await {
            report
                .errors
                .push(format!("sweep status not recorded: {e}"));
        }
    }

    async fn abandoned_runs(&self, now: DateTime<Utc>, report: &mut SweepReport) {
        let before = now - self.settings.stale_after;
        let stale = match self.ports.runs.stale(before, self.settings.max_runs).await {
            Ok(runs) => runs,
            Err(e) => {
                report.errors.push(format!("open runs not read: {e}"));
                return;
            }
        };
        for seen in stale {
            match self.settle(&seen, now).await {
                Ok(Settled::Abandoned(redo)) => {
                    tracing::warn!(run_id = %seen.id, tenant_id = %seen.tenant_id, redo = ?redo, "run abandoned");
                    report.counts.abandoned += 1;
                    report.abandoned.push((seen.id.clone(), redo));
                }
                Ok(Settled::Resent) => {
                    tracing::warn!(run_id = %seen.id, tenant_id = %seen.tenant_id, "queued run's job sent again");
                    report.resent.push(seen.id.clone());
                }
                Ok(Settled::Woken) => {
                    tracing::warn!(run_id = %seen.id, tenant_id = %seen.tenant_id, "stream's waiting follow-up woken");
                }
                Ok(Settled::Left) => {}
                Err(e) => report
                    .errors
                    .push(format!("run {} not settled: {e}", seen.id)),
            }
        }
    }

    /// What becomes of a run found open and unwritten for long:
    /// - left alone while its stream is worked on, or was a moment ago (a continuation, or
    ///   its job sent again for later, may be on its way);
    /// - with a follow-up kept on a stream nobody works on, the follow-up's wake-up was
    ///   lost: one is sent (the follow-up may be this run's job, merged);
    /// - queued and never taken up: its job is sent again, as it was (for a day; then it is
    ///   ended `failed`);
    /// - taken up and left: ended `failed` (abandoned) and its work queued as a new run,
    ///   the records it named included, unless it was itself such a run.
    async fn settle(&self, seen: &Run, now: DateTime<Utc>) -> Result<Settled, String> {
        let err = |e: &dyn std::fmt::Display| e.to_string();
        // (The index may lag: the run as stored now decides.)
        let Some(run) = self
            .ports
            .runs
            .get(&seen.tenant_id, &seen.id)
            .await
            .map_err(|e| err(&e))?
        else {
            return Ok(Settled::Left);
        };
        if run.status.is_final() || run.updated_at > now - self.settings.stale_after {
            return Ok(Settled::Left);
        }
        let key = SyncKey {
            connection: run.connection_id,
            entity: run.entity_type,
        };
        let stream = self
            .ports
            .streams
            .state(key, now)
            .await
            .map_err(|e| err(&e))?;
        if stream.busy
            || stream
                .lease_until
                .is_some_and(|until| until > now - self.settings.quiet)
        {
            return Ok(Settled::Left);
        }
        // Asked to stop, and nobody is left to: it stops here, with nothing redone (unless
        // it carries a platform's changes, which no request stops).
        if !run.reported
            && self
                .ports
                .runs
                .cancel_requested(&run.tenant_id, &run.id)
                .await
                .map_err(|e| err(&e))?
                .is_some()
        {
            let why = "cancelled on request; its worker had stopped before it could stop it, and what it wrote stays".to_string();
            return self.end(&run, RunStatus::Cancelled, why, now, true).await;
        }
        // Recorded before runs kept the records they name: those cannot be sent again.
        if run.ids_requested > 0 && run.ids.is_empty() {
            let why = format!(
                "abandoned: its worker stopped without finishing it (nothing written since {}); the {} record(s) it named were not kept with it: ask for them again",
                stamp(run.updated_at),
                run.ids_requested
            );
            return self.end(&run, RunStatus::Failed, why, now, true).await;
        }
        let job = job_of(&run);
        let never_taken_up = run.status == RunStatus::Queued && run.attempts == 0;
        if never_taken_up && now - run.started_at > self.settings.give_up_after {
            let why = "abandoned: its job never reached a worker, though sent again for a day; ask for it again if it is still wanted".to_string();
            return self.end(&run, RunStatus::Failed, why, now, true).await;
        }
        if never_taken_up {
            // A follow-up kept on a stream nobody works on lost its wake-up; this run may be
            // merged into it. Wake it; or send the run's own job again. Either way the run is
            // touched first, so it is looked at again only once it has waited as long again.
            let mut touched = run.clone();
            touched.updated_at = now;
            if !self
                .ports
                .runs
                .replace_if_untouched(&touched, run.updated_at)
                .await
                .map_err(|e| err(&e))?
            {
                return Ok(Settled::Left);
            }
            if stream.pending {
                let wake = SyncJob {
                    job_id: format!("wake-{}-{}", key.connection, now.timestamp_millis()),
                    trigger: Trigger::FollowUp,
                    ids: Vec::new(),
                    window: None,
                    ..job
                };
                self.ports
                    .jobs
                    .send_job(&wake)
                    .await
                    .map_err(|e| format!("wake-up not queued: {e}"))?;
                return Ok(Settled::Woken);
            }
            // (If this send fails, a later sweep finds the run again.)
            self.ports
                .jobs
                .send_job(&job)
                .await
                .map_err(|e| format!("job not sent again: {e}"))?;
            return Ok(Settled::Resent);
        }
        if run.job_id.starts_with(REDO_PREFIX) {
            let why = format!(
                "abandoned: its worker stopped without finishing it (nothing written since {}, and no worker held its stream); not redone again, as it was itself the redo of an abandoned run: look at its stream, then ask for it again",
                stamp(run.updated_at)
            );
            return self.end(&run, RunStatus::Failed, why, now, true).await;
        }
        let redo_job = SyncJob {
            job_id: format!("{REDO_PREFIX}{}", run.id),
            trigger: Trigger::Retry,
            // (From the abandoned run, so a sweep that dies half-way and the next one
            // queue the same run.)
            triggered_at: run.updated_at,
            ..job
        };
        let redo = Run::of_job(&redo_job, redo_job.run_id(), None, now, RunStatus::Queued);
        self.ports.runs.create(&redo).await.map_err(|e| err(&e))?;
        let why = format!(
            "abandoned: its worker stopped without finishing it (nothing written since {}, and no worker held its stream); run {} does its work again",
            stamp(run.updated_at),
            redo.id
        );
        // (Not alerted: the redo does its work, and is alerted if it fails for good.) A late
        // delivery of its job then finds it redone and is dropped.
        let abandoned = Run {
            redone_by: Some(redo.id.clone()),
            ..run.clone()
        };
        if self
            .end(&abandoned, RunStatus::Failed, why, now, false)
            .await?
            == Settled::Left
        {
            // Changed since it was read: by a worker that took it up (the redo is not
            // needed), or by another sweep that ended it naming this same redo (which is).
            let stored = self
                .ports
                .runs
                .get(&run.tenant_id, &run.id)
                .await
                .map_err(|e| err(&e))?;
            let ended_for_redo = stored.is_some_and(|r| {
                r.status == RunStatus::Failed && r.redone_by.as_ref() == Some(&redo.id)
            });
            if !ended_for_redo {
                self.skip_redo(&redo, &run, now).await?;
                return Ok(Settled::Left);
            }
        }
        // (If this send fails, the redo stays queued, never taken up: a later sweep sends
        // it again.)
        self.ports
            .jobs
            .send_job(&redo_job)
            .await
            .map_err(|e| format!("redo of run {} not queued: {e}", run.id))?;
        Ok(Settled::Abandoned(Some(redo.id)))
    }

    /// Marks `redo` skipped while it is still queued: `run` was taken up again.
    async fn skip_redo(&self, redo: &Run, run: &Run, now: DateTime<Utc>) -> Result<(), String> {
        let runs = &self.ports.runs;
        let stored = runs
            .get(&redo.tenant_id, &redo.id)
            .await
            .map_err(|e| e.to_string())?;
        let Some(stored) = stored.filter(|r| r.status == RunStatus::Queued) else {
            return Ok(());
        };
        let mut dropped = stored.clone();
        dropped.status = RunStatus::Skipped;
        dropped.message = Some(format!(
            "not needed: run {} was taken up again before it could be redone",
            run.id
        ));
        dropped.finished_at = Some(now);
        dropped.updated_at = now;
        runs.replace_if_untouched(&dropped, stored.updated_at)
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Ends `run` as `status` with `why`, if nobody wrote it since it was read; notes it on
    /// its schedule unless a later run of the schedule is there; raises or resolves its
    /// stream's alert when `alert`.
    async fn end(
        &self,
        run: &Run,
        status: RunStatus,
        why: String,
        now: DateTime<Utc>,
        alert: bool,
    ) -> Result<Settled, String> {
        let mut ended = run.clone();
        ended.status = status;
        ended.message = Some(why);
        ended.finished_at = Some(now);
        ended.updated_at = now;
        if !self
            .ports
            .runs
            .replace_if_untouched(&ended, run.updated_at)
            .await
            .map_err(|e| e.to_string())?
        {
            return Ok(Settled::Left);
        }
        if alert {
            if let Err(e) = self.ports.alerts.run_ended(&ended).await {
                tracing::warn!(run_id = %run.id, error = %e, "alert of the ended run not raised");
            }
        }
        if let Some(schedule) = run.schedule_id {
            let later = run.triggered_at + Duration::milliseconds(1);
            match self
                .ports
                .runs
                .ran_since(&run.tenant_id, schedule, later)
                .await
            {
                Ok(false) => {
                    if let Err(e) = self
                        .ports
                        .schedules
                        .record_run(&run.tenant_id, schedule, now, status, &run.id)
                        .await
                    {
                        tracing::warn!(schedule_id = %schedule, error = %e, "abandoned run not noted on its schedule");
                    }
                }
                Ok(true) => {}
                Err(e) => {
                    tracing::warn!(schedule_id = %schedule, error = %e, "abandoned run not noted on its schedule")
                }
            }
        }
        Ok(Settled::Abandoned(None))
    }

    /// Walks the schedules from where the last sweep left off, a page at a time, until the
    /// pass is done (the next sweep begins another), [`SweeperSettings::max_schedules`] were
    /// looked at, or [`WALK_TIME`] is spent. A pass checks the fire times in `(checked_until
    /// of the pass before, now - grace]` of every schedule (as of when it began), then moves
    /// `checked_until` on. A page that could not be read, or not wholly checked, is the next
    /// sweep's first again (everything done to it is idempotent).
    async fn walk(
        &self,
        now: DateTime<Utc>,
        previous: Option<&SweepStatus>,
        started: std::time::Instant,
        report: &mut SweepReport,
    ) -> Walk {
        let until = now - self.settings.grace;
        let checked_until = previous.map_or(until - self.settings.lookback, |p| p.checked_until);
        let mut pass = previous.and_then(|p| p.pass.clone()).unwrap_or(SweepPass {
            from: checked_until.max(now - self.settings.lookback).min(until),
            until,
            shard: 0,
            after: None,
            started_at: now,
            failed_tries: 0,
        });
        let mut walk = Walk {
            checked_until,
            pass: None,
            schedules: Vec::new(),
        };
        loop {
            let left = self
                .settings
                .max_schedules
                .saturating_sub(walk.schedules.len());
            if left == 0 || started.elapsed() >= WALK_TIME {
                break;
            }
            let page = match self
                .ports
                .schedules
                .page(pass.shard, pass.after.as_deref(), left.min(SCHEDULE_PAGE))
                .await
            {
                Ok(page) => page,
                Err(e) => {
                    report
                        .errors
                        .push(format!("schedules of shard {} not read: {e}", pass.shard));
                    break;
                }
            };
            // Each page is checked up to now (less the grace), not only to the pass's end:
            // a pass that takes several sweeps finds a miss while it can still be caught up.
            let window = (pass.from, until, pass.until);
            let checked = self.sweep_page(&page.schedules, window, now, report).await;
            report.counts.schedules += page.schedules.len() as u64;
            walk.schedules.extend(page.schedules);
            if !checked {
                pass.failed_tries += 1;
                if pass.failed_tries < MAX_PAGE_TRIES {
                    // (The same page again next sweep.)
                    break;
                }
                // One schedule that cannot be checked does not hold every other up.
                report.errors.push(format!(
                    "a page of shard {} failed {MAX_PAGE_TRIES} sweeps in a row; passed over in this pass",
                    pass.shard
                ));
            }
            pass.failed_tries = 0;
            match page.next {
                Some(next) => pass.after = Some(next),
                None if pass.shard + 1 < SWEEP_SHARDS => {
                    pass.shard += 1;
                    pass.after = None;
                }
                None => {
                    walk.checked_until = pass.until;
                    return walk;
                }
            }
        }
        walk.pass = Some(pass);
        walk
    }

    /// One page of schedules: those due are paused, the others' fire times checked, and
    /// their triggers compared and repaired. Answers whether every fire time was checked.
    async fn sweep_page(
        &self,
        schedules: &[Schedule],
        window: (DateTime<Utc>, DateTime<Utc>, DateTime<Utc>),
        now: DateTime<Utc>,
        report: &mut SweepReport,
    ) -> bool {
        self.auto_pause(schedules, report).await;
        let mut complete = true;
        // (Not those just paused: their missed fire times are not to be run, and their
        // triggers were just written.)
        let paused = report.paused.clone();
        for schedule in schedules
            .iter()
            .filter(|s| s.is_active && !paused.contains(&s.id))
        {
            if let Err(e) = self.check_schedule(schedule, window, now, report).await {
                complete = false;
                report
                    .errors
                    .push(format!("schedule {} not checked: {e}", schedule.id));
            }
        }
        let unpaused: Vec<Schedule> = schedules
            .iter()
            .filter(|s| !paused.contains(&s.id))
            .cloned()
            .collect();
        let (drifts, failures) = self.ports.repair.check(&unpaused).await;
        report.errors.extend(failures);
        self.repair(drifts, report).await;
        complete
    }

    /// Fixes `drifts`, and counts and logs them.
    async fn repair(&self, drifts: Vec<Drift>, report: &mut SweepReport) {
        if drifts.is_empty() {
            return;
        }
        let mut repair = RepairReport {
            drifts,
            ..RepairReport::default()
        };
        self.ports.repair.apply(&mut repair).await;
        for drift in &repair.drifts {
            tracing::warn!(drift = %drift, "schedule drift");
        }
        report.counts.repairs += repair.fixed as u64;
        report.drifts.extend(repair.drifts);
        report.errors.extend(repair.failures);
    }

    /// Lists the triggers from where the last sweep left off, prefix by prefix (a hex digit
    /// each), until every one was listed, [`SweeperSettings::max_triggers`] were, or
    /// [`TRIGGERS_TIME`] is spent; removes those whose schedule is gone. Answers where the
    /// next sweep goes on (`None`: from the first). A listing that fails starts its prefix
    /// again next time (its token may have expired).
    async fn orphaned_triggers(
        &self,
        at: Option<TriggerWalk>,
        walked: &[Schedule],
        started: std::time::Instant,
        report: &mut SweepReport,
    ) -> Option<TriggerWalk> {
        let known: std::collections::HashSet<String> =
            walked.iter().map(|s| s.id.to_string()).collect();
        let mut at = at.unwrap_or_default();
        let mut looked = 0;
        while looked < self.settings.max_triggers && started.elapsed() < TRIGGERS_TIME {
            let limit = (self.settings.max_triggers - looked).min(TRIGGER_PAGE);
            let prefix = format!("{:x}", at.prefix % 16);
            let page = match self
                .ports
                .repair
                .triggers(&prefix, at.token.as_deref(), limit)
                .await
            {
                Ok(page) => page,
                Err(e) => {
                    report.errors.push(format!("triggers not listed: {e}"));
                    at.token = None;
                    return Some(at);
                }
            };
            match self
                .ports
                .repair
                .orphans(&page.names, &known, &Scope::All, false)
                .await
            {
                Ok(drifts) => self.repair(drifts, report).await,
                Err(e) => {
                    // (This page again next time.)
                    report
                        .errors
                        .push(format!("orphaned triggers not looked for: {e}"));
                    return Some(at);
                }
            }
            looked += page.names.len();
            report.counts.triggers += page.names.len() as u64;
            match page.next {
                Some(next) => at.token = Some(next),
                None if at.prefix + 1 < 16 => {
                    at.prefix += 1;
                    at.token = None;
                }
                None => return None,
            }
        }
        Some(at)
    }

    /// Pauses each active schedule whose runs failed in a row as often as it allows, with a
    /// note that says so (resuming it, or any edit, starts the count again).
    async fn auto_pause(&self, schedules: &[Schedule], report: &mut SweepReport) {
        let due = |s: &Schedule| {
            let after = s.options.auto_pause_after_failures;
            s.is_active && after > 0 && s.consecutive_failures >= after
        };
        for listed in schedules.iter().filter(|s| due(s)) {
            // (The listing is an index's, a moment old: the schedule as stored decides.)
            let s = match self.ports.service.get(&listed.tenant_id, listed.id).await {
                Ok(s) if due(&s) => s,
                Ok(_) | Err(ServiceError::NotFound(_)) => continue,
                Err(e) => {
                    report
                        .errors
                        .push(format!("schedule {} not read: {e}", listed.id));
                    continue;
                }
            };
            let note = format!(
                "{AUTO_PAUSE_NOTE} {} failed runs in a row (the last at {}); resume it once the cause is fixed",
                s.consecutive_failures,
                s.last_run_at.map_or_else(|| "an unknown time".into(), stamp)
            );
            let patch = SchedulePatch {
                is_active: Some(false),
                pause_note: Some(Some(note)),
                ..SchedulePatch::default()
            };
            match self.ports.service.update(&s.tenant_id, s.id, patch).await {
                Ok(paused) => {
                    tracing::warn!(schedule_id = %s.id, tenant_id = %s.tenant_id, failures = s.consecutive_failures, "schedule paused after failing in a row");
                    report.counts.paused += 1;
                    report.paused.push(paused.id);
                }
                Err(e) => report
                    .errors
                    .push(format!("schedule {} not paused: {e}", s.id)),
            }
        }
    }

    /// Checks the schedule's fire times in `(from, until]`; a miss outside the catch-up
    /// window after `counted_until` (the pass's end, which the next pass checks again) is
    /// left for the next pass to count, so none is counted twice.
    async fn check_schedule(
        &self,
        schedule: &Schedule,
        (from, until, counted_until): (DateTime<Utc>, DateTime<Utc>, DateTime<Utc>),
        now: DateTime<Utc>,
        report: &mut SweepReport,
    ) -> Result<(), String> {
        // EventBridge may fire up to the flexible window late: each schedule's fire times
        // are judged that much later. Fire times before the schedule's last write are not
        // its (it was paused, or fired on another expression).
        let late = Duration::minutes(i64::from(
            schedule.options.flexible_window_minutes.unwrap_or(0),
        ));
        let fires = fire_times(
            schedule,
            (from - late).max(schedule.updated_at),
            until - late,
        );
        let Some(&last) = fires.last() else {
            return Ok(());
        };
        let ran = |fire: DateTime<Utc>| async move {
            self.ports
                .runs
                .ran_since(&schedule.tenant_id, schedule.id, fire)
                .await
                .map_err(|e| e.to_string())
        };
        // Whether a run came at or after a fire time is true up to some fire time and false
        // after it: the missed ones are the fire times from the first without. The latest
        // first (almost always it had its run), then a binary search.
        if ran(last).await? {
            report.on_time.push(schedule.id);
            return Ok(());
        }
        let (mut lo, mut hi) = (0, fires.len() - 1);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if ran(fires[mid]).await? {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let missed = &fires[lo..];
        let window = Duration::minutes(i64::from(schedule.options.catch_up_window_minutes));
        let catch_up = if now - last <= window {
            Some(self.catch_up(schedule, last).await?)
        } else {
            None
        };
        match &catch_up {
            Some(run) => {
                report.counts.caught_up += 1;
                tracing::warn!(schedule_id = %schedule.id, tenant_id = %schedule.tenant_id, fire_time = %last, run_id = %run, missed = missed.len(), "missed fire time caught up");
            }
            None => {
                tracing::warn!(schedule_id = %schedule.id, tenant_id = %schedule.tenant_id, fire_time = %last, missed = missed.len(), "fire times missed outside the catch-up window; not run");
            }
        }
        for fire in missed {
            // (The catch-up run, for the last, covers every fire time before it: one run.)
            let caught = catch_up.clone().filter(|_| *fire == last);
            if catch_up.is_none() {
                if *fire > counted_until - late {
                    continue;
                }
                report.counts.missed += 1;
            }
            report.missed.push(MissedFire {
                schedule: schedule.id,
                tenant: schedule.tenant_id.clone(),
                fire_time: *fire,
                catch_up: caught,
            });
        }
        Ok(())
    }

    /// Queues the `catch_up` run for `fire`; its id.
    async fn catch_up(&self, schedule: &Schedule, fire: DateTime<Utc>) -> Result<RunId, String> {
        let job = SyncJob {
            // The fire's own identity: if its job turns up after all (late, or held back on
            // a busy stream), it and this one are one run.
            job_id: SyncJob::fire_job_id(schedule.id, fire),
            tenant_id: schedule.tenant_id.clone(),
            connection_id: schedule.credential_id,
            platform: schedule.platform,
            entity_type: schedule.entity_type,
            sync_mode: schedule.sync_mode,
            trigger: Trigger::CatchUp {
                schedule_id: schedule.id,
            },
            triggered_at: fire,
            ids: Vec::new(),
            resume: None,
            attempt: 0,
            stands_for: Vec::new(),
            window: None,
            reported: Some(false),
        };
        let run = Run::of_job(
            &job,
            job.run_id(),
            None,
            self.ports.clock.now(),
            RunStatus::Queued,
        );
        // Sent, then recorded: a sweep that dies between the two leaves the next to send the
        // same job again (one run), never a record whose job was not sent.
        let delay = spread(schedule.id, self.settings.spread);
        self.ports
            .jobs
            .send_job_later(&job, delay)
            .await
            .map_err(|e| format!("catch-up run {} not queued: {e}", run.id))?;
        self.ports
            .runs
            .create(&run)
            .await
            .map_err(|e| e.to_string())?;
        Ok(run.id)
    }

    /// Alerts from what the sweep saw (the schedules as listed, the fire times it missed),
    /// each raised once while its condition holds and resolved once it clears (whether one
    /// is open is read from the open issues of every tenant, as many as conditions hold);
    /// and the open issues about connections and streams whose condition cleared.
    async fn alert(&self, schedules: &[Schedule], report: &mut SweepReport) {
        let live = match self.ports.delivery.issues.open().await {
            Ok(open) => open,
            Err(e) => {
                report.errors.push(format!("open alerts not read: {e}"));
                return;
            }
        };
        self.settle_connection_issues(&live, report).await;
        let open = |s: &Schedule, kind: AlertKind| {
            let id = crate::domain::alert_id(&s.tenant_id, &AlertSubject::Schedule(s.id), kind);
            live.iter()
                .any(|i| i.id == id && i.status == AlertStatus::Open)
        };
        let mut conditions: Vec<(&Schedule, AlertKind, bool, String)> = Vec::new();
        for s in schedules {
            let failing = s.consecutive_failures >= ALERT_AFTER_FAILURES;
            conditions.push((
                s,
                AlertKind::FailingSchedule,
                failing,
                format!(
                    "{} failed runs in a row (the last at {}, {})",
                    s.consecutive_failures,
                    s.last_run_at
                        .map_or_else(|| "an unknown time".into(), stamp),
                    s.last_run_status.map_or("", |st| st.as_str())
                ),
            ));
            let auto_paused = report.paused.contains(&s.id)
                || (!s.is_active
                    && s.options
                        .pause_note
                        .as_deref()
                        .is_some_and(|n| n.starts_with(AUTO_PAUSE_NOTE)));
            conditions.push((
                s,
                AlertKind::AutoPaused,
                auto_paused,
                format!(
                    "paused after {} failed runs in a row",
                    s.consecutive_failures
                ),
            ));
            let missed: Vec<&MissedFire> = report
                .missed
                .iter()
                .filter(|m| m.schedule == s.id && m.catch_up.is_none())
                .collect();
            if let Some(last) = missed.last() {
                // A new miss: raised again (counted), open or not.
                let raised = Raised {
                    tenant: &s.tenant_id,
                    subject: AlertSubject::Schedule(s.id),
                    kind: AlertKind::MissedFire,
                    error: &format!(
                        "{} fire time(s) passed without a run and outside the {}-minute catch-up window, the last at {}",
                        missed.len(),
                        s.options.catch_up_window_minutes,
                        stamp(last.fire_time)
                    ),
                    link: Some(format!("/api/sync/schedules/{}/audit", s.id)),
                };
                match self.ports.alerts.raise(raised).await {
                    Ok(()) => report.alerts_raised += 1,
                    Err(e) => report
                        .errors
                        .push(format!("alert of schedule {} not raised: {e}", s.id)),
                }
            } else if (report.on_time.contains(&s.id) || !s.is_active)
                && open(s, AlertKind::MissedFire)
            {
                // (A paused schedule misses nothing: its alert resolves.)
                conditions.push((s, AlertKind::MissedFire, false, String::new()));
            }
        }
        for (s, kind, holds, error) in conditions {
            let subject = AlertSubject::Schedule(s.id);
            let outcome = match (holds, open(s, kind)) {
                (true, false) => {
                    report.alerts_raised += 1;
                    self.ports
                        .alerts
                        .raise(Raised {
                            tenant: &s.tenant_id,
                            subject,
                            kind,
                            error: &error,
                            link: Some(format!("/api/sync/schedules/{}", s.id)),
                        })
                        .await
                }
                (false, true) => self.ports.alerts.resolve(&s.tenant_id, subject, kind).await,
                _ => continue,
            };
            if let Err(e) = outcome {
                report
                    .errors
                    .push(format!("alert of schedule {} not changed: {e}", s.id));
            }
        }
        // A schedule deleted takes its open issues with it: one not walked this sweep is
        // read, at most MAX_GONE_CHECKS a sweep, starting at a place of their own each
        // minute so that every one is read in turn.
        let unwalked: Vec<(&AlertIssue, ScheduleId)> = live
            .iter()
            .filter(|i| i.status == AlertStatus::Open)
            .filter_map(|i| match AlertSubject::parse(&i.subject) {
                Some(AlertSubject::Schedule(id)) => Some((i, id)),
                _ => None,
            })
            .filter(|(i, id)| {
                !schedules
                    .iter()
                    .any(|s| s.tenant_id == i.tenant_id && s.id == *id)
            })
            .collect();
        let start = match unwalked.len() {
            0 => 0,
            n => (self.ports.clock.now().timestamp() / 60).unsigned_abs() as usize % n,
        };
        let looked_at = unwalked
            .iter()
            .cycle()
            .skip(start)
            .take(unwalked.len().min(MAX_GONE_CHECKS));
        for &(issue, id) in looked_at {
            let gone = match self.ports.schedules.get(&issue.tenant_id, id).await {
                Ok(found) => found.is_none(),
                Err(e) => {
                    report
                        .errors
                        .push(format!("schedule of alert {} not read: {e}", issue.id));
                    false
                }
            };
            if gone {
                if let Err(e) = self
                    .ports
                    .alerts
                    .resolve_id(&issue.tenant_id, &issue.id)
                    .await
                {
                    report
                        .errors
                        .push(format!("alert {} not resolved: {e}", issue.id));
                }
            }
        }
    }

    /// Resolves the open issues about a connection or its streams whose condition cleared:
    /// the connection is gone (or its delete has gone on for [`DELETE_SETTLES`]); for
    /// `needs_reauth`, it was connected again; for `webhooks_silent`, it no longer takes
    /// webhooks, or the stream's webhooks arrived after the issue was last raised and no
    /// poll has raised it for [`WEBHOOK_QUIET`].
    async fn settle_connection_issues(&self, live: &[AlertIssue], report: &mut SweepReport) {
        let now = self.ports.clock.now();
        let mut connections: std::collections::HashMap<ConnectionId, Option<Connection>> =
            std::collections::HashMap::new();
        for issue in live.iter().filter(|i| i.status == AlertStatus::Open) {
            let Some(subject) = AlertSubject::parse(&issue.subject) else {
                continue;
            };
            let Some(id) = subject.connection() else {
                continue;
            };
            let connection = match connections.get(&id) {
                Some(found) => found.clone(),
                None => match self.ports.connections.get(id).await {
                    Ok(found) => {
                        let found = found.filter(|c| c.tenant_id == issue.tenant_id);
                        connections.insert(id, found.clone());
                        found
                    }
                    Err(e) => {
                        report.errors.push(format!(
                            "connection {id} of alert {} not read: {e}",
                            issue.id
                        ));
                        continue;
                    }
                },
            };
            // (A delete refused for what still uses the connection marks it for a moment.)
            let gone = connection.as_ref().is_none_or(|c| {
                c.deleting_since
                    .is_some_and(|since| since < now - DELETE_SETTLES)
            });
            let cleared = match (&connection, issue.kind, subject) {
                _ if gone => true,
                (Some(c), AlertKind::NeedsReauth, _) => c.needs_reauth.is_none(),
                (Some(c), AlertKind::WebhooksSilent, AlertSubject::Stream(connection, entity)) => {
                    let seen = issue.seen_at.unwrap_or(issue.updated_at);
                    if !c.takes_webhooks() {
                        true
                    } else if now - seen < WEBHOOK_QUIET {
                        false
                    } else {
                        let key = SyncKey { connection, entity };
                        match self.ports.streams.state(key, now).await {
                            Ok(state) => state.webhook_at.is_some_and(|at| at > seen),
                            Err(e) => {
                                report
                                    .errors
                                    .push(format!("stream of alert {} not read: {e}", issue.id));
                                false
                            }
                        }
                    }
                }
                _ => false,
            };
            if cleared {
                // (Only as listed: one raised again meanwhile was seen anew.)
                if let Err(e) = self.ports.alerts.resolve_listed(issue).await {
                    report
                        .errors
                        .push(format!("alert {} not resolved: {e}", issue.id));
                }
            }
        }
    }
}

/// The schedule's fire times in `(after, until]`, oldest first, at most
/// [`MAX_FIRES_PER_SCHEDULE`] (the latest ones, when there are more).
fn fire_times(
    schedule: &Schedule,
    after: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Vec<DateTime<Utc>> {
    let mut fires = std::collections::VecDeque::new();
    let mut t = after;
    while let Some(next) = schedule
        .expression
        .next_after(schedule.timezone, schedule.updated_at, t)
    {
        if next > until {
            break;
        }
        if fires.len() == MAX_FIRES_PER_SCHEDULE {
            fires.pop_front();
        }
        fires.push_back(next);
        t = next;
    }
    fires.into()
}

/// A schedule's own offset within `spread` (at most SQS's 15-minute delay), the same on
/// every sweep.
fn spread(schedule: ScheduleId, spread: Duration) -> std::time::Duration {
    let seconds = spread.num_seconds().clamp(0, 900) as u64;
    if seconds == 0 {
        return std::time::Duration::ZERO;
    }
    let digest = sha256_hex(schedule.to_string().as_bytes());
    let n = u64::from_str_radix(&digest[..8], 16).unwrap_or(0);
    std::time::Duration::from_secs(n % seconds)
}

#[cfg(test)]
#[path = "sweeper_tests.rs"]
mod tests;
