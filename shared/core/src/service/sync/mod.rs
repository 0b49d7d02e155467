//! The sync worker's use case: one job from the sync queue, from the checks before it runs
//! to its run record.
//!
//! For each job, in order:
//! 1. A job fired by a schedule is checked against the stored schedule
//!    ([`crate::service::FiredCheck::check_fired`]): gone or paused → dropped (a lagging trigger is
//!    corrected on the way); otherwise it runs with the schedule's current definition.
//! 2. The connection must exist, be the job's tenant's and not be being deleted.
//! 3. The stream's lease (connection, entity) is taken. If another run holds it, a fire of
//!    a schedule whose overlap policy is `skip` is recorded skipped; any other job is kept
//!    as the stream's one follow-up (merged with one already waiting) and the message is
//!    done: nothing is lost and nothing piles up. A delayed wake-up message makes
//!    sure a follow-up left behind by a worker that died still runs.
//! 4. The run is recorded (its id comes from the job's, so a job delivered twice finds its
//!    own run and a finished one is not run again), every enabled flow from this stream is
//!    run by the [`Engine`], and the run's outcome recorded, on the schedule too.
//! 5. A run stopped near the deadline enqueues its own continuation; a follow-up kept
//!    meanwhile runs next (in this invocation while time remains, else as a new job); the
//!    lease is released.
//!
//! While a run works, a keeper renews its lease; a lease that cannot be renewed stops the
//! run, and the cursor (written only by the lease's holder) stays consistent.

mod conflict;
pub mod engine;
mod tally;

pub use engine::{Engine, EngineSettings, FlowPlan, RunContext, RunEnd};
pub use tally::{RunCounts as RunTallyCounts, RunTally};

use chrono::{DateTime, Duration, Utc};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::FiredSchedule;
use crate::clock::Clock;
use crate::domain::{
    ConflictPolicy, Connection, Cursor, OverlapPolicy, Run, RunId, RunStatus, SyncJob, SyncMode,
    Trigger, Window, WEBHOOK_GRACE,
};
use crate::ports::{
    Acquired, ConnectionReader, Connectors, FlowSource, JobQueue, Lease, PendingJob, PlatformError,
    RunLog, ScheduleRuns, StateError, SyncKey, SyncLeases,
};

/// Tunables of the worker.
#[derive(Clone, Debug)]
pub struct WorkerSettings {
    /// How long a lease lasts unless renewed (a dead worker holds a stream this long).
    pub lease_ttl: Duration,
    /// How long before the invocation's deadline a run stops and checkpoints.
    pub safety_margin: Duration,
    /// If set, a run also stops this long after it started (tests, and small budgets).
    pub time_budget: Option<Duration>,
    /// Tries of a webhook job's record whose write fails in a way that may pass.
    pub record_attempts: u32,
    /// The wait before the first retry of such records (doubling with each try).
    pub record_retry: Duration,
    pub engine: EngineSettings,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            lease_ttl: Duration::seconds(60),
            safety_margin: Duration::seconds(20),
            time_budget: None,
            record_attempts: 5,
            record_retry: Duration::seconds(30),
            engine: EngineSettings::default(),
        }
    }
}

/// What to tell the queue about a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// Done with (run, skipped, parked as a follow-up, or dropped): delete the message.
    Done,
    /// Not done, and trying again later may help: leave the message for the queue to retry
    /// (and, after a few tries, to move to the dead-letter queue).
    Retry(String),
}

/// The ports the worker uses.
pub struct WorkerPorts {
    /// It reads connections; changing them is the API's and connection setup's.
    pub connections: Arc<dyn ConnectionReader>,
    pub flows: Arc<dyn FlowSource>,
    pub connectors: Arc<dyn Connectors>,
    /// The check of a fired job (it can correct a lagging trigger, never create one).
    pub schedules: crate::service::FiredCheck,
    /// Where a scheduled run's end is noted on its schedule.
    pub schedule_store: Arc<dyn ScheduleRuns>,
    pub leases: Arc<dyn SyncLeases>,
    pub index: Arc<dyn crate::ports::RecordIndex>,
    /// Records that keep failing, kept per stream (quarantine).
    pub failures: Arc<dyn crate::ports::FailureLog>,
    pub runs: Arc<dyn RunLog>,
    pub jobs: Arc<dyn JobQueue>,
    /// A run that ends failed raises its stream's alert; one that succeeds resolves it.
    pub alerts: crate::service::AlertRaiser,
    pub clock: Arc<dyn Clock>,
}

/// The worker use case.
pub struct SyncWorker {
    ports: WorkerPorts,
    engine: Engine,
    settings: WorkerSettings,
    tally: Arc<RunTally>,
}

impl SyncWorker {
    pub fn new(ports: WorkerPorts, settings: WorkerSettings) -> Self {
        let engine = Engine::new(
            ports.leases.clone(),
            ports.index.clone(),
            ports.failures.clone(),
            ports.clock.clone(),
            settings.engine.clone(),
        );
        Self {
            ports,
            engine,
            settings,
            tally: Arc::default(),
        }
    }

    /// Handles one job; `deadline` is when the invocation ends.
    ///
    /// Every platform call made for it ends by the deadline less the safety margin, retry
    /// waits included (`platforms::http::until`): a run stops in time to checkpoint, and so
    /// do its siblings in the batch, whatever a platform asks to wait. (`time_budget` is
    /// softer: checked between pages.)
    /// What the runs ended since the last call came to (for the function's metrics).
    pub fn take_counts(&self) -> RunTallyCounts {
        RunTallyCounts {
            alerts_raised: self.ports.alerts.take_raised(),
            ..self.tally.take()
        }
    }

    pub async fn handle(&self, job: SyncJob, deadline: DateTime<Utc>) -> JobOutcome {
        self.handle_delivery(job, deadline, 1).await
    }

    /// The same, for the queue's `receive`th delivery of the job's message (SQS's
    /// `ApproximateReceiveCount`): a failure that the queue tries again is alerted only on
    /// the last one ([`crate::ports::MAX_RECEIVES`]), when it would try no more.
    pub async fn handle_delivery(
        &self,
        job: SyncJob,
        deadline: DateTime<Utc>,
        receive: u32,
    ) -> JobOutcome {
        let left = (deadline - self.settings.safety_margin - self.ports.clock.now())
            .to_std()
            .unwrap_or_default();
        crate::platforms::http::until(
            tokio::time::Instant::now() + left,
            self.handle_within(job, deadline, receive),
        )
        .await
    }

