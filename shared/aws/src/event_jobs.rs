//! The coalescer's one write to the event log (`events.rs` keeps the log): an entry marked
//! with the sync job its event went into.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;

use crate::sdk::describe;
use crate::table::{event_log_key, s};
use sync_core::domain::{ConnectionId, EventStatus};
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
    async fn set_job(
        &self,
        connection: ConnectionId,
        log_key: &str,
        job_id: &str,
    ) -> Result<(), EventLogError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(event_log_key(connection, log_key)))
            .update_expression("SET #status = :coalesced, job_id = :job")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":coalesced", s(EventStatus::Coalesced.as_str()))
            .expression_attribute_values(":job", s(job_id))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| EventLogError::Unavailable(describe(&e)))
    }
}
