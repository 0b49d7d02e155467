//! Operations a person asks for: run a stream now, run a schedule now, resync a span of
//! time, run again what a run failed, retry kept failures in bulk, and stop a run.
//!
//! Each queues one job on the sync queue and answers with the run it will record: the run is
//! stored `queued` first (so `GET /api/sync/runs/{id}` finds it at once) and the worker takes
//! it from there. A job for a stream that is busy waits as the stream's follow-up, never
//! runs alongside (the worker's lease); merged there with other waiting work, its queued run
//! is settled by the run that does that work, naming it. A job the queue refuses leaves its
//! run `failed` with why, and the caller gets a 503: nothing is queued twice or silently.

use chrono::{DateTime, SubsecRound, Utc};
use std::sync::Arc;

use super::schedules::invalid;
use super::ServiceError;
use crate::clock::Clock;
use crate::domain::{
    Connection, ConnectionId, Cursor, EntityType, FailedRecord, Run, RunId, RunStatus, ScheduleId,
    SyncJob, SyncMode, TenantId, Trigger, Unusable, Window, MAX_JOB_IDS,
};
use crate::ports::{
    ConnectionStore, CursorSet, FailureList, FlowSource, JobQueue, RunListError, RunLog,
    ScheduleStore, StreamCursors, StreamView, SyncKey,
};

/// Longest record id a person may name (the platforms' ids are numbers or UUIDs).
const MAX_ID_CHARS: usize = 100;
/// Most kept failures one retry request queues; past it the answer says more remain.
pub const MAX_RETRY_RECORDS: usize = 2_000;
/// Most kept failures one retry request reads, in pages, looking for those it matches.
const MAX_RETRY_SCAN: usize = 10_000;
const SCAN_PAGE: usize = 100;

/// Which kept failures `POST /api/sync/failures/retry` tries again; every part narrows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailureFilter {
    /// One connection of the tenant's; none: every one.
    pub connection_id: Option<ConnectionId>,
    pub entity_type: Option<EntityType>,
    /// Only failures whose last error contains this text (case-insensitive).
    pub error_contains: Option<String>,
    /// Only failures whose last error has this code (`quickbooks_6240`, `http_400`,
    /// `unreadable`…; case-insensitive).
    pub error_code: Option<String>,
    /// Only failures last failed at or after this time.
    pub failed_from: Option<DateTime<Utc>>,
    /// Only failures last failed before this time.
    pub failed_to: Option<DateTime<Utc>>,
    /// Also records not (yet) quarantined; by default only quarantined ones.
    pub not_quarantined_too: bool,
}

impl FailureFilter {
    fn matches(&self, f: &FailedRecord) -> bool {
        (self.not_quarantined_too || f.quarantined_at.is_some())
            && self.entity_type.is_none_or(|e| e == f.entity_type)
            && self.failed_from.is_none_or(|t| f.last_failed_at >= t)
            && self.failed_to.is_none_or(|t| f.last_failed_at < t)
            && self
                .error_contains
                .as_ref()
                .is_none_or(|text| f.error.to_lowercase().contains(&text.to_lowercase()))
            && self
                .error_code
                .as_ref()
                .is_none_or(|code| f.error_code.eq_ignore_ascii_case(code))
    }
}

/// What a retry queued: one run per stream and up to [`MAX_JOB_IDS`] records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retried {
    /// How many records the queued runs try again.
    pub records: usize,
    pub runs: Vec<Run>,
    /// More matched than one request queues ([`MAX_RETRY_RECORDS`]) or reads: ask again
    /// once these runs have ended (records that succeed leave the failures).
    pub more: bool,
}

/// What `POST /api/sync/runs/{id}/cancel` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancelled {
    /// The run had not started: it is `cancelled` now, and its job is dropped on arrival.
    Dropped(Run),
    /// The run is working: it stops at the end of the page it is on (or its next
    /// continuation), keeping what it wrote. The run as it is now, and when it was asked.
    Requested(Run, DateTime<Utc>),
}

