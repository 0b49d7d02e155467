//! Schedules in EventBridge Scheduler: one per stored schedule (active or paused), named by
//! the schedule id, in our schedule group, targeting the sync queue. Creating is here;
//! rewriting and removing are [`crate::EventBridgeAligner`]'s, which this builds on (an
//! update never creates: the use case decides, from the store, whether to create); reading
//! them back is here too, for the repair.

use async_trait::async_trait;
use aws_sdk_scheduler::types::{FlexibleTimeWindowMode, ScheduleState};
use aws_sdk_scheduler::Client;

use crate::scheduler_align::{unavailable, with_definition, EventBridgeAligner};
use crate::sdk::describe;
use sync_core::config::AwsResources;
use sync_core::domain::{Schedule, TriggerDefinition};
use sync_core::ports::{
    ScheduleTrigger, TriggerAligner, TriggerError, TriggerInventory, TriggerState, TriggerWrite,
};

pub use crate::scheduler_align::{RETRY_MAX_ATTEMPTS, RETRY_MAX_EVENT_AGE_SECONDS};

/// The EventBridge Scheduler trigger: creates, and (through its aligner) rewrites and
/// removes.
#[derive(Clone, Debug)]
pub struct EventBridgeTrigger {
    client: Client,
    aligner: EventBridgeAligner,
}

impl EventBridgeTrigger {
    pub fn new(client: Client, resources: &AwsResources) -> Self {
        Self {
            aligner: EventBridgeAligner::new(client.clone(), resources),
            client,
        }
    }

    /// Whether it was created (not there before).
    async fn create_definition(&self, schedule: &Schedule) -> Result<bool, TriggerError> {
        let d = self.aligner.definition(schedule)?;
        let request = self
            .client
            .create_schedule()
            .name(schedule.id.to_string())
            .group_name(&self.aligner.group);
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
}

#[async_trait]
impl ScheduleTrigger for EventBridgeTrigger {
    async fn create(&self, schedule: &Schedule) -> Result<(), TriggerError> {
        // One that already exists (a retried request) is brought up to date instead.
        if self.create_definition(schedule).await? {
            return Ok(());
        }
        self.aligner.update_definition(schedule).await.map(|_| ())
    }
}

#[async_trait]
impl TriggerAligner for EventBridgeTrigger {
    async fn update(&self, schedule: &Schedule) -> Result<TriggerWrite, TriggerError> {
        self.aligner.update(schedule).await
    }

    async fn remove(&self, name: &str) -> Result<(), TriggerError> {
        self.aligner.remove(name).await
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
        schedule_names(&self.client, &self.aligner.group).await
    }

    async fn get(&self, name: &str) -> Result<Option<TriggerState>, TriggerError> {
        let out = match self
            .client
            .get_schedule()
            .name(name)
            .group_name(&self.aligner.group)
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
            let a = &self.aligner;
            t.arn() == a.queue_arn
                && t.role_arn() == a.role_arn
                && t.dead_letter_config().and_then(|d| d.arn()) == Some(a.dlq_arn.as_str())
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
