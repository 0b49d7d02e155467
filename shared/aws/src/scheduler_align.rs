//! Rewriting and removing EventBridge Scheduler schedules, never creating one: what the
//! sync worker holds (a job fired by a trigger that lags behind its schedule corrects it),
//! and what [`crate::EventBridgeTrigger`] builds on to create.
//!
//! EventBridge replaces a schedule wholesale on update, so every write builds the whole
//! definition from the stored schedule; no field can be dropped by a partial update. An
//! update never creates: a schedule a concurrent delete removed stays removed.

use async_trait::async_trait;
use aws_sdk_scheduler::types::{
    DeadLetterConfig, FlexibleTimeWindow, FlexibleTimeWindowMode, RetryPolicy, ScheduleState,
    Target,
};
use aws_sdk_scheduler::Client;

use crate::sdk::describe;
use sync_core::config::AwsResources;
use sync_core::domain::{Schedule, TriggerDefinition};
use sync_core::ports::{TriggerAligner, TriggerError, TriggerWrite};

/// How long EventBridge keeps retrying delivery of one invocation before it goes to the DLQ
/// (the maximum it allows: a day), and how many attempts it makes (also its maximum).
pub const RETRY_MAX_EVENT_AGE_SECONDS: i32 = 86_400;
pub const RETRY_MAX_ATTEMPTS: i32 = 185;

/// Updates and deletes of our schedules.
#[derive(Clone, Debug)]
pub struct EventBridgeAligner {
    client: Client,
    pub(crate) group: String,
    pub(crate) queue_arn: String,
    pub(crate) dlq_arn: String,
    pub(crate) role_arn: String,
}

/// Everything EventBridge needs for one schedule, built in one place for create and update.
pub(crate) struct Definition {
    pub(crate) expression: String,
    pub(crate) timezone: String,
    pub(crate) state: ScheduleState,
    pub(crate) description: String,
    pub(crate) target: Target,
    pub(crate) window: FlexibleTimeWindow,
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
pub(crate) use with_definition;

pub(crate) fn unavailable(e: impl std::fmt::Display) -> TriggerError {
    TriggerError::Unavailable(e.to_string())
}

impl EventBridgeAligner {
    pub fn new(client: Client, resources: &AwsResources) -> Self {
        Self {
            client,
            group: resources.schedule_group.clone(),
            queue_arn: resources.sync_queue_arn.clone(),
            dlq_arn: resources.sync_dlq_arn.clone(),
            role_arn: resources.scheduler_role_arn.clone(),
        }
    }

    pub(crate) fn definition(&self, schedule: &Schedule) -> Result<Definition, TriggerError> {
        let TriggerDefinition {
            expression,
            timezone,
            enabled,
            input,
            flexible_window_minutes,
        } = schedule.trigger_definition();
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
        let window = match flexible_window_minutes {
            Some(minutes) => FlexibleTimeWindow::builder()
                .mode(FlexibleTimeWindowMode::Flexible)
                .maximum_window_in_minutes(i32::try_from(minutes).unwrap_or(i32::MAX))
                .build(),
            None => FlexibleTimeWindow::builder()
                .mode(FlexibleTimeWindowMode::Off)
                .build(),
        }
        .map_err(unavailable)?;
        Ok(Definition {
            expression,
            timezone,
            state: if enabled {
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

    /// Whether the schedule was there to update.
    pub(crate) async fn update_definition(
        &self,
        schedule: &Schedule,
    ) -> Result<bool, TriggerError> {
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
impl TriggerAligner for EventBridgeAligner {
    async fn update(&self, schedule: &Schedule) -> Result<TriggerWrite, TriggerError> {
        Ok(if self.update_definition(schedule).await? {
            TriggerWrite::Applied
        } else {
            TriggerWrite::Missing
        })
    }

    async fn remove(&self, name: &str) -> Result<(), TriggerError> {
        let result = self
            .client
            .delete_schedule()
            .name(name)
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