    async fn handle_within(
        &self,
        job: SyncJob,
        deadline: DateTime<Utc>,
        receive: u32,
    ) -> JobOutcome {
        let started = self.ports.clock.now();
        let mut stop_at = deadline - self.settings.safety_margin;
        if let Some(budget) = self.settings.time_budget {
            stop_at = stop_at.min(started + budget);
        }
        let key = SyncKey {
            connection: job.connection_id,
            entity: job.entity_type,
        };
        let owner = format!("{}#{}", job.job_id, uuid::Uuid::new_v4().simple());
        let tenure = Tenure {
            key,
            owner: &owner,
            stop_at,
            last_try: receive >= crate::ports::MAX_RECEIVES,
        };
        if job.trigger == Trigger::FollowUp {
            return self.wake(&tenure, job).await;
        }
        let mut job = job;
        if let (Trigger::Schedule { schedule_id, .. }, None) = (&job.trigger, &job.resume) {
            // A fire's run is the fire's, however many times it is delivered and whether
            // or not the sweeper caught it up meanwhile (see `SyncJob::fire_job_id`).
            job.job_id = SyncJob::fire_job_id(*schedule_id, job.triggered_at);
        }
        let mut overlap = OverlapPolicy::BufferOne;
        if let (
            Trigger::Schedule {
                schedule_id,
                schedule_version,
            },
            None,
        ) = (&job.trigger, &job.resume)
        {
            match self
                .ports
                .schedules
                .check_fired(&job.tenant_id, *schedule_id, *schedule_version)
                .await
            {
                Ok(FiredSchedule::Run(schedule)) => {
                    job.sync_mode = schedule.sync_mode;
                    overlap = schedule.options.overlap_policy;
                }
                Ok(FiredSchedule::Drop(why)) => {
                    tracing::info!(schedule_id = %schedule_id, reason = why, "scheduled job dropped");
                    return self.skipped(&job, None, why).await;
                }
                Err(e) => return JobOutcome::Retry(e.to_string()),
            }
        }
        if let (Trigger::CatchUp { schedule_id }, None) = (&job.trigger, &job.resume) {
            // A late run of a missed fire time: only while the schedule still wants runs.
            match self
                .ports
                .schedule_store
                .get(&job.tenant_id, *schedule_id)
                .await
            {
                Ok(Some(schedule)) if schedule.is_active => {
                    job.sync_mode = schedule.sync_mode;
                    overlap = schedule.options.overlap_policy;
                }
                Ok(found) => {
                    let why = match found {
                        Some(_) => "the schedule was paused before its missed run could catch up",
                        None => "the schedule no longer exists",
                    };
                    return self.skipped(&job, None, why).await;
                }
                Err(e) => return JobOutcome::Retry(e.to_string()),
            }
        }
        let found = self.ports.connections.get(job.connection_id).await;
        let connection = match found.map(|c| Connection::of_tenant(c, &job.tenant_id)) {
            Ok(Ok(c)) => c,
            Ok(Err(_)) => {
                tracing::info!(connection_id = %job.connection_id, "job for a connection that no longer exists dropped");
                return self
                    .skipped(&job, None, "the connection no longer exists")
                    .await;
            }
            Err(e) => return JobOutcome::Retry(e.to_string()),
        };
        let now = self.ports.clock.now();
        let held = match self
            .ports
            .leases
            .acquire(key, &owner, now, self.settings.lease_ttl)
            .await
        {
            Ok(Lease::Acquired(held)) => held,
            // (Only a first delivery: a fire tried before, or running, is the schedule's own
            // and goes on as any job would.)
            Ok(Lease::Held) if overlap == OverlapPolicy::Skip => {
                match self.ports.runs.get(&job.tenant_id, &job.run_id()).await {
                    Ok(None) => {
                        tracing::info!(job_id = %job.job_id, "stream busy; scheduled fire skipped (overlap_policy skip)");
                        return self
                            .skipped(
                                &job,
                                None,
                                "another run was working on the stream; this fire was skipped (overlap_policy skip)",
                            )
                            .await;
                    }
                    Ok(Some(_)) => return self.park(key, &job).await,
                    Err(e) => return JobOutcome::Retry(e.to_string()),
                }
            }
            Ok(Lease::Held) if must_run_as_is(&job) => return self.later(&job).await,
            Ok(Lease::Held) => return self.park(key, &job).await,
            Err(e) => return JobOutcome::Retry(e.to_string()),
        };
        let outcome = self.under_lease(&tenure, job, &connection, held).await;
        self.release(key, &owner).await;
        outcome
    }

    /// Sends `job` again, to arrive once the lease has surely changed hands.
    async fn later(&self, job: &SyncJob) -> JobOutcome {
        tracing::info!(job_id = %job.job_id, "stream busy; job sent again for later");
        match self.ports.jobs.send_job_later(job, self.lease_wait()).await {
            Ok(_) => JobOutcome::Done,
            Err(e) => JobOutcome::Retry(e.to_string()),
        }
    }

    /// Keeps `job` as the stream's follow-up; the first one kept arranges a wake-up.
    async fn park(&self, key: SyncKey, job: &SyncJob) -> JobOutcome {
        match self.ports.leases.park(key, job).await {
            Ok(first) => {
                tracing::info!(connection_id = %key.connection, entity = %key.entity, job_id = %job.job_id, "stream busy; job kept as its follow-up");
                if first {
                    if let Err(e) = self.send_wake(key, job, 0, self.lease_wait()).await {
                        // The follow-up is kept; the holder runs it when it finishes. Only
                        // a holder that dies would leave it waiting for the next job.
                        tracing::warn!(error = %e, "wake-up not queued");
                    }
                }
                JobOutcome::Done
            }
            Err(e) => JobOutcome::Retry(e.to_string()),
        }
    }

    /// How long after a lease was last renewed it has surely expired.
    fn lease_wait(&self) -> std::time::Duration {
        (self.settings.lease_ttl + Duration::seconds(5))
            .to_std()
            .unwrap_or(std::time::Duration::from_secs(65))
            .min(std::time::Duration::from_secs(900))
    }

    /// A message that, after `delay`, runs the stream's follow-up if it is still waiting;
    /// `attempt` counts wake-ups sent because a run of the follow-up failed.
    async fn send_wake(
        &self,
        key: SyncKey,
        about: &SyncJob,
        attempt: u32,
        delay: std::time::Duration,
    ) -> Result<String, String> {
        let wake = SyncJob {
            job_id: uuid::Uuid::new_v4().to_string(),
            trigger: Trigger::FollowUp,
            ids: Vec::new(),
            resume: None,
            connection_id: key.connection,
            entity_type: key.entity,
            attempt,
            stands_for: Vec::new(),
            window: None,
            ..about.clone()
        };
        self.ports
            .jobs
            .send_job_later(&wake, delay)
            .await
            .map_err(|e| e.to_string())
    }