/// What `POST /api/sync/trigger` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRequest {
    pub connection_id: ConnectionId,
    pub entity_type: EntityType,
    /// Default: incremental (what changed since the stream's cursor).
    pub sync_mode: Option<SyncMode>,
    /// Just these records of the source (at most [`MAX_JOB_IDS`]); empty: the whole stream.
    pub ids: Vec<String>,
}

/// What `POST /api/sync/resync` asks for: the records the source changed in a span of
/// time, read again and rewritten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResyncRequest {
    pub connection_id: ConnectionId,
    pub entity_type: EntityType,
    /// Changed at or after this time.
    pub modified_from: DateTime<Utc>,
    /// Changed before this time (default: now).
    pub modified_to: Option<DateTime<Utc>>,
}

/// The ports the operations use.
#[derive(Clone)]
pub struct OperationsPorts {
    pub connections: Arc<dyn ConnectionStore>,
    pub flows: Arc<dyn FlowSource>,
    pub schedules: Arc<dyn ScheduleStore>,
    pub runs: Arc<dyn RunLog>,
    pub failures: Arc<dyn FailureList>,
    pub jobs: Arc<dyn JobQueue>,
    pub cursors: Arc<dyn StreamCursors>,
    pub clock: Arc<dyn Clock>,
}

/// What `POST /api/sync/resync` with `cursor` did to the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorChange {
    pub connection_id: ConnectionId,
    pub entity_type: EntityType,
    pub cursor: Cursor,
    pub previous: Option<Cursor>,
    pub set_by: String,
    pub set_at: DateTime<Utc>,
}

/// The operations use cases.
#[derive(Clone)]
pub struct Operations {
    ports: OperationsPorts,
}

impl Operations {
    pub fn new(ports: OperationsPorts) -> Self {
        Self { ports }
    }

    fn now(&self) -> DateTime<Utc> {
        self.ports.clock.now().trunc_subsecs(3)
    }

    /// Queues a manual run of one stream (a connection's entity), or of some of its records.
    pub async fn trigger(&self, tenant: &TenantId, ask: RunRequest) -> Result<Run, ServiceError> {
        let sync_mode = ask.sync_mode.unwrap_or(SyncMode::Incremental);
        let mut ids: Vec<String> = ask.ids.iter().map(|id| id.trim().to_string()).collect();
        if let Some(blank) = ids.iter().position(|id| id.is_empty()) {
            return Err(invalid("ids", format!("ids[{blank}] is empty")));
        }
        if let Some(long) = ids.iter().position(|id| id.chars().count() > MAX_ID_CHARS) {
            return Err(invalid(
                "ids",
                format!("ids[{long}] is longer than {MAX_ID_CHARS} characters; no platform's record id is"),
            ));
        }
        ids.sort();
        ids.dedup();
        if ids.len() > MAX_JOB_IDS {
            return Err(invalid(
                "ids",
                format!(
                    "at most {MAX_JOB_IDS} ids per run; leave ids out to sync the whole stream"
                ),
            ));
        }
        if !ids.is_empty() && sync_mode == SyncMode::Full {
            return Err(invalid(
                "ids",
                "ids name records to sync; a full sync reads every record, so leave one of the two out",
            ));
        }
        let source = self
            .read_source(
                tenant,
                ask.connection_id,
                ask.entity_type,
                unknown_connection,
            )
            .await?;
        let job = self.job(&source, ask.entity_type, sync_mode, Trigger::Manual, ids);
        self.queue(job).await
    }

