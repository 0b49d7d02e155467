//! One run of one stream (a connection's records of one entity) into every flow from it:
//! pages are read from the source, each record goes to each flow's target unless the
//! target already holds it, and the cursor moves only past what every target has.
//!
//! The rules, in the order the product decided them:
//! - **Commit, then advance.** After a page is in every target, the cursor moves to the
//!   page's checkpoint, and only then. A failed run never moves it.
//! - **Never past a failed record.** Once a record fails, later pages are still read and
//!   written (one bad record fails itself, not the run), but the cursor stays where it was:
//!   the next run re-reads from there, and what is already in the targets is skipped.
//! - **Overlap.** An incremental run starts a window before the cursor (sources with
//!   second-granular, exclusive filters would miss records at the cursor's second).
//! - **Full** runs read everything and set the cursor at the end.
//! - **Resyncs** read a span of modification times again and rewrite what they read
//!   (`source_wins` flows with no flow back), without touching the cursor.
//! - **Ids** (webhook jobs) are synced one by one, and the cursor is not touched. A record
//!   whose write failed in a way that may pass (a 5xx or 429 for it) is named in the run's
//!   end, for the worker to try again later; nothing else would ever bring it back.
//! - **Echoes.** Each record's fields are fingerprinted; a change whose fields the target
//!   already holds is not written (counted as an echo when it was our own write coming back,
//!   as unchanged otherwise), so two flows in opposite directions converge and stop.
//! - **Checkpoints.** Near the deadline the run stops after a page and says where it was, so
//!   a continuation picks up exactly there. A platform call that would run past the deadline
//!   (its retry waits are bounded by it, see `platforms::http::until`) gives up, and the run
//!   checkpoints before that page instead of failing. Webhook jobs check between chunks.

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::conflict::{self, Judgement, Known, Sides};
use crate::clock::Clock;
use crate::domain::{
    Checkpoint, Conflict, ConflictPolicy, ConnectionId, Cursor, EntityType, FailedRecord, Flow,
    FlowRun, RecordFailure, Run, RunCounts, SyncJob, SyncMode, Window, Winner,
};
use crate::ports::{
    Connector, FailureLog, Item, Origin, PlatformError, RecordError, RecordIndex, RecordState,
    RecordUpdate, Source, StateError, SyncKey, SyncLeases, Write, WriteOutcome, UNAVAILABLE,
    UNREADABLE,
};
use crate::records::{Fingerprint, Record};

/// Records fetched by id per call (webhook jobs).
const FETCH_CHUNK: usize = 100;

/// One flow as the engine runs it: the flow, its target, and the fields it carries.
pub struct FlowPlan {
    pub flow: Flow,
    pub target: Arc<dyn Connector>,
    /// What the source reads and the target writes.
    pub fields: Vec<&'static str>,
    /// Whether the target reads its records back as it was given them (what lets a
    /// `newest_wins` flow tell an edit of a copy from our own write).
    pub reads_back: bool,
    /// A resync's: every record read is written to the target even when the record index
    /// says the target holds it as it is (it may have been changed or removed there since).
    /// Only for a `source_wins` flow with no flow back: an edit at the target not yet carried
    /// back would be overwritten.
    pub rewrite: bool,
}

/// Everything one run needs.
pub struct RunContext<'a> {
    pub key: SyncKey,
    pub owner: &'a str,
    pub source: &'a dyn Source,
    pub source_platform: crate::domain::Platform,
    /// The fields the source reads (its records' own fingerprints are over these).
    pub source_fields: &'static [&'static str],
    pub flows: &'a [FlowPlan],
    /// When the run must stop after its current page.
    pub deadline: DateTime<Utc>,
    /// Set by the lease's keeper when the lease could not be renewed.
    pub lease_lost: &'a AtomicBool,
    /// Set when someone asked the run to stop: it does at the end of the page it is on.
    pub cancelled: &'a AtomicBool,
    /// The lease's fencing token: the run's index writes are refused once a later holder
    /// of the stream has written the same entries.
    pub epoch: u64,
    /// For a poll of a connection that takes webhooks: the span of modification times
    /// whose changes a webhook should have brought already (see
    /// [`RunCounts::unannounced`]).
    pub unannounced: Option<Window>,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEnd {
    /// Everything read; the cursor moved if it could. `retry`: the ids of a webhook job's
    /// records whose writes failed in a way that may pass.
    Completed { retry: Vec<String> },
    /// Stopped near the deadline: go on from here in a new invocation.
    Checkpointed(Checkpoint),
    /// Could not go on. `retryable`: trying the job again later may help.
    Failed { error: String, retryable: bool },
    /// A platform call was given up for want of time (the engine checkpoints instead
    /// wherever it can).
    TimeUp(String),
    /// The lease was taken over: another run goes on from the stored cursor. `in_flight`:
    /// the records of the page being written then (our writes of them may land after the
    /// new holder's, so they are to be synced again after it).
    LeaseLost { in_flight: Vec<String> },
    /// Stopped on request, between pages: what was written stays, the cursor where the
    /// last committed page left it. `retry`: records named by the job whose writes failed
    /// in a way that may pass (see [`RunEnd::Completed`]).
    Cancelled { retry: Vec<String> },
}

impl RunEnd {
    /// `LeaseLost` with the page in flight named; any other end as it is.
    fn in_flight(self, ids: &[String]) -> RunEnd {
        match self {
            RunEnd::LeaseLost { .. } => RunEnd::LeaseLost {
                in_flight: ids.to_vec(),
            },
            other => other,
        }
    }
}