    /// A wake-up: run the stream's follow-up if one is waiting and the stream is free.
    async fn wake(&self, tenure: &Tenure<'_>, wake: SyncJob) -> JobOutcome {
        let (key, owner) = (tenure.key, tenure.owner);
        let now = self.ports.clock.now();
        match self
            .ports
            .leases
            .acquire(key, owner, now, self.settings.lease_ttl)
            .await
        {
            Ok(Lease::Held) => {
                // Still busy: look again later (the chain ends once the stream is free).
                if let Err(e) = self
                    .send_wake(key, &wake, wake.attempt, self.lease_wait())
                    .await
                {
                    return JobOutcome::Retry(e);
                }
                JobOutcome::Done
            }
            Ok(Lease::Acquired(_)) => {
                let outcome = self.follow_ups(tenure, wake.attempt, true).await;
                self.release(key, owner).await;
                outcome
            }
            Err(e) => JobOutcome::Retry(e.to_string()),
        }
    }

    /// Runs follow-ups kept for the stream while we hold its lease. A follow-up stays kept
    /// until a run of it has ended for good, so nothing a failure or a dying invocation
    /// interrupts is lost; whatever stops here arranges for a wake-up to go on:
    /// - time up: the lease is released and a wake-up queued at once (a new invocation goes
    ///   on, with its own time);
    /// - a run that failed in a way that may pass: a wake-up after the lease's lifetime,
    ///   doubling with each (`wake_attempt`), up to the record retry bound; after that it
    ///   waits, kept, for the stream's next job.
    async fn follow_ups(&self, tenure: &Tenure<'_>, wake_attempt: u32, woken: bool) -> JobOutcome {
        let (key, owner, stop_at) = (tenure.key, tenure.owner, tenure.stop_at);
        // A wake-up runs at least one follow-up whatever its time (the run checkpoints on
        // its own): one that only passed the baton on would wake the next for ever.
        let mut must_run = woken;
        loop {
            let PendingJob { job: next, version } =
                match self.ports.leases.peek_pending(key, owner).await {
                    Ok(Some(pending)) => pending,
                    Ok(None) => return JobOutcome::Done,
                    // Not ours any more: the new holder runs what is waiting.
                    Err(StateError::LeaseLost) => return JobOutcome::Done,
                    Err(e) => return JobOutcome::Retry(e.to_string()),
                };
            let until = if std::mem::take(&mut must_run) {
                stop_at.max(self.ports.clock.now() + Duration::milliseconds(1))
            } else {
                stop_at
            };
            let within = Tenure {
                stop_at: until,
                // (A follow-up is tried again by wake-ups, not by this message's receives.)
                last_try: wake_attempt + 1 >= self.settings.record_attempts,
                ..*tenure
            };
            match self.follow_up(&within, &next).await {
                FollowUp::Ended => {
                    if let Err(e) = self.ports.leases.done_pending(key, version).await {
                        // Still kept: this message's retry finds its run finished.
                        return JobOutcome::Retry(e.to_string());
                    }
                }
                FollowUp::TimeUp => {
                    self.release(key, owner).await;
                    return match self
                        .send_wake(key, &next, wake_attempt, std::time::Duration::ZERO)
                        .await
                    {
                        Ok(_) => JobOutcome::Done,
                        Err(e) => JobOutcome::Retry(e),
                    };
                }
                FollowUp::Failed(why) => {
                    let attempt = wake_attempt + 1;
                    if attempt >= self.settings.record_attempts {
                        tracing::warn!(connection_id = %key.connection, entity = %key.entity, error = %why, "follow-up still failing; kept for the stream's next job");
                        return JobOutcome::Done;
                    }
                    let delay = (self.lease_wait() * 2u32.pow(wake_attempt.min(10)))
                        .min(std::time::Duration::from_secs(900));
                    return match self.send_wake(key, &next, attempt, delay).await {
                        Ok(_) => JobOutcome::Done,
                        Err(_) => JobOutcome::Retry(why),
                    };
                }
                FollowUp::Yield(outcome) => return outcome,
            }
        }
    }

    /// One kept follow-up, run here unless time is up.
    async fn follow_up(&self, tenure: &Tenure<'_>, next: &SyncJob) -> FollowUp {
        let (key, owner) = (tenure.key, tenure.owner);
        if self.ports.clock.now() >= tenure.stop_at {
            return FollowUp::TimeUp;
        }
        let found = self.ports.connections.get(next.connection_id).await;
        let connection = match found.map(|c| Connection::of_tenant(c, &next.tenant_id)) {
            Ok(Ok(c)) => c,
            Ok(Err(_)) => {
                return match self
                    .skipped(next, None, "the connection no longer exists")
                    .await
                {
                    JobOutcome::Done => FollowUp::Ended,
                    JobOutcome::Retry(why) => FollowUp::Yield(JobOutcome::Retry(why)),
                };
            }
            Err(e) => return FollowUp::Yield(JobOutcome::Retry(e.to_string())),
        };
        let held = match self
            .ports
            .leases
            .acquire(key, owner, self.ports.clock.now(), self.settings.lease_ttl)
            .await
        {
            Ok(Lease::Acquired(held)) => held,
            // Another holder: it runs what is kept.
            Ok(Lease::Held) => return FollowUp::Yield(JobOutcome::Done),
            Err(e) => return FollowUp::Yield(JobOutcome::Retry(e.to_string())),
        };
        match self.run_job(tenure, next.clone(), &connection, held).await {
            JobOutcome::Done => FollowUp::Ended,
            JobOutcome::Retry(why) => FollowUp::Failed(why),
        }
    }

    /// The job's run, then the follow-ups kept meanwhile.
    async fn under_lease(
        &self,
        tenure: &Tenure<'_>,
        job: SyncJob,
        connection: &Connection,
        held: Acquired,
    ) -> JobOutcome {
        match self.run_job(tenure, job, connection, held).await {
            JobOutcome::Done => self.follow_ups(tenure, 0, false).await,
            retry => retry,
        }
    }

