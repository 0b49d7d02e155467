//! Runs: one per executed sync job, with what it did; and the cursor a run moves.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use super::{
    ConnectionId, EntityType, FlowId, IdError, Platform, ScheduleId, SyncMode, TenantId, Trigger,
    UnknownValue, Window,
};
use crate::crypto::sha256_hex;

/// Where a run is, or how it ended.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Queued,
    Running,
    /// Everything it read is in every target.
    Succeeded,
    /// Some records failed (they are listed on the run); the rest were written.
    Partial,
    /// Nothing could be done (a platform refused us, a dependency was down).
    Failed,
    /// Nothing to do: no flow, the schedule is gone or paused, the connection needs attention.
    Skipped,
    /// Stopped on request (`POST /api/sync/runs/{id}/cancel`): before it started, or at a
    /// page's end, keeping what it had written.
    Cancelled,
}

impl RunStatus {
    pub const ALLOWED: &'static str =
        "queued, running, succeeded, partial, failed, skipped, cancelled";

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Partial => "partial",
            RunStatus::Failed => "failed",
            RunStatus::Skipped => "skipped",
            RunStatus::Cancelled => "cancelled",
        }
    }

    /// Whether the run is over.
    pub fn is_final(self) -> bool {
        !matches!(self, RunStatus::Queued | RunStatus::Running)
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunStatus {
    type Err = UnknownValue;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(match text {
            "queued" => RunStatus::Queued,
            "running" => RunStatus::Running,
            "succeeded" => RunStatus::Succeeded,
            "partial" => RunStatus::Partial,
            "failed" => RunStatus::Failed,
            "skipped" => RunStatus::Skipped,
            "cancelled" => RunStatus::Cancelled,
            _ => {
                return Err(UnknownValue {
                    value: text.to_string(),
                    allowed: Self::ALLOWED,
                })
            }
        })
    }
}

/// Where a source has been read up to: the modification stamp and id of the last record
/// whose changes are in every target. Only a source compares cursors (in its own order).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub stamp: DateTime<Utc>,
    /// Empty: every record at `stamp` is still to come.
    #[serde(default)]
    pub id: String,
}

impl Cursor {
    pub fn at(stamp: DateTime<Utc>) -> Self {
        Self {
            stamp,
            id: String::new(),
        }
    }
}

/// A run's id: its job's time (milliseconds) and a digest of the job id, so runs sort by
/// time, and a job delivered twice finds its own run.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RunId(String);

impl RunId {
    pub fn for_job(triggered_at: DateTime<Utc>, job_id: &str) -> Self {
        let ms = triggered_at.timestamp_millis().max(0);
        Self(format!("{ms:013}-{}", &sha256_hex(job_id.as_bytes())[..12]))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for RunId {
    type Err = IdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let ok = text.len() == 26
            && text.as_bytes()[13] == b'-'
            && text[..13].bytes().all(|b| b.is_ascii_digit())
            && text[14..]
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
        if ok {
            Ok(Self(text.to_string()))
        } else {
            Err(IdError(format!("'{text}' is not a run id")))
        }
    }
}

impl TryFrom<String> for RunId {
    type Error = IdError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<RunId> for String {
    fn from(id: RunId) -> String {
        id.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a run (or one flow of it) did with the records it read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunCounts {
    pub read: u64,
    pub written: u64,
    /// Already in the target as they are (re-read through the overlap window, or nothing
    /// that flow carries changed).
    pub unchanged: u64,
    /// Changes that were our own writes coming back: not written again.
    pub echo_skipped: u64,
    pub failed: u64,
    /// Records both sides had changed since they last agreed (`newest_wins`): the newer
    /// edit won, and the run keeps which (see [`Run::conflicts`]).
    pub conflicts: u64,
    /// Of the writes of a poll whose connection takes webhooks, those of changes no
    /// webhook had brought (made since the last poll's cursor and longer than
    /// [`super::WEBHOOK_GRACE`] before this one): a sign that the webhooks are not coming.
    pub unannounced: u64,
}

impl RunCounts {
    pub fn add(&mut self, other: &RunCounts) {
        self.read += other.read;
        self.written += other.written;
        self.unchanged += other.unchanged;
        self.echo_skipped += other.echo_skipped;
        self.failed += other.failed;
        self.conflicts += other.conflicts;
        self.unannounced += other.unannounced;
    }
}

/// One flow's part of a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowRun {
    pub flow_id: FlowId,
    pub target_connection_id: ConnectionId,
    pub counts: RunCounts,
}

/// A record that could not be synced, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordFailure {
    pub record_id: String,
    /// The flow whose write failed; none when the record could not even be read.
    pub flow_id: Option<FlowId>,
    pub error: String,
    /// What kind of failure, to filter and retry by (see `RecordError`): the platform's
    /// own code where it gave one; `unreadable` for a record that does not map; empty in
    /// runs recorded before codes were kept.
    #[serde(default)]
    pub error_code: String,
    /// Whether trying again later may help (the platform was down or throttling for it).
    #[serde(default)]
    pub retryable: bool,
    /// Failed tries of this record in a row, this one included.
    #[serde(default)]
    pub attempts: u32,
    /// Whether this failure quarantined the record (see `GET /api/sync/failures`).
    #[serde(default)]
    pub quarantined: bool,
}

/// The most failed records a run keeps (the count keeps counting).
pub const MAX_RUN_FAILURES: usize = 50;

/// Which side's edit a conflict kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Winner {
    Source,
    Target,
}

impl Winner {
    pub fn as_str(self) -> &'static str {
        match self {
            Winner::Source => "source",
            Winner::Target => "target",
        }
    }
}

