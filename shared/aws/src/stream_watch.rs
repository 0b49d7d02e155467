//! Streams as the sweeper looks at them (`sync_state.rs` keeps their lease, cursor and
//! follow-up): one consistent read of the stream's item, never a write.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};

use crate::sdk::describe;
use crate::table::{millis_at, stream_key};
use sync_core::ports::{StateError, StreamState, StreamWatch, SyncKey};

#[derive(Clone, Debug)]
pub struct DynamoStreamWatch {
    client: Client,
    table: String,
}

impl DynamoStreamWatch {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

#[async_trait]
impl StreamWatch for DynamoStreamWatch {
    async fn state(&self, key: SyncKey, now: DateTime<Utc>) -> Result<StreamState, StateError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(stream_key(key.connection, key.entity)))
            .projection_expression("#owner, lease_until, pending, webhook_at")
            .expression_attribute_names("#owner", "owner")
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StateError::Unavailable(describe(&e)))?;
        let Some(item) = out.item() else {
            return Ok(StreamState::default());
        };
        let lease_until = millis_at(item, "lease_until");
        Ok(StreamState {
            busy: item.contains_key("owner") && lease_until.is_some_and(|u| u >= now),
            lease_until,
            pending: item.contains_key("pending"),
            webhook_at: millis_at(item, "webhook_at"),
        })
    }
}
