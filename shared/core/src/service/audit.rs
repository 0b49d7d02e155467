//! A schedule's audit (`GET /api/sync/schedules/{id}/audit`): the fire times its expression
//! gave in a span, each set against the run the fire had, and labelled. A fire's run is the
//! run triggered at the fire time (a scheduled fire's identity is its schedule and time, so
//! EventBridge's delivery and the sweeper's catch-up of it are the same run).

use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;
use std::sync::Arc;

use super::ServiceError;
use crate::clock::Clock;
use crate::domain::{Run, RunFilter, RunStatus, Schedule, ScheduleId, TenantId, Trigger};
use crate::ports::{RunHistory, RunListError, ScheduleStore};

/// Most fire times one audit shows (the earliest; the answer says it was cut).
pub const MAX_AUDIT_FIRES: usize = 500;
/// The longest span one audit covers.
pub const MAX_AUDIT_DAYS: i64 = 31;
/// A fire's run that started this long after it (plus the flexible window) was late.
const LATE_AFTER: Duration = Duration::minutes(10);
/// Pages of runs read at most (100 runs each).
const MAX_RUN_PAGES: usize = 50;

/// What became of a fire time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FireLabel {
    /// Its run started on time.
    Ran,
    /// Its run started late, or is the sweeper's catch-up of it.
    Late,
    /// The stream was busy and the schedule's `overlap_policy` is `skip`.
    SkippedOverlap,
    /// Its run was skipped for another reason (the schedule paused, no flow, …).
    Skipped,
    /// No run came of it.
    Missed,
    /// Too recent to judge: its job may still be on its way.
    Due,
    /// After the schedule was paused: not meant to run.
    Paused,
}

impl FireLabel {
    pub fn as_str(self) -> &'static str {
        match self {
            FireLabel::Ran => "ran",
            FireLabel::Late => "late",
            FireLabel::SkippedOverlap => "skipped_overlap",
            FireLabel::Skipped => "skipped",
            FireLabel::Missed => "missed",
            FireLabel::Due => "due",
            FireLabel::Paused => "paused",
        }
    }
}

/// One fire time and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditedFire {
    pub fire_time: DateTime<Utc>,
    pub label: FireLabel,
    /// The fire's run, if it had one.
    pub run: Option<Run>,
}

/// A schedule's fire times in `[from, to)`.
#[derive(Debug, Clone)]
pub struct Audit {
    pub schedule: Schedule,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub fires: Vec<AuditedFire>,
    /// More fire times than [`MAX_AUDIT_FIRES`] fell in the span: the later ones are not
    /// shown.
    pub truncated: bool,
}

/// The audit use case.
#[derive(Clone)]
pub struct ScheduleAudit {
    schedules: Arc<dyn ScheduleStore>,
    runs: Arc<dyn RunHistory>,
    clock: Arc<dyn Clock>,
}