/// Where a webhook job stopped (its checkpoint's `resume`): the chunk of ids it goes on
/// from, and the ids of the chunks before that are to be tried again.
#[derive(serde::Serialize, serde::Deserialize, Default)]
#[serde(default)]
struct IdsResume {
    ids_from: usize,
    retry: Vec<String>,
}

/// The ids a job of named records carried on to be tried again, from where an earlier part
/// of its run stopped (none for any other job, or a place that does not read).
pub(super) fn carried_retries(job: &SyncJob) -> Vec<String> {
    if job.ids.is_empty() {
        return Vec::new();
    }
    job.resume
        .as_ref()
        .and_then(|cp| cp.resume.clone())
        .and_then(|v| serde_json::from_value::<IdsResume>(v).ok())
        .map(|r| r.retry)
        .unwrap_or_default()
}

impl From<PlatformError> for RunEnd {
    fn from(e: PlatformError) -> Self {
        match e {
            PlatformError::OutOfTime(_) => RunEnd::TimeUp(e.to_string()),
            _ => RunEnd::Failed {
                retryable: e.is_retryable(),
                error: e.to_string(),
            },
        }
    }
}

impl From<StateError> for RunEnd {
    fn from(e: StateError) -> Self {
        match e {
            StateError::LeaseLost => RunEnd::LeaseLost {
                in_flight: Vec::new(),
            },
            StateError::Unavailable(why) => RunEnd::Failed {
                error: format!("the sync state store is unavailable: {why}"),
                retryable: true,
            },
        }
    }
}

/// How far a run may read before it checkpoints, and how far back it re-reads.
#[derive(Clone, Debug)]
pub struct EngineSettings {
    /// How far before the cursor an incremental run starts reading.
    pub overlap: Duration,
    /// Failed tries in a row after which a record is quarantined (the cursor moves on).
    pub quarantine_after: u32,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            overlap: Duration::seconds(120),
            quarantine_after: 5,
        }
    }
}

/// Runs streams through their flows.
pub struct Engine {
    leases: Arc<dyn SyncLeases>,
    index: Arc<dyn RecordIndex>,
    failures: Arc<dyn FailureLog>,
    clock: Arc<dyn Clock>,
    settings: EngineSettings,
}

/// What one page did: whether all of it is in every target (so the cursor may move past
/// it), and which of its records failed in a way that may pass.
#[derive(Default)]
struct PageOutcome {
    committed: bool,
    retry: Vec<String>,
}

/// Invocations in a row a run may end out of time without getting past a point; then it
/// fails (and its message is retried after the queue's visibility timeout), rather than
/// continue for ever on a page that never fits in one invocation.
const MAX_STALLED: u32 = 3;

/// Where a run is while it reads.
struct Position {
    after: Option<Cursor>,
    resume: Option<Value>,
    blocked: bool,
    committed: Option<Cursor>,
    /// Where this invocation began, and how many before it ended there out of time.
    start: (Option<Cursor>, Option<Value>),
    stalled: u32,
}

impl Position {
    /// Where a continuation of `run` goes on from: here.
    fn checkpoint(&self, run: &Run) -> Checkpoint {
        let stuck = (&self.after, &self.resume) == (&self.start.0, &self.start.1);
        Checkpoint {
            run_id: run.id.clone(),
            continuation: run.continuations + 1,
            after: self.after.clone(),
            resume: self.resume.clone(),
            blocked: self.blocked,
            committed: self.committed.clone(),
            stalled: if stuck { self.stalled + 1 } else { 0 },
        }
    }
}

impl Engine {
    pub fn new(
        leases: Arc<dyn SyncLeases>,
        index: Arc<dyn RecordIndex>,
        failures: Arc<dyn FailureLog>,
        clock: Arc<dyn Clock>,
        settings: EngineSettings,
    ) -> Self {
        Self {
            leases,
            index,
            failures,
            clock,
            settings,
        }
    }

