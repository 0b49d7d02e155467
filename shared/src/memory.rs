//! In-memory adapters: stateful fakes of the ports for fast domain and handler tests, with
//! switches that make them fail the way a real dependency can.

use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::domain::{Schedule, ScheduleId, TenantId};
use crate::ports::{ScheduleStore, ScheduleTrigger, StoreError, TriggerError};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A schedule store in a hash map.
#[derive(Default)]
pub struct MemoryScheduleStore {
    rows: Mutex<HashMap<(TenantId, ScheduleId), Schedule>>,
    failing: AtomicBool,
    conflicting: AtomicBool,
}

impl MemoryScheduleStore {
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
impl ScheduleStore for MemoryScheduleStore {
    async fn insert(&self, schedule: &Schedule) -> Result<(), StoreError> {
        self.check()?;
        let mut rows = lock(&self.rows);
        let key = (schedule.tenant_id.clone(), schedule.id);
        if rows.contains_key(&key) {
            return Err(StoreError::AlreadyExists);
        }
        rows.insert(key, schedule.clone());
        Ok(())
    }

    async fn get(&self, tenant: &TenantId, id: ScheduleId) -> Result<Option<Schedule>, StoreError> {
        self.check()?;
        Ok(lock(&self.rows).get(&(tenant.clone(), id)).cloned())
    }

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

    async fn replace(&self, schedule: &Schedule, expected_version: u64) -> Result<(), StoreError> {
        self.check_conditional()?;
        let mut rows = lock(&self.rows);
        match rows.get_mut(&(schedule.tenant_id.clone(), schedule.id)) {
            Some(row) if row.version == expected_version => {
                *row = schedule.clone();
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

/// A trigger that remembers the schedules it was given, as EventBridge would.
#[derive(Default)]
pub struct MemoryTrigger {
    schedules: Mutex<HashMap<ScheduleId, Schedule>>,
    failing: AtomicBool,
}

impl MemoryTrigger {
    /// While set, every call answers `Unavailable` and changes nothing.
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    pub fn get(&self, id: ScheduleId) -> Option<Schedule> {
        lock(&self.schedules).get(&id).cloned()
    }

    pub fn len(&self) -> usize {
        lock(&self.schedules).len()
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
}

#[async_trait]
impl ScheduleTrigger for MemoryTrigger {
    async fn create(&self, schedule: &Schedule) -> Result<(), TriggerError> {
        self.check()?;
        lock(&self.schedules).insert(schedule.id, schedule.clone());
        Ok(())
    }

    async fn replace(&self, schedule: &Schedule) -> Result<(), TriggerError> {
        self.create(schedule).await
    }

    async fn remove(&self, schedule: &Schedule) -> Result<(), TriggerError> {
        self.check()?;
        lock(&self.schedules).remove(&schedule.id);
        Ok(())
    }
}
