//! Schedule use cases: create, read, update, delete and preview, keeping the store and the
//! trigger consistent.
//!
//! Every change writes the store first (conditionally, so concurrent changes cannot lose each
//! other) and the trigger second. If the trigger write fails, the store write is undone
//! before the error is returned, so a failed request leaves no half-made schedule behind. If
//! the undo itself fails, the store still holds the user's intent, and the store is the source
//! of truth that the trigger side is repaired to match.
//!
//! Concurrent requests can still reach the trigger in another order than the store (a PUT's
//! trigger update landing after a DELETE's trigger removal). Two rules keep the trigger from
//! outliving or lagging behind the store, whatever the interleaving:
//! - an update of the trigger never creates one ([`ScheduleTrigger::update`] reports
//!   `Missing`); only [`ScheduleService::align`] creates, after reading the store;
//! - every writer reads the store again after its trigger write, and if the store moved on,
//!   aligns the trigger with it. So the last trigger write is always followed by a read of
//!   the last store write, and corrected if it disagrees.
//!
//! What slips through anyway (a crash between the two writes, an undo that failed) is
//! corrected when the fired job reaches the worker ([`FiredCheck::check_fired`]) and
//! by the repair sweep ([`super::ScheduleRepair`]).

use chrono::{DateTime, SubsecRound, Utc};
use std::sync::Arc;

use crate::clock::Clock;
use crate::domain::{
    Connection, NewSchedule, Schedule, ScheduleId, ScheduleOptions, SchedulePatch, TenantId,
    Unusable, MAX_AUTO_PAUSE_AFTER_FAILURES, MAX_CATCH_UP_WINDOW_MINUTES,
    MAX_FLEXIBLE_WINDOW_MINUTES, MAX_PAUSE_NOTE_CHARS, MIN_CATCH_UP_WINDOW_MINUTES,
};
use crate::ports::{
    ConnectionStore, ScheduleCreate, ScheduleRuns, ScheduleStore, ScheduleTrigger, StoreError,
    TriggerAligner, TriggerWrite,
};
use crate::time::{ScheduleExpression, Zone};

/// The most fire times a preview returns.
pub const MAX_PREVIEW_COUNT: usize = 100;

/// How many read-write-read rounds [`ScheduleService::align`] makes before it gives up on a
/// schedule that keeps changing under it (the repair sweep finishes the job then).
const MAX_ALIGN_ROUNDS: usize = 5;

/// What a job fired by a schedule should do, given the schedule as stored now.
#[derive(Debug, Clone, PartialEq)]
pub enum FiredSchedule {
    /// The schedule exists and is active: run it (with its current definition).
    Run(Box<Schedule>),
    /// Drop the job; the reason is for the run and the log.
    Drop(&'static str),
}

/// Why a use case failed, in terms a caller can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// No such record for this tenant; names the kind of record.
    #[error("no {0} with that id")]
    NotFound(&'static str),
    /// The request was valid but cannot apply to the current state.
    #[error("{0}")]
    Conflict(String),
    /// A field's value is acceptable alone but not in this schedule.
    #[error("{message}")]
    Invalid { field: String, message: String },
    /// A dependency failed; the text is for logs, never for the client.
    #[error("a dependency is unavailable: {0}")]
    Unavailable(String),
    /// The platform refused or failed a call made on the client's behalf; the text (the
    /// platform's answer, never a secret) is for the client, who can fix the cause.
    #[error("{0}")]
    Platform(String),
}

/// A field error: the value is acceptable alone but not in this record.
pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> ServiceError {
    ServiceError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// A failed write of a `kind` record (schedule, connection, flow) as the client sees it: a
/// conflict names the kind of record, as not-found does.
pub(crate) fn write_error(kind: &'static str) -> impl Fn(StoreError) -> ServiceError {
    move |e| match e {
        StoreError::AlreadyExists | StoreError::Conflict => ServiceError::Conflict(format!(
            "the {kind} was changed by another request; fetch it and try again"
        )),
        StoreError::ReferenceGone => ServiceError::Conflict(
            "a record this one depends on was deleted; fetch it and try again".into(),
        ),
        StoreError::Unavailable(detail) => ServiceError::Unavailable(detail),
    }
}

/// Schedule writes are the ones that go through `?`; connection and flow writes name their
/// kind with [`write_error`].
impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        write_error("schedule")(e)
    }
}

