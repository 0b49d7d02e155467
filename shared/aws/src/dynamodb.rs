//! Schedules in DynamoDB.
//!
//! One table holds every tenant's records, partitioned by tenant:
//! `pk = TENANT#<tenant>`, `sk = SCHEDULE#<id>`. Listing a tenant's schedules is a single
//! query on its partition, and no key of one tenant can reach another's rows. Every write
//! is conditional: creates on the key being free *and* on the schedule's connection being
//! there, the tenant's, on the same platform and not being deleted (one transaction, so a
//! schedule can never outlive its connection); updates and deletes on the version read.
//!
//! A second index (`gsi2`, keyed `SCHEDULES#<first hex digit of the id>`, so the listing is
//! spread over 16 partitions) lists every tenant's schedules for the repair sweep; requests
//! never read it.

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, SecondsFormat, Utc};
use std::collections::HashMap;

use crate::connections::connection_key;
use crate::sdk::describe;
use sync_core::domain::{RunStatus, Schedule, ScheduleId, TenantId};
use sync_core::ports::{ScheduleStore, StoreError};
use sync_core::time::ScheduleExpression;

pub(crate) type Item = HashMap<String, AttributeValue>;

/// Name of the index that lists every tenant's schedules (for repair sweeps).
pub const SWEEP_INDEX: &str = "gsi2";

/// Attributes of a schedule the worker keeps; a user's update never writes them.
const WORKER_FIELDS: &[&str] = &["last_run_at", "last_run_status"];

/// The DynamoDB schedule store.
#[derive(Clone, Debug)]
pub struct DynamoScheduleStore {
    client: Client,
    table: String,
}

impl DynamoScheduleStore {
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

pub(crate) fn tenant_pk(tenant: &TenantId) -> String {
    format!("TENANT#{tenant}")
}

fn schedule_sk(id: ScheduleId) -> String {
    format!("SCHEDULE#{id}")
}

/// The sweep index partition of a schedule: its id's first hex digit.
fn sweep_shard(id: ScheduleId) -> String {
    let digit = id.to_string().chars().next().unwrap_or('0');
    format!("SCHEDULES#{digit}")
}

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn time(t: DateTime<Utc>) -> AttributeValue {
    s(t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

fn to_item(x: &Schedule) -> Item {
    let mut item = Item::new();
    item.insert("pk".into(), s(tenant_pk(&x.tenant_id)));
    item.insert("sk".into(), s(schedule_sk(x.id)));
    item.insert("gsi2pk".into(), s(sweep_shard(x.id)));
    item.insert(
        "gsi2sk".into(),
        s(format!("SCHEDULE#{}#{}", x.tenant_id, x.id)),
    );
    item.insert("kind".into(), s("schedule"));
    item.insert("id".into(), s(x.id.to_string()));
    item.insert("tenant_id".into(), s(x.tenant_id.as_str()));
    item.insert("credential_id".into(), s(x.credential_id.to_string()));
    item.insert("platform".into(), s(x.platform.as_str()));
    item.insert("entity_type".into(), s(x.entity_type.as_str()));
    item.insert("cron_expression".into(), s(&x.cron_expression));
    item.insert("schedule_expression".into(), s(x.schedule_expression()));
    item.insert("sync_mode".into(), s(x.sync_mode.as_str()));
    item.insert("timezone".into(), s(x.timezone.name()));
    item.insert("is_active".into(), AttributeValue::Bool(x.is_active));
    if let Some(t) = x.last_run_at {
        item.insert("last_run_at".into(), time(t));
    }
    if let Some(status) = x.last_run_status {
        item.insert("last_run_status".into(), s(status.as_str()));
    }
    item.insert("created_at".into(), time(x.created_at));
    item.insert("updated_at".into(), time(x.updated_at));
    item.insert("version".into(), AttributeValue::N(x.version.to_string()));
    item
}

/// A stored item that does not decode is reported, never half-read.
fn corrupt(field: &str) -> StoreError {
    StoreError::Unavailable(format!("stored record has a bad or missing '{field}'"))
}

pub(crate) fn get_s<'a>(item: &'a Item, field: &str) -> Result<&'a str, StoreError> {
    item.get(field)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .ok_or_else(|| corrupt(field))
}

pub(crate) fn parsed<T: std::str::FromStr>(item: &Item, field: &str) -> Result<T, StoreError> {
    get_s(item, field)?.parse().map_err(|_| corrupt(field))
}

pub(crate) fn get_time(item: &Item, field: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(get_s(item, field)?)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| corrupt(field))
}

