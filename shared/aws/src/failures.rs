//! Records that keep failing, in DynamoDB (the one table): `pk = FAIL#<connection>`,
//! `sk = <entity>#<record id>`, one item per failing source record with its error, tries,
//! times and (once quarantined) when it is tried again. A connection's failures are one
//! partition, listed in key order (by entity, then record id); a stream's quarantined
//! records due for a try are read from the same partition (they are few: a record leaves as
//! soon as a try succeeds).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, WriteRequest};
use aws_sdk_dynamodb::Client;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};

use crate::sdk::describe;
use crate::table::{
    failure_key, failures_of, failures_pk, get_s, get_time, key, parsed, s, time, Item,
};
use sync_core::domain::{ConnectionId, EntityType, FailedRecord, FailurePage};
use sync_core::ports::{FailureList, FailureLog, RunListError, StateError, StoreError, SyncKey};

#[derive(Clone, Debug)]
pub struct DynamoFailures {
    client: Client,
    table: String,
}

impl DynamoFailures {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

fn unavailable(e: impl std::fmt::Display) -> StateError {
    StateError::Unavailable(e.to_string())
}

fn optional_time(item: &Item, field: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
    match item.get(field) {
        None => Ok(None),
        Some(_) => get_time(item, field).map(Some),
    }
}

fn from_item(item: &Item) -> Result<FailedRecord, StoreError> {
    Ok(FailedRecord {
        tenant_id: parsed(item, "tenant_id")?,
        connection_id: parsed(item, "connection_id")?,
        entity_type: parsed(item, "entity_type")?,
        record_id: get_s(item, "record_id")?.to_string(),
        flow_id: match item.get("flow_id") {
            None => None,
            Some(_) => Some(parsed(item, "flow_id")?),
        },
        error: get_s(item, "error")?.to_string(),
        // (Kept before codes were: worked out from the message, as it was then written.)
        error_code: match item.get("error_code").and_then(|v| v.as_s().ok()) {
            Some(code) => code.clone(),
            None => legacy_code(get_s(item, "error")?),
        },
        attempts: item
            .get("attempts")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| StoreError::Unavailable("stored failure has no attempts".into()))?,
        first_failed_at: get_time(item, "first_failed_at")?,
        last_failed_at: get_time(item, "last_failed_at")?,
        run_id: parsed(item, "run_id")?,
        quarantined_at: optional_time(item, "quarantined_at")?,
        next_try_at: optional_time(item, "next_try_at")?,
    })
}

impl DynamoFailures {
    /// Keeps one failure: its first failure time and the start of its quarantine stay as
    /// first written.
    async fn keep_one(&self, f: &FailedRecord) -> Result<(), StateError> {
        let mut sets = vec![
            "kind = :kind",
            "tenant_id = :tenant",
            "connection_id = :connection",
            "entity_type = :entity",
            "record_id = :record",
            "#error = :error",
            "error_code = :code",
            "attempts = :attempts",
            "last_failed_at = :now",
            "run_id = :run",
            "first_failed_at = if_not_exists(first_failed_at, :now)",
        ];
        let mut removes = Vec::new();
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(failure_key(
                f.connection_id,
                f.entity_type,
                &f.record_id,
            )))
            .expression_attribute_names("#error", "error")
            .expression_attribute_values(":kind", s("failure"))
            .expression_attribute_values(":tenant", s(f.tenant_id.as_str()))
            .expression_attribute_values(":connection", s(f.connection_id.to_string()))
            .expression_attribute_values(":entity", s(f.entity_type.as_str()))
            .expression_attribute_values(":record", s(&f.record_id))
            .expression_attribute_values(":error", s(&f.error))
            .expression_attribute_values(":code", s(&f.error_code))
            .expression_attribute_values(":attempts", AttributeValue::N(f.attempts.to_string()))
            .expression_attribute_values(":now", time(f.last_failed_at))
            .expression_attribute_values(":run", s(f.run_id.as_str()));
        match f.flow_id {
            Some(flow) => {
                sets.push("flow_id = :flow");
                request = request.expression_attribute_values(":flow", s(flow.to_string()));
            }
            None => removes.push("flow_id"),
        }
        // Once quarantined, always due again until it lands (even if the bound was raised
        // since: the cursor is past it, so nothing else would bring it back).
        if let (Some(since), Some(next)) = (f.quarantined_at, f.next_try_at) {
            sets.push("quarantined_at = if_not_exists(quarantined_at, :since)");
            sets.push("next_try_at = :next");
            request = request
                .expression_attribute_values(":since", time(since))
                .expression_attribute_values(":next", time(next));
        }
        let mut expression = format!("SET {}", sets.join(", "));
        if !removes.is_empty() {
            expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        request
            .update_expression(expression)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| unavailable(describe(&e)))
    }

    /// One page of the partition's items under `prefix`, after `start` (a sort key).
    async fn query(
        &self,
        connection: ConnectionId,
        prefix: &str,
        start: Option<String>,
        limit: usize,
    ) -> Result<(Vec<Item>, Option<String>), StoreError> {
        let mut request = self
            .client
            .query()
            .table_name(&self.table)
            .expression_attribute_values(":pk", s(failures_pk(connection)))
            .consistent_read(true)
            .limit(i32::try_from(limit).unwrap_or(100));
        // DynamoDB refuses an empty prefix: the whole partition then.
        request = if prefix.is_empty() {
            request.key_condition_expression("pk = :pk")
        } else {
            request
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":prefix", s(prefix))
        };
        if let Some(sk) = start {
            request = request.set_exclusive_start_key(Some(key(failures_pk(connection), sk)));
        }
        let out = request
            .send()
            .await
            .map_err(|e| StoreError::Unavailable(describe(&e)))?;
        let last = out
            .last_evaluated_key()
            .and_then(|k| k.get("sk"))
            .and_then(|v| v.as_s().ok())
            .cloned();
        Ok((out.items().to_vec(), last))
    }
}