/// A computed preview of fire times.
#[derive(Debug, Clone, PartialEq)]
pub struct Preview {
    pub schedule_expression: String,
    pub timezone: Zone,
    pub next_runs: Vec<DateTime<Utc>>,
}

/// Schedule use cases over a store, a trigger and a clock.
#[derive(Clone)]
pub struct ScheduleService {
    store: Arc<dyn ScheduleStore>,
    /// Creating schedules (and putting back one whose trigger could not be removed): the
    /// API's alone; a service without it (the sweeper's) creates none.
    creator: Option<Arc<dyn ScheduleCreate>>,
    trigger: Arc<dyn ScheduleTrigger>,
    connections: Arc<dyn ConnectionStore>,
    clock: Arc<dyn Clock>,
}

impl ScheduleService {
    pub fn new(
        store: Arc<dyn ScheduleStore>,
        trigger: Arc<dyn ScheduleTrigger>,
        connections: Arc<dyn ConnectionStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            creator: None,
            trigger,
            connections,
            clock,
        }
    }

    /// The service that may create schedules through `creator`.
    pub fn creating(mut self, creator: Arc<dyn ScheduleCreate>) -> Self {
        self.creator = Some(creator);
        self
    }

    /// Now, at the precision records are stored with (milliseconds), so what a write
    /// returns is exactly what a later read returns.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now().trunc_subsecs(3)
    }

    pub async fn create(
        &self,
        tenant: &TenantId,
        new: NewSchedule,
    ) -> Result<Schedule, ServiceError> {
        let now = self.now();
        ensure_fires(&new.expression, new.timezone, now)?;
        check_options(&new.options, new.is_active)?;
        let no_connection = || {
            invalid(
                "credential_id",
                "no connection with that id; create one with POST /api/connections",
            )
        };
        match Connection::of_tenant(self.connections.get(new.credential_id).await?, tenant) {
            Err(Unusable::Deleting(_)) => {
                return Err(invalid(
                    "credential_id",
                    "that connection is being deleted; schedules cannot be added to it",
                ))
            }
            Ok(c) if c.platform == new.platform => {}
            Ok(c) => {
                return Err(invalid(
                    "credential_id",
                    format!(
                        "credential_id names a {} connection, but platform is {}",
                        c.platform, new.platform
                    ),
                ))
            }
            Err(Unusable::Missing) => return Err(no_connection()),
        }
        let schedule = Schedule {
            id: ScheduleId::new_random(),
            tenant_id: tenant.clone(),
            credential_id: new.credential_id,
            platform: new.platform,
            entity_type: new.entity_type,
            cron_expression: new.cron_expression,
            expression: new.expression,
            sync_mode: new.sync_mode,
            timezone: new.timezone,
            is_active: new.is_active,
            options: new.options,
            last_run_at: None,
            last_run_status: None,
            consecutive_failures: 0,
            created_at: now,
            updated_at: now,
            version: 1,
        };
        // The store re-checks the connection in the same write: a delete that began after
        // the read above makes this fail instead of leaving a schedule without a connection.
        let Some(creator) = &self.creator else {
            return Err(ServiceError::Unavailable(
                "schedules are not created here".into(),
            ));
        };
        match creator.insert(&schedule).await {
            Ok(()) => {}
            Err(StoreError::ReferenceGone) => return Err(no_connection()),
            Err(e) => return Err(e.into()),
        }
        if let Err(e) = self.trigger.create(&schedule).await {
            tracing::error!(schedule_id = %schedule.id, error = %e, "trigger create failed; undoing the stored schedule");
            if let Err(undo) = self
                .store
                .delete(tenant, schedule.id, schedule.version)
                .await
            {
                tracing::error!(schedule_id = %schedule.id, error = %undo, "undo of the stored schedule failed; repair will recreate its trigger");
            }
            return Err(ServiceError::Unavailable(e.to_string()));
        }
        self.verify(tenant, schedule.id, Some(schedule.version))
            .await;
        Ok(schedule)
    }

    pub async fn get(&self, tenant: &TenantId, id: ScheduleId) -> Result<Schedule, ServiceError> {
        self.store
            .get(tenant, id)
            .await?
            .ok_or(ServiceError::NotFound("schedule"))
    }

    pub async fn list(&self, tenant: &TenantId) -> Result<Vec<Schedule>, ServiceError> {
        Ok(self.store.list(tenant).await?)
    }

    pub async fn update(
        &self,
        tenant: &TenantId,
        id: ScheduleId,
        patch: SchedulePatch,
    ) -> Result<Schedule, ServiceError> {
        let current = self.get(tenant, id).await?;
        let now = self.now();
        let mut next = current.clone();
        if let Some((text, expression)) = patch.cron_expression {
            next.cron_expression = text;
            next.expression = expression;
        }
        if let Some(mode) = patch.sync_mode {
            next.sync_mode = mode;
        }
        if let Some(zone) = patch.timezone {
            next.timezone = zone;
        }
        if let Some(active) = patch.is_active {
            next.is_active = active;
            if active {
                // Resumed: the note said why it was paused.
                next.options.pause_note = None;
            }
        }
        if let Some(policy) = patch.overlap_policy {
            next.options.overlap_policy = policy;
        }
        if let Some(note) = patch.pause_note {
            next.options.pause_note = note;
        }
        if let Some(window) = patch.flexible_window_minutes {
            next.options.flexible_window_minutes = window;
        }
        if let Some(window) = patch.catch_up_window_minutes {
            next.options.catch_up_window_minutes = window;
        }
        if let Some(after) = patch.auto_pause_after_failures {
            next.options.auto_pause_after_failures = after;
        }
        // Resumed: its failures in a row start again (an edit that leaves it paused, or
        // the pause itself, keeps the count it was paused for).
        if next.is_active && !current.is_active {
            next.consecutive_failures = 0;
        }
        ensure_fires(&next.expression, next.timezone, now)?;
        check_options(&next.options, next.is_active)?;
        next.updated_at = now;
        next.version = current.version + 1;
        self.store.replace(&next, current.version).await?;
        match self.trigger.update(&next).await {
            Ok(TriggerWrite::Applied) => {
                self.verify(tenant, id, Some(next.version)).await;
            }
            // Gone: a concurrent delete removed it, or it was lost earlier. Only the store
            // can say which; `align` reads it before creating anything.
            Ok(TriggerWrite::Missing) => self.align_logged(tenant, id).await,
            Err(e) => {
                tracing::error!(schedule_id = %id, error = %e, "trigger update failed; restoring the previous schedule");
                let mut restored = current;
                restored.version = next.version + 1;
                if let Err(undo) = self.store.replace(&restored, next.version).await {
                    tracing::error!(schedule_id = %id, error = %undo, "restore failed; repair will align the trigger with the store");
                }
                return Err(ServiceError::Unavailable(e.to_string()));
            }
        }
        Ok(next)
    }

    pub async fn delete(&self, tenant: &TenantId, id: ScheduleId) -> Result<(), ServiceError> {
        let current = self.get(tenant, id).await?;
        self.store.delete(tenant, id, current.version).await?;
        if let Err(e) = self.trigger.remove(&id.to_string()).await {
            tracing::error!(schedule_id = %id, error = %e, "trigger remove failed; putting the schedule back");
            let put_back = match &self.creator {
                Some(creator) => creator.insert(&current).await,
                None => Err(StoreError::Unavailable(
                    "schedules are not created here".into(),
                )),
            };
            if let Err(undo) = put_back {
                tracing::error!(schedule_id = %id, error = %undo, "put-back failed; the fired job or repair will remove the orphaned trigger");
            }
            return Err(ServiceError::Unavailable(e.to_string()));
        }
        self.verify(tenant, id, None).await;
        Ok(())
    }

    /// Deletes a schedule whose connection is being deleted: the trigger first, then the
    /// stored schedule. The reverse of [`Self::delete`], because here a stored schedule
    /// cannot be put back if the trigger removal fails (its connection refuses new
    /// schedules), so the trigger must be gone before the record is. A failure leaves both,
    /// and deleting the connection again retries.
    pub async fn retire(&self, tenant: &TenantId, id: ScheduleId) -> Result<(), ServiceError> {
        let current = match self.store.get(tenant, id).await? {
            Some(s) => s,
            None => return Ok(()),
        };
        self.trigger
            .remove(&id.to_string())
            .await
            .map_err(|e| ServiceError::Unavailable(e.to_string()))?;
        self.store.delete(tenant, id, current.version).await?;
        self.verify(tenant, id, None).await;
        Ok(())
    }

    /// Makes the trigger of schedule `id` match the store, whatever requests came before:
    /// reads the store, writes the trigger to match (removing it when the schedule is gone,
    /// creating it only when the store holds the schedule), and reads the store again; if
    /// the store moved on meanwhile, goes round again.
    pub async fn align(&self, tenant: &TenantId, id: ScheduleId) -> Result<(), ServiceError> {
        align(
            &*self.store,
            &*self.trigger,
            Some(&*self.trigger),
            tenant,
            id,
        )
        .await
    }

    /// `align`, for callers whose own write has already succeeded: a failure here is logged,
    /// not returned, because the store (the source of truth) holds what was asked and the
    /// next fired job or repair sweep aligns the trigger.
    async fn align_logged(&self, tenant: &TenantId, id: ScheduleId) {
        if let Err(e) = self.align(tenant, id).await {
            tracing::warn!(schedule_id = %id, error = %e, "trigger not aligned; repair will do it");
        }
    }

    /// After a writer's trigger write: if the store no longer holds what the writer wrote
    /// (`expected` version, or `None` for gone), a concurrent writer moved it on, and the
    /// trigger may hold the older write; align it.
    async fn verify(&self, tenant: &TenantId, id: ScheduleId, expected: Option<u64>) {
        match self.store.get(tenant, id).await {
            Ok(now) if now.as_ref().map(|s| s.version) == expected => {}
            Ok(_) => self.align_logged(tenant, id).await,
            Err(e) => {
                tracing::warn!(schedule_id = %id, error = %e, "could not re-read the schedule after its trigger write; repair will check it")
            }
        }
    }

    /// What the worker holds of this service: the check of a fired job, over the same
    /// store and trigger (it can rewrite or remove a trigger, never create one).
    pub fn fired_check(&self) -> FiredCheck {
        FiredCheck::new(self.store.clone(), self.trigger.clone())
    }

    /// Fire times of an expression, computed by the same code that computes `next_run_at`.
    /// A rate counts from `after`, as if the schedule were created then. An expression that
    /// never fires after `after` is refused as create refuses it.
    pub fn preview(
        &self,
        expression: &ScheduleExpression,
        zone: Zone,
        after: Option<DateTime<Utc>>,
        count: usize,
    ) -> Result<Preview, ServiceError> {
        preview(
            expression,
            zone,
            after.unwrap_or_else(|| self.clock.now()),
            count,
        )
    }
}