fn from_item(item: &Item) -> Result<Schedule, StoreError> {
    Ok(Schedule {
        id: parsed(item, "id")?,
        tenant_id: TenantId::parse(get_s(item, "tenant_id")?).map_err(|_| corrupt("tenant_id"))?,
        credential_id: parsed(item, "credential_id")?,
        platform: parsed(item, "platform")?,
        entity_type: parsed(item, "entity_type")?,
        cron_expression: get_s(item, "cron_expression")?.to_string(),
        expression: ScheduleExpression::parse(get_s(item, "schedule_expression")?)
            .map_err(|_| corrupt("schedule_expression"))?,
        sync_mode: parsed(item, "sync_mode")?,
        timezone: parsed(item, "timezone")?,
        is_active: *item
            .get("is_active")
            .and_then(|v| v.as_bool().ok())
            .ok_or_else(|| corrupt("is_active"))?,
        last_run_at: match item.get("last_run_at") {
            Some(_) => Some(get_time(item, "last_run_at")?),
            None => None,
        },
        last_run_status: match item.get("last_run_status") {
            Some(_) => Some(parsed(item, "last_run_status")?),
            None => None,
        },
        created_at: get_time(item, "created_at")?,
        updated_at: get_time(item, "updated_at")?,
        version: item
            .get("version")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| corrupt("version"))?,
    })
}

/// A failed conditional write becomes `on_condition`; any other failure `Unavailable`.
pub(crate) fn write_failure<E, R>(e: SdkError<E, R>, on_condition: StoreError) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let code = e.as_service_error().and_then(|se| se.code());
    if code == Some("ConditionalCheckFailedException") {
        on_condition
    } else {
        StoreError::Unavailable(describe(&e))
    }
}

/// The record operations both stores (schedules, connections) need, on one table: create
/// if absent, strongly consistent read, replace or delete if still at the version read, and
/// a paged query over a key prefix.
pub(crate) struct Records<'a> {
    pub client: &'a Client,
    pub table: &'a str,
}

fn version(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

impl Records<'_> {
    pub async fn insert(&self, item: Item) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map(|_| ())
            .map_err(|e| write_failure(e, StoreError::AlreadyExists))
    }

    pub async fn get(&self, key: Item) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::Unavailable(describe(&e)))?;
        Ok(out.item().cloned())
    }

    pub async fn replace(&self, item: Item, expected_version: u64) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(self.table)
            .set_item(Some(item))
            .condition_expression("version = :expected")
            .expression_attribute_values(":expected", version(expected_version))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| write_failure(e, StoreError::Conflict))
    }

    /// Sets `fields` (every attribute but the key) on the item at `key` if, and only if, it
    /// is at `expected_version`; attributes not named are left as they are.
    pub async fn update_fields(
        &self,
        key: Item,
        fields: Item,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        let mut request = self
            .client
            .update_item()
            .table_name(self.table)
            .set_key(Some(key))
            .condition_expression("version = :expected")
            .expression_attribute_values(":expected", version(expected_version));
        let mut sets = Vec::new();
        for (i, (name, value)) in fields.into_iter().enumerate() {
            sets.push(format!("#f{i} = :f{i}"));
            request = request
                .expression_attribute_names(format!("#f{i}"), name)
                .expression_attribute_values(format!(":f{i}"), value);
        }
        request
            .update_expression(format!("SET {}", sets.join(", ")))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| write_failure(e, StoreError::Conflict))
    }

    pub async fn delete(&self, key: Item, expected_version: u64) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(self.table)
            .set_key(Some(key))
            .condition_expression("version = :expected")
            .expression_attribute_values(":expected", version(expected_version))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| write_failure(e, StoreError::Conflict))
    }

    /// Every item whose partition key attribute `pk_name` is `pk` and whose sort key starts
    /// with `prefix`, in `index` if given (index reads cannot be strongly consistent).
    pub async fn query_prefix(
        &self,
        index: Option<&str>,
        (pk_name, pk): (&str, String),
        (sk_name, prefix): (&str, &str),
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(self.table)
                .set_index_name(index.map(str::to_string))
                .key_condition_expression(format!(
                    "{pk_name} = :pk AND begins_with({sk_name}, :prefix)"
                ))
                .expression_attribute_values(":pk", s(pk.clone()))
                .expression_attribute_values(":prefix", s(prefix))
                .set_consistent_read(index.is_none().then_some(true))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| StoreError::Unavailable(describe(&e)))?;
            items.extend(out.items().iter().cloned());
            match out.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(items),
            }
        }
    }
}

fn schedule_key(tenant: &TenantId, id: ScheduleId) -> Item {
    Item::from([
        ("pk".to_string(), s(tenant_pk(tenant))),
        ("sk".to_string(), s(schedule_sk(id))),
    ])
}

