//! The one DynamoDB table: every item the service keeps, its keys, and why they are so.
//!
//! All state lives in one table (string keys `pk`, `sk`) with two global secondary indexes.
//! One table because every way the service reads is known in advance: each read is a
//! `GetItem` or a `Query` on one partition (nothing ever scans), a tenant's records share a
//! partition that no other tenant's key can reach, and the transactions that keep records
//! true to their connection (a schedule or flow is written only while its connection is
//! there, the tenant's and not being deleted) stay inside one table.
//!
//! | item | `pk` | `sk` | index keys | why keyed so |
//! |---|---|---|---|---|
//! | schedule | `TENANT#<tenant>` | `SCHEDULE#<id>` | `gsi2`: `SCHEDULES#<first hex digit of the id>` / `SCHEDULE#<tenant>#<id>` | a tenant's schedules are one consistent query; the repair sweep lists every tenant's over 16 index partitions |
//! | connection | `CONNECTION#<id>` | `CONNECTION` | `gsi1`: `TENANT#<tenant>` / `CONNECTION#<created ms>#<id>`; `gsi2`: `ROUTE#<route>` / `CONNECTION#<id>` when the platform routes app-wide webhooks | a webhook names only the connection; the tenant index lists a tenant's, oldest first; a delivery to the app-wide URL finds its connection by route |
//! | event log entry | `CONNECTION#<id>` | `EVENT#<received ms>#<claim token>` | | beside its connection: a connection's log is one query, newest first |
//! | event claim | `EVENTKEY#<platform>#<sha256 of the event key>` | `CLAIM` | | one item per unique event, claimed by a conditional write: a duplicate delivery finds it |
//! | flow | `TENANT#<tenant>` | `FLOW#<id>` | `gsi1`: `SOURCE#<source connection>` / `FLOW#<id>` | a tenant's flows are one consistent query; the worker finds a connection's flows through the index |
//! | run | `TENANT#<tenant>` | `RUN#<run id>` | `gsi2`, only while queued or running: `OPENRUNS#<first digit of the id's digest>` / `<last written ms>#<tenant>#<run id>` | run ids sort by time: a tenant's runs read newest first; the sweeper finds runs left open, least recently written first, over 16 index partitions that hold only open runs |
//! | run pointer | `RUNS#<tenant>#CONNECTION#<id>` (or `#SCHEDULE#<id>`, `#FLOW#<id>`) | `<run id>` | | listing runs by a filter reads one partition, then the runs by key |
//! | stream state | `STREAM#<connection>` | `<entity>` | | a stream's lease (and its fencing epoch), cursor and follow-up job: one item, so every write is one conditional update |
//! | record index entry | `REC#<connection>#<entity>` | `<record id>` | | what the service last read and wrote of a record and where it is linked: a stream's entries page in id order for a full run's deletion check |
//! | failing record | `FAIL#<connection>` | `<entity>#<record id>` | | a connection's failures are one partition, in entity and id order; a stream's quarantine is a prefix of it |
//! | token chain | `TOKENS#<connection>` | `chain` | | a connection's OAuth tokens and the lease of the refresh under way |
//! | used OAuth state | `OAUTHSTATE#<nonce>` | `state` | | a consent redirect is used once (a conditional put) |
//! | sweeper status | `SWEEPER` | `STATUS` | | the one sweeper's last sweep and totals, read and replaced each sweep |
//! | alert issue | `TENANT#<tenant>` | `ALERT#<id>` | `gsi1`, only while open: `ALERTOPEN` / `<tenant>#<id>`; `gsi2`, only while someone is to be told something: `ALERTDUE` / `<due ms>#<tenant>#<id>` | a tenant's alerts are one query; the sweeper reads the open ones of every tenant (as many as conditions that hold) and those due by now, earliest first (one told or put off moves on, so none is passed over) |
//! | alert destination | `TENANT#<tenant>` | `ALERTDEST#<id>` | | a tenant's destinations are one query |
//!
//! Each index holds two kinds of item whose partition keys cannot meet (`TENANT#` and
//! `SOURCE#` and `ALERTOPEN` in `gsi1`, `SCHEDULES#`, `OPENRUNS#`, `ALERTDUE` and `ROUTE#` in `gsi2`). Index reads are eventually
//! consistent, so nothing that must be exact (a lease, a claim, a version) is read through
//! one. Items that expire (event claims and log entries, runs and their pointers, used
//! OAuth states) carry `expires_at` for DynamoDB's TTL and are treated as gone on read once
//! past it, since TTL deletion lags. Each store's module says what its item holds and which
//! conditions guard its writes; the keys are built here and nowhere else.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, SecondsFormat, Utc};
use std::collections::HashMap;

