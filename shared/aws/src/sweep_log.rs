//! The sweeper's status in DynamoDB: one item (`SWEEPER` / `STATUS`) holding the last
//! sweep and the totals, as JSON, replaced by each sweep.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;

use crate::sdk::describe;
use crate::table::{get_s, s, sweeper_key};
use sync_core::ports::{StoreError, SweepLog, SweepStatus};

#[derive(Clone, Debug)]
pub struct DynamoSweepLog {
    client: Client,
    table: String,
}

impl DynamoSweepLog {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

#[async_trait]
impl SweepLog for DynamoSweepLog {
    async fn last(&self) -> Result<Option<SweepStatus>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(sweeper_key()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::Unavailable(describe(&e)))?;
        let Some(item) = out.item() else {
            return Ok(None);
        };
        // A status that does not read is replaced by the next sweep's (its totals start
        // again), rather than keep every sweep from going on where the last stopped.
        match serde_json::from_str(get_s(item, "status")?) {
            Ok(status) => Ok(Some(status)),
            Err(e) => {
                tracing::error!(error = %e, "stored sweep status does not read; a new one replaces it");
                Ok(None)
            }
        }
    }

    async fn record(&self, status: &SweepStatus) -> Result<(), StoreError> {
        let mut item = sweeper_key();
        item.insert("kind".into(), s("sweeper-status"));
        item.insert(
            "status".into(),
            s(
                serde_json::to_string(status)
                    .map_err(|e| StoreError::Unavailable(e.to_string()))?,
            ),
        );
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| StoreError::Unavailable(describe(&e)))?;
        Ok(())
    }
}
