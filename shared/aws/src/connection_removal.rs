//! Removing a connection's item (`pk = CONNECTION#<id>`, see `connections.rs`), on the
//! version read: the API's alone (connection setup and the worker cannot).

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;

use crate::table::{connection_key, Records};
use sync_core::domain::ConnectionId;
use sync_core::ports::{ConnectionRemoval, StoreError};

#[derive(Clone, Debug)]
pub struct DynamoConnectionRemoval {
    client: Client,
    table: String,
}

impl DynamoConnectionRemoval {
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
impl ConnectionRemoval for DynamoConnectionRemoval {
    async fn delete(&self, id: ConnectionId, expected_version: u64) -> Result<(), StoreError> {
        self.records()
            .delete(connection_key(id), expected_version)
            .await
    }
}
