//! Runs as the sweeper reads and settles them (`runs.rs` keeps the run history and its
//! items): one run at a time, the open ones through the sweep index, an abandoned one
//! replaced only while no worker touched it, a catch-up created with its pointers in one
//! transaction.

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};

use crate::runs::{cancel_key, from_item, run_item, run_pointers, unavailable};
use crate::sdk::describe;
use crate::table::{
    get_time, open_runs_shard, run_key, run_pointer_pk, s, time, Item, RunsBy, SWEEP_INDEX,
};
use sync_core::domain::{Run, RunId, RunStatus, ScheduleId, TenantId};
use sync_core::ports::{RunSweep, StoreError};

#[derive(Clone, Debug)]
pub struct DynamoRunSweep {
    client: Client,
    table: String,
    /// How long a run it writes is kept (as the run history's).
    retention: chrono::Duration,
}

impl DynamoRunSweep {
    pub fn new(client: Client, table: impl Into<String>, retention: chrono::Duration) -> Self {
        Self {
            client,
            table: table.into(),
            retention,
        }
    }
}

fn conditional_failed<E: aws_sdk_dynamodb::error::ProvideErrorMetadata>(e: &E) -> bool {
    e.code() == Some("ConditionalCheckFailedException")
}

#[async_trait]
impl RunSweep for DynamoRunSweep {
    async fn get(&self, tenant: &TenantId, id: &RunId) -> Result<Option<Run>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(run_key(tenant, id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable(describe(&e)))?;
        out.item().map(from_item).transpose()
    }

    async fn stale(&self, before: DateTime<Utc>, limit: usize) -> Result<Vec<Run>, StoreError> {
        let bound = format!("{:013}#", before.timestamp_millis().max(0));
        let per_shard = i32::try_from(limit.clamp(1, 1_000)).unwrap_or(1_000);
        let mut runs = Vec::new();
        for digit in "0123456789abcdef".chars() {
            // Oldest first in each partition; `limit` from each is enough for `limit` in all.
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(SWEEP_INDEX)
                .key_condition_expression("gsi2pk = :pk AND gsi2sk < :bound")
                .expression_attribute_values(":pk", s(open_runs_shard(digit)))
                .expression_attribute_values(":bound", s(bound.clone()))
                .limit(per_shard)
                .send()
                .await
                .map_err(|e| unavailable(describe(&e)))?;
            for item in out.items() {
                // (One that does not read is reported, not allowed to stop the others.)
                match from_item(item) {
                    Ok(run) => runs.push(run),
                    Err(e) => tracing::warn!(error = %e, "open run not readable; left alone"),
                }
            }
        }
        runs.sort_by_key(|r| r.updated_at);
        runs.truncate(limit);
        Ok(runs)
    }

    async fn replace_if_untouched(
        &self,
        ended: &Run,
        seen: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        // (Its pointers were written with it; ending it adds none.)
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(run_item(ended, self.retention)?))
            .condition_expression("#status IN (:queued, :running) AND updated_at = :seen")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":queued", s(RunStatus::Queued.as_str()))
            .expression_attribute_values(":running", s(RunStatus::Running.as_str()))
            .expression_attribute_values(":seen", time(seen))
            .send()
            .await;
        match put {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(conditional_failed) => Ok(false),
            Err(e) => Err(unavailable(describe(&e))),
        }
    }

    async fn cancel_requested(
        &self,
        tenant: &TenantId,
        id: &RunId,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(cancel_key(tenant, id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable(describe(&e)))?;
        out.item()
            .map(|item| get_time(item, "requested_at"))
            .transpose()
    }

    async fn create(&self, run: &Run) -> Result<bool, StoreError> {
        // The run and its pointers in one transaction: a run found by a filter is there,
        // and one the sweeper created is found by its schedule.
        let put = |item: Item, new: bool| {
            let mut put = aws_sdk_dynamodb::types::Put::builder()
                .table_name(&self.table)
                .set_item(Some(item));
            if new {
                put = put.condition_expression("attribute_not_exists(pk)");
            }
            put.build()
                .map(|p| {
                    aws_sdk_dynamodb::types::TransactWriteItem::builder()
                        .put(p)
                        .build()
                })
                .map_err(unavailable)
        };
        let mut request = self.client.transact_write_items();
        request = request.transact_items(put(run_item(run, self.retention)?, true)?);
        for pointer in run_pointers(run, self.retention) {
            request = request.transact_items(put(pointer, false)?);
        }
        match request.send().await {
            Ok(_) => Ok(true),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(TransactWriteItemsError::TransactionCanceledException(cancel))
                        if cancel.cancellation_reasons().first().and_then(|r| r.code())
                            == Some("ConditionalCheckFailed")
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(unavailable(describe(&e))),
        }
    }

    async fn ran_since(
        &self,
        tenant: &TenantId,
        schedule: ScheduleId,
        since: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        // Run ids begin with the millisecond their job was triggered.
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk >= :since")
            .expression_attribute_values(
                ":pk",
                s(run_pointer_pk(tenant, RunsBy::Schedule(schedule))),
            )
            .expression_attribute_values(
                ":since",
                s(format!("{:013}", since.timestamp_millis().max(0))),
            )
            .limit(1)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable(describe(&e)))?;
        Ok(!out.items().is_empty())
    }
}