    /// Runs one job under the lease, keeping the lease renewed while it works.
    async fn run_job(
        &self,
        tenure: &Tenure<'_>,
        job: SyncJob,
        connection: &Connection,
        held: Acquired,
    ) -> JobOutcome {
        let lost = Arc::new(AtomicBool::new(false));
        // Aborted when this run ends in any way, dropped mid-way included: a keeper that
        // outlived its run would hold the stream for ever.
        let _keeper = AbortOnDrop(tokio::spawn(keep_lease(
            self.ports.leases.clone(),
            self.ports.clock.clone(),
            tenure.key,
            tenure.owner.to_string(),
            self.settings.lease_ttl,
            lost.clone(),
        )));
        let cancelled = Arc::new(AtomicBool::new(false));
        // A run carrying a platform's changes is never stopped: the API refuses to ask, and
        // a request left from before runs said so is not heeded.
        let _watcher = (!job.is_reported()).then(|| {
            AbortOnDrop(tokio::spawn(watch_for_cancel(
                self.ports.runs.clone(),
                job.tenant_id.clone(),
                job.run_id(),
                self.settings.lease_ttl,
                cancelled.clone(),
            )))
        });
        let signals = Signals {
            lease_lost: &lost,
            cancelled: &cancelled,
        };
        self.run_flows(tenure, &job, connection, held, signals)
            .await
    }

    /// The job's run: its flows planned, the engine run over them, and what its end leaves
    /// to do.
    async fn run_flows(
        &self,
        tenure: &Tenure<'_>,
        job: &SyncJob,
        connection: &Connection,
        held: Acquired,
        signals: Signals<'_>,
    ) -> JobOutcome {
        let Acquired {
            cursor,
            epoch,
            cursor_set_at,
            webhook_at,
        } = held;
        let key = tenure.key;
        let run = match self.open_run(job, cursor.clone()).await {
            Ok(Some(run)) => run,
            Ok(None) => return JobOutcome::Done,
            Err(e) => return JobOutcome::Retry(e),
        };
        // A continuation whose stream's cursor was set by hand since its run began stops
        // rather than write its own position over that one: the next run reads on from the
        // cursor as set.
        if job.resume.is_some()
            && job.ids.is_empty()
            && job.window.is_none()
            && cursor_set_at.is_some_and(|at| at >= run.started_at)
        {
            tracing::info!(run_id = %run.id, "stream cursor set by hand between invocations; run stops");
            let mut why = "stopped between invocations: the stream's cursor was set by hand meanwhile; what was written stays, and the next run reads on from the cursor as set".to_string();
            if run.reported {
                // Its changes are in no other run, and the stream may have no poll to read
                // them: a new run of the same job reads on from the cursor as set.
                let again = SyncJob {
                    job_id: format!("{}+from-cursor", job.job_id),
                    resume: None,
                    reported: Some(true),
                    stands_for: Vec::new(),
                    ..job.clone()
                };
                if let Err(e) = self.ports.jobs.send_job(&again).await {
                    return JobOutcome::Retry(format!("job not sent again from the cursor: {e}"));
                }
                why = format!(
                    "{why}: it carried changes a platform reported, so run {} reads on from there now",
                    again.run_id()
                );
            }
            return self.end_cancelled(job, run, why).await;
        }
        let Planned {
            mut run,
            source,
            source_fields,
            plans,
        } = match self.plan(key, connection, run, tenure.last_try).await {
            Ok(planned) => planned,
            Err(outcome) => return outcome,
        };
        let Some(source) = source.source() else {
            // `plan` checked it can.
            return self
                .fail(
                    run,
                    "the source cannot be read".into(),
                    false,
                    tenure.last_try,
                )
                .await;
        };
        let ctx = RunContext {
            key,
            owner: tenure.owner,
            source,
            source_platform: connection.platform,
            source_fields,
            flows: &plans,
            deadline: tenure.stop_at,
            lease_lost: signals.lease_lost,
            cancelled: signals.cancelled,
            epoch,
            unannounced: unannounced(connection, job, &run, webhook_at),
        };
        let end = self.engine.run(&ctx, job, cursor, &mut run).await;
        self.conclude(key, job, run, end, tenure.last_try).await
    }

    /// The source's connector and a plan of each enabled flow that carries the entity to a
    /// target that can take it; else the run ended (skipped, saying why, or failed).
    async fn plan(
        &self,
        key: SyncKey,
        connection: &Connection,
        run: Run,
        last_try: bool,
    ) -> Result<Planned, JobOutcome> {
        let flows = match self.ports.flows.flows_from(connection.id).await {
            Ok(flows) => flows,
            Err(e) => return Err(self.fail(run, e.to_string(), true, last_try).await),
        };
        let flows: Vec<_> = flows
            .into_iter()
            .filter(|f| f.runs_for(key.entity))
            .collect();
        if flows.is_empty() {
            let why = format!(
                "no enabled flow from this connection carries {}",
                key.entity
            );
            return Err(self.finish(run, RunStatus::Skipped, Some(why)).await);
        }
        let source_connector = match self.ports.connectors.open(connection).await {
            Ok(c) => c,
            Err(e) => return Err(self.platform_failure(run, e, last_try).await),
        };
        let source_caps = connection.platform.module().capabilities(key.entity);
        let (Some(_), Some(source_fields)) = (source_connector.source(), source_caps.read) else {
            let why = format!(
                "{} cannot be the source of {}",
                connection.platform, key.entity
            );
            return Err(self.finish(run, RunStatus::Skipped, Some(why)).await);
        };
        let mut plans = Vec::new();
        for flow in flows {
            let found = self.ports.connections.get(flow.target_connection_id).await;
            let target = match found.map(|t| Connection::of_tenant(t, &connection.tenant_id)) {
                Ok(Ok(t)) => t,
                Ok(Err(_)) => {
                    tracing::warn!(flow_id = %flow.id, "flow's target connection is gone; skipped");
                    continue;
                }
                Err(e) => return Err(self.fail(run, e.to_string(), true, last_try).await),
            };
            let target_caps = target.platform.module().capabilities(key.entity);
            let Some(write_fields) = target_caps.write else {
                continue;
            };
            let connector = match self.ports.connectors.open(&target).await {
                Ok(c) => c,
                Err(e) => return Err(self.platform_failure(run, e, last_try).await),
            };
            let rewrite = run.window.is_some()
                && flow.conflict_policy == ConflictPolicy::SourceWins
                && !self.flows_back(&flow, key.entity).await;
            plans.push(FlowPlan {
                rewrite,
                fields: source_fields
                    .iter()
                    .copied()
                    .filter(|f| write_fields.contains(f))
                    .collect(),
                reads_back: target_caps.read.is_some()
                    && target.platform.module().reads_back_as_written(),
                flow,
                target: connector,
            });
        }
        if plans.is_empty() {
            let why = "no flow from this connection has a usable target".to_string();
            return Err(self.finish(run, RunStatus::Skipped, Some(why)).await);
        }
        Ok(Planned {
            run,
            source: source_connector,
            source_fields,
            plans,
        })
    }