/// A record both sides of a `newest_wins` flow had changed since they last agreed, and
/// how it was decided: the later edit by the platforms' own times; on a tie (WooCommerce
/// keeps seconds) the side whose connection id sorts first, the same from both directions,
/// so the two flows of a pair never undo each other.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    pub record_id: String,
    pub flow_id: FlowId,
    /// The copy's id at the target.
    pub target_id: String,
    pub source_modified_at: DateTime<Utc>,
    pub target_modified_at: DateTime<Utc>,
    pub winner: Winner,
    /// Whether the two edits had the same time, so the tie rule decided.
    pub tie: bool,
}

/// One executed sync job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    pub id: RunId,
    pub tenant_id: TenantId,
    pub job_id: String,
    pub trigger: Trigger,
    pub schedule_id: Option<ScheduleId>,
    pub connection_id: ConnectionId,
    pub platform: Platform,
    pub entity_type: EntityType,
    pub sync_mode: SyncMode,
    /// For webhook jobs: how many ids it was asked to sync.
    pub ids_requested: usize,
    /// Those ids, so that a run whose job was lost can be sent again or redone (the sweeper).
    pub ids: Vec<String>,
    pub status: RunStatus,
    pub counts: RunCounts,
    pub flows: Vec<FlowRun>,
    /// The first [`MAX_RUN_FAILURES`] failed records.
    pub failures: Vec<RecordFailure>,
    /// The first [`MAX_RUN_FAILURES`] conflicts decided (the count keeps counting).
    pub conflicts: Vec<Conflict>,
    /// Why the run was skipped or failed, or a note on how it ended.
    pub message: Option<String>,
    pub cursor_before: Option<Cursor>,
    pub cursor_after: Option<Cursor>,
    pub triggered_at: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// When its record was last written (queued, taken up, checkpointed, ended): a run
    /// still open long after this, with its stream free, was abandoned (the sweeper's).
    pub updated_at: DateTime<Utc>,
    /// How many times it stopped near its time limit and went on in a new invocation.
    pub continuations: u32,
    /// How many deliveries of its job tried it (a failed attempt is retried by the queue).
    pub attempts: u32,
    /// A resync's span of source modification times (see [`super::SyncJob::window`]).
    pub window: Option<Window>,
    /// The run the sweeper queued to do this one's work when it found it abandoned: a
    /// delivery of this run's job that still comes (its message was only late) is dropped.
    pub redone_by: Option<RunId>,
    /// Its ids name changes no other run would sync (see [`super::SyncJob::reported`]):
    /// it is never cancelled, and a redo of it carries them on.
    pub reported: bool,
}