#[async_trait]
impl FailureLog for DynamoFailures {
    async fn keep(&self, failures: &[FailedRecord]) -> Result<(), StateError> {
        for f in failures {
            self.keep_one(f).await?;
        }
        Ok(())
    }

    async fn forget(&self, key_of: SyncKey, ids: &[String]) -> Result<(), StateError> {
        let requests: Vec<WriteRequest> = ids
            .iter()
            .map(|id| {
                DeleteRequest::builder()
                    .set_key(Some(failure_key(key_of.connection, key_of.entity, id)))
                    .build()
                    .map(|d| WriteRequest::builder().delete_request(d).build())
                    .map_err(unavailable)
            })
            .collect::<Result<_, _>>()?;
        crate::table::batch_write(&self.client, &self.table, requests)
            .await
            .map_err(unavailable)
    }

    async fn due(
        &self,
        key_of: SyncKey,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<FailedRecord>, StateError> {
        let prefix = failures_of(key_of.entity);
        let mut due = Vec::new();
        let mut start = None;
        loop {
            let (items, last) = self
                .query(key_of.connection, &prefix, start, 100)
                .await
                .map_err(unavailable)?;
            for item in &items {
                let f = from_item(item).map_err(unavailable)?;
                if f.next_try_at.is_some_and(|t| t <= now) && due.len() < limit {
                    due.push(f);
                }
            }
            match last {
                Some(sk) if due.len() < limit => start = Some(sk),
                _ => return Ok(due),
            }
        }
    }
}

#[async_trait]
impl FailureList for DynamoFailures {
    async fn list(
        &self,
        connection: ConnectionId,
        entity: Option<EntityType>,
        limit: usize,
        next: Option<&str>,
    ) -> Result<FailurePage, RunListError> {
        let start = match next {
            None => None,
            Some(text) => Some(
                URL_SAFE_NO_PAD
                    .decode(text)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or(RunListError::BadCursor)?,
            ),
        };
        let prefix = entity.map(failures_of).unwrap_or_default();
        // A cursor from another listing (another entity's) is not this one's.
        if start.as_ref().is_some_and(|sk| !sk.starts_with(&prefix)) {
            return Err(RunListError::BadCursor);
        }
        // One more than a page tells whether there is more.
        let (items, _) = self.query(connection, &prefix, start, limit + 1).await?;
        let mut failures: Vec<(String, FailedRecord)> = items
            .iter()
            .map(|item| Ok((get_s(item, "sk")?.to_string(), from_item(item)?)))
            .collect::<Result<_, StoreError>>()?;
        let more = failures.len() > limit;
        failures.truncate(limit);
        let next = more
            .then(|| failures.last().map(|(sk, _)| URL_SAFE_NO_PAD.encode(sk)))
            .flatten();
        Ok(FailurePage {
            failures: failures.into_iter().map(|(_, f)| f).collect(),
            next,
        })
    }
}

/// The code of a failure kept before failures kept their codes, from its message as the
/// platform modules wrote it then: `refused` when it says nothing more.
fn legacy_code(message: &str) -> String {
    let digits = |after: &str| -> Option<String> {
        let rest = &message[message.find(after)? + after.len()..];
        let n: String = rest.chars().take_while(char::is_ascii_digit).collect();
        (!n.is_empty()).then_some(n)
    };
    if let Some(code) = digits("QuickBooks fault ") {
        return format!("quickbooks_{code}");
    }
    if let Some(start) = message.find("Supabase refused it (") {
        let inside = &message[start + "Supabase refused it (".len()..];
        let inside = &inside[..inside.find(')').unwrap_or(inside.len())];
        return match inside.split_once(' ') {
            Some((_, code)) if !code.is_empty() => format!("supabase_{code}"),
            _ => format!("http_{inside}"),
        };
    }
    if let Some(status) = digits("WooCommerce answered ") {
        return format!("http_{status}");
    }
    if ["has no SKU", "has no email", "without a SKU"]
        .iter()
        .any(|k| message.contains(k))
    {
        return sync_core::ports::MISSING_KEY.into();
    }
    sync_core::ports::REFUSED.into()
}

#[cfg(test)]
mod tests {
    use super::legacy_code;

    #[test]
    fn a_failure_kept_before_codes_gets_the_code_its_message_names() {
        for (message, code) in [
            (
                "QuickBooks fault 6210 (Account Period Closed): the books are closed",
                "quickbooks_6210",
            ),
            (
                "Supabase refused it (409 23505): duplicate key",
                "supabase_23505",
            ),
            ("Supabase refused it (400): <html>", "http_400"),
            (
                "WooCommerce answered 400 to DELETE products/7: bad",
                "http_400",
            ),
            (
                "the product has no SKU (field `sku`): WooCommerce needs one",
                "missing_key",
            ),
            (
                "WooCommerce refused it: Invalid or duplicated SKU.",
                "refused",
            ),
        ] {
            assert_eq!(legacy_code(message), code, "{message}");
        }
    }
}
