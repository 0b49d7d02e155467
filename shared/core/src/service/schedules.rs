//! Schedule use cases: create, read, update, delete and preview, keeping the store and the
//! trigger consistent.
//!
//! Every change writes the store first (conditionally, so concurrent changes cannot lose each
//! other) and the trigger second. If the trigger write fails, the store write is undone
//! before the error is returned, so a failed request leaves no half-made schedule behind. If
//! the undo itself fails, the store still holds the user's intent, and the store is the source
//! of truth that the trigger side is repaired to match.

use chrono::{DateTime, SubsecRound, Utc};
use std::sync::Arc;

use crate::clock::Clock;
use crate::domain::{NewSchedule, Schedule, ScheduleId, SchedulePatch, TenantId};
use crate::ports::{ConnectionStore, ScheduleStore, ScheduleTrigger, StoreError};
use crate::time::{ScheduleExpression, Zone};

/// The most fire times a preview returns.
pub const MAX_PREVIEW_COUNT: usize = 100;

/// Why a use case failed, in terms a caller can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// No such record for this tenant; names the kind of record.
    #[error("no {0} with that id")]
    NotFound(&'static str),
    /// The request was valid but cannot apply to the current state.
    #[error("{0}")]
    Conflict(String),
    /// A field's value is acceptable alone but not in this schedule.
    #[error("{message}")]
    Invalid { field: String, message: String },
    /// A dependency failed; the text is for logs, never for the client.
    #[error("a dependency is unavailable: {0}")]
    Unavailable(String),
}

/// A field error: the value is acceptable alone but not in this record.
pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> ServiceError {
    ServiceError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::AlreadyExists | StoreError::Conflict => ServiceError::Conflict(
                "the schedule was changed by another request; fetch it and try again".into(),
            ),
            StoreError::Unavailable(detail) => ServiceError::Unavailable(detail),
        }
    }
}

/// A computed preview of fire times.
#[derive(Debug, Clone, PartialEq)]
pub struct Preview {
    pub schedule_expression: String,
    pub timezone: Zone,
    pub next_runs: Vec<DateTime<Utc>>,
}

/// Schedule use cases over a store, a trigger and a clock.
#[derive(Clone)]
pub struct ScheduleService {
    store: Arc<dyn ScheduleStore>,
    trigger: Arc<dyn ScheduleTrigger>,
    connections: Arc<dyn ConnectionStore>,
    clock: Arc<dyn Clock>,
}

