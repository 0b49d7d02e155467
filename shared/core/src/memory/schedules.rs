//! The schedule store and the trigger side in memory.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::lock;
use crate::domain::{Connection, Schedule, ScheduleId, TenantId};
use crate::ports::{
    sweep_shard, NamesPage, ScheduleCreate, SchedulePage, ScheduleRuns, ScheduleStore,
    ScheduleTrigger, StoreError, TriggerAligner, TriggerError, TriggerInventory, TriggerState,
    TriggerWrite,
};

use super::MemoryConnectionStore;

/// A schedule store in a hash map. Built with [`MemoryScheduleStore::checking`], it refuses
/// a schedule whose connection is missing, another tenant's, on another platform or being
/// deleted, as the DynamoDB store's transaction does.
#[derive(Default)]
pub struct MemoryScheduleStore {
    rows: Mutex<HashMap<(TenantId, ScheduleId), Schedule>>,
    connections: Option<Arc<MemoryConnectionStore>>,
    failing: AtomicBool,
    conflicting: AtomicBool,
    /// Per schedule, the last failed run counted (as the table's `last_failed_run`).
    last_failed: Mutex<HashMap<ScheduleId, crate::domain::RunId>>,
}

impl MemoryScheduleStore {
    /// A store that checks each new schedule's connection in `connections`.
    pub fn checking(connections: Arc<MemoryConnectionStore>) -> Self {
        Self {
            connections: Some(connections),
            ..Self::default()
        }
    }

    /// While set, every call answers `Unavailable`.
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// While set, conditional writes (replace, delete) lose as if another request had
    /// changed the record first.
    pub fn set_conflicting(&self, conflicting: bool) {
        self.conflicting.store(conflicting, Ordering::SeqCst);
    }