    /// Whether a flow carries `entity` back from `flow`'s target to its source, enabled or
    /// paused (a paused one carries the target's edits back once resumed). Asked only of
    /// resyncs; a failed read counts as yes, so nothing is overwritten on a guess.
    async fn flows_back(
        &self,
        flow: &crate::domain::Flow,
        entity: crate::domain::EntityType,
    ) -> bool {
        match self.ports.flows.flows_from(flow.target_connection_id).await {
            Ok(back) => back.iter().any(|f| {
                f.target_connection_id == flow.source_connection_id && f.entities.contains(&entity)
            }),
            Err(e) => {
                tracing::warn!(flow_id = %flow.id, error = %e, "flows back not read; the resync only writes changes");
                true
            }
        }
    }

    /// What the run's end leaves to do: the run finished (and a webhook job's failed
    /// records sent to be tried again), a continuation queued, or the job kept for after
    /// the lease's new holder.
    async fn conclude(
        &self,
        key: SyncKey,
        job: &SyncJob,
        mut run: Run,
        end: RunEnd,
        last_try: bool,
    ) -> JobOutcome {
        match end {
            RunEnd::Completed { retry } => {
                let message = match self.retry_records(job, retry).await {
                    // A note the run made itself (deletions not looked for) comes first.
                    Ok(message) => run.message.take().or(message),
                    // The run stays open: this message's retry runs the job again.
                    Err(e) => return JobOutcome::Retry(e),
                };
                let status = if run.counts.failed > 0 {
                    RunStatus::Partial
                } else {
                    RunStatus::Succeeded
                };
                self.finish(run, status, message).await
            }
            RunEnd::Checkpointed(checkpoint) => {
                run.continuations = checkpoint.continuation;
                run.updated_at = self.ports.clock.now();
                let continuation = SyncJob {
                    resume: Some(checkpoint),
                    ..job.clone()
                };
                if let Err(e) = self.ports.runs.save(&run).await {
                    return JobOutcome::Retry(e.to_string());
                }
                match self.ports.jobs.send_job(&continuation).await {
                    Ok(_) => {
                        tracing::info!(run_id = %run.id, continuation = run.continuations, "run checkpointed; continuation queued");
                        JobOutcome::Done
                    }
                    Err(e) => JobOutcome::Retry(format!("continuation not queued: {e}")),
                }
            }
            RunEnd::Failed { error, retryable } => self.fail(run, error, retryable, last_try).await,
            RunEnd::TimeUp(error) => self.fail(run, error, true, last_try).await,
            RunEnd::Cancelled { retry } => {
                let mut why = format!(
                    "cancelled on request after reading {} record(s) and writing {}; what was written stays, and the stream's cursor stays at the last page every target has",
                    run.counts.read, run.counts.written
                );
                // Records it named whose writes failed in a way that may pass are tried
                // again all the same: a cancel stops the run, not its retries.
                if let Some(note) = self.retry_after_cancel(job, retry, &run.id).await {
                    why = format!("{why}; {note}");
                }
                self.end_cancelled(job, run, why).await
            }
            RunEnd::LeaseLost { in_flight } => {
                // Another worker holds the stream now. The run is recorded first (the job,
                // kept, may run under the same id as soon as it is parked).
                // (Not alerted: the job runs again, as this run.)
                tracing::warn!(run_id = %run.id, "run's lease taken over; its job is kept");
                let outcome = self
                    .end(
                        run,
                        RunStatus::Failed,
                        Some("the stream's lease was taken over before the run finished; the job is kept to run after the new holder's".into()),
                        false,
                    )
                    .await;
                if let JobOutcome::Retry(why) = outcome {
                    return JobOutcome::Retry(why);
                }
                self.after_lease_lost(key, job, in_flight).await
            }
        }
    }

    /// What a run whose lease was taken over leaves for after the new holder: the job, kept
    /// as the stream's follow-up (a webhook job's ids are not lost, nor is a full run); and
    /// the records of the page that was being written, synced again by id once the lease
    /// has surely changed hands (a write of ours may have landed after the new holder's).
    async fn after_lease_lost(
        &self,
        key: SyncKey,
        job: &SyncJob,
        in_flight: Vec<String>,
    ) -> JobOutcome {
        let kept = SyncJob {
            resume: None,
            ..job.clone()
        };
        // (One a merge would change waits unmerged, sent again for later.)
        let waits = if must_run_as_is(&kept) {
            self.later(&kept).await
        } else {
            self.park(key, &kept).await
        };
        if let JobOutcome::Retry(why) = waits {
            return JobOutcome::Retry(why);
        }
        if job.ids.is_empty() && !in_flight.is_empty() {
            let again = SyncJob {
                job_id: format!("{}+page{}", job.job_id, ids_digest(&in_flight)),
                trigger: Trigger::Retry,
                ids: in_flight,
                resume: None,
                attempt: 0,
                stands_for: Vec::new(),
                window: None,
                // (Written or not, no other run would write them again.)
                reported: Some(true),
                ..job.clone()
            };
            if let Err(e) = self
                .ports
                .jobs
                .send_job_later(&again, self.lease_wait())
                .await
            {
                return JobOutcome::Retry(format!("page in flight not queued again: {e}"));
            }
        }
        JobOutcome::Done
    }

    /// [`Self::retry_records`] for a run that ends cancelled: what its message says. A retry
    /// that cannot be queued does not hold the cancel up (the job, delivered again, would
    /// find the request and stop before it): the records are among the run's failures, and
    /// the message says how to try them again.
    async fn retry_after_cancel(
        &self,
        job: &SyncJob,
        ids: Vec<String>,
        run: &RunId,
    ) -> Option<String> {
        let count = ids.len();
        match self.retry_records(job, ids).await {
            Ok(note) => note,
            Err(e) => {
                tracing::warn!(run_id = %run, error = %e, "retry of a cancelled run's records not queued");
                Some(format!(
                    "{count} record(s) that failed in a way that may pass were not queued to be tried again ({e}): retry them with POST /api/sync/runs/{run}/retry"
                ))
            }
        }
    }