    /// Queues a resync: the records the source changed in the span are read again and
    /// written to every `source_wins` flow's target with no flow back, whether or not the
    /// target is thought to hold them already (repairing copies changed or removed there);
    /// the stream's cursor stays as it is. It waits its turn on a busy stream, never merged.
    pub async fn resync(&self, tenant: &TenantId, ask: ResyncRequest) -> Result<Run, ServiceError> {
        let now = self.now();
        let to = ask.modified_to.unwrap_or(now);
        if ask.modified_from >= to {
            return Err(invalid(
                if ask.modified_to.is_some() {
                    "modified_to"
                } else {
                    "modified_from"
                },
                "modified_from must be before modified_to (default: now)",
            ));
        }
        if ask.modified_from > now {
            return Err(invalid(
                "modified_from",
                "modified_from is in the future: nothing has changed there yet",
            ));
        }
        let source = self
            .read_source(
                tenant,
                ask.connection_id,
                ask.entity_type,
                unknown_connection,
            )
            .await?;
        let mut job = self.job(
            &source,
            ask.entity_type,
            SyncMode::Incremental,
            Trigger::Manual,
            Vec::new(),
        );
        job.window = Some(Window {
            from: ask.modified_from,
            to,
        });
        self.queue(job).await
    }

    /// Sets a stream's cursor by hand (Airbyte's "edit state"): its next incremental run
    /// reads what the source changed from `at` on. Earlier than the cursor, changes are
    /// read again; later, changes before `at` are never read (unless a full run or a
    /// resync reads them). Noted on the stream with `by` and when; 409 while a run holds it.
    pub async fn set_cursor(
        &self,
        tenant: &TenantId,
        connection_id: ConnectionId,
        entity_type: EntityType,
        at: DateTime<Utc>,
        by: &str,
    ) -> Result<CursorChange, ServiceError> {
        let now = self.now();
        if at > now {
            return Err(invalid(
                "cursor",
                "cursor is in the future: the stream would skip changes made until then",
            ));
        }
        let source = self
            .read_source(tenant, connection_id, entity_type, unknown_connection)
            .await?;
        let key = SyncKey {
            connection: source.id,
            entity: entity_type,
        };
        let cursor = Cursor::at(at);
        let set = self
            .ports
            .cursors
            .set_cursor(key, &cursor, by, now)
            .await
            .map_err(|e| ServiceError::Unavailable(e.to_string()))?;
        match set {
            CursorSet::Busy => Err(ServiceError::Conflict(
                "a run is working on this stream; cancel it (POST /api/sync/runs/{id}/cancel) or set the cursor once it has ended".into(),
            )),
            CursorSet::Set { previous } => {
                tracing::info!(connection_id = %source.id, entity = %entity_type, cursor = %at, by, "stream cursor set by hand");
                Ok(CursorChange {
                    connection_id: source.id,
                    entity_type,
                    cursor,
                    previous,
                    set_by: by.to_string(),
                    set_at: now,
                })
            }
        }
    }

    /// Queues a run of a schedule now, whether or not it is paused; it counts as the
    /// schedule's (its last run), with the schedule's sync mode.
    pub async fn run_schedule(
        &self,
        tenant: &TenantId,
        id: ScheduleId,
    ) -> Result<Run, ServiceError> {
        let schedule = self
            .ports
            .schedules
            .get(tenant, id)
            .await?
            .ok_or(ServiceError::NotFound("schedule"))?;
        let source = self
            .read_source(tenant, schedule.credential_id, schedule.entity_type, || {
                ServiceError::Conflict("the schedule's connection no longer exists".into())
            })
            .await?;
        let job = self.job(
            &source,
            schedule.entity_type,
            schedule.sync_mode,
            Trigger::ScheduleNow { schedule_id: id },
            Vec::new(),
        );
        self.queue(job).await
    }

