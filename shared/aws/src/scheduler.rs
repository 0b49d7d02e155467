//! Schedules in EventBridge Scheduler: one per stored schedule (active or paused), named by
//! the schedule id, in our schedule group, targeting the sync queue.
//!
//! EventBridge replaces a schedule wholesale on update, so every call here builds the whole
//! definition from the stored schedule; no field can be dropped by a partial update. An
//! update never creates: a schedule a concurrent delete removed stays removed (the use case
//! decides, from the store, whether to create it).

use async_trait::async_trait;
use aws_sdk_scheduler::types::{
    DeadLetterConfig, FlexibleTimeWindow, FlexibleTimeWindowMode, RetryPolicy, ScheduleState,
    Target,
};
use aws_sdk_scheduler::Client;

use crate::sdk::describe;
use sync_core::config::AwsResources;
use sync_core::domain::{Schedule, TriggerDefinition};
use sync_core::ports::{
    ScheduleTrigger, TriggerError, TriggerInventory, TriggerState, TriggerWrite,
};

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

    async fn create_definition(&self, schedule: &Schedule) -> Result<bool, TriggerError> {
        let d = self.definition(schedule)?;
        let request = self
            .client
            .create_schedule()
            .name(schedule.id.to_string())
            .group_name(&self.group);
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

/// The names of every schedule in `group`, through every page of the listing.
pub async fn schedule_names(client: &Client, group: &str) -> Result<Vec<String>, TriggerError> {
    let mut pages = client
        .list_schedules()
        .group_name(group)
        .into_paginator()
        .send();
    let mut names = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| unavailable(describe(&e)))?;
        names.extend(
            page.schedules()
                .iter()
                .filter_map(|s| s.name().map(str::to_string)),
        );
    }
    Ok(names)
}

#[async_trait]
impl TriggerInventory for EventBridgeTrigger {
    async fn names(&self) -> Result<Vec<String>, TriggerError> {
        schedule_names(&self.client, &self.group).await
    }

    async fn get(&self, name: &str) -> Result<Option<TriggerState>, TriggerError> {
        let out = match self
            .client
            .get_schedule()
            .name(name)
            .group_name(&self.group)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_resource_not_found_exception()) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(unavailable(describe(&e))),
        };
        let target = out.target();
        let target_current = target.is_some_and(|t| {
            t.arn() == self.queue_arn
                && t.role_arn() == self.role_arn
                && t.dead_letter_config().and_then(|d| d.arn()) == Some(self.dlq_arn.as_str())
        });
        Ok(Some(TriggerState {
            name: name.to_string(),
            definition: TriggerDefinition {
                expression: out.schedule_expression().unwrap_or_default().to_string(),
                timezone: out
                    .schedule_expression_timezone()
                    .unwrap_or("UTC")
                    .to_string(),
                enabled: out.state() == Some(&ScheduleState::Enabled),
                input: target
                    .and_then(|t| t.input())
                    .unwrap_or_default()
                    .to_string(),
                flexible_window_minutes: out
                    .flexible_time_window()
                    .filter(|w| w.mode() == &FlexibleTimeWindowMode::Flexible)
                    .and_then(|w| w.maximum_window_in_minutes())
                    .and_then(|m| u32::try_from(m).ok()),
            },
            target_current,
        }))
    }
}