/// Which condition of the insert transaction failed, if that is why it was cancelled: the
/// connection check (first) or the free key (second).
fn cancelled_by(e: &TransactWriteItemsError) -> Option<StoreError> {
    let TransactWriteItemsError::TransactionCanceledException(cancel) = e else {
        return None;
    };
    let failed = |i: usize| {
        cancel
            .cancellation_reasons()
            .get(i)
            .and_then(|r| r.code())
            .is_some_and(|code| code == "ConditionalCheckFailed")
    };
    if failed(0) {
        Some(StoreError::ReferenceGone)
    } else if failed(1) {
        Some(StoreError::AlreadyExists)
    } else {
        None
    }
}

#[async_trait]
impl ScheduleStore for DynamoScheduleStore {
    async fn insert(&self, schedule: &Schedule) -> Result<(), StoreError> {
        let unavailable =
            |e: aws_sdk_dynamodb::error::BuildError| StoreError::Unavailable(e.to_string());
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(connection_key(schedule.credential_id)))
            .condition_expression(
                "attribute_exists(pk) AND tenant_id = :tenant AND platform = :platform AND attribute_not_exists(deleting_since)",
            )
            .expression_attribute_values(":tenant", s(schedule.tenant_id.as_str()))
            .expression_attribute_values(":platform", s(schedule.platform.as_str()))
            .build()
            .map_err(unavailable)?;
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(to_item(schedule)))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(unavailable)?;
        self.client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().condition_check(check).build())
            .transact_items(TransactWriteItem::builder().put(put).build())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| match e.as_service_error().and_then(cancelled_by) {
                Some(reason) => reason,
                None => StoreError::Unavailable(describe(&e)),
            })
    }

    async fn get(&self, tenant: &TenantId, id: ScheduleId) -> Result<Option<Schedule>, StoreError> {
        self.records()
            .get(schedule_key(tenant, id))
            .await?
            .as_ref()
            .map(from_item)
            .transpose()
    }

    async fn list(&self, tenant: &TenantId) -> Result<Vec<Schedule>, StoreError> {
        let items = self
            .records()
            .query_prefix(None, ("pk", tenant_pk(tenant)), ("sk", "SCHEDULE#"))
            .await?;
        let mut schedules = items.iter().map(from_item).collect::<Result<Vec<_>, _>>()?;
        schedules.sort_by_key(|x| (x.created_at, x.id.to_string()));
        Ok(schedules)
    }

    async fn list_all(&self) -> Result<Vec<Schedule>, StoreError> {
        let mut schedules = Vec::new();
        for digit in "0123456789abcdef".chars() {
            let items = self
                .records()
                .query_prefix(
                    Some(SWEEP_INDEX),
                    ("gsi2pk", format!("SCHEDULES#{digit}")),
                    ("gsi2sk", "SCHEDULE#"),
                )
                .await?;
            for item in &items {
                schedules.push(from_item(item)?);
            }
        }
        schedules.sort_by_key(|x| (x.created_at, x.id.to_string()));
        Ok(schedules)
    }

    async fn replace(&self, schedule: &Schedule, expected_version: u64) -> Result<(), StoreError> {
        let mut fields = to_item(schedule);
        for key in ["pk", "sk"].iter().chain(WORKER_FIELDS) {
            fields.remove(*key);
        }
        self.records()
            .update_fields(
                schedule_key(&schedule.tenant_id, schedule.id),
                fields,
                expected_version,
            )
            .await
    }

    async fn delete(
        &self,
        tenant: &TenantId,
        id: ScheduleId,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        self.records()
            .delete(schedule_key(tenant, id), expected_version)
            .await
    }

    async fn record_run(
        &self,
        tenant: &TenantId,
        id: ScheduleId,
        at: DateTime<Utc>,
        status: RunStatus,
    ) -> Result<(), StoreError> {
        // Only the worker's own attributes, and never the version: a user's concurrent
        // edit is neither blocked nor overwritten.
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(schedule_key(tenant, id)))
            .update_expression("SET last_run_at = :at, last_run_status = :status")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":at", time(at))
            .expression_attribute_values(":status", s(status.as_str()))
            .send()
            .await;
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

/// Sends `requests` (puts or deletes) with BatchWriteItem, 25 a call, asking again (after a
/// growing pause) for those DynamoDB hands back unprocessed, as it may under load.
pub(crate) async fn batch_write(
    client: &Client,
    table: &str,
    requests: Vec<aws_sdk_dynamodb::types::WriteRequest>,
) -> Result<(), StoreError> {
    for chunk in requests.chunks(25) {
        let mut pending = chunk.to_vec();
        for round in 1..=10u64 {
            let out = client
                .batch_write_item()
                .request_items(table, pending)
                .send()
                .await
                .map_err(|e| StoreError::Unavailable(describe(&e)))?;
            pending = out
                .unprocessed_items()
                .and_then(|u| u.get(table))
                .cloned()
                .unwrap_or_default();
            if pending.is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50 * round)).await;
        }
        if !pending.is_empty() {
            return Err(StoreError::Unavailable(
                "writes kept coming back unprocessed".into(),
            ));
        }
    }
    Ok(())
}