    /// Runs again what a run left undone: its failed records (those it lists and those kept
    /// with it as their last run), by id; or, for a run that failed as a whole, the stream
    /// in the run's mode. 409 while it is queued or running, or with nothing to retry.
    pub async fn retry_run(&self, tenant: &TenantId, id: &RunId) -> Result<Retried, ServiceError> {
        let run = self
            .ports
            .runs
            .get(tenant, id)
            .await?
            .ok_or(ServiceError::NotFound("run"))?;
        if !run.status.is_final() {
            return Err(ServiceError::Conflict(format!(
                "the run is still {}; retry it once it has ended",
                run.status
            )));
        }
        let source = self
            .source(tenant, run.connection_id, || {
                ServiceError::Conflict("the run's connection no longer exists".into())
            })
            .await?;
        let mut ids: Vec<String> = run.failures.iter().map(|f| f.record_id.clone()).collect();
        let filter = FailureFilter {
            entity_type: Some(run.entity_type),
            not_quarantined_too: true,
            ..FailureFilter::default()
        };
        let (kept, more) = self
            .matching(&source, &filter, |f| f.run_id == run.id)
            .await?;
        ids.extend(kept.into_iter().map(|f| f.record_id));
        ids.sort();
        ids.dedup();
        if ids.is_empty() {
            if run.status != RunStatus::Failed {
                return Err(ServiceError::Conflict(format!(
                    "nothing to retry: the run ended {} with no failed record",
                    run.status
                )));
            }
            let mut job = self.job(
                &source,
                run.entity_type,
                run.sync_mode,
                Trigger::Retry,
                Vec::new(),
            );
            // A resync that failed is tried again as a resync of its span.
            job.window = run.window;
            return Ok(Retried {
                records: 0,
                runs: vec![self.queue(job).await?],
                more: false,
            });
        }
        let mut retried = self.retry_ids(&source, run.entity_type, ids).await?;
        retried.more |= more;
        Ok(retried)
    }

    /// Stops a run: one still queued is cancelled at once (its job, when it arrives, finds
    /// it ended); a running one is asked to stop and does so at the end of its current page,
    /// keeping what it committed. 409 for a run that has ended.
    pub async fn cancel_run(
        &self,
        tenant: &TenantId,
        id: &RunId,
    ) -> Result<Cancelled, ServiceError> {
        let mut run = self
            .ports
            .runs
            .get(tenant, id)
            .await?
            .ok_or(ServiceError::NotFound("run"))?;
        if run.status.is_final() {
            return Err(ServiceError::Conflict(format!(
                "the run already ended {}; nothing to cancel",
                run.status
            )));
        }
        // Records a platform reported changed, or being tried again after a write that may
        // pass, are in no other run, whatever run they were merged into or redone by:
        // dropped or stopped, they might never be synced (a stream with no schedule has no
        // poll to find them). A person's run can be cancelled, and a person's retry too:
        // its records stay kept with their failures.
        if run.reported {
            return Err(ServiceError::Conflict(format!(
                "this {} run carries changes a platform reported, or records being tried again, that no other run would sync; it runs to its end",
                run.trigger.as_str()
            )));
        }
        let now = self.now();
        // The request first: a worker that takes the run up meanwhile (and saves it
        // `running` over what is written below) finds it and stops.
        self.ports.runs.request_cancel(tenant, id, now).await?;
        let asked = self
            .ports
            .runs
            .cancel_requested(tenant, id)
            .await?
            .unwrap_or(now);
        tracing::info!(run_id = %id, status = %run.status, "run cancel requested");
        if run.status == RunStatus::Queued {
            let mut dropped = run.clone();
            dropped.status = RunStatus::Cancelled;
            dropped.message = Some("cancelled before it started; nothing was run".into());
            dropped.finished_at = Some(now);
            dropped.updated_at = now;
            if self.ports.runs.replace_queued(&dropped).await? {
                return Ok(Cancelled::Dropped(dropped));
            }
            // A worker took it up meanwhile: it finds the request and stops (unless it
            // has finished already).
            run = self.ports.runs.get(tenant, id).await?.unwrap_or(run);
            if run.status.is_final() {
                return Err(ServiceError::Conflict(format!(
                    "the run already ended {}; nothing to cancel",
                    run.status
                )));
            }
        }
        Ok(Cancelled::Requested(run, asked))
    }