    /// Queues a later try of a webhook job's records whose writes failed in a way that may
    /// pass, while tries remain (the wait doubles with each, up to SQS's 15 minutes). What
    /// the run says about it; `Err` when the retry could not be queued.
    async fn retry_records(
        &self,
        job: &SyncJob,
        ids: Vec<String>,
    ) -> Result<Option<String>, String> {
        if ids.is_empty() {
            return Ok(None);
        }
        let attempt = job.attempt + 1;
        if attempt >= self.settings.record_attempts {
            return Ok(Some(format!(
                "{} record(s) still failing after {attempt} tries; not tried again",
                ids.len()
            )));
        }
        let wait = (self.settings.record_retry * 2i32.pow(job.attempt.min(10)))
            .to_std()
            .unwrap_or_default()
            .min(std::time::Duration::from_secs(900));
        // Its id and time derive from the job's, so a redelivered job queues the same retry
        // (which then finds its run) rather than a second one; it is due `wait` after it.
        let retry = SyncJob {
            job_id: format!("{}+retry{attempt}-{}", job.job_id, ids_digest(&ids)),
            trigger: Trigger::Retry,
            triggered_at: job.triggered_at + Duration::from_std(wait).unwrap_or_default(),
            ids,
            resume: None,
            attempt,
            stands_for: Vec::new(),
            window: None,
            reported: Some(true),
            ..job.clone()
        };
        self.ports
            .jobs
            .send_job_later(&retry, wait)
            .await
            .map_err(|e| format!("retry of failed records not queued: {e}"))?;
        Ok(Some(format!(
            "{} record(s) failed in a way that may pass; tried again in {} s",
            retry.ids.len(),
            wait.as_secs()
        )))
    }

    /// The job's run record: a new one, the one a continuation or a retry goes on with, or
    /// `None` for a job delivered again after its run finished.
    async fn open_run(&self, job: &SyncJob, cursor: Option<Cursor>) -> Result<Option<Run>, String> {
        let now = self.ports.clock.now();
        let id = job.run_id();
        // Taken up only if nobody wrote the run between our read and our write (the sweeper
        // ending it for a redo, the API queuing or cancelling it); else read again.
        let mut tries = 0;
        let (run, taken_up) = loop {
            tries += 1;
            let existing = self
                .ports
                .runs
                .get(&job.tenant_id, &id)
                .await
                .map_err(|e| e.to_string())?;
            let seen = existing.as_ref().map(|r| r.updated_at);
            let Some(run) = self.take_up(job, existing, cursor.clone(), now).await else {
                return Ok(None);
            };
            if self
                .ports
                .runs
                .save_if_unchanged(&run, seen)
                .await
                .map_err(|e| e.to_string())?
            {
                break (run, seen.is_some());
            }
            if tries == 3 {
                return Err(format!("run {} kept changing as it was taken up", run.id));
            }
            tracing::info!(run_id = %run.id, "run changed as it was taken up; read again");
        };
        if taken_up && !run.reported {
            // Recorded before (queued by the API, or a continuation): asked to stop since?
            // (A cancel that found the run queued either replaced it before our write,
            // which then read it again, or failed to and left its request, found here.)
            let asked = self
                .ports
                .runs
                .cancel_requested(&job.tenant_id, &run.id)
                .await
                .map_err(|e| e.to_string())?;
            if asked.is_some() {
                let mut why = format!(
                    "cancelled on request before it {}; what earlier parts wrote stays",
                    if job.resume.is_some() {
                        "went on"
                    } else {
                        "started"
                    }
                );
                // (As when it stops between pages: earlier parts' retries still happen.)
                let carried = engine::carried_retries(job);
                if let Some(note) = self.retry_after_cancel(job, carried, &run.id).await {
                    why = format!("{why}; {note}");
                }
                return match self.end_cancelled(job, run, why).await {
                    JobOutcome::Done => Ok(None),
                    JobOutcome::Retry(why) => Err(why),
                };
            }
        }
        if job.resume.is_none() {
            self.settle_merged(job, &run.id).await;
        }
        Ok(Some(run))
    }

    /// The job's run as a worker takes it up (`existing` as stored, if it is), or `None`
    /// for a job that is not to run (its run was cancelled, finished, or redone).
    async fn take_up(
        &self,
        job: &SyncJob,
        existing: Option<Run>,
        cursor: Option<Cursor>,
        now: DateTime<Utc>,
    ) -> Option<Run> {
        Some(match existing {
            // Found abandoned by the sweeper, which queued another run to do its work: this
            // delivery of its job was only late (a message that waited long on the queue).
            // The runs merged into the job are the redo's to do (it carries the job's ids).
            Some(Run {
                redone_by: Some(redo),
                id,
                ..
            }) => {
                tracing::info!(run_id = %id, redone_by = %redo, "job of a run whose work another run does dropped");
                if job.resume.is_none() {
                    self.settle_merged(job, &redo).await;
                }
                return None;
            }
            Some(run) if run.status == RunStatus::Cancelled => {
                tracing::info!(run_id = %run.id, "job of a cancelled run dropped");
                self.cancel_merged(job, &run.id).await;
                return None;
            }
            // (A continuation too, delivered again after its run ended. One delivered again
            // while its run goes on runs: whether the next one was ever queued cannot be
            // told, and pages run twice are written once.)
            Some(run) if run.status.is_final() && run.status != RunStatus::Failed => {
                tracing::info!(run_id = %run.id, "job delivered again after its run finished; nothing to do");
                return None;
            }
            Some(mut run) => {
                if run.status == RunStatus::Queued {
                    // Recorded by the API when it sent the job: it starts now.
                    run.started_at = now;
                    run.cursor_before = cursor;
                }
                if job.resume.is_none() {
                    run.attempts += 1;
                }
                if run.ids.is_empty() {
                    // (Recorded before runs kept their ids.)
                    run.ids = job.ids.clone();
                }
                run.reported |= job.is_reported();
                run.status = RunStatus::Running;
                run.finished_at = None;
                run.updated_at = now;
                run
            }
            None => Run::of_job(job, job.run_id(), cursor, now, RunStatus::Running),
        })
    }

    /// The runs someone asked for that were merged into this job while the stream was busy
    /// (recorded `queued` by the API): each now says which run does its work. One that
    /// cannot be settled stays `queued`, which the run list shows; the work is done anyway.
    async fn settle_merged(&self, job: &SyncJob, by: &RunId) {
        for id in &job.stands_for {
            let settled = match self.ports.runs.get(&job.tenant_id, id).await {
                Ok(Some(mut queued)) if queued.status == RunStatus::Queued => {
                    queued.status = RunStatus::Skipped;
                    queued.message = Some(format!(
                        "merged while the stream was busy: run {by} does its work"
                    ));
                    queued.finished_at = Some(self.ports.clock.now());
                    queued.updated_at = self.ports.clock.now();
                    self.ports.runs.replace_queued(&queued).await.map(|_| ())
                }
                Ok(_) => Ok(()),
                Err(e) => Err(e),
            };
            if let Err(e) = settled {
                tracing::warn!(run_id = %id, by = %by, error = %e, "merged run not settled");
            }
        }
    }

    /// Ends `run` cancelled, saying why, and so the runs merged into its job.
    async fn end_cancelled(&self, job: &SyncJob, run: Run, why: String) -> JobOutcome {
        let by = run.id.clone();
        let outcome = self.finish(run, RunStatus::Cancelled, Some(why)).await;
        if outcome == JobOutcome::Done {
            self.cancel_merged(job, &by).await;
        }
        outcome
    }

