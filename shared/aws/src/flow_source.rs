//! The flows from a connection, as the worker finds them: through the tenant index
//! (`gsi1pk = SOURCE#<connection>`, see `flows.rs`), reading only.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;

use crate::flows::from_item;
use crate::table::{flow_source_pk, Records, FLOW_PREFIX, TENANT_INDEX};
use sync_core::domain::{ConnectionId, Flow};
use sync_core::ports::{FlowSource, StoreError};

#[derive(Clone, Debug)]
pub struct DynamoFlowSource {
    client: Client,
    table: String,
}

impl DynamoFlowSource {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    fn records(&self) -> Records<'_> {
        Records {
            client: &self.client,
            table: &self.table,
        }
    }
}

#[async_trait]
impl FlowSource for DynamoFlowSource {
    async fn flows_from(&self, connection: ConnectionId) -> Result<Vec<Flow>, StoreError> {
        let items = self
            .records()
            .query_prefix(
                Some(TENANT_INDEX),
                ("gsi1pk", flow_source_pk(connection)),
                ("gsi1sk", FLOW_PREFIX),
            )
            .await?;
        let mut flows = items.iter().map(from_item).collect::<Result<Vec<_>, _>>()?;
        flows.sort_by_key(|f| (f.created_at, f.id));
        Ok(flows)
    }
}