/// The check a job fired by a schedule goes through before it runs: the worker's whole
/// view of schedules. A trigger that lags behind the store is corrected here, rewritten or
/// removed; one gone meanwhile is left to the repair sweep to create again (the worker's
/// policy grants no `CreateSchedule`).
#[derive(Clone)]
pub struct FiredCheck {
    store: Arc<dyn ScheduleRuns>,
    trigger: Arc<dyn TriggerAligner>,
}

impl FiredCheck {
    pub fn new(store: Arc<dyn ScheduleRuns>, trigger: Arc<dyn TriggerAligner>) -> Self {
        Self { store, trigger }
    }

    /// A schedule that no longer exists, or whose stored version is not the job's, has a
    /// trigger that lags behind the store: it is corrected (removed, or rewritten).
    pub async fn check_fired(
        &self,
        tenant: &TenantId,
        id: ScheduleId,
        job_version: u64,
    ) -> Result<FiredSchedule, ServiceError> {
        let current = self.store.get(tenant, id).await?;
        let stale = current.as_ref().map(|s| s.version) != Some(job_version);
        if stale {
            tracing::warn!(schedule_id = %id, job_version, stored_version = ?current.as_ref().map(|s| s.version), "fired by a trigger that lags behind the store; aligning it");
            if let Err(e) = self.align(tenant, id).await {
                tracing::warn!(schedule_id = %id, error = %e, "trigger not aligned; repair will do it");
            }
        }
        Ok(match current {
            None => FiredSchedule::Drop("the schedule no longer exists"),
            Some(s) if !s.is_active => FiredSchedule::Drop("the schedule is paused"),
            Some(s) => FiredSchedule::Run(Box::new(s)),
        })
    }

