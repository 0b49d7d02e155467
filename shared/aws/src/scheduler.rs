//! Schedules in EventBridge Scheduler: one per stored schedule (active or paused), named by
//! the schedule id, in our schedule group, targeting the sync queue.
//!
//! EventBridge replaces a schedule wholesale on update, so every call here builds the whole
//! definition from the stored schedule; no field can be dropped by a partial update.

use async_trait::async_trait;
use aws_sdk_scheduler::types::{
    DeadLetterConfig, FlexibleTimeWindow, FlexibleTimeWindowMode, RetryPolicy, ScheduleState,
    Target,
};
use aws_sdk_scheduler::Client;

use crate::sdk::describe;
use sync_core::config::AwsResources;
use sync_core::domain::{Schedule, SyncJob};
use sync_core::ports::{ScheduleTrigger, TriggerError};

/// How long EventBridge keeps retrying delivery of one invocation before it goes to the DLQ
/// (the maximum it allows: a day), and how many attempts it makes (also its maximum).
pub const RETRY_MAX_EVENT_AGE_SECONDS: i32 = 86_400;
pub const RETRY_MAX_ATTEMPTS: i32 = 185;

/// The EventBridge Scheduler trigger.
#[derive(Clone, Debug)]
pub struct EventBridgeTrigger {
    client: Client,
    group: String,
    queue_arn: String,
    dlq_arn: String,
    role_arn: String,
}

/// Everything EventBridge needs for one schedule, built in one place for create and update.
struct Definition {
    expression: String,
    timezone: String,
    state: ScheduleState,
    description: String,
    target: Target,
    window: FlexibleTimeWindow,
}

/// Sets every field of a [`Definition`] on a create or update request: the two SDK builders
/// are different types with the same setters, and both must always get all of them.
macro_rules! with_definition {
    ($request:expr, $d:expr) => {
        $request
            .schedule_expression($d.expression)
            .schedule_expression_timezone($d.timezone)
            .state($d.state)
            .description($d.description)
            .target($d.target)
            .flexible_time_window($d.window)
    };
}

fn unavailable(e: impl std::fmt::Display) -> TriggerError {
    TriggerError::Unavailable(e.to_string())
}

impl EventBridgeTrigger {
    pub fn new(client: Client, resources: &AwsResources) -> Self {
        Self {
            client,
            group: resources.schedule_group.clone(),
            queue_arn: resources.sync_queue_arn.clone(),
            dlq_arn: resources.sync_dlq_arn.clone(),
            role_arn: resources.scheduler_role_arn.clone(),
        }
    }

    fn definition(&self, schedule: &Schedule) -> Result<Definition, TriggerError> {
        let input =
            serde_json::to_string(&SyncJob::scheduled_template(schedule)).map_err(unavailable)?;
        let target = Target::builder()
            .arn(&self.queue_arn)
            .role_arn(&self.role_arn)
            .input(input)
            .retry_policy(
                RetryPolicy::builder()
                    .maximum_event_age_in_seconds(RETRY_MAX_EVENT_AGE_SECONDS)
                    .maximum_retry_attempts(RETRY_MAX_ATTEMPTS)
                    .build(),
            )
            .dead_letter_config(DeadLetterConfig::builder().arn(&self.dlq_arn).build())
            .build()
            .map_err(unavailable)?;
        let window = FlexibleTimeWindow::builder()
            .mode(FlexibleTimeWindowMode::Off)
            .build()
            .map_err(unavailable)?;
        Ok(Definition {
            expression: schedule.schedule_expression(),
            timezone: schedule.timezone.name().to_string(),
            state: if schedule.is_active {
                ScheduleState::Enabled
            } else {
                ScheduleState::Disabled
            },
            description: format!(
                "{} {} sync for tenant {} ({})",
                schedule.platform,
                schedule.entity_type,
                schedule.tenant_id,
                schedule.cron_expression
            )
            .chars()
            .take(512)
            .collect(),
            target,
            window,
        })
    }

    async fn create_definition(&self, schedule: &Schedule) -> Result<bool, TriggerError> {
        let d = self.definition(schedule)?;
        let request = self
            .client
            .create_schedule()
            .name(schedule.id.to_string())
            .group_name(&self.group)
            // Same schedule, same version: a retried create is the same request.
            .client_token(format!("{}-v{}", schedule.id, schedule.version));
        match with_definition!(request, d).send().await {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conflict_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(unavailable(describe(&e))),
        }
    }

    async fn update_definition(&self, schedule: &Schedule) -> Result<bool, TriggerError> {
        let d = self.definition(schedule)?;
        let request = self
            .client
            .update_schedule()
            .name(schedule.id.to_string())
            .group_name(&self.group);
        match with_definition!(request, d).send().await {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_resource_not_found_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(unavailable(describe(&e))),
        }
    }
}

#[async_trait]
impl ScheduleTrigger for EventBridgeTrigger {
    async fn create(&self, schedule: &Schedule) -> Result<(), TriggerError> {
        // One that already exists (a retried request) is brought up to date instead.
        if self.create_definition(schedule).await? {
            return Ok(());
        }
        self.update_definition(schedule).await.map(|_| ())
    }

    async fn replace(&self, schedule: &Schedule) -> Result<(), TriggerError> {
        if self.update_definition(schedule).await? {
            return Ok(());
        }
        self.create_definition(schedule).await.map(|_| ())
    }

    async fn remove(&self, schedule: &Schedule) -> Result<(), TriggerError> {
        let result = self
            .client
            .delete_schedule()
            .name(schedule.id.to_string())
            .group_name(&self.group)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_resource_not_found_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(unavailable(describe(&e))),
        }
    }
}