    /// The runs merged into this job (see [`Self::settle_merged`]), once its run was
    /// cancelled: they say so rather than that it does their work.
    async fn cancel_merged(&self, job: &SyncJob, by: &RunId) {
        for id in &job.stands_for {
            let cancelled = match self.ports.runs.get(&job.tenant_id, id).await {
                Ok(Some(mut merged))
                    if merged.status == RunStatus::Queued
                        || (merged.status == RunStatus::Skipped
                            && merged
                                .message
                                .as_deref()
                                .is_some_and(|m| m.contains(by.as_str()))) =>
                {
                    merged.status = RunStatus::Cancelled;
                    merged.message = Some(format!(
                        "merged while the stream was busy into run {by}, which was cancelled; ask for it again if it is still wanted"
                    ));
                    merged.finished_at = Some(self.ports.clock.now());
                    merged.updated_at = self.ports.clock.now();
                    self.ports.runs.save(&merged).await
                }
                Ok(_) => Ok(()),
                Err(e) => Err(e),
            };
            if let Err(e) = cancelled {
                tracing::warn!(run_id = %id, by = %by, error = %e, "merged run not marked cancelled");
            }
        }
    }

    /// A run that did not get to run: recorded as skipped, with why (a run of the job that
    /// has ended already, cancelled say, is left as it is).
    async fn skipped(&self, job: &SyncJob, cursor: Option<Cursor>, why: &str) -> JobOutcome {
        let now = self.ports.clock.now();
        match self.ports.runs.get(&job.tenant_id, &job.run_id()).await {
            // Ended, or taken up by another delivery of the same job (a fire and its
            // catch-up are one run): left as it is.
            Ok(Some(run)) if run.status != RunStatus::Queued => return JobOutcome::Done,
            Ok(_) => {}
            Err(e) => return JobOutcome::Retry(e.to_string()),
        }
        let run = Run::of_job(
            job,
            RunId::for_job(job.triggered_at, &job.job_id),
            cursor,
            now,
            RunStatus::Running,
        );
        if job.resume.is_none() {
            self.settle_merged(job, &run.id).await;
        }
        self.finish(run, RunStatus::Skipped, Some(why.to_string()))
            .await
    }

    async fn platform_failure(&self, run: Run, e: PlatformError, last_try: bool) -> JobOutcome {
        let retryable = e.is_retryable();
        self.fail(run, e.to_string(), retryable, last_try).await
    }

    /// Ends the run failed; a retryable failure is handed back to be tried again. It is
    /// alerted only when nothing will try it again (not retryable, or on its last try): a
    /// failure the next try clears reaches nobody.
    async fn fail(&self, run: Run, error: String, retryable: bool, last_try: bool) -> JobOutcome {
        tracing::warn!(run_id = %run.id, error = %error, retryable, last_try, "run failed");
        let last = !retryable || last_try;
        match self
            .end(run, RunStatus::Failed, Some(error.clone()), last)
            .await
        {
            JobOutcome::Done if retryable => JobOutcome::Retry(error),
            other => other,
        }
    }

    /// A run failed because a platform refused a connection's credentials: the issue of
    /// each of its connections marked `needs_reauth` (the source's, or a target's, whose
    /// token refresh was refused during the run) is raised.
    async fn reauth_alerts(&self, run: &Run) {
        let mut ids = vec![run.connection_id];
        match self.ports.flows.flows_from(run.connection_id).await {
            Ok(flows) => ids.extend(flows.iter().map(|f| f.target_connection_id)),
            Err(e) => {
                tracing::warn!(run_id = %run.id, error = %e, "flows not read for the alert of refused credentials")
            }
        }
        ids.sort();
        ids.dedup();
        for id in ids {
            let marked = match self.ports.connections.get(id).await {
                Ok(Some(c)) if c.tenant_id == run.tenant_id && c.needs_reauth.is_some() => c,
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!(connection_id = %id, error = %e, "connection not read for the alert of refused credentials");
                    continue;
                }
            };
            if let Err(e) = self.ports.alerts.needs_reauth(&marked).await {
                tracing::warn!(connection_id = %id, error = %e, "alert of refused credentials not raised");
            }
        }
    }

    /// Records how the run ended, on the run and on its schedule.
    async fn finish(&self, run: Run, status: RunStatus, message: Option<String>) -> JobOutcome {
        self.end(run, status, message, true).await
    }

    /// Ends the run; its stream's alert is raised or resolved when `alert` (a failure the
    /// queue tries again is not alerted yet).
    async fn end(
        &self,
        mut run: Run,
        status: RunStatus,
        message: Option<String>,
        alert: bool,
    ) -> JobOutcome {
        let now = self.ports.clock.now();
        run.status = status;
        run.message = message;
        run.finished_at = Some(now);
        run.updated_at = now;
        if let Err(e) = self.ports.runs.save(&run).await {
            return JobOutcome::Retry(e.to_string());
        }
        self.tally.ended(&run, alert);
        if alert {
            if let Err(e) = self.ports.alerts.run_ended(&run).await {
                tracing::warn!(run_id = %run.id, error = %e, "alert of the run's end not raised or resolved");
            }
            if let Err(e) = self
                .ports
                .alerts
                .quarantine_after(&run, &*self.ports.failures)
                .await
            {
                tracing::warn!(run_id = %run.id, error = %e, "alert of quarantined records not raised or resolved");
            }
            if let Err(e) = self.ports.alerts.unannounced(&run).await {
                tracing::warn!(run_id = %run.id, error = %e, "alert of silent webhooks not raised");
            }
            let refused = format!("{}:", crate::service::tokens::NEEDS_REAUTH);
            if status == RunStatus::Failed
                && run.message.as_deref().is_some_and(|m| m.contains(&refused))
            {
                self.reauth_alerts(&run).await;
            }
        }
        // (A failure that is tried again is not yet one of the schedule's failures in a row.)
        if let Some(schedule) = run.schedule_id.filter(|_| alert) {
            if let Err(e) = self
                .ports
                .schedule_store
                .record_run(&run.tenant_id, schedule, now, status, &run.id)
                .await
            {
                tracing::warn!(schedule_id = %schedule, error = %e, "last run not noted on the schedule");
            }
        }
        tracing::info!(run_id = %run.id, status = %status, read = run.counts.read, written = run.counts.written, unchanged = run.counts.unchanged, echo_skipped = run.counts.echo_skipped, failed = run.counts.failed, "run finished");
        JobOutcome::Done
    }

    async fn release(&self, key: SyncKey, owner: &str) {
        if let Err(e) = self.ports.leases.release(key, owner).await {
            tracing::warn!(connection_id = %key.connection, entity = %key.entity, error = %e, "lease not released; it expires on its own");
        }
    }
}