impl ScheduleService {
    pub fn new(
        store: Arc<dyn ScheduleStore>,
        trigger: Arc<dyn ScheduleTrigger>,
        connections: Arc<dyn ConnectionStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            trigger,
            connections,
            clock,
        }
    }

    /// Now, at the precision records are stored with (milliseconds), so what a write
    /// returns is exactly what a later read returns.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now().trunc_subsecs(3)
    }

    pub async fn create(
        &self,
        tenant: &TenantId,
        new: NewSchedule,
    ) -> Result<Schedule, ServiceError> {
        let now = self.now();
        ensure_fires(&new.expression, new.timezone, now)?;
        match self.connections.get(new.credential_id).await? {
            Some(c) if &c.tenant_id == tenant && c.platform == new.platform => {}
            Some(c) if &c.tenant_id == tenant => {
                return Err(invalid(
                    "credential_id",
                    format!(
                        "credential_id names a {} connection, but platform is {}",
                        c.platform, new.platform
                    ),
                ))
            }
            _ => {
                return Err(invalid(
                    "credential_id",
                    "no connection with that id; create one with POST /api/connections",
                ))
            }
        }
        let schedule = Schedule {
            id: ScheduleId::new_random(),
            tenant_id: tenant.clone(),
            credential_id: new.credential_id,
            platform: new.platform,
            entity_type: new.entity_type,
            cron_expression: new.cron_expression,
            expression: new.expression,
            sync_mode: new.sync_mode,
            timezone: new.timezone,
            is_active: new.is_active,
            last_run_at: None,
            created_at: now,
            updated_at: now,
            version: 1,
        };
        self.store.insert(&schedule).await?;
        if let Err(e) = self.trigger.create(&schedule).await {
            tracing::error!(schedule_id = %schedule.id, error = %e, "trigger create failed; undoing the stored schedule");
            if let Err(undo) = self
                .store
                .delete(tenant, schedule.id, schedule.version)
                .await
            {
                tracing::error!(schedule_id = %schedule.id, error = %undo, "undo of the stored schedule failed; repair will recreate its trigger");
            }
            return Err(ServiceError::Unavailable(e.to_string()));
        }
        Ok(schedule)
    }

    pub async fn get(&self, tenant: &TenantId, id: ScheduleId) -> Result<Schedule, ServiceError> {
        self.store
            .get(tenant, id)
            .await?
            .ok_or(ServiceError::NotFound("schedule"))
    }

    pub async fn list(&self, tenant: &TenantId) -> Result<Vec<Schedule>, ServiceError> {
        Ok(self.store.list(tenant).await?)
    }

    pub async fn update(
        &self,
        tenant: &TenantId,
        id: ScheduleId,
        patch: SchedulePatch,
    ) -> Result<Schedule, ServiceError> {
        let current = self.get(tenant, id).await?;
        let now = self.now();
        let mut next = current.clone();
        if let Some((text, expression)) = patch.cron_expression {
            next.cron_expression = text;
            next.expression = expression;
        }
        if let Some(mode) = patch.sync_mode {
            next.sync_mode = mode;
        }
        if let Some(zone) = patch.timezone {
            next.timezone = zone;
        }
        if let Some(active) = patch.is_active {
            next.is_active = active;
        }
        ensure_fires(&next.expression, next.timezone, now)?;
        next.updated_at = now;
        next.version = current.version + 1;
        self.store.replace(&next, current.version).await?;
        if let Err(e) = self.trigger.replace(&next).await {
            tracing::error!(schedule_id = %id, error = %e, "trigger replace failed; restoring the previous schedule");
            let mut restored = current;
            restored.version = next.version + 1;
            if let Err(undo) = self.store.replace(&restored, next.version).await {
                tracing::error!(schedule_id = %id, error = %undo, "restore failed; repair will align the trigger with the store");
            }
            return Err(ServiceError::Unavailable(e.to_string()));
        }
        Ok(next)
    }

    pub async fn delete(&self, tenant: &TenantId, id: ScheduleId) -> Result<(), ServiceError> {
        let current = self.get(tenant, id).await?;
        self.store.delete(tenant, id, current.version).await?;
        if let Err(e) = self.trigger.remove(&current).await {
            tracing::error!(schedule_id = %id, error = %e, "trigger remove failed; putting the schedule back");
            if let Err(undo) = self.store.insert(&current).await {
                tracing::error!(schedule_id = %id, error = %undo, "put-back failed; repair will remove the orphaned trigger");
            }
            return Err(ServiceError::Unavailable(e.to_string()));
        }
        Ok(())
    }

    /// Fire times of an expression, computed by the same code that computes `next_run_at`.
    /// A rate counts from `after`, as if the schedule were created then.
    pub fn preview(
        &self,
        expression: &ScheduleExpression,
        zone: Zone,
        after: Option<DateTime<Utc>>,
        count: usize,
    ) -> Preview {
        let after = after.unwrap_or_else(|| self.clock.now());
        Preview {
            schedule_expression: expression.to_eventbridge(),
            timezone: zone,
            next_runs: expression.upcoming(zone, after, after, count.min(MAX_PREVIEW_COUNT)),
        }
    }
}

/// A schedule that can never fire again is almost certainly a mistake (31 February, a year
/// in the past); refuse it rather than store something that silently does nothing.
fn ensure_fires(
    expression: &ScheduleExpression,
    zone: Zone,
    now: DateTime<Utc>,
) -> Result<(), ServiceError> {
    match expression.next_after(zone, now, now) {
        Some(_) => Ok(()),
        None => Err(invalid(
            "cron_expression",
            format!(
                "'{}' never fires after {}: check the day, month and year fields",
                expression.to_eventbridge(),
                now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        )),
    }
}

#[cfg(test)]
#[path = "schedules_tests.rs"]
mod tests;
