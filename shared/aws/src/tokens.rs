//! OAuth token chains in DynamoDB (the one table): `pk = TOKENS#<connection>`,
//! `sk = chain`, with `version`, `origin`, the sealed tokens (`tokens_key`, `tokens_nonce`,
//! `tokens_ct`), and while a refresh is under way `lease_owner` and `lease_until` (epoch
//! ms). Taking the lease is conditional on the version read and on no live lease of another
//! owner; storing is conditional on the version and on holding the lease.
//!
//! `needs_reauth` is set on the connection's own item, bumping its version so an API write
//! that read the connection before cannot overwrite the mark.

use async_trait::async_trait;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};

use crate::sdk::describe;
use crate::table::{connection_key, millis_at, n, s, time, tokens_key, write_failure, Item};
use sync_core::domain::{Connection, ConnectionId, Sealed};
use sync_core::ports::{StateError, StoreError, StoredTokens, TokenVault};

#[derive(Clone, Debug)]
pub struct DynamoTokens {
    client: Client,
    table: String,
}

impl DynamoTokens {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

fn number(item: &Item, field: &str) -> Option<i64> {
    item.get(field)?.as_n().ok()?.parse().ok()
}

fn blob(item: &Item, field: &str) -> Option<Vec<u8>> {
    item.get(field)?.as_b().ok().map(|b| b.as_ref().to_vec())
}

/// A write whose condition failed is `Ok(false)`; anything else is an outage.
fn conditional<E, R>(e: aws_sdk_dynamodb::error::SdkError<E, R>) -> Result<bool, StateError>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match write_failure(e, StoreError::Conflict) {
        StoreError::Conflict => Ok(false),
        other => Err(StateError::Unavailable(other.to_string())),
    }
}

#[async_trait]
impl TokenVault for DynamoTokens {
    async fn load(&self, connection: ConnectionId) -> Result<Option<StoredTokens>, StateError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(tokens_key(connection)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StateError::Unavailable(describe(&e)))?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let sealed = match (
            blob(&item, "tokens_key"),
            blob(&item, "tokens_nonce"),
            blob(&item, "tokens_ct"),
        ) {
            (Some(encrypted_key), Some(nonce), Some(ciphertext)) => Some(Sealed {
                encrypted_key,
                nonce,
                ciphertext,
            }),
            _ => None,
        };
        Ok(Some(StoredTokens {
            sealed,
            version: number(&item, "version")
                .and_then(|v| u64::try_from(v).ok())
                .unwrap_or(0),
            origin: item
                .get("origin")
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default(),
            lease_owner: item.get("lease_owner").and_then(|v| v.as_s().ok()).cloned(),
            lease_until: millis_at(&item, "lease_until"),
        }))
    }

    async fn lease(
        &self,
        connection: ConnectionId,
        version: u64,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StateError> {
        let free = "(attribute_not_exists(lease_until) OR lease_until < :now OR lease_owner = :me)";
        let condition = if version == 0 {
            format!("attribute_not_exists(version) OR (version = :v AND {free})")
        } else {
            format!("version = :v AND {free}")
        };
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(tokens_key(connection)))
            .update_expression(
                "SET lease_owner = :me, lease_until = :until, version = if_not_exists(version, :v)",
            )
            .condition_expression(condition)
            .expression_attribute_values(":me", s(owner))
            .expression_attribute_values(":until", n(until.timestamp_millis()))
            .expression_attribute_values(":now", n(now.timestamp_millis()))
            .expression_attribute_values(":v", AttributeValue::N(version.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) => conditional(e),
        }
    }

    async fn store(
        &self,
        connection: ConnectionId,
        version: u64,
        sealed: &Sealed,
        origin: &str,
    ) -> Result<bool, StateError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(tokens_key(connection)))
            .update_expression(
                "SET tokens_key = :k, tokens_nonce = :nonce, tokens_ct = :ct, origin = :origin, version = :next REMOVE lease_owner, lease_until",
            )
            .condition_expression("version = :v")
            .expression_attribute_values(":k", AttributeValue::B(Blob::new(sealed.encrypted_key.clone())))
            .expression_attribute_values(":nonce", AttributeValue::B(Blob::new(sealed.nonce.clone())))
            .expression_attribute_values(":ct", AttributeValue::B(Blob::new(sealed.ciphertext.clone())))
            .expression_attribute_values(":origin", s(origin))
            .expression_attribute_values(":next", AttributeValue::N((version + 1).to_string()))
            .expression_attribute_values(":v", AttributeValue::N(version.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) => conditional(e),
        }
    }

    async fn release(
        &self,
        connection: ConnectionId,
        version: u64,
        owner: &str,
    ) -> Result<(), StateError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(tokens_key(connection)))
            .update_expression("REMOVE lease_owner, lease_until")
            .condition_expression("version = :v AND lease_owner = :me")
            .expression_attribute_values(":v", AttributeValue::N(version.to_string()))
            .expression_attribute_values(":me", s(owner))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => conditional(e).map(|_| ()),
        }
    }

    async fn needs_reauth(&self, connection: &Connection, reason: &str) -> Result<(), StateError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(connection_key(connection.id)))
            .update_expression("SET needs_reauth = :why, updated_at = :now ADD version :one")
            // Only the connection as this worker read it: one given new credentials since
            // (connected again) is not marked for the old grant's refusal.
            .condition_expression("attribute_exists(pk) AND version = :v")
            .expression_attribute_values(":v", AttributeValue::N(connection.version.to_string()))
            .expression_attribute_values(":why", s(reason))
            .expression_attribute_values(":now", time(Utc::now()))
            .expression_attribute_values(":one", n(1))
            .send()
            .await;
        match result {
            // A connection deleted or changed meanwhile is left as it is.
            Ok(_) => Ok(()),
            Err(e) => conditional(e).map(|_| ()),
        }
    }
}
