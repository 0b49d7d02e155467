//! Used OAuth `state` nonces in DynamoDB (the one table).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};

use crate::table::{oauth_state_key, write_failure};
use sync_core::ports::{OAuthStates, StoreError};

/// Used OAuth state nonces: `pk = OAUTHSTATE#<nonce>`, `sk = state`, with the table's
/// `expires_at` TTL set to when the state expires. The put is conditional on the item not
/// existing, so a nonce is used once.
#[derive(Clone, Debug)]
pub struct DynamoOAuthStates {
    client: Client,
    table: String,
}

impl DynamoOAuthStates {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

#[async_trait]
impl OAuthStates for DynamoOAuthStates {
    async fn consume(&self, nonce: &str, expires: DateTime<Utc>) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(oauth_state_key(nonce)))
            .item(
                "expires_at",
                AttributeValue::N(expires.timestamp().to_string()),
            )
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) => match write_failure(e, StoreError::AlreadyExists) {
                StoreError::AlreadyExists => Ok(false),
                other => Err(other),
            },
        }
    }
}
