//! The sync job: what a fired schedule, a burst of webhooks or a person puts on the sync
//! queue for the worker. Every field is a domain type, so a message that would not make
//! sense to the worker does not deserialize.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    ConnectionId, Cursor, EntityType, Platform, RunId, Schedule, ScheduleId, SyncMode, TenantId,
};

/// Placeholder EventBridge Scheduler replaces with the scheduled fire time (RFC 3339).
pub const SCHEDULED_TIME_PLACEHOLDER: &str = "<aws.scheduler.scheduled-time>";
/// Placeholder EventBridge Scheduler replaces with a unique id per invocation.
pub const EXECUTION_ID_PLACEHOLDER: &str = "<aws.scheduler.execution-id>";

/// What caused a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Trigger {
    /// A schedule fired. The version is the schedule's as EventBridge held it, so the worker
    /// can tell a trigger that lags behind the stored schedule (and repair it).
    Schedule {
        schedule_id: ScheduleId,
        schedule_version: u64,
    },
    /// Webhook events, coalesced.
    Webhook,
    /// Someone asked for it (the API or `syncctl`).
    Manual,
    /// Someone ran a schedule now (the API or `syncctl`), paused or not: a manual run that
    /// counts as the schedule's.
    ScheduleNow { schedule_id: ScheduleId },
    /// A schedule's fire time that passed without a run (the sweeper found it within the
    /// schedule's catch-up window), run late: counts as the schedule's.
    CatchUp { schedule_id: ScheduleId },
    /// A failed run, tried again.
    Retry,
    /// Not a sync of its own: runs the follow-up kept for this connection and entity while
    /// another run held it, if one is still waiting (see the worker's lease).
    FollowUp,
}

impl Trigger {
    /// The name runs show: `schedule`, `webhook`, `manual`, `catch_up`, `retry`, `follow_up`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Trigger::Schedule { .. } => "schedule",
            Trigger::Webhook => "webhook",
            Trigger::Manual | Trigger::ScheduleNow { .. } => "manual",
            Trigger::CatchUp { .. } => "catch_up",
            Trigger::Retry => "retry",
            Trigger::FollowUp => "follow_up",
        }
    }

    /// Whether a job or run of this kind, sent or recorded before they said whether they
    /// carry a platform's changes (see [`SyncJob::reported`]), is taken to.
    pub fn may_carry_reported(&self) -> bool {
        matches!(self, Trigger::Webhook | Trigger::Retry | Trigger::FollowUp)
    }

    pub fn schedule_id(&self) -> Option<ScheduleId> {
        match self {
            Trigger::Schedule { schedule_id, .. }
            | Trigger::ScheduleNow { schedule_id }
            | Trigger::CatchUp { schedule_id } => Some(*schedule_id),
            _ => None,
        }
    }
}

/// One message on the sync queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncJob {
    /// Unique per job: EventBridge's execution id for scheduled jobs as sent (the worker
    /// goes by the fire's own, [`SyncJob::fire_job_id`]), a UUID otherwise.
    pub job_id: String,
    pub tenant_id: TenantId,
    pub connection_id: ConnectionId,
    pub platform: Platform,
    pub entity_type: EntityType,
    pub sync_mode: SyncMode,
    pub trigger: Trigger,
    /// When the trigger fired (for schedules: EventBridge's scheduled time).
    pub triggered_at: DateTime<Utc>,
    /// For webhook jobs: the ids of the records the coalesced events named; only those are
    /// synced. Empty: everything changed since the cursor.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<String>,
    /// Set on a continuation of a run that stopped near its time limit: where to go on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<Checkpoint>,
    /// For a retry of a job's records that failed in a way that may pass: how many tries of
    /// them came before (0 for every other job).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempt: u32,
    /// Runs the API recorded as `queued` for jobs merged into this one while their stream
    /// was busy: this job's run settles them (see [`SyncJob::merged_with`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stands_for: Vec<RunId>,
    /// A resync: the records the source changed in this span are read again and written
    /// to every target (even those it already holds as they are); the stream's cursor is
    /// neither used nor moved. Ignored by a job of named records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,
    /// It syncs changes no other run would: records a platform reported changed (named, or
    /// read since the cursor when there were too many or it was merged into such a run),
    /// or records whose writes failed in a way that may pass. Its run is never cancelled
    /// (it runs to its end), and whatever job it is merged into carries them on. `None`:
    /// sent before jobs said so (see [`SyncJob::is_reported`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported: Option<bool>,
}

