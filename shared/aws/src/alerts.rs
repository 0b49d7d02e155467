//! Alert issues in DynamoDB (the one table, keyed as [`crate::table`] says; the
//! destinations are `alert_destinations.rs`'s).
//!
//! An issue is one item beside its tenant's records (`ALERT#<id>`), the issue as JSON with
//! its `version` (every write is conditional on it); while it is open, `gsi1` keys in the
//! one `ALERTOPEN` partition, and while someone is to be told something, `gsi2` keys in the
//! one `ALERTDUE` partition, by when. The sweeper reads the open ones (as many as conditions
//! that hold) and those due by now, earliest first. (Issues change when a condition starts,
//! recurs or clears and when they are told, a few writes a day per tenant: one partition
//! takes that.)

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};

use crate::sdk::describe;
use crate::table::{
    alert_due_keys, alert_key, alert_open_keys, corrupt, due_ms, get_s, s, tenant_pk, time,
    write_failure, Item, Records, ALERT_DUE, ALERT_OPEN, ALERT_PREFIX, SWEEP_INDEX, TENANT_INDEX,
};
use sync_core::domain::{AlertIssue, AlertStatus, TenantId};
use sync_core::ports::{AlertIssues, StoreError};

#[derive(Clone, Debug)]
pub struct DynamoAlerts {
    client: Client,
    table: String,
}

impl DynamoAlerts {
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

fn issue_of(item: &Item) -> Result<AlertIssue, StoreError> {
    serde_json::from_str(get_s(item, "issue")?).map_err(|_| corrupt("issue"))
}

#[async_trait]
impl AlertIssues for DynamoAlerts {
    async fn get(&self, tenant: &TenantId, id: &str) -> Result<Option<AlertIssue>, StoreError> {
        self.records()
            .get(alert_key(tenant, id))
            .await?
            .map(|item| issue_of(&item))
            .transpose()
    }

    async fn put(&self, issue: &AlertIssue, expected: Option<u64>) -> Result<(), StoreError> {
        let mut item = alert_key(&issue.tenant_id, &issue.id);
        item.insert("kind".into(), s("alert"));
        item.insert(
            "version".into(),
            AttributeValue::N(issue.version.to_string()),
        );
        item.insert("status".into(), s(issue.status.as_str()));
        item.insert("updated_at".into(), time(issue.updated_at));
        item.insert(
            "issue".into(),
            s(serde_json::to_string(issue).map_err(|e| StoreError::Unavailable(e.to_string()))?),
        );
        if issue.status == AlertStatus::Open {
            item.extend(alert_open_keys(&issue.tenant_id, &issue.id));
        }
        if let Some(due) = issue.due_at {
            item.extend(alert_due_keys(&issue.tenant_id, &issue.id, due));
        }
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        let request = match expected {
            None => request.condition_expression("attribute_not_exists(pk)"),
            Some(v) => request
                .condition_expression("version = :expected")
                .expression_attribute_values(":expected", AttributeValue::N(v.to_string())),
        };
        let on_condition = if expected.is_none() {
            StoreError::AlreadyExists
        } else {
            StoreError::Conflict
        };
        request
            .send()
            .await
            .map(|_| ())
            .map_err(|e| write_failure(e, on_condition))
    }

    async fn list(
        &self,
        tenant: &TenantId,
        status: Option<AlertStatus>,
    ) -> Result<Vec<AlertIssue>, StoreError> {
        let items = self
            .records()
            .query_prefix(None, ("pk", tenant_pk(tenant)), ("sk", ALERT_PREFIX))
            .await?;
        let mut issues = items
            .iter()
            .map(issue_of)
            .filter(|i| {
                i.as_ref()
                    .map_or(true, |i| status.is_none_or(|s| i.status == s))
            })
            .collect::<Result<Vec<_>, _>>()?;
        issues.sort_by_key(|i| std::cmp::Reverse(i.updated_at));
        Ok(issues)
    }

    async fn due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<AlertIssue>, StoreError> {
        // Every key of a time up to `now` sorts before the next millisecond's digits.
        let bound = due_ms(now + chrono::Duration::milliseconds(1));
        let mut issues = self
            .index_issues(
                SWEEP_INDEX,
                "gsi2pk = :pk AND gsi2sk < :bound",
                &[(":pk", ALERT_DUE), (":bound", &bound)],
                Some(limit),
            )
            .await?;
        issues.truncate(limit);
        Ok(issues)
    }

    async fn open(&self) -> Result<Vec<AlertIssue>, StoreError> {
        self.index_issues(TENANT_INDEX, "gsi1pk = :pk", &[(":pk", ALERT_OPEN)], None)
            .await
    }
}

impl DynamoAlerts {
    /// The issues an index query finds, every page (up to `limit`, when given).
    async fn index_issues(
        &self,
        index: &str,
        condition: &str,
        values: &[(&str, &str)],
        limit: Option<usize>,
    ) -> Result<Vec<AlertIssue>, StoreError> {
        let mut issues = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(index)
                .key_condition_expression(condition)
                .set_exclusive_start_key(start.take());
            for (name, value) in values {
                query = query.expression_attribute_values(*name, s(*value));
            }
            if let Some(limit) = limit {
                let left = limit.saturating_sub(issues.len()).clamp(1, 1_000);
                query = query.limit(i32::try_from(left).unwrap_or(1_000));
            }
            let out = query
                .send()
                .await
                .map_err(|e| StoreError::Unavailable(describe(&e)))?;
            for item in out.items() {
                // (One that does not read is reported, not allowed to stop the others.)
                match issue_of(item) {
                    Ok(issue) => issues.push(issue),
                    Err(e) => tracing::warn!(error = %e, "alert issue not readable; left alone"),
                }
            }
            start = out.last_evaluated_key().cloned();
            if start.is_none() || limit.is_some_and(|l| issues.len() >= l) {
                break;
            }
        }
        Ok(issues)
    }
}
