//! Alert issues and destinations in DynamoDB (the one table, keyed as [`crate::table`] says).
//!
//! An issue is one item beside its tenant's records (`ALERT#<id>`), the issue as JSON with
//! its `version` (every write is conditional on it); while it is open, `gsi1` keys in the
//! one `ALERTOPEN` partition, and while someone is to be told something, `gsi2` keys in the
//! one `ALERTDUE` partition, by when. The sweeper reads the open ones (as many as conditions
//! that hold) and those due by now, earliest first. (Issues change when a condition starts,
//! recurs or clears and when they are told, a few writes a day per tenant: one partition
//! takes that.)
//! A destination is one item (`ALERTDEST#<id>`), its URL and secret sealed, as binary.

use async_trait::async_trait;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};

use crate::sdk::describe;
use crate::table::{
    alert_destination_key, alert_due_keys, alert_key, alert_open_keys, corrupt, due_ms, get_s,
    get_time, parsed, s, tenant_pk, time, write_failure, Item, Records, ALERT_DESTINATION_PREFIX,
    ALERT_DUE, ALERT_OPEN, ALERT_PREFIX, SWEEP_INDEX, TENANT_INDEX,
};
use sync_core::domain::{AlertDestination, AlertIssue, AlertStatus, Sealed, TenantId};
use sync_core::ports::{AlertDestinations, AlertIssues, StoreError};

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

fn bytes(item: &Item, field: &str) -> Result<Vec<u8>, StoreError> {
    item.get(field)
        .and_then(|v| v.as_b().ok())
        .map(|b| b.as_ref().to_vec())
        .ok_or_else(|| corrupt(field))
}

fn destination_of(item: &Item) -> Result<AlertDestination, StoreError> {
    let sealed = if item.contains_key("sealed_key") {
        Some(Sealed {
            encrypted_key: bytes(item, "sealed_key")?,
            nonce: bytes(item, "sealed_nonce")?,
            ciphertext: bytes(item, "sealed_text")?,
        })
    } else {
        None
    };
    Ok(AlertDestination {
        id: get_s(item, "id")?.to_string(),
        tenant_id: parsed(item, "tenant_id")?,
        kind: parsed(item, "destination_kind")?,
        name: get_s(item, "name")?.to_string(),
        url_host: item.get("url_host").and_then(|v| v.as_s().ok()).cloned(),
        sealed,
        created_at: get_time(item, "created_at")?,
    })
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

#[async_trait]
impl AlertDestinations for DynamoAlerts {
    async fn insert(&self, d: &AlertDestination) -> Result<(), StoreError> {
        let mut item = alert_destination_key(&d.tenant_id, &d.id);
        item.insert("kind".into(), s("alert-destination"));
        item.insert("id".into(), s(d.id.clone()));
        item.insert("tenant_id".into(), s(d.tenant_id.to_string()));
        item.insert("destination_kind".into(), s(d.kind.as_str()));
        item.insert("name".into(), s(d.name.clone()));
        item.insert("created_at".into(), time(d.created_at));
        if let Some(host) = &d.url_host {
            item.insert("url_host".into(), s(host.clone()));
        }
        if let Some(sealed) = &d.sealed {
            let b = |v: &Vec<u8>| AttributeValue::B(Blob::new(v.clone()));
            item.insert("sealed_key".into(), b(&sealed.encrypted_key));
            item.insert("sealed_nonce".into(), b(&sealed.nonce));
            item.insert("sealed_text".into(), b(&sealed.ciphertext));
        }
        self.records().insert(item).await
    }

    async fn list(&self, tenant: &TenantId) -> Result<Vec<AlertDestination>, StoreError> {
        let items = self
            .records()
            .query_prefix(
                None,
                ("pk", tenant_pk(tenant)),
                ("sk", ALERT_DESTINATION_PREFIX),
            )
            .await?;
        let mut found = items
            .iter()
            .map(destination_of)
            .collect::<Result<Vec<_>, _>>()?;
        found.sort_by_key(|d| d.created_at);
        Ok(found)
    }

    async fn delete(&self, tenant: &TenantId, id: &str) -> Result<bool, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(alert_destination_key(tenant, id)))
            .condition_expression("attribute_exists(pk)")
            .send()
            .await;
        match out {
            Ok(_) => Ok(true),
            Err(e) => match write_failure(e, StoreError::Conflict) {
                StoreError::Conflict => Ok(false),
                other => Err(other),
            },
        }
    }
}