/// A span of the source's modification times: `from` included, `to` excluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl Window {
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.from <= t && t < self.to
    }
}

/// Most queued runs one merged job settles; beyond, the oldest are left `queued`.
pub const MAX_STANDS_FOR: usize = 100;

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Where a run stopped, to go on from in a new invocation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub run_id: RunId,
    /// Which continuation this is (1 for the first).
    pub continuation: u32,
    /// Where the source has been read up to.
    pub after: Option<Cursor>,
    /// The source's own paging state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<Value>,
    /// A record failed earlier in the run: the cursor must not move past it.
    pub blocked: bool,
    /// Full runs: the cursor to set when the run completes (what has been read so far).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub committed: Option<Cursor>,
    /// Invocations in a row that ended out of time without getting past this point.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub stalled: u32,
}

/// Most ids a job carries; beyond, it syncs everything changed since the cursor instead.
pub const MAX_JOB_IDS: usize = 500;

impl SyncJob {
    /// The id every job for schedule `schedule`'s fire time `at` goes by, whoever sent it
    /// (EventBridge, once or more, or the sweeper catching the fire up): one fire, one run.
    pub fn fire_job_id(schedule: ScheduleId, at: DateTime<Utc>) -> String {
        format!("fire-{schedule}-{}", at.timestamp_millis())
    }

    /// The run this job records (a continuation goes on with its run's).
    pub fn run_id(&self) -> RunId {
        match &self.resume {
            Some(cp) => cp.run_id.clone(),
            None => RunId::for_job(self.triggered_at, &self.job_id),
        }
    }

    /// Whether it syncs changes no other run would (see [`SyncJob::reported`]); a job sent
    /// before jobs said so is taken to if its kind could.
    pub fn is_reported(&self) -> bool {
        self.reported
            .unwrap_or_else(|| self.trigger.may_carry_reported())
    }

    /// Whether the API (or the sweeper, for a catch-up) recorded this job's run as `queued`
    /// when it sent it, so a job standing for it must settle that record. A merged job (one
    /// that stands for others) has an identity of its own that nobody recorded.
    pub fn has_queued_run(&self) -> bool {
        self.resume.is_none()
            && self.stands_for.is_empty()
            && matches!(
                self.trigger,
                Trigger::Manual
                    | Trigger::ScheduleNow { .. }
                    | Trigger::Retry
                    | Trigger::CatchUp { .. }
            )
    }

    /// The one follow-up that stands for this job and a `newer` one for the same connection
    /// and entity (only one is ever kept waiting): a full sync if either is, the ids of both
    /// (none, meaning everything since the cursor, if either names none or there are too
    /// many), and the newer job's trigger and identity.
    pub fn merged_with(&self, newer: &SyncJob) -> SyncJob {
        if self.resume.is_none() && newer.resume.is_none() && self.run_id() == newer.run_id() {
            // The same job twice (a fire delivered again, or with its catch-up): one job,
            // one run.
            let mut same = self.clone();
            same.stands_for.extend(newer.stands_for.iter().cloned());
            same.stands_for.sort();
            same.stands_for.dedup();
            same.reported = Some(self.is_reported() || newer.is_reported());
            return same;
        }
        let mut merged = newer.clone();
        if self.sync_mode == SyncMode::Full {
            merged.sync_mode = SyncMode::Full;
        }
        merged.ids = if self.ids.is_empty() || newer.ids.is_empty() {
            Vec::new()
        } else {
            let mut ids: Vec<String> = self.ids.iter().chain(&newer.ids).cloned().collect();
            ids.sort();
            ids.dedup();
            if ids.len() > MAX_JOB_IDS {
                Vec::new()
            } else {
                ids
            }
        };
        if merged.sync_mode == SyncMode::Full {
            merged.ids.clear();
        }
        merged.triggered_at = self.triggered_at.max(newer.triggered_at);
        merged.reported = Some(self.is_reported() || newer.is_reported());
        merged.resume = None;
        // Tries are bounded: a retry merged with new work keeps its count.
        merged.attempt = self.attempt.max(newer.attempt);
        // A run someone asked for, recorded `queued`, is settled by the merged job's run.
        let mut stands_for: Vec<RunId> = Vec::new();
        for job in [self, newer] {
            stands_for.extend(job.stands_for.iter().cloned());
            if job.has_queued_run() {
                stands_for.push(job.run_id());
            }
        }
        // Run ids sort by time: the newest are kept past the bound.
        stands_for.sort();
        stands_for.dedup();
        let excess = stands_for.len().saturating_sub(MAX_STANDS_FOR);
        merged.stands_for = stands_for.split_off(excess);
        // A new identity: the newest job alone, delivered again, must not find this merged
        // job's run and take it for its own (the older job's ids would be skipped).
        merged.job_id = uuid::Uuid::new_v5(
            &uuid::Uuid::NAMESPACE_OID,
            format!("{}\n{}", self.job_id, newer.job_id).as_bytes(),
        )
        .to_string();
        merged
    }
}

