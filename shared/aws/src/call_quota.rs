//! Platform call limits shared by every worker process (see `sync_core::platforms::limits`),
//! in the table under `pk = QUOTA#<key>` (e.g. `QUOTA#quickbooks/<realm>`):
//!
//! - `sk = WINDOW#<start ms>`: `used`, the calls taken from that window's budget; one
//!   `UpdateItem` per grant, `ADD` under the condition that the sum stays within the limit.
//! - `sk = SEAT#<n>`: `holder` and `until` (epoch ms) of the call in that seat; sitting is a
//!   conditional `PutItem` (the seat never sat in, or its `until` passed), leaving an
//!   `UpdateItem` of `until` to 0 under the condition that the holder is still the same.
//!
//! One account's items share a partition: a company's 500 calls a minute are a few writes a
//! second (a grant covers several calls), far under a partition's 1,000. Every item expires
//! (`expires_at`) a day after its window or lease.

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::Client;

use crate::sdk::{condition_failed, describe};
use crate::table::{key, n, s};
use sync_core::ports::{CallQuota, StoreError};

const DAY_SECONDS: i64 = 86_400;

#[derive(Clone, Debug)]
pub struct DynamoCallQuota {
    client: Client,
    table: String,
}

impl DynamoCallQuota {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

fn pk(key: &str) -> String {
    format!("QUOTA#{key}")
}

fn seat_sk(seat: u32) -> String {
    format!("SEAT#{seat}")
}

/// A conditional write's outcome: done, or not (refused by its condition, or throttled).
fn written<T, E, R>(result: Result<T, SdkError<E, R>>) -> Result<bool, StoreError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match result {
        Ok(_) => Ok(true),
        // Throttled (the account's partition is busy): no seat or budget this time either;
        // the caller waits and tries again rather than going on without the quota.
        Err(e)
            if matches!(
                e.as_service_error().and_then(|e| e.code()),
                Some(
                    "ConditionalCheckFailedException"
                        | "ProvisionedThroughputExceededException"
                        | "ThrottlingException"
                        | "RequestLimitExceeded"
                )
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(StoreError::Unavailable(describe(&e))),
    }
}

#[async_trait]
impl CallQuota for DynamoCallQuota {
    async fn take(
        &self,
        key_of: &str,
        window_ms: i64,
        want: u32,
        limit: u32,
    ) -> Result<bool, StoreError> {
        let Some(room) = limit.checked_sub(want) else {
            return Ok(false);
        };
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(pk(key_of), format!("WINDOW#{window_ms}"))))
            .update_expression("ADD used :want SET expires_at = :expires")
            .condition_expression("attribute_not_exists(used) OR used <= :room")
            .expression_attribute_values(":want", n(want))
            .expression_attribute_values(":room", n(room))
            .expression_attribute_values(":expires", n(window_ms / 1000 + DAY_SECONDS))
            .send()
            .await;
        written(result)
    }

    async fn sit(
        &self,
        key_of: &str,
        seat: u32,
        holder: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut item = key(pk(key_of), seat_sk(seat));
        item.insert("holder".into(), s(holder));
        item.insert("until".into(), n(until_ms));
        item.insert("expires_at".into(), n(until_ms / 1000 + DAY_SECONDS));
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            // Our own holder too: the SDK's retry of a write whose answer was lost.
            .condition_expression("attribute_not_exists(pk) OR #until < :now OR holder = :holder")
            .expression_attribute_names("#until", "until")
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":holder", s(holder))
            .send()
            .await;
        written(result)
    }

    async fn leave(&self, key_of: &str, seat: u32, holder: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(pk(key_of), seat_sk(seat))))
            .update_expression("SET #until = :zero")
            .condition_expression("holder = :holder")
            .expression_attribute_names("#until", "until")
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":holder", s(holder))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Taken by another since its lease ended: theirs now.
            Err(e) if condition_failed(&e) => Ok(()),
            // Throttled or failed: the seat frees when its lease ends (the caller logs it).
            Err(e) => Err(StoreError::Unavailable(describe(&e))),
        }
    }
}
