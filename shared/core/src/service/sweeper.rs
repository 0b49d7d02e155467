//! The sweeper: what no request and no queue would notice, looked for on a rate (an
//! EventBridge Scheduler `rate` schedule invokes its function every few minutes). Each
//! sweep, in this order:
//!
//! 1. **Abandoned runs.** A run still `queued` or `running` whose record nobody has written
//!    for [`SweeperSettings::stale_after`] (longer than the sync queue takes to deliver a job
//!    again), while no worker holds its stream's lease, lost its job: its worker was killed
//!    and the queue gave up on the message, or the message never left. It is ended `failed`,
//!    saying so, and a run of its stream's work is queued in its place (everything changed
//!    since the stream's cursor, which a lost run never moved past what it wrote).
//! 2. **Missed fire times.** Each active schedule's fire times since the last sweep are
//!    checked against the runs it had. A fire time with no run at or after it is missed;
//!    if the last missed one is within the schedule's catch-up window, one `catch_up` run
//!    is queued for it (one per schedule, not one per missed tick, its start spread over a
//!    few minutes so that an outage does not end in every tenant's catch-up at once); one
//!    outside the window is counted and logged, not run.
//! 3. **Drift.** The repair use case brings every EventBridge schedule in step with its
//!    stored schedule and removes orphans.
//!
//! Every write is idempotent, so two sweeps at once (EventBridge delivers at least once)
//! or a sweep that dies half-way change nothing twice: a run is ended only while it is as
//! it was read, and the runs the sweeper queues have ids derived from what they stand for,
//! recorded only if not there yet. A queued run whose job could not be sent is itself found
//! by a later sweep. Reads are bounded: open runs through an index, oldest first, at most
//! [`SweeperSettings::max_runs`] a sweep; a schedule's runs by one key-range query, made
//! only for a schedule that had a fire time since the last sweep.

use chrono::{DateTime, Duration, Utc};
use std::sync::Arc;

use super::{Drift, ScheduleRepair, Scope};
use crate::clock::Clock;
use crate::crypto::sha256_hex;
use crate::domain::{Run, RunId, RunStatus, Schedule, ScheduleId, SyncJob, Trigger};
use crate::ports::{
    JobQueue, RunSweep, ScheduleStore, StreamWatch, SweepCounts, SweepLog, SweepStatus, SyncKey,
};

/// Most fire times of one schedule looked at in one sweep (a rate of one minute over a day).
const MAX_FIRES_PER_SCHEDULE: usize = 1_500;

/// What the sweeper needs: exactly what its function's IAM policy allows.
#[derive(Clone)]
pub struct SweeperPorts {
    pub runs: Arc<dyn RunSweep>,
    pub streams: Arc<dyn StreamWatch>,
    pub jobs: Arc<dyn JobQueue>,
    pub schedules: Arc<dyn ScheduleStore>,
    pub log: Arc<dyn SweepLog>,
    pub repair: ScheduleRepair,
    pub clock: Arc<dyn Clock>,
}

