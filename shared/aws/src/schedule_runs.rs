//! A schedule as the worker sees it (`schedules.rs` keeps the schedules): read by key,
//! and its last run noted in the worker's own attributes (`last_run_at`,
//! `last_run_status`, `last_failed_run`, `consecutive_failures`), never its version.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};

use crate::schedules::from_item;
use crate::sdk::condition_failed;
use crate::table::{s, schedule_key, time, write_failure, Records};
use sync_core::domain::{RunId, RunStatus, Schedule, ScheduleId, TenantId};
use sync_core::ports::{ScheduleRuns, StoreError};

#[derive(Clone, Debug)]
pub struct DynamoScheduleRuns {
    client: Client,
    table: String,
}

impl DynamoScheduleRuns {
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
impl ScheduleRuns for DynamoScheduleRuns {
    async fn get(&self, tenant: &TenantId, id: ScheduleId) -> Result<Option<Schedule>, StoreError> {
        self.records()
            .get(schedule_key(tenant, id))
            .await?
            .as_ref()
            .map(from_item)
            .transpose()
    }

    async fn record_run(
        &self,
        tenant: &TenantId,
        id: ScheduleId,
        at: DateTime<Utc>,
        status: RunStatus,
        run: &RunId,
    ) -> Result<(), StoreError> {
        // Only the worker's own attributes, and never the version: a user's concurrent
        // edit is neither blocked nor overwritten.
        let update = |expression: &str, condition: &str| {
            self.client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(schedule_key(tenant, id)))
                .update_expression(expression)
                .condition_expression(condition)
                .expression_attribute_values(":at", time(at))
                .expression_attribute_values(":status", s(status.as_str()))
        };
        let plain = "SET last_run_at = :at, last_run_status = :status";
        let exists = "attribute_exists(pk)";
        let first = match status {
            // A failed run counts once, however many times it is tried and fails; an older
            // run failing again (its retry after a newer one failed) is not counted (run
            // ids sort by time).
            RunStatus::Failed => update(
                "SET last_run_at = :at, last_run_status = :status, last_failed_run = :run, consecutive_failures = if_not_exists(consecutive_failures, :zero) + :one",
                "attribute_exists(pk) AND (attribute_not_exists(last_failed_run) OR last_failed_run < :run)",
            )
            .expression_attribute_values(":run", s(run.as_str()))
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .expression_attribute_values(":one", AttributeValue::N("1".into())),
            RunStatus::Succeeded | RunStatus::Partial => update(
                "SET last_run_at = :at, last_run_status = :status, consecutive_failures = :zero",
                exists,
            )
            .expression_attribute_values(":zero", AttributeValue::N("0".into())),
            _ => update(plain, exists),
        };
        let result = match first.send().await {
            // Counted already (or gone, which the plain update finds too).
            Err(e) if status == RunStatus::Failed && condition_failed(&e) => {
                update(plain, exists).send().await
            }
            other => other,
        };
        match result {
            Ok(_) => Ok(()),
            // The schedule was deleted meanwhile: it stays deleted.
            Err(e) => match write_failure(e, StoreError::Conflict) {
                StoreError::Conflict => Ok(()),
                other => Err(other),
            },
        }
    }
}
