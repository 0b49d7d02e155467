//! When a stream's webhooks last arrived, noted by the coalescer on the stream's own item
//! (`pk = STREAM#<connection>`, `sk = <entity>`, see `sync_state.rs`) as `webhook_at`
//! (epoch ms): one update per stream and batch, which only ever moves it forward. The
//! worker reads it back with the lease, the sweeper with the stream's state.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};

use crate::sdk::{condition_failed, describe};
use sync_core::ports::{StateError, SyncKey, WebhookArrivals};

#[derive(Clone, Debug)]
pub struct DynamoWebhookArrivals {
    client: Client,
    table: String,
}

impl DynamoWebhookArrivals {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

#[async_trait]
impl WebhookArrivals for DynamoWebhookArrivals {
    async fn arrived(&self, key: SyncKey, at: DateTime<Utc>) -> Result<(), StateError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(crate::table::stream_key(key.connection, key.entity)))
            .update_expression("SET webhook_at = :at")
            .condition_expression("attribute_not_exists(webhook_at) OR webhook_at < :at")
            .expression_attribute_values(
                ":at",
                AttributeValue::N(at.timestamp_millis().to_string()),
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // A later arrival is noted already.
            Err(e) if condition_failed(&e) => Ok(()),
            Err(e) => Err(StateError::Unavailable(describe(&e))),
        }
    }
}