use crate::sdk::describe;
use sync_core::domain::{ConnectionId, EntityType, FlowId, Platform, RunId, ScheduleId, TenantId};
use sync_core::ports::StoreError;

/// An item, or a key, as DynamoDB's SDK holds it.
pub(crate) type Item = HashMap<String, AttributeValue>;

/// The index on `gsi1pk`/`gsi1sk`: a tenant's connections, and the flows from a connection.
pub const TENANT_INDEX: &str = "gsi1";
/// The index on `gsi2pk`/`gsi2sk`: every tenant's schedules (for the repair sweep), and
/// connections by webhook route.
pub const SWEEP_INDEX: &str = "gsi2";

/// The primary key of an item.
pub(crate) fn key(pk: impl Into<String>, sk: impl Into<String>) -> Item {
    Item::from([("pk".to_string(), s(pk)), ("sk".to_string(), s(sk))])
}

/// The partition of a tenant's schedules, flows and runs (and its `gsi1` connections).
pub(crate) fn tenant_pk(tenant: &TenantId) -> String {
    format!("TENANT#{tenant}")
}

/// Sort key prefixes in a tenant's partition.
pub(crate) const SCHEDULE_PREFIX: &str = "SCHEDULE#";
pub(crate) const FLOW_PREFIX: &str = "FLOW#";
pub(crate) const RUN_PREFIX: &str = "RUN#";
/// A request to stop a run (not under `RUN#`: run listings never meet it).
pub(crate) const RUN_CANCEL_PREFIX: &str = "RUNCANCEL#";
/// Index sort key prefix of connections (in both indexes).
pub(crate) const CONNECTION_PREFIX: &str = "CONNECTION#";
/// Sort key prefix of a connection's event log entries.
pub(crate) const EVENT_PREFIX: &str = "EVENT#";

pub(crate) fn schedule_key(tenant: &TenantId, id: ScheduleId) -> Item {
    key(tenant_pk(tenant), format!("{SCHEDULE_PREFIX}{id}"))
}

/// A schedule's sweep index keys: the partition is its shard (its id's first hex digit).
pub(crate) fn schedule_sweep_keys(tenant: &TenantId, id: ScheduleId) -> Item {
    Item::from([
        (
            "gsi2pk".to_string(),
            s(sweep_shard(sync_core::ports::sweep_shard(id))),
        ),
        (
            "gsi2sk".to_string(),
            s(format!("{SCHEDULE_PREFIX}{tenant}#{id}")),
        ),
    ])
}

/// A run's sweep index keys, while it is open: the partition is the first digit of its id's
/// digest; the sort key begins with when it was last written, so the least recently written
/// read first.
pub(crate) fn open_run_sweep_keys(tenant: &TenantId, id: &RunId, written: DateTime<Utc>) -> Item {
    let digit = id.as_str().chars().nth(14).unwrap_or('0');
    Item::from([
        ("gsi2pk".to_string(), s(open_runs_shard(digit))),
        (
            "gsi2sk".to_string(),
            s(format!(
                "{:013}#{tenant}#{id}",
                written.timestamp_millis().max(0)
            )),
        ),
    ])
}

/// The sweep index partition of the open runs whose id's digest starts with `digit`.
pub(crate) fn open_runs_shard(digit: char) -> String {
    format!("OPENRUNS#{digit}")
}

/// Sort key prefixes of a tenant's alert issues and destinations.
pub(crate) const ALERT_PREFIX: &str = "ALERT#";
pub(crate) const ALERT_DESTINATION_PREFIX: &str = "ALERTDEST#";
/// The tenant index partition of open alert issues.
pub(crate) const ALERT_OPEN: &str = "ALERTOPEN";
/// The sweep index partition of alert issues with a notice due.
pub(crate) const ALERT_DUE: &str = "ALERTDUE";

pub(crate) fn alert_key(tenant: &TenantId, id: &str) -> Item {
    key(tenant_pk(tenant), format!("{ALERT_PREFIX}{id}"))
}

pub(crate) fn alert_destination_key(tenant: &TenantId, id: &str) -> Item {
    key(tenant_pk(tenant), format!("{ALERT_DESTINATION_PREFIX}{id}"))
}