    pub fn len(&self) -> usize {
        lock(&self.rows).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Puts a schedule in place directly, bypassing every check (to set up drift).
    pub fn seed(&self, schedule: Schedule) {
        lock(&self.rows).insert((schedule.tenant_id.clone(), schedule.id), schedule);
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable("memory store set to fail".into()))
        } else {
            Ok(())
        }
    }

    fn check_conditional(&self) -> Result<(), StoreError> {
        self.check()?;
        if self.conflicting.load(Ordering::SeqCst) {
            Err(StoreError::Conflict)
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl ScheduleRuns for MemoryScheduleStore {
    async fn get(&self, tenant: &TenantId, id: ScheduleId) -> Result<Option<Schedule>, StoreError> {
        self.check()?;
        Ok(lock(&self.rows).get(&(tenant.clone(), id)).cloned())
    }

    async fn record_run(
        &self,
        tenant: &TenantId,
        id: ScheduleId,
        at: DateTime<Utc>,
        status: crate::domain::RunStatus,
        run: &crate::domain::RunId,
    ) -> Result<(), StoreError> {
        use crate::domain::RunStatus;
        self.check()?;
        let mut failed = lock(&self.last_failed);
        if let Some(row) = lock(&self.rows).get_mut(&(tenant.clone(), id)) {
            row.last_run_at = Some(at);
            row.last_run_status = Some(status);
            match status {
                // (A failed run counts once, however many times it is tried; an older one
                // failing again after a newer one did is not counted.)
                RunStatus::Failed if failed.get(&id).is_none_or(|last| last < run) => {
                    row.consecutive_failures += 1;
                    failed.insert(id, run.clone());
                }
                RunStatus::Succeeded | RunStatus::Partial => row.consecutive_failures = 0,
                _ => {}
            }
        }
        Ok(())
    }
}

#[async_trait]
impl ScheduleCreate for MemoryScheduleStore {
    async fn insert(&self, schedule: &Schedule) -> Result<(), StoreError> {
        self.check()?;
        if let Some(connections) = &self.connections {
            let found = lock(&connections.rows)
                .get(&schedule.credential_id)
                .cloned();
            let ok = Connection::of_tenant(found, &schedule.tenant_id)
                .is_ok_and(|c| c.platform == schedule.platform);
            if !ok {
                return Err(StoreError::ReferenceGone);
            }
        }
        let mut rows = lock(&self.rows);
        let key = (schedule.tenant_id.clone(), schedule.id);
        if rows.contains_key(&key) {
            return Err(StoreError::AlreadyExists);
        }
        rows.insert(key, schedule.clone());
        Ok(())
    }
}

#[async_trait]
impl ScheduleStore for MemoryScheduleStore {
    async fn list(&self, tenant: &TenantId) -> Result<Vec<Schedule>, StoreError> {
        self.check()?;
        let mut all: Vec<Schedule> = lock(&self.rows)
            .values()
            .filter(|s| &s.tenant_id == tenant)
            .cloned()
            .collect();
        all.sort_by_key(|s| (s.created_at, s.id.to_string()));
        Ok(all)
    }

    async fn list_all(&self) -> Result<Vec<Schedule>, StoreError> {
        self.check()?;
        let mut all: Vec<Schedule> = lock(&self.rows).values().cloned().collect();
        all.sort_by_key(|s| (s.created_at, s.id.to_string()));
        Ok(all)
    }

    async fn page(
        &self,
        shard: u8,
        after: Option<&str>,
        limit: usize,
    ) -> Result<SchedulePage, StoreError> {
        self.check()?;
        // (In the index's order: tenant, then id.)
        let mut keyed: Vec<(String, Schedule)> = lock(&self.rows)
            .values()
            .filter(|s| sweep_shard(s.id) == shard)
            .map(|s| (format!("{}#{}", s.tenant_id, s.id), s.clone()))
            .filter(|(key, _)| after.is_none_or(|a| key.as_str() > a))
            .collect();
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        let more = keyed.len() > limit;
        keyed.truncate(limit);
        Ok(SchedulePage {
            next: keyed.last().filter(|_| more).map(|(key, _)| key.clone()),
            schedules: keyed.into_iter().map(|(_, s)| s).collect(),
        })
    }

    async fn replace(&self, schedule: &Schedule, expected_version: u64) -> Result<(), StoreError> {
        self.check_conditional()?;
        let mut rows = lock(&self.rows);
        match rows.get_mut(&(schedule.tenant_id.clone(), schedule.id)) {
            Some(row) if row.version == expected_version => {
                let (last_run_at, last_run_status) = (row.last_run_at, row.last_run_status);
                *row = schedule.clone();
                row.last_run_at = last_run_at;
                row.last_run_status = last_run_status;
                Ok(())
            }
            _ => Err(StoreError::Conflict),
        }
    }

    async fn delete(
        &self,
        tenant: &TenantId,
        id: ScheduleId,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        self.check_conditional()?;
        let mut rows = lock(&self.rows);
        let key = (tenant.clone(), id);
        match rows.get(&key) {
            Some(row) if row.version == expected_version => {
                rows.remove(&key);
                Ok(())
            }
            _ => Err(StoreError::Conflict),
        }
    }
}

/// A trigger side that remembers what it was given, as EventBridge would: by name, the
/// definition, and (for tests) the schedule it was built from.
#[derive(Default)]
pub struct MemoryTrigger {
    triggers: Mutex<HashMap<String, (Option<Schedule>, TriggerState)>>,
    failing: AtomicBool,
}

impl MemoryTrigger {
    /// While set, every call answers `Unavailable` and changes nothing.
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// The schedule the trigger of `id` was last written from.
    pub fn get(&self, id: ScheduleId) -> Option<Schedule> {
        lock(&self.triggers)
            .get(&id.to_string())
            .and_then(|(s, _)| s.clone())
    }

    /// The trigger named `name` as held.
    pub fn state(&self, name: &str) -> Option<TriggerState> {
        lock(&self.triggers).get(name).map(|(_, t)| t.clone())
    }

    /// Puts a trigger in place directly, as drift would (a lost write, a stray schedule).
    pub fn put_raw(&self, state: TriggerState) {
        lock(&self.triggers).insert(state.name.clone(), (None, state));
    }

    pub fn len(&self) -> usize {
        lock(&self.triggers).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn check(&self) -> Result<(), TriggerError> {
        if self.failing.load(Ordering::SeqCst) {
            Err(TriggerError::Unavailable(
                "memory trigger set to fail".into(),
            ))
        } else {
            Ok(())
        }
    }

    fn write(&self, schedule: &Schedule) {
        let state = TriggerState {
            name: schedule.id.to_string(),
            definition: schedule.trigger_definition(),
            target_current: true,
        };
        lock(&self.triggers).insert(state.name.clone(), (Some(schedule.clone()), state));
    }
}

#[async_trait]
impl ScheduleTrigger for MemoryTrigger {
    async fn create(&self, schedule: &Schedule) -> Result<(), TriggerError> {
        self.check()?;
        self.write(schedule);
        Ok(())
    }
}

#[async_trait]
impl TriggerAligner for MemoryTrigger {
    async fn update(&self, schedule: &Schedule) -> Result<TriggerWrite, TriggerError> {
        self.check()?;
        if !lock(&self.triggers).contains_key(&schedule.id.to_string()) {
            return Ok(TriggerWrite::Missing);
        }
        self.write(schedule);
        Ok(TriggerWrite::Applied)
    }

    async fn remove(&self, name: &str) -> Result<(), TriggerError> {
        self.check()?;
        lock(&self.triggers).remove(name);
        Ok(())
    }
}

#[async_trait]
impl TriggerInventory for MemoryTrigger {
    async fn names(&self) -> Result<Vec<String>, TriggerError> {
        self.check()?;
        Ok(lock(&self.triggers).keys().cloned().collect())
    }

    async fn names_page(
        &self,
        prefix: &str,
        token: Option<&str>,
        limit: usize,
    ) -> Result<NamesPage, TriggerError> {
        self.check()?;
        let mut names: Vec<String> = lock(&self.triggers)
            .keys()
            .filter(|n| n.starts_with(prefix))
            .filter(|n| token.is_none_or(|a| n.as_str() > a))
            .cloned()
            .collect();
        names.sort();
        let more = names.len() > limit;
        names.truncate(limit);
        Ok(NamesPage {
            next: names.last().filter(|_| more).cloned(),
            names,
        })
    }

    async fn get(&self, name: &str) -> Result<Option<TriggerState>, TriggerError> {
        self.check()?;
        Ok(self.state(name))
    }
}