impl Run {
    /// A new run of `job`, with id `id`, started at `now`; a `queued` one (recorded when a
    /// person's job is sent) has had no attempt yet.
    pub fn of_job(
        job: &super::SyncJob,
        id: RunId,
        cursor: Option<Cursor>,
        now: DateTime<Utc>,
        status: RunStatus,
    ) -> Run {
        Run {
            id,
            tenant_id: job.tenant_id.clone(),
            job_id: job.job_id.clone(),
            trigger: job.trigger.clone(),
            schedule_id: job.trigger.schedule_id(),
            connection_id: job.connection_id,
            platform: job.platform,
            entity_type: job.entity_type,
            sync_mode: job.sync_mode,
            ids_requested: job.ids.len(),
            ids: job.ids.clone(),
            status,
            counts: RunCounts::default(),
            flows: Vec::new(),
            failures: Vec::new(),
            conflicts: Vec::new(),
            message: None,
            cursor_before: cursor,
            cursor_after: None,
            triggered_at: job.triggered_at,
            started_at: now,
            finished_at: None,
            updated_at: now,
            continuations: job.resume.as_ref().map_or(0, |cp| cp.continuation),
            attempts: u32::from(status != RunStatus::Queued),
            window: job.window.filter(|_| job.ids.is_empty()),
            redone_by: None,
            reported: job.is_reported(),
        }
    }

    /// Records a failure, keeping the first [`MAX_RUN_FAILURES`].
    pub fn fail_record(&mut self, failure: RecordFailure) {
        self.counts.failed += 1;
        if self.failures.len() < MAX_RUN_FAILURES {
            self.failures.push(failure);
        }
    }

    /// Counts one flow's share of a page: the `read` records, and what it did with them
    /// (its conflicts count on the flow here, and on the run as each is noted).
    pub fn note_flow_page(&mut self, flow: FlowId, read: usize, counts: &RunCounts) {
        if let Some(flow_run) = self.flows.iter_mut().find(|f| f.flow_id == flow) {
            flow_run.counts.add(&RunCounts {
                read: read as u64,
                ..*counts
            });
        }
        self.counts.written += counts.written;
        self.counts.unchanged += counts.unchanged;
        self.counts.echo_skipped += counts.echo_skipped;
        self.counts.unannounced += counts.unannounced;
    }

    /// Records a decided conflict, keeping the first [`MAX_RUN_FAILURES`].
    pub fn note_conflict(&mut self, conflict: Conflict) {
        self.counts.conflicts += 1;
        if self.conflicts.len() < MAX_RUN_FAILURES {
            self.conflicts.push(conflict);
        }
    }

    /// The flows the run wrote to.
    pub fn flow_ids(&self) -> Vec<FlowId> {
        self.flows.iter().map(|f| f.flow_id).collect()
    }
}

/// What a run list can be narrowed to (all optional; combined with "and").
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunFilter {
    pub schedule_id: Option<ScheduleId>,
    pub flow_id: Option<FlowId>,
    pub connection_id: Option<ConnectionId>,
    pub status: Option<RunStatus>,
}

impl RunFilter {
    pub fn matches(&self, run: &Run) -> bool {
        self.schedule_id.is_none_or(|s| run.schedule_id == Some(s))
            && self
                .flow_id
                .is_none_or(|f| run.flows.iter().any(|x| x.flow_id == f))
            && self.connection_id.is_none_or(|c| run.connection_id == c)
            && self.status.is_none_or(|s| run.status == s)
    }
}

/// A page of runs, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunPage {
    pub runs: Vec<Run>,
    /// Pass back as `next` for the following page; `None` on the last.
    pub next: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_id_sorts_by_time_and_names_its_job() {
        let t = DateTime::from_timestamp(1_795_521_600, 0).unwrap_or_default();
        let a = RunId::for_job(t, "job-1");
        assert_eq!(a, RunId::for_job(t, "job-1"));
        assert_ne!(a, RunId::for_job(t, "job-2"));
        assert!(a < RunId::for_job(t + chrono::Duration::milliseconds(1), "job-0"));
        assert_eq!(a.as_str().parse::<RunId>(), Ok(a.clone()));
        for bad in [
            "",
            "x",
            "1795521600000-ABCDEF012345",
            "179552160000x-abcdef012345",
        ] {
            assert!(bad.parse::<RunId>().is_err(), "{bad}");
        }
    }
}