    /// Runs `job` (or its continuation) from `cursor`, updating `run` as it goes.
    pub async fn run(
        &self,
        ctx: &RunContext<'_>,
        job: &SyncJob,
        cursor: Option<Cursor>,
        run: &mut Run,
    ) -> RunEnd {
        for plan in ctx.flows {
            if !run.flows.iter().any(|f| f.flow_id == plan.flow.id) {
                run.flows.push(FlowRun {
                    flow_id: plan.flow.id,
                    target_connection_id: plan.flow.target_connection_id,
                    counts: RunCounts::default(),
                });
            }
        }
        if !job.ids.is_empty() {
            return self.run_ids(ctx, job, run).await;
        }
        // A resync reads its span from a little before it (sources filter by the second,
        // some exclusively) and keeps only what the source changed inside it.
        let window = job.window;
        let mut at = match &job.resume {
            Some(cp) => Position {
                after: cp.after.clone(),
                resume: cp.resume.clone(),
                blocked: cp.blocked,
                committed: cp.committed.clone(),
                start: (cp.after.clone(), cp.resume.clone()),
                stalled: cp.stalled,
            },
            None => {
                let after = match (window, job.sync_mode) {
                    (Some(w), _) => Some(Cursor::at(w.from - self.settings.overlap)),
                    (None, SyncMode::Incremental) => cursor
                        .as_ref()
                        .map(|c| Cursor::at(c.stamp - self.settings.overlap)),
                    (None, SyncMode::Full) => None,
                };
                Position {
                    start: (after.clone(), None),
                    after,
                    resume: None,
                    blocked: false,
                    committed: None,
                    stalled: 0,
                }
            }
        };
        if job.resume.is_none() && window.is_none() {
            // Best effort: quarantined records wait, whatever becomes of this try, and the
            // stream goes on (unless the lease is lost or time is up).
            match self.retry_quarantined(ctx, run).await {
                Ok(()) => {}
                Err(end @ RunEnd::LeaseLost { .. }) => return end,
                Err(end @ RunEnd::TimeUp(_)) => return self.or_checkpoint(ctx, end, run, &at),
                Err(end) => {
                    tracing::warn!(run_id = %run.id, end = ?end, "quarantined records not tried again this run")
                }
            }
        }
        loop {
            if ctx.lease_lost.load(Ordering::SeqCst) {
                return RunEnd::LeaseLost {
                    in_flight: Vec::new(),
                };
            }
            if ctx.cancelled.load(Ordering::SeqCst) {
                return RunEnd::Cancelled { retry: Vec::new() };
            }
            let page = match ctx
                .source
                .changes(ctx.key.entity, at.after.as_ref(), at.resume.as_ref())
                .await
            {
                Ok(page) => page,
                Err(e) => return self.or_checkpoint(ctx, e.into(), run, &at),
            };
            let items = match window {
                Some(w) => page
                    .items
                    .into_iter()
                    .filter(|i| match i {
                        Item::Record(r) => w.contains(r.modified_at),
                        Item::Bad { .. } => true,
                    })
                    .collect(),
                None => page.items,
            };
            let past_window =
                window.is_some_and(|w| page.checkpoint.as_ref().is_some_and(|c| c.stamp >= w.to));
            let ids: Vec<String> = items.iter().map(|i| i.id().to_string()).collect();
            match self.process(ctx, items, run).await {
                Ok(outcome) if outcome.committed => {}
                Ok(_) => at.blocked = true,
                Err(end) => return self.or_checkpoint(ctx, end.in_flight(&ids), run, &at),
            }
            if let Some(checkpoint) = page.checkpoint {
                at.after = Some(checkpoint.clone());
                // (A resync leaves the stream's cursor where it is.)
                if !at.blocked && window.is_none() {
                    match job.sync_mode {
                        SyncMode::Incremental => {
                            if let Err(e) = self
                                .leases
                                .save_cursor(ctx.key, ctx.owner, &checkpoint)
                                .await
                            {
                                return RunEnd::from(e).in_flight(&ids);
                            }
                            run.cursor_after = Some(checkpoint);
                        }
                        SyncMode::Full => at.committed = Some(checkpoint),
                    }
                }
            }
            at.resume = page.resume;
            if at.resume.is_none() || past_window {
                break;
            }
            if self.clock.now() >= ctx.deadline {
                return RunEnd::Checkpointed(at.checkpoint(run));
            }
        }
        if job.sync_mode == SyncMode::Full && !at.blocked && window.is_none() {
            if let Some(committed) = at.committed {
                if let Err(e) = self
                    .leases
                    .save_cursor(ctx.key, ctx.owner, &committed)
                    .await
                {
                    return e.into();
                }
                run.cursor_after = Some(committed);
            }
            // (Only a run that marked what it read: a run first made for an incremental job
            // whose schedule turned full since has not.)
            let sweep = if run.sync_mode == SyncMode::Full {
                self.sweep(ctx, run).await
            } else {
                Ok(())
            };
            match sweep {
                Ok(()) => {}
                Err(end @ RunEnd::LeaseLost { .. }) => return end,
                Err(end) => {
                    tracing::warn!(run_id = %run.id, end = ?end, "deletions not looked for this run");
                    run.message = Some(
                        "records the source may have deleted were not looked for (time ran out or a call failed); the next full run looks again".into(),
                    );
                }
            }
        }
        RunEnd::Completed { retry: Vec::new() }
    }