impl ScheduleAudit {
    pub fn new(
        schedules: Arc<dyn ScheduleStore>,
        runs: Arc<dyn RunHistory>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            schedules,
            runs,
            clock,
        }
    }

    /// The audit of `[from, to)` (by default the last day up to now). Fire times before the
    /// schedule was created (for a rate, last written) are not its.
    pub async fn audit(
        &self,
        tenant: &TenantId,
        id: ScheduleId,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Result<Audit, ServiceError> {
        let now = self.clock.now();
        let to = to.unwrap_or(now);
        let from = from.unwrap_or(to - Duration::days(1));
        if from >= to {
            return Err(super::schedules::invalid("from", "from must be before to"));
        }
        if to - from > Duration::days(MAX_AUDIT_DAYS) {
            return Err(super::schedules::invalid(
                "from",
                format!("an audit covers at most {MAX_AUDIT_DAYS} days"),
            ));
        }
        let schedule = self
            .schedules
            .get(tenant, id)
            .await?
            .ok_or(ServiceError::NotFound("schedule"))?;
        // A rate counts from the schedule's last write, so before it its fire times are not
        // known; a cron's are (computed with the expression it has now).
        let since = match schedule.expression {
            crate::time::ScheduleExpression::Rate { .. } => schedule.updated_at,
            crate::time::ScheduleExpression::Cron(_) => schedule.created_at,
        };
        let (times, truncated) = fire_times(&schedule, from.max(since), to);
        let runs = self.runs_of(tenant, id, from).await?;
        let late = LATE_AFTER
            + Duration::minutes(i64::from(
                schedule.options.flexible_window_minutes.unwrap_or(0),
            ));
        let fires = times
            .into_iter()
            .map(|fire| {
                let run = runs.get(&fire.timestamp_millis()).cloned();
                let label = label(&schedule, fire, run.as_ref(), now, late);
                AuditedFire {
                    fire_time: fire,
                    label,
                    run,
                }
            })
            .collect();
        Ok(Audit {
            schedule,
            from,
            to,
            fires,
            truncated,
        })
    }

    /// The schedule's runs triggered since `from`, by the millisecond they were triggered
    /// (a fire's own run first, where another shares its time).
    async fn runs_of(
        &self,
        tenant: &TenantId,
        id: ScheduleId,
        from: DateTime<Utc>,
    ) -> Result<HashMap<i64, Run>, ServiceError> {
        let filter = RunFilter {
            schedule_id: Some(id),
            ..RunFilter::default()
        };
        let mut found: HashMap<i64, Run> = HashMap::new();
        let mut next: Option<String> = None;
        for _ in 0..MAX_RUN_PAGES {
            let page = self
                .runs
                .list(tenant, &filter, 100, next.as_deref(), self.clock.now())
                .await
                .map_err(|e| match e {
                    RunListError::Store(e) => ServiceError::from(e),
                    RunListError::BadCursor => {
                        ServiceError::Unavailable("the run list lost its place".into())
                    }
                })?;
            let mut older = false;
            for run in page.runs {
                if run.triggered_at < from {
                    older = true;
                    continue;
                }
                let key = run.triggered_at.timestamp_millis();
                let fire_run = matches!(
                    run.trigger,
                    Trigger::Schedule { .. } | Trigger::CatchUp { .. }
                );
                match found.get(&key) {
                    Some(kept) if !fire_run || kept.status != RunStatus::Skipped => {}
                    _ => {
                        found.insert(key, run);
                    }
                }
            }
            next = page.next;
            if older || next.is_none() {
                break;
            }
        }
        Ok(found)
    }
}

fn label(
    schedule: &Schedule,
    fire: DateTime<Utc>,
    run: Option<&Run>,
    now: DateTime<Utc>,
    late: Duration,
) -> FireLabel {
    match run {
        Some(run) if run.status == RunStatus::Skipped => {
            let overlap = run
                .message
                .as_deref()
                .is_some_and(|m| m.contains("overlap_policy skip"));
            if overlap {
                FireLabel::SkippedOverlap
            } else {
                FireLabel::Skipped
            }
        }
        Some(run)
            if matches!(run.trigger, Trigger::CatchUp { .. }) || run.started_at - fire > late =>
        {
            FireLabel::Late
        }
        Some(_) => FireLabel::Ran,
        None if !schedule.is_active && fire > schedule.updated_at => FireLabel::Paused,
        None if now - fire <= late => FireLabel::Due,
        None => FireLabel::Missed,
    }
}

/// The fire times in `[from, to)`, at most [`MAX_AUDIT_FIRES`]; whether there were more.
fn fire_times(
    schedule: &Schedule,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> (Vec<DateTime<Utc>>, bool) {
    let mut out = Vec::new();
    let mut t = from - Duration::milliseconds(1);
    while let Some(next) = schedule
        .expression
        .next_after(schedule.timezone, schedule.updated_at, t)
    {
        if next >= to {
            return (out, false);
        }
        if out.len() == MAX_AUDIT_FIRES {
            return (out, true);
        }
        out.push(next);
        t = next;
    }
    (out, false)
}

#[cfg(test)]
#[path = "audit_tests.rs"]
mod tests;