    async fn align(&self, tenant: &TenantId, id: ScheduleId) -> Result<(), ServiceError> {
        align(&*self.store, &*self.trigger, None, tenant, id).await
    }
}

/// Brings schedule `id`'s trigger to what the store holds (removed, or rewritten; created
/// only by `creator`, when given), reading the store again after the write until it held
/// still: the last trigger write is checked against the last store write.
async fn align(
    store: &dyn ScheduleRuns,
    trigger: &dyn TriggerAligner,
    creator: Option<&dyn ScheduleTrigger>,
    tenant: &TenantId,
    id: ScheduleId,
) -> Result<(), ServiceError> {
    for _ in 0..MAX_ALIGN_ROUNDS {
        let before = store.get(tenant, id).await?;
        let written = match &before {
            None => trigger.remove(&id.to_string()).await,
            Some(s) => match (trigger.update(s).await, creator) {
                (Ok(TriggerWrite::Missing), Some(creator)) => creator.create(s).await,
                (Ok(TriggerWrite::Missing), None) => {
                    tracing::warn!(schedule_id = %id, "trigger gone; the repair sweep creates it again");
                    Ok(())
                }
                (other, _) => other.map(|_| ()),
            },
        };
        written.map_err(|e| ServiceError::Unavailable(e.to_string()))?;
        let after = store.get(tenant, id).await?;
        if after.as_ref().map(|s| s.version) == before.as_ref().map(|s| s.version) {
            return Ok(());
        }
    }
    Err(ServiceError::Unavailable(format!(
        "schedule {id} kept changing while its trigger was aligned"
    )))
}

