//! Connections read: one by its id (`pk = CONNECTION#<id>`, see `connections.rs`),
//! strongly consistent, or every one with a webhook route (through `gsi2`): all the worker
//! and the webhook intake do with connections.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;

use crate::connections::from_item;
use crate::table::{connection_key, route_pk, Records, CONNECTION_PREFIX, SWEEP_INDEX};
use sync_core::domain::{Connection, ConnectionId};
use sync_core::ports::{ConnectionReader, StoreError};

#[derive(Clone, Debug)]
pub struct DynamoConnectionReader {
    client: Client,
    table: String,
}

impl DynamoConnectionReader {
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
impl ConnectionReader for DynamoConnectionReader {
    async fn get(&self, id: ConnectionId) -> Result<Option<Connection>, StoreError> {
        self.records()
            .get(connection_key(id))
            .await?
            .as_ref()
            .map(from_item)
            .transpose()
    }

    async fn routed(&self, route: &str) -> Result<Vec<Connection>, StoreError> {
        let items = self
            .records()
            .query_prefix(
                Some(SWEEP_INDEX),
                ("gsi2pk", route_pk(route)),
                ("gsi2sk", CONNECTION_PREFIX),
            )
            .await?;
        items.iter().map(from_item).collect()
    }
}
