//! The worker's store in memory: leases and cursors, the record index, runs and flows.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::{lock, MemoryConnectionStore};
use crate::domain::{
    Connection, ConnectionId, Cursor, EntityType, FailedRecord, FailurePage, Flow, FlowId, Run,
    RunFilter, RunId, RunPage, RunStatus, ScheduleId, SyncJob, TenantId,
};
use crate::ports::{
    Acquired, CursorSet, FailureList, FailureLog, FlowSource, FlowStore, Lease, PendingJob,
    RecordIndex, RecordState, RecordUpdate, RunHistory, RunListError, RunLog, RunSweep, StateError,
    StoreError, StreamCursors, StreamState, StreamView, StreamWatch, SweepLog, SweepStatus,
    SyncKey, SyncLeases, WebhookArrivals,
};

#[derive(Clone, Debug, Default)]
struct LeaseRow {
    owner: Option<String>,
    expires: Option<DateTime<Utc>>,
    cursor: Option<Cursor>,
    pending: Option<SyncJob>,
    /// Bumped by every merge and every hand-over, as the DynamoDB adapter's.
    pending_version: u64,
    /// The fencing token, bumped by every acquisition.
    epoch: u64,
    /// When the cursor was last set by hand, and by whom.
    cursor_set_at: Option<DateTime<Utc>>,
    cursor_set_by: Option<String>,
    /// When webhooks of the stream last arrived.
    webhook_at: Option<DateTime<Utc>>,
}

/// Leases, cursors and follow-ups in memory, with the DynamoDB adapter's rules.
#[derive(Default)]
pub struct MemorySyncLeases {
    rows: Mutex<HashMap<SyncKey, LeaseRow>>,
    failing: AtomicBool,
}

impl MemorySyncLeases {
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// The stream's stored cursor.
    pub fn cursor(&self, key: SyncKey) -> Option<Cursor> {
        lock(&self.rows).get(&key).and_then(|r| r.cursor.clone())
    }

    /// The follow-up waiting on the stream.
    pub fn pending(&self, key: SyncKey) -> Option<SyncJob> {
        lock(&self.rows).get(&key).and_then(|r| r.pending.clone())
    }

    /// Who holds the stream's lease, if anyone does (expired or not).
    pub fn holder(&self, key: SyncKey) -> Option<String> {
        lock(&self.rows).get(&key).and_then(|r| r.owner.clone())
    }

    /// Makes `owner` hold the lease until `expires`, as a run elsewhere would (taking it
    /// over from another owner bumps the fencing token).
    pub fn hold(&self, key: SyncKey, owner: &str, expires: DateTime<Utc>) {
        let mut rows = lock(&self.rows);
        let row = rows.entry(key).or_default();
        if row.owner.as_deref() != Some(owner) {
            row.epoch += 1;
        }
        row.owner = Some(owner.to_string());
        row.expires = Some(expires);
    }

