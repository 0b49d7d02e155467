//! The schedules in our EventBridge Scheduler group as they are, read back for the repair
//! (which compares them with the store): their names, and each one's definition and
//! target. Reading only; creating is [`crate::EventBridgeTrigger`]'s.

use async_trait::async_trait;
use aws_sdk_scheduler::types::{FlexibleTimeWindowMode, ScheduleState};
use aws_sdk_scheduler::Client;

use crate::scheduler_align::unavailable;
use crate::sdk::describe;
use sync_core::config::AwsResources;
use sync_core::domain::TriggerDefinition;
use sync_core::ports::{NamesPage, TriggerError, TriggerInventory, TriggerState};

#[derive(Clone, Debug)]
pub struct EventBridgeInventory {
    client: Client,
    group: String,
    /// What a schedule's target must be to be current.
    queue_arn: String,
    dlq_arn: String,
    role_arn: String,
}

impl EventBridgeInventory {
    pub fn new(client: Client, resources: &AwsResources) -> Self {
        Self {
            client,
            group: resources.schedule_group.clone(),
            queue_arn: resources.sync_queue_arn.clone(),
            dlq_arn: resources.sync_dlq_arn.clone(),
            role_arn: resources.scheduler_role_arn.clone(),
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
impl TriggerInventory for EventBridgeInventory {
    async fn names(&self) -> Result<Vec<String>, TriggerError> {
        schedule_names(&self.client, &self.group).await
    }

    async fn names_page(
        &self,
        prefix: &str,
        token: Option<&str>,
        limit: usize,
    ) -> Result<NamesPage, TriggerError> {
        let page = self
            .client
            .list_schedules()
            .group_name(&self.group)
            .name_prefix(prefix)
            .max_results(i32::try_from(limit.clamp(1, 100)).unwrap_or(100))
            .set_next_token(token.map(str::to_string))
            .send()
            .await
            .map_err(|e| unavailable(describe(&e)))?;
        Ok(NamesPage {
            names: page
                .schedules()
                .iter()
                .filter_map(|s| s.name().map(str::to_string))
                .collect(),
            next: page
                .next_token()
                .filter(|t| !t.is_empty())
                .map(str::to_string),
        })
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
