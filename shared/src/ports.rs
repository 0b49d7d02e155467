//! Ports: the narrow capabilities the domain needs from the outside world. Each function
//! gets only the ports it uses, mirroring one narrow IAM policy per function.

use async_trait::async_trait;

use crate::domain::{Schedule, ScheduleId, TenantId};

/// What can go wrong in a store, in domain terms (adapters translate SDK errors to these).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A conditional create found a record with the same key.
    #[error("a record with this key already exists")]
    AlreadyExists,
    /// A conditional write found the record changed or gone since it was read.
    #[error("the record was changed or removed by another request")]
    Conflict,
    /// The store could not be reached or refused the call; the text is for logs only.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
}

/// Durable storage of schedules, partitioned by tenant. The source of truth.
#[async_trait]
pub trait ScheduleStore: Send + Sync + 'static {
    /// Stores a new schedule; `AlreadyExists` if its id is taken.
    async fn insert(&self, schedule: &Schedule) -> Result<(), StoreError>;
    async fn get(&self, tenant: &TenantId, id: ScheduleId) -> Result<Option<Schedule>, StoreError>;
    /// Every schedule of the tenant, oldest first.
    async fn list(&self, tenant: &TenantId) -> Result<Vec<Schedule>, StoreError>;
    /// Writes `schedule` over the stored one if, and only if, the stored one is at
    /// `expected_version`; `Conflict` otherwise (including when it is gone).
    async fn replace(&self, schedule: &Schedule, expected_version: u64) -> Result<(), StoreError>;
    /// Removes the schedule if it is at `expected_version`; `Conflict` otherwise.
    async fn delete(
        &self,
        tenant: &TenantId,
        id: ScheduleId,
        expected_version: u64,
    ) -> Result<(), StoreError>;
}

/// Why the trigger side (EventBridge Scheduler) refused or failed a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TriggerError {
    #[error("the scheduler is unavailable: {0}")]
    Unavailable(String),
}

/// The thing that fires schedules: EventBridge Scheduler in AWS. Every call carries the whole
/// schedule, because EventBridge replaces a schedule wholesale on update.
#[async_trait]
pub trait ScheduleTrigger: Send + Sync + 'static {
    async fn create(&self, schedule: &Schedule) -> Result<(), TriggerError>;
    /// Replaces the trigger with one built from `schedule`; creates it if it is missing.
    async fn replace(&self, schedule: &Schedule) -> Result<(), TriggerError>;
    /// Removes the trigger; a trigger that is already gone is not an error.
    async fn remove(&self, schedule: &Schedule) -> Result<(), TriggerError>;
}