/// How the sweeper judges time.
#[derive(Debug, Clone)]
pub struct SweeperSettings {
    /// An open run unwritten for this long, with its stream free, is abandoned. Longer than
    /// the sync queue's visibility timeout (a killed worker's job comes back after it).
    pub stale_after: Duration,
    /// Most abandoned runs dealt with in one sweep (the next sweep goes on).
    pub max_runs: usize,
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
            stale_after: Duration::minutes(35),
            max_runs: 200,
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

/// What one sweep found and did.
#[derive(Debug, Clone, Default)]
pub struct SweepReport {
    pub counts: SweepCounts,
    /// Each abandoned run, with the run queued to redo its work.
    pub abandoned: Vec<(RunId, RunId)>,
    pub missed: Vec<MissedFire>,
    pub drifts: Vec<Drift>,
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
        let now = self.ports.clock.now();
        let mut report = SweepReport::default();
        let previous = match self.ports.log.last().await {
            Ok(p) => p,
            Err(e) => {
                report.errors.push(format!("sweep status not read: {e}"));
                None
            }
        };
        self.abandoned_runs(now, &mut report).await;
        let checked_until = self.missed_fires(now, previous.as_ref(), &mut report).await;
        self.drift(&mut report).await;
        let mut totals = previous.map(|p| p.totals).unwrap_or_default();
        totals.add(&report.counts);
        let status = SweepStatus {
            last_sweep_at: now,
            checked_until,
            last: report.counts,
            totals,
            errors: report.errors.clone(),
        };
        if let Err(e) = self.ports.log.record(&status).await {
            report
                .errors
                .push(format!("sweep status not recorded: {e}"));
        }
        tracing::info!(
            abandoned = report.counts.abandoned,
            caught_up = report.counts.caught_up,
            missed = report.counts.missed,
            repairs = report.counts.repairs,
            errors = report.errors.len(),
            "sweep done"
        );
        report
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
            match self.abandon(&seen, now).await {
                Ok(Some(redo)) => {
                    tracing::warn!(run_id = %seen.id, tenant_id = %seen.tenant_id, redo = %redo, "run abandoned; its work queued again");
                    report.counts.abandoned += 1;
                    report.abandoned.push((seen.id.clone(), redo));
                }
                Ok(None) => {}
                Err(e) => report
                    .errors
                    .push(format!("run {} not looked at: {e}", seen.id)),
            }
        }
    }

    /// Ends `seen` as abandoned if it still is, queueing a run of its stream's work first;
    /// the redo's id when it did.
    async fn abandon(&self, seen: &Run, now: DateTime<Utc>) -> Result<Option<RunId>, String> {
        let err = |e: &dyn std::fmt::Display| e.to_string();
        // (The index may lag: the run as stored now decides.)
        let Some(run) = self
            .ports
            .runs
            .get(&seen.tenant_id, &seen.id)
            .await
            .map_err(|e| err(&e))?
        else {
            return Ok(None);
        };
        if run.status.is_final() || run.updated_at > now - self.settings.stale_after {
            return Ok(None);
        }
        let key = SyncKey {
            connection: run.connection_id,
            entity: run.entity_type,
        };
        if self
            .ports
            .streams
            .busy(key, now)
            .await
            .map_err(|e| err(&e))?
        {
            // A worker is on the stream (this run's, between renewals, or another).
            return Ok(None);
        }
        let job = SyncJob {
            job_id: format!("redo-{}", run.id),
            tenant_id: run.tenant_id.clone(),
            connection_id: run.connection_id,
            platform: run.platform,
            entity_type: run.entity_type,
            sync_mode: run.sync_mode,
            trigger: Trigger::Retry,
            // (From the abandoned run, so a sweep that dies after queueing it and the next
            // one queue the same run.)
            triggered_at: run.updated_at,
            ids: Vec::new(),
            resume: None,
            attempt: 0,
            stands_for: Vec::new(),
            window: run.window,
        };
        let redo = Run::of_job(&job, job.run_id(), None, now, RunStatus::Queued);
        if self.ports.runs.create(&redo).await.map_err(|e| err(&e))? {
            self.ports
                .jobs
                .send_job(&job)
                .await
                .map_err(|e| format!("redo of run {} not queued: {e}", run.id))?;
        }
        let mut ended = run.clone();
        ended.status = RunStatus::Failed;
        let what = match run.status {
            RunStatus::Queued => "its job never reached a worker",
            _ => "its worker stopped without finishing it",
        };
        let named = if run.ids_requested > 0 {
            "; the records it named are synced again only if changed since the stream's cursor"
        } else {
            ""
        };
        ended.message = Some(format!(
            "abandoned: {what} (nothing written since {}, and no worker held its stream); run {} does its work again{named}",
            run.updated_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            redo.id
        ));
        ended.finished_at = Some(now);
        ended.updated_at = now;
        if !self
            .ports
            .runs
            .end_if_untouched(&ended, run.updated_at)
            .await
            .map_err(|e| err(&e))?
        {
            // A worker took it up meanwhile; the redo only finds little left to do.
            return Ok(None);
        }
        if let Some(schedule) = run.schedule_id {
            if let Err(e) = self
                .ports
                .schedules
                .record_run(&run.tenant_id, schedule, now, RunStatus::Failed)
                .await
            {
                tracing::warn!(schedule_id = %schedule, error = %e, "abandoned run not noted on its schedule");
            }
        }
        Ok(Some(redo.id))
    }

    /// Checks the fire times in `(checked_until of the last sweep, now - grace]`; answers up
    /// to where it checked (the start again when schedules could not be read, so the next
    /// sweep looks at the same times).
    async fn missed_fires(
        &self,
        now: DateTime<Utc>,
        previous: Option<&SweepStatus>,
        report: &mut SweepReport,
    ) -> DateTime<Utc> {
        let until = now - self.settings.grace;
        let from = previous
            .map_or(until - self.settings.lookback, |p| p.checked_until)
            .max(now - self.settings.lookback)
            .min(until);
        let schedules = match self.ports.schedules.list_all().await {
            Ok(s) => s,
            Err(e) => {
                report.errors.push(format!("schedules not read: {e}"));
                return from;
            }
        };
        let mut complete = true;
        for schedule in schedules.iter().filter(|s| s.is_active) {
            if let Err(e) = self
                .check_schedule(schedule, from, until, now, report)
                .await
            {
                complete = false;
                report
                    .errors
                    .push(format!("schedule {} not checked: {e}", schedule.id));
            }
        }
        if complete {
            until
        } else {
            from
        }
    }

    async fn check_schedule(
        &self,
        schedule: &Schedule,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
        report: &mut SweepReport,
    ) -> Result<(), String> {
        // Fire times before the schedule's last write are not its (it was paused, or fired
        // on another expression).
        let fires = fire_times(schedule, from.max(schedule.updated_at), until);
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
            self.catch_up(schedule, last).await?
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

    /// Queues the `catch_up` run for `fire`, unless a sweep did already; its id if this
    /// one did.
    async fn catch_up(
        &self,
        schedule: &Schedule,
        fire: DateTime<Utc>,
    ) -> Result<Option<RunId>, String> {
        let job = SyncJob {
            job_id: format!("catch-up-{}-{}", schedule.id, fire.timestamp_millis()),
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
        };
        let run = Run::of_job(
            &job,
            job.run_id(),
            None,
            self.ports.clock.now(),
            RunStatus::Queued,
        );
        if !self
            .ports
            .runs
            .create(&run)
            .await
            .map_err(|e| e.to_string())?
        {
            return Ok(None);
        }
        let delay = spread(schedule.id, self.settings.spread);
        self.ports
            .jobs
            .send_job_later(&job, delay)
            .await
            .map_err(|e| format!("catch-up run {} not queued: {e}", run.id))?;
        Ok(Some(run.id))
    }

    async fn drift(&self, report: &mut SweepReport) {
        match self.ports.repair.run(&Scope::All, true).await {
            Ok(repair) => {
                for drift in &repair.drifts {
                    tracing::warn!(drift = %drift, "schedule drift");
                }
                report.counts.repairs += repair.fixed as u64;
                report.drifts = repair.drifts;
                report.errors.extend(repair.failures);
            }
            Err(e) => report.errors.push(format!("drift not repaired: {e}")),
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