/// Up to `count` (at most [`MAX_PREVIEW_COUNT`]) fire times strictly after `after`; the API's
/// preview and `syncctl preview` both answer with this, so they refuse the same things.
pub fn preview(
    expression: &ScheduleExpression,
    zone: Zone,
    after: DateTime<Utc>,
    count: usize,
) -> Result<Preview, ServiceError> {
    ensure_fires(expression, zone, after)?;
    Ok(Preview {
        schedule_expression: expression.to_eventbridge(),
        timezone: zone,
        next_runs: expression.upcoming(zone, after, after, count.min(MAX_PREVIEW_COUNT)),
    })
}

/// A schedule that can never fire again is almost certainly a mistake (31 February, a year
/// in the past); refuse it rather than store something that silently does nothing.
fn ensure_fires(
    expression: &ScheduleExpression,
    zone: Zone,
    now: DateTime<Utc>,
) -> Result<(), ServiceError> {
    match expression.next_after(zone, now, now) {
        Some(_) => Ok(()),
        None => Err(invalid(
            "cron_expression",
            format!(
                "'{}' never fires after {}: check the day, month and year fields",
                expression.to_eventbridge(),
                now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        )),
    }
}

#[cfg(test)]
#[path = "schedules_tests.rs"]
mod tests;

/// A schedule's options make sense together: a pause note only on a paused schedule, not
/// blank and not too long; a flexible window of 1 to 1,440 minutes.
fn check_options(options: &ScheduleOptions, is_active: bool) -> Result<(), ServiceError> {
    if let Some(note) = &options.pause_note {
        if is_active {
            return Err(invalid(
                "pause_note",
                "pause_note says why a schedule is paused; send it with is_active false",
            ));
        }
        if note.trim().is_empty() || note.chars().count() > MAX_PAUSE_NOTE_CHARS {
            return Err(invalid(
                "pause_note",
                format!("pause_note must be 1 to {MAX_PAUSE_NOTE_CHARS} characters"),
            ));
        }
    }
    if let Some(minutes) = options.flexible_window_minutes {
        if !(1..=MAX_FLEXIBLE_WINDOW_MINUTES).contains(&minutes) {
            return Err(invalid(
                "flexible_window_minutes",
                format!(
                    "flexible_window_minutes must be 1 to {MAX_FLEXIBLE_WINDOW_MINUTES} (or null for exact fire times)"
                ),
            ));
        }
    }
    if options.auto_pause_after_failures > MAX_AUTO_PAUSE_AFTER_FAILURES {
        return Err(invalid(
            "auto_pause_after_failures",
            format!(
                "auto_pause_after_failures must be 0 (never pause) to {MAX_AUTO_PAUSE_AFTER_FAILURES}"
            ),
        ));
    }
    let window = options.catch_up_window_minutes;
    if window != 0 && !(MIN_CATCH_UP_WINDOW_MINUTES..=MAX_CATCH_UP_WINDOW_MINUTES).contains(&window)
    {
        return Err(invalid(
            "catch_up_window_minutes",
            format!(
                "catch_up_window_minutes must be 0 (never catch up) or {MIN_CATCH_UP_WINDOW_MINUTES} to {MAX_CATCH_UP_WINDOW_MINUTES} (a missed fire time is found 10 to 15 minutes after it)"
            ),
        ));
    }
    Ok(())
}