    fn check(&self) -> Result<(), StateError> {
        if self.failing.load(Ordering::SeqCst) {
            Err(StateError::Unavailable("memory leases set to fail".into()))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl StreamCursors for MemorySyncLeases {
    async fn set_cursor(
        &self,
        key: SyncKey,
        cursor: &Cursor,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<CursorSet, StateError> {
        self.check()?;
        let mut rows = lock(&self.rows);
        let row = rows.entry(key).or_default();
        if held_by_other(row, "", now) {
            return Ok(CursorSet::Busy);
        }
        row.owner = Some(format!("cursor set by {by}"));
        row.expires = Some(now);
        row.epoch += 1;
        row.cursor_set_at = Some(now);
        row.cursor_set_by = Some(by.to_string());
        let previous = row.cursor.replace(cursor.clone());
        Ok(CursorSet::Set { previous })
    }

    async fn view(&self, key: SyncKey, now: DateTime<Utc>) -> Result<StreamView, StateError> {
        self.check()?;
        Ok(lock(&self.rows)
            .get(&key)
            .map(|row| StreamView {
                cursor: row.cursor.clone(),
                cursor_set_by: row.cursor_set_by.clone(),
                cursor_set_at: row.cursor_set_at,
                running: held_by_other(row, "", now),
                lease_until: row.expires,
                follow_up_kept: row.pending.is_some(),
                webhook_at: row.webhook_at,
            })
            .unwrap_or_default())
    }
}

#[async_trait]
impl StreamWatch for MemorySyncLeases {
    async fn state(&self, key: SyncKey, now: DateTime<Utc>) -> Result<StreamState, StateError> {
        self.check()?;
        Ok(lock(&self.rows)
            .get(&key)
            .map(|row| StreamState {
                busy: held_by_other(row, "", now),
                lease_until: row.expires,
                pending: row.pending.is_some(),
                webhook_at: row.webhook_at,
            })
            .unwrap_or_default())
    }
}

#[async_trait]
impl WebhookArrivals for MemorySyncLeases {
    async fn arrived(&self, key: SyncKey, at: DateTime<Utc>) -> Result<(), StateError> {
        self.check()?;
        let mut rows = lock(&self.rows);
        let row = rows.entry(key).or_default();
        row.webhook_at = row.webhook_at.max(Some(at));
        Ok(())
    }
}

fn held_by_other(row: &LeaseRow, owner: &str, now: DateTime<Utc>) -> bool {
    row.owner.as_deref().is_some_and(|o| o != owner) && row.expires.is_some_and(|e| e > now)
}

#[async_trait]
impl SyncLeases for MemorySyncLeases {
    async fn acquire(
        &self,
        key: SyncKey,
        owner: &str,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> Result<Lease, StateError> {
        self.check()?;
        let mut rows = lock(&self.rows);
        let row = rows.entry(key).or_default();
        if held_by_other(row, owner, now) {
            return Ok(Lease::Held);
        }
        row.owner = Some(owner.to_string());
        row.expires = Some(now + ttl);
        row.epoch += 1;
        Ok(Lease::Acquired(Acquired {
            cursor: row.cursor.clone(),
            epoch: row.epoch,
            cursor_set_at: row.cursor_set_at,
            webhook_at: row.webhook_at,
        }))
    }

    async fn renew(
        &self,
        key: SyncKey,
        owner: &str,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> Result<(), StateError> {
        self.check()?;
        let mut rows = lock(&self.rows);
        match rows.get_mut(&key) {
            Some(row) if row.owner.as_deref() == Some(owner) => {
                row.expires = Some(now + ttl);
                Ok(())
            }
            _ => Err(StateError::LeaseLost),
        }
    }

    async fn save_cursor(
        &self,
        key: SyncKey,
        owner: &str,
        cursor: &Cursor,
    ) -> Result<(), StateError> {
        self.check()?;
        let mut rows = lock(&self.rows);
        match rows.get_mut(&key) {
            Some(row) if row.owner.as_deref() == Some(owner) => {
                row.cursor = Some(cursor.clone());
                Ok(())
            }
            _ => Err(StateError::LeaseLost),
        }
    }

    async fn park(&self, key: SyncKey, job: &SyncJob) -> Result<bool, StateError> {
        self.check()?;
        let mut rows = lock(&self.rows);
        let row = rows.entry(key).or_default();
        let first = row.pending.is_none();
        row.pending = Some(match &row.pending {
            Some(waiting) => waiting.merged_with(job),
            None => job.clone(),
        });
        row.pending_version += 1;
        Ok(first)
    }

    async fn peek_pending(
        &self,
        key: SyncKey,
        owner: &str,
    ) -> Result<Option<PendingJob>, StateError> {
        self.check()?;
        let rows = lock(&self.rows);
        match rows.get(&key) {
            Some(row) if row.owner.as_deref() == Some(owner) => {
                Ok(row.pending.clone().map(|job| PendingJob {
                    job,
                    version: row.pending_version,
                }))
            }
            _ => Err(StateError::LeaseLost),
        }
    }

    async fn done_pending(&self, key: SyncKey, version: u64) -> Result<bool, StateError> {
        self.check()?;
        let mut rows = lock(&self.rows);
        match rows.get_mut(&key) {
            Some(row) if row.pending.is_some() && row.pending_version == version => {
                row.pending = None;
                row.pending_version += 1;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release(&self, key: SyncKey, owner: &str) -> Result<(), StateError> {
        self.check()?;
        if let Some(row) = lock(&self.rows).get_mut(&key) {
            if row.owner.as_deref() == Some(owner) {
                // (The expiry stays: when the stream was last worked on.)
                row.owner = None;
            }
        }
        Ok(())
    }
}

type RecordKey = (ConnectionId, EntityType, String);

/// The record index in memory.
#[derive(Default)]
pub struct MemoryRecordIndex {
    rows: Mutex<HashMap<RecordKey, RecordState>>,
    /// Per entry and writing stream, the lease epoch it was last written under.
    fences: Mutex<HashMap<(RecordKey, ConnectionId), u64>>,
    failing: AtomicBool,
}

impl MemoryRecordIndex {
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    pub fn state(
        &self,
        connection: ConnectionId,
        entity: EntityType,
        id: &str,
    ) -> Option<RecordState> {
        lock(&self.rows)
            .get(&(connection, entity, id.to_string()))
            .cloned()
    }
}

#[async_trait]
impl RecordIndex for MemoryRecordIndex {
    async fn get(
        &self,
        connection: ConnectionId,
        entity: EntityType,
        ids: &[String],
    ) -> Result<HashMap<String, RecordState>, StateError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StateError::Unavailable("memory index set to fail".into()));
        }
        let rows = lock(&self.rows);
        Ok(ids
            .iter()
            .filter_map(|id| {
                rows.get(&(connection, entity, id.clone()))
                    .map(|s| (id.clone(), s.clone()))
            })
            .collect())
    }

    async fn update(&self, updates: &[RecordUpdate]) -> Result<(), StateError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StateError::Unavailable("memory index set to fail".into()));
        }
        let mut rows = lock(&self.rows);
        let mut fences = lock(&self.fences);
        let mut refused = false;
        for u in updates {
            let key = (u.connection, u.entity, u.id.clone());
            if let Some((stream, epoch)) = u.fence {
                let last = fences.entry((key.clone(), stream)).or_insert(epoch);
                if *last > epoch {
                    refused = true;
                    continue;
                }
                *last = epoch;
            }
            let row = rows.entry(key).or_default();
            if !u.fingerprint.is_empty() {
                row.fingerprint = row.fingerprint.merged(&u.fingerprint);
                row.written = u.written;
            }
            if let Some((c, id)) = &u.link {
                row.links.insert(*c, id.clone());
            }
            if let Some((c, agreed)) = &u.agreed {
                row.agreed.insert(*c, agreed.clone());
            }
            if let Some(failures) = u.failures {
                row.failures = failures;
            }
            if let Some(swept) = &u.swept {
                row.swept = Some(swept.clone());
            }
        }
        if refused {
            return Err(StateError::LeaseLost);
        }
        Ok(())
    }

    async fn list(
        &self,
        connection: ConnectionId,
        entity: EntityType,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<(String, RecordState)>, Option<String>), StateError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StateError::Unavailable("memory index set to fail".into()));
        }
        let rows = lock(&self.rows);
        let mut all: Vec<(String, RecordState)> = rows
            .iter()
            .filter(|((c, e, id), _)| {
                *c == connection && *e == entity && after.is_none_or(|a| id.as_str() > a)
            })
            .map(|((_, _, id), s)| (id.clone(), s.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        let more = all.len() > limit;
        all.truncate(limit);
        let next = more.then(|| all.last().map(|(id, _)| id.clone())).flatten();
        Ok((all, next))
    }
}

/// Runs in memory.
#[derive(Default)]
pub struct MemoryRuns {
    rows: Mutex<BTreeMap<(TenantId, RunId), Run>>,
    cancels: Mutex<HashMap<(TenantId, RunId), DateTime<Utc>>>,
    /// How many times a cancel request was looked for.
    cancel_reads: AtomicU64,
    failing: AtomicBool,
}

impl MemoryRuns {
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// Stores `run` as it is (a run another function recorded).
    pub fn seed(&self, run: Run) {
        lock(&self.rows).insert((run.tenant_id.clone(), run.id.clone()), run);
    }

    /// How many times the worker has looked for cancel requests.
    pub fn cancel_reads(&self) -> u64 {
        self.cancel_reads.load(Ordering::SeqCst)
    }

    /// Every run, oldest first.
    pub fn all(&self) -> Vec<Run> {
        lock(&self.rows).values().cloned().collect()
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable("memory runs set to fail".into()))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl RunLog for MemoryRuns {
    async fn get(&self, tenant: &TenantId, id: &RunId) -> Result<Option<Run>, StoreError> {
        self.check()?;
        Ok(lock(&self.rows).get(&(tenant.clone(), id.clone())).cloned())
    }

    async fn save(&self, run: &Run) -> Result<(), StoreError> {
        self.check()?;
        self.seed(run.clone());
        Ok(())
    }

    async fn save_if_unchanged(
        &self,
        run: &Run,
        seen: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError> {
        self.check()?;
        let mut rows = lock(&self.rows);
        let key = (run.tenant_id.clone(), run.id.clone());
        // As DynamoDB compares the stored text: to the millisecond; a run gone since is
        // written again.
        let millis = |t: DateTime<Utc>| t.timestamp_millis();
        let unchanged = match (rows.get(&key), seen) {
            (None, _) => true,
            (Some(stored), Some(seen)) => millis(stored.updated_at) == millis(seen),
            (Some(_), None) => false,
        };
        if !unchanged {
            return Ok(false);
        }
        rows.insert(key, run.clone());
        Ok(true)
    }

    async fn replace_queued(&self, run: &Run) -> Result<bool, StoreError> {
        self.check()?;
        let mut rows = lock(&self.rows);
        match rows.get_mut(&(run.tenant_id.clone(), run.id.clone())) {
            Some(stored) if stored.status == RunStatus::Queued => {
                *stored = run.clone();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn request_cancel(
        &self,
        tenant: &TenantId,
        id: &RunId,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.check()?;
        lock(&self.cancels)
            .entry((tenant.clone(), id.clone()))
            .or_insert(at);
        Ok(())
    }

    async fn cancel_requested(
        &self,
        tenant: &TenantId,
        id: &RunId,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.check()?;
        self.cancel_reads.fetch_add(1, Ordering::SeqCst);
        Ok(lock(&self.cancels)
            .get(&(tenant.clone(), id.clone()))
            .copied())
    }
}

#[async_trait]
impl RunSweep for MemoryRuns {
    async fn get(&self, tenant: &TenantId, id: &RunId) -> Result<Option<Run>, StoreError> {
        RunLog::get(self, tenant, id).await
    }

    async fn stale(&self, before: DateTime<Utc>, limit: usize) -> Result<Vec<Run>, StoreError> {
        self.check()?;
        let mut open: Vec<Run> = lock(&self.rows)
            .values()
            .filter(|r| !r.status.is_final() && r.updated_at < before)
            .cloned()
            .collect();
        open.sort_by_key(|r| r.updated_at);
        open.truncate(limit);
        Ok(open)
    }

    async fn replace_if_untouched(
        &self,
        ended: &Run,
        seen: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.check()?;
        let mut rows = lock(&self.rows);
        match rows.get_mut(&(ended.tenant_id.clone(), ended.id.clone())) {
            Some(stored) if !stored.status.is_final() && stored.updated_at == seen => {
                *stored = ended.clone();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn cancel_requested(
        &self,
        tenant: &TenantId,
        id: &RunId,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        RunLog::cancel_requested(self, tenant, id).await
    }

    async fn create(&self, run: &Run) -> Result<bool, StoreError> {
        self.check()?;
        let mut rows = lock(&self.rows);
        let key = (run.tenant_id.clone(), run.id.clone());
        if rows.contains_key(&key) {
            return Ok(false);
        }
        rows.insert(key, run.clone());
        Ok(true)
    }

    async fn ran_since(
        &self,
        tenant: &TenantId,
        schedule: ScheduleId,
        since: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.check()?;
        // (As the table's run ids: by the millisecond the job was triggered.)
        let since = since.timestamp_millis();
        Ok(lock(&self.rows).values().any(|r| {
            &r.tenant_id == tenant
                && r.schedule_id == Some(schedule)
                && r.triggered_at.timestamp_millis() >= since
        }))
    }
}

/// The sweeper's status in memory.
#[derive(Default)]
pub struct MemorySweepLog {
    status: Mutex<Option<SweepStatus>>,
}

#[async_trait]
impl SweepLog for MemorySweepLog {
    async fn last(&self) -> Result<Option<SweepStatus>, StoreError> {
        Ok(lock(&self.status).clone())
    }

    async fn record(&self, status: &SweepStatus) -> Result<(), StoreError> {
        *lock(&self.status) = Some(status.clone());
        Ok(())
    }
}

#[async_trait]
impl RunHistory for MemoryRuns {
    async fn get(&self, tenant: &TenantId, id: &RunId) -> Result<Option<Run>, StoreError> {
        RunLog::get(self, tenant, id).await
    }

    async fn list(
        &self,
        tenant: &TenantId,
        filter: &RunFilter,
        limit: usize,
        next: Option<&str>,
        _now: DateTime<Utc>,
    ) -> Result<RunPage, RunListError> {
        self.check()?;
        let before = match next {
            None => None,
            Some(n) => Some(n.parse::<RunId>().map_err(|_| RunListError::BadCursor)?),
        };
        let rows = lock(&self.rows);
        let mut runs: Vec<Run> = rows
            .values()
            .rev()
            .filter(|r| &r.tenant_id == tenant)
            .filter(|r| before.as_ref().is_none_or(|b| &r.id < b))
            .filter(|r| filter.matches(r))
            .take(limit + 1)
            .cloned()
            .collect();
        let more = runs.len() > limit;
        runs.truncate(limit);
        let next = if more {
            runs.last().map(|r| r.id.to_string())
        } else {
            None
        };
        Ok(RunPage { runs, next })
    }
}

/// Flows in memory; built with the connection store they must refer to.
pub struct MemoryFlows {
    rows: Mutex<HashMap<FlowId, Flow>>,
    connections: Arc<MemoryConnectionStore>,
}

impl MemoryFlows {
    pub fn new(connections: Arc<MemoryConnectionStore>) -> Self {
        Self {
            rows: Mutex::default(),
            connections,
        }
    }

    /// Puts a flow in place directly, bypassing every check.
    pub fn seed(&self, flow: Flow) {
        lock(&self.rows).insert(flow.id, flow);
    }
}

#[async_trait]
impl FlowStore for MemoryFlows {
    async fn insert(&self, flow: &Flow) -> Result<(), StoreError> {
        let ok = |id: ConnectionId| {
            let found = lock(&self.connections.rows).get(&id).cloned();
            Connection::of_tenant(found, &flow.tenant_id).is_ok()
        };
        if !ok(flow.source_connection_id) || !ok(flow.target_connection_id) {
            return Err(StoreError::ReferenceGone);
        }
        let mut rows = lock(&self.rows);
        if rows.contains_key(&flow.id) {
            return Err(StoreError::AlreadyExists);
        }
        rows.insert(flow.id, flow.clone());
        Ok(())
    }

    async fn get(&self, tenant: &TenantId, id: FlowId) -> Result<Option<Flow>, StoreError> {
        Ok(lock(&self.rows)
            .get(&id)
            .filter(|f| &f.tenant_id == tenant)
            .cloned())
    }

    async fn list(&self, tenant: &TenantId) -> Result<Vec<Flow>, StoreError> {
        let mut all: Vec<Flow> = lock(&self.rows)
            .values()
            .filter(|f| &f.tenant_id == tenant)
            .cloned()
            .collect();
        all.sort_by_key(|f| (f.created_at, f.id));
        Ok(all)
    }

    async fn replace(&self, flow: &Flow, expected_version: u64) -> Result<(), StoreError> {
        match lock(&self.rows).get_mut(&flow.id) {
            Some(row) if row.version == expected_version && row.tenant_id == flow.tenant_id => {
                *row = flow.clone();
                Ok(())
            }
            _ => Err(StoreError::Conflict),
        }
    }

    async fn delete(
        &self,
        tenant: &TenantId,
        id: FlowId,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        let mut rows = lock(&self.rows);
        match rows.get(&id) {
            Some(row) if row.version == expected_version && &row.tenant_id == tenant => {
                rows.remove(&id);
                Ok(())
            }
            _ => Err(StoreError::Conflict),
        }
    }
}

#[async_trait]
impl FlowSource for MemoryFlows {
    async fn flows_from(&self, connection: ConnectionId) -> Result<Vec<Flow>, StoreError> {
        let mut flows: Vec<Flow> = lock(&self.rows)
            .values()
            .filter(|f| f.source_connection_id == connection)
            .cloned()
            .collect();
        flows.sort_by_key(|f| (f.created_at, f.id));
        Ok(flows)
    }
}

/// Kept failures in memory, by stream and record id.
#[derive(Default)]
pub struct MemoryFailures {
    rows: Mutex<BTreeMap<(ConnectionId, EntityType, String), FailedRecord>>,
}

impl MemoryFailures {
    /// Every kept failure.
    pub fn all(&self) -> Vec<FailedRecord> {
        lock(&self.rows).values().cloned().collect()
    }
}

#[async_trait]
impl FailureLog for MemoryFailures {
    async fn keep(&self, failures: &[FailedRecord]) -> Result<(), StateError> {
        let mut rows = lock(&self.rows);
        for f in failures {
            let key = (f.connection_id, f.entity_type, f.record_id.clone());
            let mut kept = f.clone();
            if let Some(was) = rows.get(&key) {
                // As the DynamoDB adapter: the first failure and quarantine times stay, and
                // a quarantined record stays due.
                kept.first_failed_at = was.first_failed_at;
                kept.quarantined_at = was.quarantined_at.or(kept.quarantined_at);
                kept.next_try_at = kept.next_try_at.or(was.next_try_at);
            }
            rows.insert(key, kept);
        }
        Ok(())
    }

    async fn forget(&self, key: SyncKey, ids: &[String]) -> Result<(), StateError> {
        let mut rows = lock(&self.rows);
        for id in ids {
            rows.remove(&(key.connection, key.entity, id.clone()));
        }
        Ok(())
    }

    async fn due(
        &self,
        key: SyncKey,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<FailedRecord>, StateError> {
        Ok(lock(&self.rows)
            .values()
            .filter(|f| f.connection_id == key.connection && f.entity_type == key.entity)
            .filter(|f| f.next_try_at.is_some_and(|t| t <= now))
            .take(limit)
            .cloned()
            .collect())
    }
}

#[async_trait]
impl FailureList for MemoryFailures {
    async fn list(
        &self,
        connection: ConnectionId,
        entity: Option<EntityType>,
        limit: usize,
        next: Option<&str>,
    ) -> Result<FailurePage, RunListError> {
        let rows = lock(&self.rows);
        let mut matching = rows
            .values()
            .filter(|f| f.connection_id == connection)
            .filter(|f| entity.is_none_or(|e| f.entity_type == e))
            .map(|f| (format!("{}#{}", f.entity_type, f.record_id), f))
            .filter(|(k, _)| next.is_none_or(|n| k.as_str() > n))
            .collect::<Vec<_>>();
        matching.sort_by(|a, b| a.0.cmp(&b.0));
        let more = matching.len() > limit;
        matching.truncate(limit);
        Ok(FailurePage {
            next: more
                .then(|| matching.last().map(|(k, _)| k.clone()))
                .flatten(),
            failures: matching.into_iter().map(|(_, f)| f.clone()).collect(),
        })
    }
}