/// A run with its flows planned.
struct Planned {
    run: Run,
    /// The source's connector (one that can be read).
    source: Arc<dyn crate::ports::Connector>,
    /// What the source reads of the entity.
    source_fields: &'static [&'static str],
    plans: Vec<FlowPlan>,
}

/// What a worker holds while it works on a stream: the stream, the owner name its lease is
/// held under, and when it must stop (before the invocation's deadline).
#[derive(Clone, Copy)]
struct Tenure<'a> {
    key: SyncKey,
    owner: &'a str,
    stop_at: DateTime<Utc>,
    /// Whether a run that fails here in a way that may pass is tried no more: the job's
    /// message is on the queue's last receive, or a kept follow-up on its last wake-up.
    last_try: bool,
}

/// Jobs a merge would change: a continuation (it would lose its place), a resync (its
/// span), and a run of named records asked for by a person or a retry (merged into a job
/// without ids they would become "what changed since the cursor", which need not include
/// them). They wait their turn unmerged.
fn must_run_as_is(job: &SyncJob) -> bool {
    job.resume.is_some()
        || job.window.is_some()
        || (!job.ids.is_empty()
            && matches!(
                job.trigger,
                Trigger::Retry | Trigger::Manual | Trigger::ScheduleNow { .. }
            ))
}

/// A short digest of a set of ids, for job ids derived from them.
fn ids_digest(ids: &[String]) -> String {
    crate::crypto::sha256_hex(ids.join("\n").as_bytes())[..12].to_string()
}

/// How one kept follow-up went.
enum FollowUp {
    /// Its run ended for good (or it had nothing left to run): drop it.
    Ended,
    /// Time is up: it stays kept, for a new invocation.
    TimeUp,
    /// Its run failed in a way that may pass: it stays kept, to be tried again.
    Failed(String),
    /// Stop here with this outcome (another holder, or our store failing); it stays kept.
    Yield(JobOutcome),
}

/// A task that is aborted when this handle is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How often a working run's lease is renewed and its cancel requests looked for: every
/// third of the lease's lifetime.
fn tick(ttl: Duration) -> std::time::Duration {
    (ttl / 3)
        .to_std()
        .unwrap_or(std::time::Duration::from_secs(20))
        .max(std::time::Duration::from_millis(50))
}

/// What a working run watches for between pages: its lease lost (set by the keeper), and a
/// request to stop it (set by the watcher).
#[derive(Clone, Copy)]
struct Signals<'a> {
    lease_lost: &'a AtomicBool,
    cancelled: &'a AtomicBool,
}

/// Looks for a request to stop the run every third of the lease's lifetime until aborted
/// (one read per tick, not per page); sets `cancelled` once it finds one. A read that fails
/// is tried at the next tick.
async fn watch_for_cancel(
    runs: Arc<dyn RunLog>,
    tenant: crate::domain::TenantId,
    run: RunId,
    ttl: Duration,
    cancelled: Arc<AtomicBool>,
) {
    let every = tick(ttl);
    loop {
        tokio::time::sleep(every).await;
        match runs.cancel_requested(&tenant, &run).await {
            Ok(Some(_)) => {
                tracing::info!(run_id = %run, "run asked to stop; stopping at the end of the page");
                cancelled.store(true, Ordering::SeqCst);
                return;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(run_id = %run, error = %e, "cancel requests not read; looking again")
            }
        }
    }
}

/// Renews the lease every third of its lifetime until aborted; sets `lost` if it cannot.
async fn keep_lease(
    leases: Arc<dyn SyncLeases>,
    clock: Arc<dyn Clock>,
    key: SyncKey,
    owner: String,
    ttl: Duration,
    lost: Arc<AtomicBool>,
) {
    let every = tick(ttl);
    // Until when the lease is surely ours: the last renewal's expiry.
    let mut valid_until = clock.now() + ttl;
    loop {
        tokio::time::sleep(every).await;
        let now = clock.now();
        match leases.renew(key, &owner, now, ttl).await {
            Ok(()) => valid_until = now + ttl,
            Err(StateError::LeaseLost) => {
                tracing::warn!(connection_id = %key.connection, entity = %key.entity, "lease lost while running");
                lost.store(true, Ordering::SeqCst);
                return;
            }
            // A passing store failure: try again at the next tick, while the lease still
            // has time; past that, another worker may hold it, so stop as if it were lost.
            Err(e) => {
                let next_tick = Duration::from_std(every).unwrap_or_default();
                if clock.now() + next_tick >= valid_until {
                    tracing::warn!(error = %e, "lease could not be renewed before it runs out; stopping");
                    lost.store(true, Ordering::SeqCst);
                    return;
                }
                tracing::warn!(error = %e, "lease renewal failed; retrying");
            }
        }
    }
}

/// For a poll of a stream whose webhooks have arrived before (a run of what changed since
/// the cursor, not a webhook's, not a resync, not standing for other jobs, which may have
/// been webhooks'), the span of modification times whose changes a webhook should have
/// brought already: after the cursor it started from; after the stream's webhooks last
/// arrived, by [`CLOCK_SKEW`] (a change before that may have come by webhook and failed to
/// land, and the platform's clock is not ours); after the connection last changed (its
/// webhooks may have been off before); and [`WEBHOOK_GRACE`] before the poll started. None for a stream no webhook ever reached: whether the platform sends any for
/// it (a table without a database webhook, a topic not registered) is not known.
fn unannounced(
    connection: &Connection,
    job: &SyncJob,
    run: &Run,
    webhook_at: Option<DateTime<Utc>>,
) -> Option<Window> {
    let polls = connection.takes_webhooks()
        && job.ids.is_empty()
        && job.window.is_none()
        && job.stands_for.is_empty()
        && job.sync_mode == SyncMode::Incremental
        && !matches!(job.trigger, Trigger::Webhook | Trigger::Retry);
    let cursor = run.cursor_before.as_ref().filter(|_| polls)?.stamp;
    // (Webhooks turned off and on again: what changed while they were off came by no
    // webhook, rightly; the connection's last change is a bound below.)
    let from = (webhook_at? + CLOCK_SKEW)
        .max(cursor)
        .max(connection.updated_at);
    let to = run.started_at - WEBHOOK_GRACE;
    (from < to).then_some(Window { from, to })
}

/// How far a platform's modification times may run ahead of our clock.
const CLOCK_SKEW: Duration = Duration::minutes(5);

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