    /// After a full run has read everything: the linked records of the stream it did not
    /// read (deleted outright, hidden from lists, or deleted while no webhook reached us)
    /// are asked for by id; what the source still has is synced, and what it says is gone
    /// is deleted at the targets through the usual page processing. Nothing is deleted on
    /// the listing's word alone, and nothing at all when more than a tenth (and 5) of the
    /// stream's synced records are gone at once: that is a connection pointed at another
    /// store or table, not deletions, and the run says so instead.
    async fn sweep(&self, ctx: &RunContext<'_>, run: &mut Run) -> Result<(), RunEnd> {
        let mark = run.id.to_string();
        let mut after: Option<String> = None;
        let (mut synced, mut gone) = (0usize, Vec::<Item>::new());
        loop {
            if self.clock.now() >= ctx.deadline {
                return Err(RunEnd::TimeUp("no time left to look for deletions".into()));
            }
            let (entries, next) = self
                .index
                .list(
                    ctx.key.connection,
                    ctx.key.entity,
                    after.as_deref(),
                    FETCH_CHUNK,
                )
                .await?;
            let live: Vec<(String, RecordState)> = entries
                .into_iter()
                .filter(|(_, s)| !s.links.is_empty() && !s.fingerprint.is_deleted())
                .collect();
            synced += live.len();
            let unread: Vec<String> = live
                .into_iter()
                .filter(|(_, s)| s.swept.as_deref() != Some(mark.as_str()))
                .map(|(id, _)| id)
                .collect();
            if !unread.is_empty() {
                tracing::info!(run_id = %run.id, count = unread.len(), "asking the source for records the full run did not read");
                let items = ctx.source.fetch(ctx.key.entity, &unread).await?;
                let (missing, present): (Vec<Item>, Vec<Item>) = items
                    .into_iter()
                    .partition(|i| matches!(i, Item::Record(r) if r.is_deleted()));
                if !present.is_empty() {
                    self.process(ctx, present, run)
                        .await
                        .map_err(|e| e.in_flight(&unread))?;
                }
                gone.extend(missing);
            }
            match next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        if gone.is_empty() {
            return Ok(());
        }
        if gone.len() > 5 + synced / 10 {
            tracing::warn!(run_id = %run.id, gone = gone.len(), synced, "too many records gone at once; nothing deleted");
            run.message = Some(format!(
                "{} of the {synced} records synced from this connection are no longer there; nothing was deleted at the targets, as that many at once looks like a connection pointed at another store or table rather than deletions; if they were deleted, delete their copies at the targets",
                gone.len()
            ));
            return Ok(());
        }
        let ids: Vec<String> = gone.iter().map(|i| i.id().to_string()).collect();
        self.process(ctx, gone, run)
            .await
            .map(|_| ())
            .map_err(|e| e.in_flight(&ids))
    }

    /// A webhook job: exactly the named records, by id; the cursor stays. It checks the
    /// deadline between chunks as a run between pages, and its continuation goes on from the
    /// chunk it stopped at (`ids_from` in the checkpoint), carrying the ids to retry.
    async fn run_ids(&self, ctx: &RunContext<'_>, job: &SyncJob, run: &mut Run) -> RunEnd {
        let resumed: IdsResume = match job.resume.as_ref().and_then(|cp| cp.resume.as_ref()) {
            None => IdsResume::default(),
            // One that does not read fails the job rather than start it over unseen.
            Some(r) => match serde_json::from_value(r.clone()) {
                Ok(r) => r,
                Err(e) => {
                    return RunEnd::Failed {
                        error: format!("the job's resume point does not read: {e}"),
                        retryable: false,
                    }
                }
            },
        };
        let from = resumed.ids_from;
        let mut retry = resumed.retry;
        let chunks: Vec<&[String]> = job.ids.chunks(FETCH_CHUNK).collect();
        let (run_id, continuation) = (run.id.clone(), run.continuations + 1);
        let stalled_before = job.resume.as_ref().map_or(0, |cp| cp.stalled);
        for (n, chunk) in chunks.iter().enumerate().skip(from) {
            let stop_here = |retry: &[String]| {
                RunEnd::Checkpointed(Checkpoint {
                    run_id: run_id.clone(),
                    continuation,
                    after: None,
                    resume: Some(serde_json::json!(IdsResume {
                        ids_from: n,
                        retry: retry.to_vec(),
                    })),
                    blocked: false,
                    committed: None,
                    stalled: if n == from { stalled_before + 1 } else { 0 },
                })
            };
            if n > from && self.clock.now() >= ctx.deadline {
                return stop_here(&retry);
            }
            if ctx.lease_lost.load(Ordering::SeqCst) {
                return RunEnd::LeaseLost {
                    in_flight: Vec::new(),
                };
            }
            if ctx.cancelled.load(Ordering::SeqCst) {
                return RunEnd::Cancelled { retry };
            }
            let end = match ctx.source.fetch(ctx.key.entity, chunk).await {
                Ok(items) => match self.process(ctx, items, run).await {
                    Ok(outcome) => {
                        retry.extend(outcome.retry);
                        continue;
                    }
                    Err(end) => end.in_flight(chunk),
                },
                Err(e) => e.into(),
            };
            let stuck = n == from && stalled_before >= MAX_STALLED;
            return if self.out_of_time(ctx, &end) && !stuck {
                stop_here(&retry)
            } else {
                match end {
                    RunEnd::TimeUp(error) => RunEnd::Failed {
                        error,
                        retryable: true,
                    },
                    other => other,
                }
            };
        }
        retry.sort();
        retry.dedup();
        RunEnd::Completed { retry }
    }

    /// `end`, or a checkpoint at `at` (the page that failed is read again by the
    /// continuation) when it is a failure that came of the deadline.
    fn or_checkpoint(&self, ctx: &RunContext<'_>, end: RunEnd, run: &Run, at: &Position) -> RunEnd {
        if !self.out_of_time(ctx, &end) {
            return end;
        }
        let checkpoint = at.checkpoint(run);
        if checkpoint.stalled > MAX_STALLED {
            return RunEnd::Failed {
                error: format!(
                    "{} invocations in a row ran out of time at the same point: {}",
                    checkpoint.stalled,
                    match end {
                        RunEnd::TimeUp(why) | RunEnd::Failed { error: why, .. } => why,
                        other => format!("{other:?}"),
                    }
                ),
                retryable: true,
            };
        }
        tracing::info!(run_id = %run.id, stalled = checkpoint.stalled, "a call gave up for want of time; checkpointing");
        RunEnd::Checkpointed(checkpoint)
    }

    /// Records `updates` in the index under the run's lease: fenced, so a run whose lease
    /// was taken over cannot overwrite what the new holder wrote (`LeaseLost` instead).
    async fn record(
        &self,
        ctx: &RunContext<'_>,
        mut updates: Vec<RecordUpdate>,
    ) -> Result<(), RunEnd> {
        if updates.is_empty() {
            return Ok(());
        }
        for u in &mut updates {
            u.fence = Some((ctx.key.connection, ctx.epoch));
        }
        self.index.update(&updates).await.map_err(RunEnd::from)
    }

    /// Whether `end` is a failure that came of the deadline (a call given up for want of
    /// time, which a new invocation has): the run checkpoints instead of failing.
    fn out_of_time(&self, ctx: &RunContext<'_>, end: &RunEnd) -> bool {
        match end {
            RunEnd::TimeUp(_) => true,
            RunEnd::Failed {
                retryable: true, ..
            } => self.clock.now() >= ctx.deadline,
            _ => false,
        }
    }

    /// Writes one page's records to every flow; `Err` when the run cannot go on.
    async fn process(
        &self,
        ctx: &RunContext<'_>,
        items: Vec<Item>,
        run: &mut Run,
    ) -> Result<PageOutcome, RunEnd> {
        run.counts.read += items.len() as u64;
        let Some(mut page) = self.read_page(ctx, items).await? else {
            return Ok(PageOutcome {
                committed: true,
                retry: Vec::new(),
            });
        };
        if !page.records.is_empty() {
            for plan in ctx.flows {
                let outcome = self.flow_page(ctx, plan, &mut page).await?;
                run.note_flow_page(plan.flow.id, page.records.len(), &outcome.counts);
                for c in outcome.conflicts {
                    run.note_conflict(c);
                }
                page.failures.extend(outcome.failures);
            }
        }
        let mut updates = source_updates(ctx, run, &mut page);
        let failures = std::mem::take(&mut page.failures);
        let outcome = self
            .account(ctx, run, &page, failures, &mut updates)
            .await?;
        self.record(ctx, updates).await?;
        Ok(outcome)
    }

    /// A page as the source gave it, with what the record index holds of its records;
    /// `None` for an empty page.
    async fn read_page(
        &self,
        ctx: &RunContext<'_>,
        items: Vec<Item>,
    ) -> Result<Option<SourcePage>, RunEnd> {
        let mut records = Vec::with_capacity(items.len());
        let mut failures = Vec::new();
        for item in items {
            match item {
                Item::Record(r) => records.push(r),
                Item::Bad { id, error } => failures.push(RecordFailure {
                    record_id: id,
                    flow_id: None,
                    error,
                    error_code: UNREADABLE.into(),
                    retryable: false,
                    attempts: 0,
                    quarantined: false,
                }),
            }
        }
        let ids: Vec<String> = records
            .iter()
            .map(|r| r.id.clone())
            .chain(failures.iter().map(|f| f.record_id.clone()))
            .collect();
        if ids.is_empty() {
            return Ok(None);
        }
        let states = self
            .index
            .get(ctx.key.connection, ctx.key.entity, &ids)
            .await?;
        Ok(Some(SourcePage {
            records,
            failures,
            ids,
            states,
            updates: HashMap::new(),
        }))
    }

    /// Counts the page's failed records and forgets the failures of those that succeeded
    /// now. Only a failure retrying cannot fix counts as a try: one that may pass (a 5xx or
    /// 429 for the record, time up) holds the page back, and a webhook job's record is
    /// retried, but an outage never quarantines anything. Below the bound of tries a record
    /// keeps the page from being committed, so the cursor waits before it; at the bound it
    /// is quarantined and the cursor moves on (see [`FailedRecord`]).
    async fn account(
        &self,
        ctx: &RunContext<'_>,
        run: &mut Run,
        page: &SourcePage,
        failures: Vec<RecordFailure>,
        updates: &mut Vec<RecordUpdate>,
    ) -> Result<PageOutcome, RunEnd> {
        let (ids, source_states) = (&page.ids, &page.states);
        let (source, entity) = (ctx.key.connection, ctx.key.entity);
        let now = self.clock.now();
        let bound = self.settings.quarantine_after;
        // Every flow's failures of each record.
        let mut by_record: BTreeMap<String, Vec<RecordFailure>> = BTreeMap::new();
        for f in failures {
            by_record.entry(f.record_id.clone()).or_default().push(f);
        }
        let mut outcome = PageOutcome {
            committed: true,
            retry: Vec::new(),
        };
        let mut kept = Vec::new();
        for (id, record_failures) in by_record.iter() {
            let before = source_states.get(id).map_or(0, |s| s.failures);
            let lasting = record_failures.iter().find(|f| !f.retryable);
            let attempts = before + u32::from(lasting.is_some());
            let quarantined = attempts > 0 && FailedRecord::quarantines(attempts, bound);
            outcome.committed &= quarantined;
            if record_failures.iter().any(|f| f.retryable) {
                outcome.retry.push(id.clone());
            }
            if let Some(failure) = lasting {
                kept.push(FailedRecord {
                    tenant_id: run.tenant_id.clone(),
                    connection_id: source,
                    entity_type: entity,
                    record_id: id.clone(),
                    flow_id: failure.flow_id,
                    error: failure.error.clone(),
                    error_code: failure.error_code.clone(),
                    attempts,
                    first_failed_at: now,
                    last_failed_at: now,
                    run_id: run.id.clone(),
                    quarantined_at: quarantined.then_some(now),
                    next_try_at: quarantined.then(|| FailedRecord::next_try(attempts, bound, now)),
                });
                updates.push(failure_count(source, entity, id, attempts));
            }
            for failure in record_failures {
                run.fail_record(RecordFailure {
                    attempts,
                    quarantined,
                    ..failure.clone()
                });
            }
        }
        let recovered: Vec<String> = ids
            .iter()
            .filter(|id| !by_record.contains_key(*id))
            .filter(|id| source_states.get(*id).is_some_and(|s| s.failures > 0))
            .cloned()
            .collect();
        if !kept.is_empty() {
            self.failures.keep(&kept).await?;
        }
        if !recovered.is_empty() {
            self.failures.forget(ctx.key, &recovered).await?;
            updates.extend(
                recovered
                    .iter()
                    .map(|id| failure_count(source, entity, id, 0)),
            );
        }
        Ok(outcome)
    }

    /// Quarantined records of the stream due for another try, tried by id at the start of
    /// a run (their failures do not hold the cursor: they are quarantined already).
    async fn retry_quarantined(&self, ctx: &RunContext<'_>, run: &mut Run) -> Result<(), RunEnd> {
        let due = self
            .failures
            .due(ctx.key, self.clock.now(), FETCH_CHUNK)
            .await?;
        if due.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = due.into_iter().map(|f| f.record_id).collect();
        tracing::info!(run_id = %run.id, count = ids.len(), "trying quarantined records again");
        let items = ctx.source.fetch(ctx.key.entity, &ids).await?;
        self.process(ctx, items, run).await.map(|_| ())
    }

    /// One flow's share of a page: what its target side holds of the page's records, what
    /// to do with each, the writes, and what they leave in the record index.
    async fn flow_page(
        &self,
        ctx: &RunContext<'_>,
        plan: &FlowPlan,
        page: &mut SourcePage,
    ) -> Result<FlowPageOutcome, RunEnd> {
        let Some(target) = plan.target.target() else {
            return Err(RunEnd::Failed {
                error: format!("flow {}: its target cannot be written", plan.flow.id),
                retryable: false,
            });
        };
        let side = self.target_side(ctx, plan, page).await?;
        let mut outcome = FlowPageOutcome::default();
        let mut writes = Vec::new();
        // Index updates for records found unchanged that had no agreement yet.
        let mut settled: Vec<RecordUpdate> = Vec::new();
        for r in &page.records {
            let fail = |error: String| RecordFailure {
                record_id: r.id.clone(),
                flow_id: Some(plan.flow.id),
                error,
                error_code: UNREADABLE.into(),
                retryable: false,
                attempts: 0,
                quarantined: false,
            };
            match decide(ctx, plan, page, &side, r) {
                Decision::Unchanged { echo, agreement } => {
                    settled.extend(agreement.into_iter().flat_map(|a| *a));
                    if echo {
                        outcome.counts.echo_skipped += 1;
                    } else {
                        outcome.counts.unchanged += 1;
                    }
                }
                Decision::Conflict { conflict, write } => {
                    outcome.counts.conflicts += 1;
                    outcome.conflicts.push(conflict);
                    if let Some(fields) = write {
                        writes.push(write_of(ctx, plan, &side, r, fields));
                    }
                }
                Decision::Unreadable(error) => outcome.failures.push(fail(error)),
                Decision::Write(fields) => writes.push(write_of(ctx, plan, &side, r, fields)),
            }
        }
        if writes.is_empty() {
            self.record(ctx, settled).await?;
            return Ok(outcome);
        }
        // A run whose lease was taken over writes nothing more: the new holder re-reads
        // this page from the stored cursor, and a late write of ours could land after its.
        if ctx.lease_lost.load(Ordering::SeqCst) {
            return Err(RunEnd::LeaseLost {
                in_flight: Vec::new(),
            });
        }
        let results = target.write(ctx.key.entity, &writes).await?;
        let mut target_updates = settled;
        for (i, write) in writes.iter().enumerate() {
            let result = results
                .get(i)
                .cloned()
                .unwrap_or_else(|| WriteOutcome::refused("the target gave no answer".into()));
            let failure = |error: RecordError, retryable: bool| RecordFailure {
                record_id: write.record.id.clone(),
                flow_id: Some(plan.flow.id),
                error: error.message,
                error_code: error.code,
                retryable,
                attempts: 0,
                quarantined: false,
            };
            match result {
                WriteOutcome::Written { target_id } => {
                    outcome.counts.written += 1;
                    if ctx
                        .unannounced
                        .is_some_and(|w| w.contains(write.record.modified_at))
                    {
                        outcome.counts.unannounced += 1;
                    }
                    let (target_update, seal) = written(ctx, plan, write, &target_id);
                    target_updates.push(target_update);
                    link_source(
                        &mut page.updates,
                        (ctx.key.connection, ctx.key.entity, &write.record.id),
                        (plan.flow.target_connection_id, target_id),
                        seal,
                    );
                }
                WriteOutcome::Skipped => outcome.counts.unchanged += 1,
                WriteOutcome::Failed(error) => outcome.failures.push(failure(error, false)),
                WriteOutcome::Unavailable(error) => outcome
                    .failures
                    .push(failure(RecordError::new(UNAVAILABLE, error), true)),
            }
        }
        self.record(ctx, target_updates).await?;
        Ok(outcome)
    }

    /// What the flow's target side holds of the page's records: which are linked to a copy,
    /// the copies' index entries and, for `newest_wins`, the copies as they are now (to
    /// tell whether they changed since).
    async fn target_side(
        &self,
        ctx: &RunContext<'_>,
        plan: &FlowPlan,
        page: &SourcePage,
    ) -> Result<TargetSide, RunEnd> {
        let target = plan.flow.target_connection_id;
        let linked: HashMap<String, String> = page
            .records
            .iter()
            .filter_map(|r| {
                let t = page.states.get(&r.id)?.links.get(&target)?;
                Some((r.id.clone(), t.clone()))
            })
            .collect();
        let target_ids: Vec<String> = linked.values().cloned().collect();
        if target_ids.is_empty() {
            return Ok(TargetSide {
                linked,
                states: HashMap::new(),
                copies: HashMap::new(),
            });
        }
        let states = self.index.get(target, ctx.key.entity, &target_ids).await?;
        let copies = match plan.target.source() {
            Some(reader) if plan.flow.conflict_policy == ConflictPolicy::NewestWins => reader
                .fetch(ctx.key.entity, &target_ids)
                .await?
                .into_iter()
                .map(|item| (item.id().to_string(), item))
                .collect(),
            _ => HashMap::new(),
        };
        Ok(TargetSide {
            linked,
            states,
            copies,
        })
    }
}

/// A page as the source gave it: its records, the ids of those that could not be read
/// (failed already), what the record index holds of them all, and the updates of the
/// source records' own entries that the page's flows make (links, agreements).
struct SourcePage {
    records: Vec<Record>,
    failures: Vec<RecordFailure>,
    ids: Vec<String>,
    states: HashMap<String, RecordState>,
    updates: HashMap<String, RecordUpdate>,
}

/// What one flow's target holds of a page's records.
struct TargetSide {
    /// A source record's id → the id of its copy.
    linked: HashMap<String, String>,
    /// The copies' index entries.
    states: HashMap<String, RecordState>,
    /// `newest_wins`: the copies as they are now.
    copies: HashMap<String, Item>,
}

/// What a flow does with one record of a page.
enum Decision {
    /// Nothing to write: unchanged since it and its copy last agreed, or the copy holds it
    /// already (`agreement`: the index updates that record them agreeing, if they had not
    /// yet), or never copied and deleted now. `echo`: our own write come back.
    Unchanged {
        echo: bool,
        agreement: Option<Box<[RecordUpdate; 2]>>,
    },
    /// Both sides changed: the conflict decided, and the write if the source's edit won.
    Conflict {
        conflict: Conflict,
        write: Option<Vec<&'static str>>,
    },
    /// The copy could not be read to judge a conflict: the record fails.
    Unreadable(String),
    /// Write it, carrying these fields.
    Write(Vec<&'static str>),
}

/// What the flow does with `r` (see [`Decision`]).
fn decide(
    ctx: &RunContext<'_>,
    plan: &FlowPlan,
    page: &SourcePage,
    side: &TargetSide,
    r: &Record,
) -> Decision {
    let (source, entity) = (ctx.key.connection, ctx.key.entity);
    let target_connection = plan.flow.target_connection_id;
    let seen = page.states.get(&r.id);
    // What this record can carry: the flow's fields it holds a value for, and those it held
    // a value for when we last saw it, now cleared (a clearing is a change; a field it never
    // had, a copy created without it, is not).
    let fields: Vec<&'static str> = plan
        .fields
        .iter()
        .copied()
        .filter(|f| !r.unknown.contains(f) || seen.is_some_and(|s| s.fingerprint.had_value(f)))
        .collect();
    let Some(t) = side.linked.get(&r.id) else {
        return if r.is_deleted() {
            // Never in the target: nothing to mark deleted.
            Decision::Unchanged {
                echo: false,
                agreement: None,
            }
        } else {
            Decision::Write(fields)
        };
    };
    // Nothing to write when the record is unchanged since it and its copy last agreed (what
    // a flow last carried between them, in either direction: what other flows read or wrote
    // since does not count), or when the copy already holds it (it came round another way,
    // or the agreement is older than agreements). Either way they agree on it from now.
    let fingerprint = r.fingerprint(&fields);
    let seal = fingerprint.seal();
    let agreed = seen.and_then(|s| s.agreed.get(&target_connection));
    let holds = agreed == Some(&seal)
        || side
            .states
            .get(t)
            .is_some_and(|state| state.fingerprint.covers(&fingerprint));
    // (A resync rewrites what the target holds too, unless the record is deleted.)
    let rewrite = plan.rewrite && !r.is_deleted();
    if holds && !rewrite {
        return Decision::Unchanged {
            echo: seen.is_some_and(|s| s.written && s.fingerprint.covers(&fingerprint)),
            agreement: (agreed != Some(&seal)).then(|| {
                Box::new(agreement(
                    entity,
                    (source, &r.id),
                    (target_connection, t),
                    &seal,
                ))
            }),
        };
    }
    if plan.flow.conflict_policy != ConflictPolicy::NewestWins {
        return Decision::Write(fields);
    }
    let sides = Sides {
        flow: plan.flow.id,
        source,
        target: target_connection,
        fields: &plan.fields,
        faithful: plan.reads_back,
    };
    let known = Known {
        agreed,
        copy: side.states.get(t),
    };
    match conflict::judge(&sides, r, &fields, t, side.copies.get(t), &known) {
        Judgement::Carry => Decision::Write(fields),
        Judgement::Conflict(c) => Decision::Conflict {
            write: (c.winner == Winner::Source).then_some(fields),
            conflict: c,
        },
        Judgement::Unreadable(error) => Decision::Unreadable(error),
    }
}

/// The write of `r` to the flow's target (to its copy, if it has one).
fn write_of(
    ctx: &RunContext<'_>,
    plan: &FlowPlan,
    side: &TargetSide,
    r: &Record,
    fields: Vec<&'static str>,
) -> Write {
    Write {
        record: r.clone(),
        target_id: side.linked.get(&r.id).cloned(),
        origin: Origin {
            connection: ctx.key.connection,
            platform: ctx.source_platform,
            id: r.id.clone(),
        },
        fields,
        number_prefix: plan
            .flow
            .doc_number_prefix
            .as_ref()
            .map(|p| p.as_str().to_string()),
    }
}

/// The copy's index update after `write` landed as `target_id`, and the seal of what the
/// record and its copy now agree on.
fn written(
    ctx: &RunContext<'_>,
    plan: &FlowPlan,
    write: &Write,
    target_id: &str,
) -> (RecordUpdate, String) {
    let fingerprint = write.record.fingerprint(&write.fields);
    let seal = fingerprint.seal();
    let update = RecordUpdate {
        connection: plan.flow.target_connection_id,
        entity: ctx.key.entity,
        id: target_id.to_string(),
        fingerprint,
        written: true,
        link: Some((ctx.key.connection, write.record.id.clone())),
        agreed: Some((ctx.key.connection, seal.clone())),
        failures: None,
        fence: None,
        swept: None,
    };
    (update, seal)
}

/// The index updates of the page's source records: what was read of them (unless the read
/// was our own write coming back, whose marker stays) and their new links. A record some
/// flow failed to write keeps what was last seen of it, so a field it has cleared since is
/// still carried as cleared when that flow tries again. A full run also marks every record
/// it reads, so that what it did not read can be told at its end (see `Engine::sweep`).
fn source_updates(ctx: &RunContext<'_>, run: &Run, page: &mut SourcePage) -> Vec<RecordUpdate> {
    let (source, entity) = (ctx.key.connection, ctx.key.entity);
    let mut updates: Vec<RecordUpdate> = Vec::with_capacity(page.updates.len());
    for r in &page.records {
        if let Some(mut update) = page.updates.remove(&r.id) {
            if !page.failures.iter().any(|f| f.record_id == r.id) {
                update.fingerprint = r.fingerprint(ctx.source_fields);
            }
            updates.push(update);
        }
    }
    updates.extend(page.updates.drain().map(|(_, u)| u));
    if run.sync_mode == SyncMode::Full && run.ids_requested == 0 {
        let mark = run.id.to_string();
        for id in &page.ids {
            if page.states.get(id).and_then(|s| s.swept.as_deref()) == Some(mark.as_str()) {
                continue;
            }
            match updates
                .iter_mut()
                .find(|u| u.connection == source && &u.id == id)
            {
                Some(u) => u.swept = Some(mark.clone()),
                None => updates.push(RecordUpdate {
                    connection: source,
                    entity,
                    id: id.clone(),
                    fingerprint: Fingerprint::default(),
                    written: false,
                    link: None,
                    agreed: None,
                    failures: None,
                    fence: None,
                    swept: Some(mark.clone()),
                }),
            }
        }
    }
    updates
}

/// Notes on the source record's index entry that it now lives at `target_id` on `target`,
/// agreeing there on what `agreed` seals (one update per record and target; the fingerprint
/// is filled in afterwards).
fn link_source(
    updates: &mut HashMap<String, RecordUpdate>,
    (source, entity, id): (ConnectionId, EntityType, &str),
    (target, target_id): (ConnectionId, String),
    agreed: String,
) {
    let key = if updates
        .get(id)
        .is_some_and(|u| u.link.as_ref().is_some_and(|(c, _)| *c != target))
    {
        // Another flow already linked this record: keep that update, add one more.
        format!("{id}\u{0}{target}")
    } else {
        id.to_string()
    };
    updates.insert(
        key,
        RecordUpdate {
            connection: source,
            entity,
            id: id.to_string(),
            fingerprint: Default::default(),
            written: false,
            link: Some((target, target_id)),
            agreed: Some((target, agreed)),
            failures: None,
            fence: None,
            swept: None,
        },
    );
}

/// The two index updates that record a source record and its copy as agreeing on what
/// `seal` seals (nothing else of their entries changes).
fn agreement(
    entity: EntityType,
    (source, id): (ConnectionId, &str),
    (target, target_id): (ConnectionId, &str),
    seal: &str,
) -> [RecordUpdate; 2] {
    let update = |connection, id: &str, peer| RecordUpdate {
        connection,
        entity,
        id: id.to_string(),
        fingerprint: Fingerprint::default(),
        written: false,
        link: None,
        agreed: Some((peer, seal.to_string())),
        failures: None,
        fence: None,
        swept: None,
    };
    [
        update(source, id, target),
        update(target, target_id, source),
    ]
}

/// An index update of only a source record's count of failed tries.
fn failure_count(source: ConnectionId, entity: EntityType, id: &str, count: u32) -> RecordUpdate {
    RecordUpdate {
        connection: source,
        entity,
        id: id.to_string(),
        fingerprint: Fingerprint::default(),
        written: false,
        link: None,
        agreed: None,
        failures: Some(count),
        fence: None,
        swept: None,
    }
}

/// What one flow did with one page.
#[derive(Default)]
struct FlowPageOutcome {
    counts: RunCounts,
    failures: Vec<RecordFailure>,
    /// `newest_wins` conflicts decided (counted on the run as they are noted).
    conflicts: Vec<Conflict>,
}
