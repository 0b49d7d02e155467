//! Schedules in EventBridge Scheduler: one per stored schedule (active or paused), named by
//! the schedule id, in our schedule group, targeting the sync queue. Creating is here;
//! rewriting and removing are [`crate::EventBridgeAligner`]'s, which this builds on (an
//! update never creates: the use case decides, from the store, whether to create); reading
//! them back, for the repair, is [`crate::EventBridgeInventory`]'s.

use async_trait::async_trait;
use aws_sdk_scheduler::Client;

use crate::scheduler_align::{unavailable, with_definition, EventBridgeAligner};
use crate::sdk::describe;
use sync_core::config::AwsResources;
use sync_core::domain::Schedule;
use sync_core::ports::{ScheduleTrigger, TriggerAligner, TriggerError, TriggerWrite};

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
