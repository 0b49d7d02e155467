//! The ports of alerts: the issues, the tenants' destinations, and sending a notice.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::domain::{AlertDestination, AlertIssue, AlertStatus, TenantId};

/// Durable alert issues, one per (tenant, subject, kind).
#[async_trait]
pub trait AlertIssues: Send + Sync + 'static {
    async fn get(&self, tenant: &TenantId, id: &str) -> Result<Option<AlertIssue>, StoreError>;
    /// Writes `issue` if the stored one is at `expected` (`None`: there is none); `Conflict`
    /// otherwise. The caller has bumped the issue's version.
    async fn put(&self, issue: &AlertIssue, expected: Option<u64>) -> Result<(), StoreError>;
    /// The tenant's issues, most recently changed first; only those in `status` if given.
    async fn list(
        &self,
        tenant: &TenantId,
        status: Option<AlertStatus>,
    ) -> Result<Vec<AlertIssue>, StoreError>;
    /// Every tenant's issues with a notice due by `now`, earliest due first, up to `limit`
    /// (through an index that holds only issues with something due, keyed by when: one told
    /// or put off leaves its place, so none is passed over for ever).
    async fn due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<AlertIssue>, StoreError>;
    /// Every tenant's open issues (through an index that holds only those: as many as
    /// conditions that hold, not as many as issues ever opened).
    async fn open(&self) -> Result<Vec<AlertIssue>, StoreError>;
}

/// The tenants' alert destinations.
#[async_trait]
pub trait AlertDestinations: Send + Sync + 'static {
    async fn insert(&self, destination: &AlertDestination) -> Result<(), StoreError>;
    /// The tenant's destinations, oldest first.
    async fn list(&self, tenant: &TenantId) -> Result<Vec<AlertDestination>, StoreError>;
    /// Removes one; `false` when the tenant had none by that id.
    async fn delete(&self, tenant: &TenantId, id: &str) -> Result<bool, StoreError>;
}

/// The deployment's alert topic (SNS in AWS).
#[async_trait]
pub trait AlertTopic: Send + Sync + 'static {
    /// Publishes `message` with `subject`, the tenant as a message attribute (for
    /// subscription filter policies) and `dedup` as the notice's id.
    async fn publish(
        &self,
        tenant: &TenantId,
        subject: &str,
        message: &str,
        dedup: &str,
    ) -> Result<(), String>;
}