    /// The connection's streams (one per entity a flow reads from it, or that has run):
    /// where each one's cursor stands and who last set it by hand, whether a run works on
    /// it now and a follow-up waits, when its webhooks last arrived.
    pub async fn streams(
        &self,
        tenant: &TenantId,
        connection_id: ConnectionId,
    ) -> Result<Vec<(EntityType, StreamView)>, ServiceError> {
        let source = self
            .source(tenant, connection_id, || {
                ServiceError::NotFound("connection")
            })
            .await?;
        let flows = self.ports.flows.flows_from(source.id).await?;
        let now = self.ports.clock.now();
        let mut streams = Vec::new();
        for &entity in EntityType::ALL {
            let key = SyncKey {
                connection: source.id,
                entity,
            };
            let view = self
                .ports
                .cursors
                .view(key, now)
                .await
                .map_err(|e| ServiceError::Unavailable(e.to_string()))?;
            if view != StreamView::default() || flows.iter().any(|f| f.runs_for(entity)) {
                streams.push((entity, view));
            }
        }
        Ok(streams)
    }

    /// Tries kept failures again in bulk, by filter: one run per stream (and per
    /// [`MAX_JOB_IDS`] records), up to [`MAX_RETRY_RECORDS`] records per request.
    pub async fn retry_failures(
        &self,
        tenant: &TenantId,
        filter: FailureFilter,
    ) -> Result<Retried, ServiceError> {
        if let (Some(from), Some(to)) = (filter.failed_from, filter.failed_to) {
            if from >= to {
                return Err(invalid("failed_to", "failed_to must be after failed_from"));
            }
        }
        let sources = match filter.connection_id {
            Some(id) => vec![self.source(tenant, id, unknown_connection).await?],
            None => self
                .ports
                .connections
                .list(tenant)
                .await?
                .into_iter()
                .filter(|c| !c.is_deleting())
                .collect(),
        };
        let mut retried = Retried {
            records: 0,
            runs: Vec::new(),
            more: false,
        };
        for source in &sources {
            let (found, more) = self.matching(source, &filter, |_| true).await?;
            retried.more |= more;
            let mut by_entity: std::collections::BTreeMap<EntityType, Vec<String>> =
                std::collections::BTreeMap::new();
            for f in found {
                if retried.records >= MAX_RETRY_RECORDS {
                    retried.more = true;
                    break;
                }
                retried.records += 1;
                by_entity
                    .entry(f.entity_type)
                    .or_default()
                    .push(f.record_id);
            }
            for (entity, ids) in by_entity {
                let done = self.retry_ids(source, entity, ids).await?;
                retried.runs.extend(done.runs);
            }
        }
        Ok(retried)
    }

    /// Queues retry runs of these records of one stream, [`MAX_JOB_IDS`] per run.
    async fn retry_ids(
        &self,
        source: &Connection,
        entity: EntityType,
        ids: Vec<String>,
    ) -> Result<Retried, ServiceError> {
        let records = ids.len();
        let mut runs = Vec::new();
        for chunk in ids.chunks(MAX_JOB_IDS) {
            let job = self.job(
                source,
                entity,
                SyncMode::Incremental,
                Trigger::Retry,
                chunk.to_vec(),
            );
            runs.push(self.queue(job).await?);
        }
        Ok(Retried {
            records,
            runs,
            more: false,
        })
    }

    /// The source's kept failures that match `filter` and `also`, read page by page up to
    /// the scan bound; and whether the bound cut the reading short.
    async fn matching(
        &self,
        source: &Connection,
        filter: &FailureFilter,
        also: impl Fn(&FailedRecord) -> bool,
    ) -> Result<(Vec<FailedRecord>, bool), ServiceError> {
        let mut found = Vec::new();
        let mut next: Option<String> = None;
        let mut read = 0;
        loop {
            let page = self
                .ports
                .failures
                .list(source.id, filter.entity_type, SCAN_PAGE, next.as_deref())
                .await
                .map_err(|e| match e {
                    RunListError::BadCursor => {
                        ServiceError::Unavailable("the failure list refused its own cursor".into())
                    }
                    RunListError::Store(e) => e.into(),
                })?;
            read += page.failures.len();
            found.extend(
                page.failures
                    .into_iter()
                    .filter(|f| f.tenant_id == source.tenant_id && filter.matches(f) && also(f)),
            );
            match page.next {
                Some(cursor) if read < MAX_RETRY_SCAN && found.len() <= MAX_RETRY_RECORDS => {
                    next = Some(cursor)
                }
                Some(_) => return Ok((found, true)),
                None => return Ok((found, false)),
            }
        }
    }