/// An open alert issue's tenant index keys.
pub(crate) fn alert_open_keys(tenant: &TenantId, id: &str) -> Item {
    Item::from([
        ("gsi1pk".to_string(), s(ALERT_OPEN)),
        ("gsi1sk".to_string(), s(format!("{tenant}#{id}"))),
    ])
}

/// The sweep index keys of an alert issue with a notice due at `due`: earliest first.
pub(crate) fn alert_due_keys(tenant: &TenantId, id: &str, due: DateTime<Utc>) -> Item {
    Item::from([
        ("gsi2pk".to_string(), s(ALERT_DUE)),
        (
            "gsi2sk".to_string(),
            s(format!("{}#{tenant}#{id}", due_ms(due))),
        ),
    ])
}

/// A time as the alert due index sorts it (13 digits of milliseconds).
pub(crate) fn due_ms(at: DateTime<Utc>) -> String {
    format!("{:013}", at.timestamp_millis().max(0))
}

/// The sweeper's status.
pub(crate) fn sweeper_key() -> Item {
    key("SWEEPER", "STATUS")
}

/// The sweep index partition of the schedules of `shard` (see
/// [`sync_core::ports::sweep_shard`]): the shard as one hex digit.
pub(crate) fn sweep_shard(shard: u8) -> String {
    format!("SCHEDULES#{shard:x}")
}

fn connection_pk(id: ConnectionId) -> String {
    format!("CONNECTION#{id}")
}

pub(crate) fn connection_key(id: ConnectionId) -> Item {
    key(connection_pk(id), "CONNECTION")
}

/// Puts `item`, new, in one transaction with a check of each of `connections` (id, and
/// platform if it must be one): each there, the tenant's and not being deleted, as
/// `Connection::of_tenant` checks a read, so nothing outlives its connection. A failed
/// connection check is `ReferenceGone`, a key already taken `AlreadyExists`.
pub(crate) async fn insert_beside(
    client: &Client,
    table: &str,
    tenant: &TenantId,
    connections: &[(ConnectionId, Option<Platform>)],
    item: Item,
) -> Result<(), StoreError> {
    let mut request = client.transact_write_items();
    for (id, platform) in connections {
        request = request.transact_items(connection_usable(table, *id, tenant, *platform)?);
    }
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(pk)")
        .build()
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    let result = request
        .transact_items(TransactWriteItem::builder().put(put).build())
        .send()
        .await;
    let Err(e) = result else {
        return Ok(());
    };
    let failed = |i: usize| match e.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(cancel)) => cancel
            .cancellation_reasons()
            .get(i)
            .and_then(|r| r.code())
            .is_some_and(|code| code == "ConditionalCheckFailed"),
        _ => false,
    };
    if (0..connections.len()).any(failed) {
        Err(StoreError::ReferenceGone)
    } else if failed(connections.len()) {
        Err(StoreError::AlreadyExists)
    } else {
        Err(StoreError::Unavailable(describe(&e)))
    }
}

/// The condition, in a transaction, that a connection is there, the tenant's (on
/// `platform`, if given) and not being deleted.
fn connection_usable(
    table: &str,
    id: ConnectionId,
    tenant: &TenantId,
    platform: Option<Platform>,
) -> Result<TransactWriteItem, StoreError> {
    let mut condition =
        "attribute_exists(pk) AND tenant_id = :tenant AND attribute_not_exists(deleting_since)"
            .to_string();
    let mut check = ConditionCheck::builder()
        .table_name(table)
        .set_key(Some(connection_key(id)))
        .expression_attribute_values(":tenant", s(tenant.as_str()));
    if let Some(platform) = platform {
        condition.push_str(" AND platform = :platform");
        check = check.expression_attribute_values(":platform", s(platform.as_str()));
    }
    let check = check
        .condition_expression(condition)
        .build()
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    Ok(TransactWriteItem::builder().condition_check(check).build())
}

/// A connection's tenant index sort key: its creation time first, so lists read oldest first.
pub(crate) fn connection_tenant_sk(created: DateTime<Utc>, id: ConnectionId) -> String {
    format!("{CONNECTION_PREFIX}{}#{id}", created.timestamp_millis())
}

/// The route index keys of a connection that takes deliveries at an app-wide webhook URL.
pub(crate) fn connection_route_keys(route: &str, id: ConnectionId) -> Item {
    Item::from([
        ("gsi2pk".to_string(), s(route_pk(route))),
        ("gsi2sk".to_string(), s(format!("{CONNECTION_PREFIX}{id}"))),
    ])
}

pub(crate) fn route_pk(route: &str) -> String {
    format!("ROUTE#{route}")
}