impl SyncJob {
    /// The text EventBridge sends when `schedule` fires: the job with EventBridge's
    /// placeholders in place of the time and the job id, filled in at each invocation.
    pub fn scheduled_input(schedule: &Schedule) -> String {
        let job = SyncJob {
            job_id: String::new(),
            tenant_id: schedule.tenant_id.clone(),
            connection_id: schedule.credential_id,
            platform: schedule.platform,
            entity_type: schedule.entity_type,
            sync_mode: schedule.sync_mode,
            trigger: Trigger::Schedule {
                schedule_id: schedule.id,
                schedule_version: schedule.version,
            },
            triggered_at: schedule.updated_at,
            ids: Vec::new(),
            resume: None,
            attempt: 0,
            stands_for: Vec::new(),
            window: None,
            // (EventBridge's input, as every schedule was given it; a fire names no record.)
            reported: None,
        };
        let mut value = serde_json::to_value(&job).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut value {
            map.insert("job_id".into(), Value::from(EXECUTION_ID_PLACEHOLDER));
            map.insert(
                "triggered_at".into(),
                Value::from(SCHEDULED_TIME_PLACEHOLDER),
            );
        }
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::ScheduleExpression;

    fn schedule() -> Schedule {
        let at = DateTime::from_timestamp(1_795_521_600, 0).unwrap_or_default();
        Schedule {
            id: ScheduleId::new_random(),
            tenant_id: TenantId::parse("acme").unwrap_or_else(|e| panic!("{e}")),
            credential_id: ConnectionId::new_random(),
            platform: Platform::WooCommerce,
            entity_type: EntityType::Orders,
            cron_expression: "0 9 * * *".into(),
            expression: ScheduleExpression::parse("0 9 * * *").unwrap_or_else(|e| panic!("{e}")),
            sync_mode: SyncMode::Incremental,
            timezone: "UTC".parse().unwrap_or_else(|e| panic!("{e}")),
            is_active: true,
            options: Default::default(),
            last_run_at: None,
            last_run_status: None,
            consecutive_failures: 0,
            created_at: at,
            updated_at: at,
            version: 7,
        }
    }

    #[test]
    fn a_job_sent_before_jobs_said_whether_they_carry_reported_changes_is_judged_by_its_kind() {
        let s = schedule();
        assert!(!SyncJob::scheduled_input(&s).contains("reported"));
        for (trigger, reported) in [("webhook", true), ("retry", true), ("manual", false)] {
            let mut job =
                serde_json::to_value(webhook_job(&["1"])).unwrap_or_else(|e| panic!("{e}"));
            job["trigger"] = serde_json::json!({"kind": trigger});
            let had = job["reported"].take();
            assert_eq!(had, true);
            if let Some(o) = job.as_object_mut() {
                o.remove("reported");
            }
            let old: SyncJob = serde_json::from_value(job).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(old.reported, None);
            assert_eq!(old.is_reported(), reported, "{trigger}");
        }
        // Said either way, it is as said, and a merge keeps it.
        let mut asked = webhook_job(&["2"]);
        asked.trigger = Trigger::Retry;
        asked.reported = Some(false);
        assert!(!asked.is_reported());
        let text = serde_json::to_string(&asked).unwrap_or_else(|e| panic!("{e}"));
        let back: SyncJob = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back.reported, Some(false));
        assert!(asked.merged_with(&webhook_job(&["3"])).is_reported());
        assert!(webhook_job(&["3"]).merged_with(&asked).is_reported());
    }