    /// The tenant's connection a run reads from; `missing` says why there is none.
    async fn source(
        &self,
        tenant: &TenantId,
        id: ConnectionId,
        missing: impl FnOnce() -> ServiceError,
    ) -> Result<Connection, ServiceError> {
        match Connection::of_tenant(self.ports.connections.get(id).await?, tenant) {
            Ok(c) => Ok(c),
            Err(Unusable::Deleting(_)) => Err(ServiceError::Conflict(
                "that connection is being deleted; it is not synced any more".into(),
            )),
            Err(Unusable::Missing) => Err(missing()),
        }
    }

    /// The tenant's connection a run of `entity` reads from, which an enabled flow reads.
    async fn read_source(
        &self,
        tenant: &TenantId,
        id: ConnectionId,
        entity: EntityType,
        missing: impl FnOnce() -> ServiceError,
    ) -> Result<Connection, ServiceError> {
        let source = self.source(tenant, id, missing).await?;
        self.must_be_read(&source, entity).await?;
        Ok(source)
    }

    /// A run with nothing to write to would only be skipped: say so now, and how to fix it.
    async fn must_be_read(
        &self,
        source: &Connection,
        entity: EntityType,
    ) -> Result<(), ServiceError> {
        let flows = self.ports.flows.flows_from(source.id).await?;
        let reads = flows.iter().any(|f| f.runs_for(entity));
        if reads {
            Ok(())
        } else {
            Err(ServiceError::Conflict(format!(
                "no enabled flow reads {entity} from connection {}; create or enable one (POST /api/flows) first",
                source.id
            )))
        }
    }

    fn job(
        &self,
        source: &Connection,
        entity: EntityType,
        sync_mode: SyncMode,
        trigger: Trigger,
        ids: Vec<String>,
    ) -> SyncJob {
        SyncJob {
            job_id: uuid::Uuid::new_v4().to_string(),
            tenant_id: source.tenant_id.clone(),
            connection_id: source.id,
            platform: source.platform,
            entity_type: entity,
            sync_mode,
            trigger,
            triggered_at: self.now(),
            ids,
            resume: None,
            attempt: 0,
            stands_for: Vec::new(),
            window: None,
            reported: Some(false),
        }
    }

    /// Records the job's run as queued, then sends the job. A refused send marks the run
    /// failed (the worker never sees it) and answers unavailable.
    async fn queue(&self, job: SyncJob) -> Result<Run, ServiceError> {
        let now = self.now();
        let mut run = Run::of_job(&job, job.run_id(), None, now, RunStatus::Queued);
        self.ports.runs.save(&run).await?;
        if let Err(e) = self.ports.jobs.send_job(&job).await {
            run.status = RunStatus::Failed;
            run.message = Some("the sync queue refused the job; nothing was run".into());
            run.finished_at = Some(now);
            run.updated_at = now;
            // (Only while queued: a send that failed may still have been delivered.)
            if let Err(saved) = self.ports.runs.replace_queued(&run).await {
                tracing::warn!(run_id = %run.id, error = %saved, "unqueued run left queued");
            }
            return Err(ServiceError::Unavailable(e.to_string()));
        }
        tracing::info!(run_id = %run.id, trigger = run.trigger.as_str(), connection_id = %run.connection_id, entity = %run.entity_type, "run queued");
        Ok(run)
    }
}

/// A `connection_id` naming no connection of the tenant's (another tenant's included).
fn unknown_connection() -> ServiceError {
    invalid(
        "connection_id",
        "connection_id names no connection of this tenant",
    )
}

#[cfg(test)]
#[path = "operations_tests.rs"]
mod tests;