/// The partition of the event log entries written apart from their claims (see
/// `events.rs`): the connection's own item's partition.
pub(crate) fn event_log_pk(connection: ConnectionId) -> String {
    connection_pk(connection)
}

pub(crate) fn event_claim_key(platform: Platform, key_hash: &str) -> Item {
    key(format!("EVENTKEY#{platform}#{key_hash}"), "CLAIM")
}

pub(crate) fn flow_key(tenant: &TenantId, id: FlowId) -> Item {
    key(tenant_pk(tenant), format!("{FLOW_PREFIX}{id}"))
}

/// The tenant index keys of a flow: listed under its source connection.
pub(crate) fn flow_source_keys(source: ConnectionId, id: FlowId) -> Item {
    Item::from([
        ("gsi1pk".to_string(), s(flow_source_pk(source))),
        ("gsi1sk".to_string(), s(format!("{FLOW_PREFIX}{id}"))),
    ])
}

pub(crate) fn flow_source_pk(source: ConnectionId) -> String {
    format!("SOURCE#{source}")
}

pub(crate) fn run_key(tenant: &TenantId, id: &RunId) -> Item {
    key(tenant_pk(tenant), format!("{RUN_PREFIX}{id}"))
}

/// What a run pointer partition lists a tenant's runs by.
pub(crate) enum RunsBy {
    Connection(ConnectionId),
    Schedule(ScheduleId),
    Flow(FlowId),
}

pub(crate) fn run_pointer_pk(tenant: &TenantId, by: RunsBy) -> String {
    match by {
        RunsBy::Connection(id) => format!("RUNS#{tenant}#CONNECTION#{id}"),
        RunsBy::Schedule(id) => format!("RUNS#{tenant}#SCHEDULE#{id}"),
        RunsBy::Flow(id) => format!("RUNS#{tenant}#FLOW#{id}"),
    }
}

pub(crate) fn stream_key(connection: ConnectionId, entity: EntityType) -> Item {
    key(format!("STREAM#{connection}"), entity.as_str())
}

pub(crate) fn record_index_pk(connection: ConnectionId, entity: EntityType) -> String {
    format!("REC#{connection}#{entity}")
}

pub(crate) fn record_index_key(connection: ConnectionId, entity: EntityType, id: &str) -> Item {
    key(record_index_pk(connection, entity), id)
}

pub(crate) fn failures_pk(connection: ConnectionId) -> String {
    format!("FAIL#{connection}")
}

/// A failing record's sort key; `failures_of(entity)` is the prefix of a stream's.
pub(crate) fn failure_key(connection: ConnectionId, entity: EntityType, id: &str) -> Item {
    key(
        failures_pk(connection),
        format!("{}{id}", failures_of(entity)),
    )
}

pub(crate) fn failures_of(entity: EntityType) -> String {
    format!("{entity}#")
}

pub(crate) fn tokens_key(connection: ConnectionId) -> Item {
    key(format!("TOKENS#{connection}"), "chain")
}

pub(crate) fn oauth_state_key(nonce: &str) -> Item {
    key(format!("OAUTHSTATE#{nonce}"), "state")
}

pub(crate) fn n(v: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn time(t: DateTime<Utc>) -> AttributeValue {
    s(t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// A stored item that does not decode is reported, never half-read.
pub(crate) fn corrupt(field: &str) -> StoreError {
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

/// A time stored as epoch milliseconds (leases, webhook arrivals); `None` when absent or
/// not a number.
pub(crate) fn millis_at(item: &Item, field: &str) -> Option<DateTime<Utc>> {
    item.get(field)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .and_then(DateTime::from_timestamp_millis)
}

/// A time stored as RFC 3339 text, where a missing or unreadable one is as good as none.
pub(crate) fn rfc3339_at(item: &Item, field: &str) -> Option<DateTime<Utc>> {
    item.get(field)
        .and_then(|v| v.as_s().ok())
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

pub(crate) fn get_time(item: &Item, field: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(get_s(item, field)?)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| corrupt(field))
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
        removed: &[&str],
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
        let mut expression = format!("SET {}", sets.join(", "));
        if !removed.is_empty() {
            let mut names = Vec::new();
            for (i, name) in removed.iter().enumerate() {
                names.push(format!("#r{i}"));
                request = request.expression_attribute_names(format!("#r{i}"), *name);
            }
            expression.push_str(&format!(" REMOVE {}", names.join(", ")));
        }
        request
            .update_expression(expression)
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