    #[test]
    fn the_scheduled_input_becomes_a_job_once_eventbridge_fills_it_in() {
        let s = schedule();
        let input = SyncJob::scheduled_input(&s);
        assert!(
            input.contains(SCHEDULED_TIME_PLACEHOLDER) && input.contains(EXECUTION_ID_PLACEHOLDER)
        );
        let fired = input
            .replace(SCHEDULED_TIME_PLACEHOLDER, "2026-11-25T09:00:00Z")
            .replace(EXECUTION_ID_PLACEHOLDER, "c0ffee");
        let job: SyncJob = serde_json::from_str(&fired).unwrap_or_else(|e| panic!("{e}: {fired}"));
        assert_eq!(job.job_id, "c0ffee");
        assert_eq!(job.connection_id, s.credential_id);
        assert_eq!(
            job.trigger,
            Trigger::Schedule {
                schedule_id: s.id,
                schedule_version: 7
            }
        );
        assert_eq!(job.triggered_at.to_rfc3339(), "2026-11-25T09:00:00+00:00");
    }

    fn webhook_job(ids: &[&str]) -> SyncJob {
        let s = schedule();
        SyncJob {
            job_id: format!("job-{}", ids.join("-")),
            tenant_id: s.tenant_id,
            connection_id: s.credential_id,
            platform: s.platform,
            entity_type: s.entity_type,
            sync_mode: SyncMode::Incremental,
            trigger: Trigger::Webhook,
            triggered_at: s.updated_at,
            ids: ids.iter().map(|i| i.to_string()).collect(),
            resume: None,
            attempt: 0,
            stands_for: Vec::new(),
            window: None,
            reported: Some(true),
        }
    }

    #[test]
    fn a_merged_job_stands_for_the_runs_people_asked_for_and_only_those() {
        let webhook = webhook_job(&["1"]);
        let mut asked = webhook_job(&[]);
        asked.job_id = "asked".into();
        asked.trigger = Trigger::Manual;
        let merged = webhook.merged_with(&asked);
        assert_eq!(merged.stands_for, [asked.run_id()]);
        // Merged again, the runs it stood for are still stood for.
        let mut later = webhook_job(&["2"]);
        later.job_id = "later".into();
        assert_eq!(merged.merged_with(&later).stands_for, [asked.run_id()]);
    }

    #[test]
    fn merging_follow_ups_keeps_every_id_or_syncs_everything() {
        let a = webhook_job(&["1", "2"]);
        let b = webhook_job(&["2", "3"]);
        assert_eq!(a.merged_with(&b).ids, ["1", "2", "3"]);
        // A job of its own: neither of the two, delivered again, takes its run for theirs.
        let merged = a.merged_with(&b);
        assert!(merged.job_id != a.job_id && merged.job_id != b.job_id);
        assert_eq!(
            merged.job_id,
            a.merged_with(&b).job_id,
            "derived, not random"
        );
        // A job without ids covers everything: the merge does too.
        assert!(a.merged_with(&webhook_job(&[])).ids.is_empty());
        assert!(webhook_job(&[]).merged_with(&a).ids.is_empty());
        // Full wins, and needs no ids.
        let mut full = webhook_job(&["9"]);
        full.sync_mode = SyncMode::Full;
        let m = full.merged_with(&a);
        assert_eq!((m.sync_mode, m.ids.len()), (SyncMode::Full, 0));
        // Too many ids: everything since the cursor instead.
        let many: Vec<String> = (0..=MAX_JOB_IDS).map(|i| i.to_string()).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(a.merged_with(&webhook_job(&refs)).ids.is_empty());
    }

    #[test]
    fn a_job_with_a_field_the_domain_refuses_does_not_deserialize() {
        let s = schedule();
        let good = SyncJob::scheduled_input(&s)
            .replace(SCHEDULED_TIME_PLACEHOLDER, "2026-11-25T09:00:00Z")
            .replace(EXECUTION_ID_PLACEHOLDER, "x");
        assert!(serde_json::from_str::<SyncJob>(&good).is_ok());
        for (from, to) in [
            ("\"woocommerce\"", "\"shopify\""),
            ("\"orders\"", "\"invoices\""),
            ("\"acme\"", "null"),
            ("\"2026-11-25T09:00:00Z\"", "\"yesterday\""),
        ] {
            let bad = good.replace(from, to);
            assert!(serde_json::from_str::<SyncJob>(&bad).is_err(), "{bad}");
        }
    }
}
