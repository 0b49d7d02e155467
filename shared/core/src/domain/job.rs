//! The sync job a schedule (or, later, a webhook) puts on the sync queue.

use serde::{Deserialize, Serialize};

use super::Schedule;

/// Placeholder EventBridge Scheduler replaces with the scheduled fire time (RFC 3339).
pub const SCHEDULED_TIME_PLACEHOLDER: &str = "<aws.scheduler.scheduled-time>";
/// Placeholder EventBridge Scheduler replaces with a unique id per invocation.
pub const EXECUTION_ID_PLACEHOLDER: &str = "<aws.scheduler.execution-id>";

/// One message on the sync queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncJob {
    pub schedule_id: Option<String>,
    pub tenant_id: String,
    pub credential_id: String,
    pub platform: String,
    pub entity_type: String,
    pub sync_mode: String,
    /// `schedule`, `webhook`, `manual`, `catch_up` or `retry`.
    pub trigger: String,
    /// When the trigger fired (for schedules: EventBridge's scheduled time).
    pub scheduled_time: String,
    /// Unique per invocation; lets the worker drop a redelivered message.
    pub execution_id: String,
    /// For webhook jobs: the ids of the records the coalesced events named.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<String>,
}

impl SyncJob {
    /// The job EventBridge sends when `schedule` fires, with EventBridge's placeholders in
    /// place of the time and execution id; EventBridge fills them in at each invocation.
    pub fn scheduled_template(schedule: &Schedule) -> Self {
        SyncJob {
            schedule_id: Some(schedule.id.to_string()),
            tenant_id: schedule.tenant_id.to_string(),
            credential_id: schedule.credential_id.to_string(),
            platform: schedule.platform.to_string(),
            entity_type: schedule.entity_type.to_string(),
            sync_mode: schedule.sync_mode.to_string(),
            trigger: "schedule".to_string(),
            scheduled_time: SCHEDULED_TIME_PLACEHOLDER.to_string(),
            execution_id: EXECUTION_ID_PLACEHOLDER.to_string(),
            ids: Vec::new(),
        }
    }
}
