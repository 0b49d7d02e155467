//! The coalescer's one write to the event log (`events.rs` keeps the log): an event's
//! claim, which is its log entry, marked with the sync job the event went into, only while
//! the claim is still the one that queued it.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;

use crate::sdk::describe;
use crate::table::{event_claim_key, s};
use sync_core::domain::{EventStatus, QueuedEvent};
use sync_core::ports::{EventJobs, EventLogError};

#[derive(Clone, Debug)]
pub struct DynamoEventJobs {
    client: Client,
    table: String,
}

impl DynamoEventJobs {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

#[async_trait]
impl EventJobs for DynamoEventJobs {
    async fn set_job(&self, event: &QueuedEvent, job_id: &str) -> Result<bool, EventLogError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(event_claim_key(event.platform, &event.key_hash)))
            .update_expression("SET #status = :coalesced, job_id = :job")
            .condition_expression("claim_token = :token")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":coalesced", s(EventStatus::Coalesced.as_str()))
            .expression_attribute_values(":job", s(job_id))
            .expression_attribute_values(":token", s(event.claim_token()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(EventLogError::Unavailable(describe(&e))),
        }
    }
}
