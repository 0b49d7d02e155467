//! The coalescer's one write to the event log (`events.rs` keeps the log): an event's
//! claim, which is its log entry, marked with the sync job the event went into and the
//! token of the message that carried it. The first message marked carries the event: the
//! mark is refused to a message of the same event with another token.

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
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
        let token = event.claim_token();
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(event_claim_key(event.platform, &event.key_hash)))
            .update_expression("SET #status = :coalesced, job_id = :job, marked_by = :token")
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(job_id) OR marked_by = :token)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":coalesced", s(EventStatus::Coalesced.as_str()))
            .expression_attribute_values(":job", s(job_id))
            .expression_attribute_values(":token", s(token))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let e = match result {
            Ok(_) => return Ok(true),
            Err(e) => e,
        };
        match e.as_service_error() {
            // Marked by another message of the event, which carries it; or the claim is
            // gone (past its window, e.g. a message redriven from the dead-letter queue
            // days later): carried, unmarked.
            Some(UpdateItemError::ConditionalCheckFailedException(refused)) => {
                Ok(refused.item().is_none_or(|item| item.is_empty()))
            }
            _ => Err(EventLogError::Unavailable(describe(&e))),
        }
    }
}
