//! The worker's state in DynamoDB (the one table):
//!
//! - A stream's lease, cursor and follow-up: `pk = STREAM#<connection>`, `sk = <entity>`,
//!   with `owner`, `lease_until` (epoch ms), `epoch` (the fencing token, one more at every
//!   acquisition), `cursor_stamp`/`cursor_id`, and `pending` (the
//!   follow-up job, as JSON) with `pending_version`. Every write is conditional: taking the
//!   lease on it being free, expired or ours; the cursor on the lease being ours (so a worker
//!   whose lease ran out cannot move the cursor); a follow-up merge on the version it read;
//!   and dropping a follow-up, once a run of it has ended for good, on the version that run
//!   read (a job merged in meanwhile stays). Until then the follow-up stays stored, so a run
//!   that fails or dies leaves it to be run again. `webhook_at` (epoch ms), when the
//!   stream's webhooks last arrived, is the coalescer's (`webhook_arrivals.rs`), read back
//!   with the lease and the stream's state.
//! - The record index: `pk = REC#<connection>#<entity>`, `sk = <record id>`, a fingerprint
//!   attribute per field (`f_<field>`), `written`, a link attribute per other connection
//!   (`l_<connection>`), and per linked connection the seal of what the record agrees on with
//!   its copy there (`a_<connection>`: one short text, not a field each, to keep the entry
//!   within one write unit), and `fails`, the record's failed tries in a row as a source
//!   (absent: none; the failure itself is kept by `failures.rs`). Every write of an entry by a
//!   run is fenced: `x_<connection>` holds the lease epoch of that source stream it was last
//!   written under, and a write under an older epoch is refused (a worker whose lease ran
//!   out while it worked cannot overwrite what the new holder wrote). Updates set only the attributes they name, so runs of other streams
//!   writing the same record's entry (its links in particular) lose nothing of each other's.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, ReturnValue};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};
use std::collections::{BTreeMap, HashMap};

use crate::sdk::describe;
use crate::table::{
    millis_at, record_index_key, record_index_pk, rfc3339_at, s, write_failure, Item,
};
use sync_core::domain::{ConnectionId, Cursor, EntityType, SyncJob};
use sync_core::ports::{
    Acquired, CursorSet, Lease, PendingJob, RecordIndex, RecordState, RecordUpdate, StateError,
    StoreError, StreamCursors, StreamView, SyncKey, SyncLeases,
};
use sync_core::records::Fingerprint;

/// How many index updates are in flight at once.
const UPDATES_IN_FLIGHT: usize = 16;
/// Keys per BatchGetItem (DynamoDB's limit).
const BATCH_GET: usize = 100;

#[derive(Clone, Debug)]
pub struct DynamoSyncState {
    client: Client,
    table: String,
}

impl DynamoSyncState {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn unavailable(e: impl std::fmt::Display) -> StateError {
    StateError::Unavailable(e.to_string())
}

fn stream_key(key: SyncKey) -> Item {
    crate::table::stream_key(key.connection, key.entity)
}

/// A failed condition on a lease write means the lease is someone else's.
fn lease_failure<E, R>(e: aws_sdk_dynamodb::error::SdkError<E, R>) -> StateError
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match write_failure(e, StoreError::Conflict) {
        StoreError::Conflict => StateError::LeaseLost,
        other => StateError::Unavailable(other.to_string()),
    }
}

fn cursor_of(item: &Item) -> Option<Cursor> {
    let stamp = rfc3339_at(item, "cursor_stamp")?;
    let id = item
        .get("cursor_id")
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default();
    Some(Cursor { stamp, id })
}

fn pending_of(item: &Item) -> Option<SyncJob> {
    let text = item.get("pending")?.as_s().ok()?;
    match serde_json::from_str(text) {
        Ok(job) => Some(job),
        Err(e) => {
            tracing::error!(error = %e, "stored follow-up job does not parse; dropped");
            None
        }
    }
}

#[async_trait]
impl SyncLeases for DynamoSyncState {
    async fn acquire(
        &self,
        key: SyncKey,
        owner: &str,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> Result<Lease, StateError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(stream_key(key)))
            .update_expression(
                "SET #owner = :me, lease_until = :until, epoch = if_not_exists(epoch, :zero) + :one",
            )
            .condition_expression(
                "attribute_not_exists(#owner) OR lease_until < :now OR #owner = :me",
            )
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":me", s(owner))
            .expression_attribute_values(":until", n((now + ttl).timestamp_millis()))
            .expression_attribute_values(":now", n(now.timestamp_millis()))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => Ok(Lease::Acquired(Acquired {
                cursor: out.attributes().and_then(cursor_of),
                epoch: out
                    .attributes()
                    .and_then(|a| a.get("epoch"))
                    .and_then(|v| v.as_n().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
                cursor_set_at: out
                    .attributes()
                    .and_then(|a| rfc3339_at(a, "cursor_set_at")),
                webhook_at: out.attributes().and_then(|a| millis_at(a, "webhook_at")),
            })),
            Err(e) => match lease_failure(e) {
                StateError::LeaseLost => Ok(Lease::Held),
                other => Err(other),
            },
        }
    }

    async fn renew(
        &self,
        key: SyncKey,
        owner: &str,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> Result<(), StateError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(stream_key(key)))
            .update_expression("SET lease_until = :until")
            .condition_expression("#owner = :me")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":me", s(owner))
            .expression_attribute_values(":until", n((now + ttl).timestamp_millis()))
            .send()
            .await
            .map(|_| ())
            .map_err(lease_failure)
    }

    async fn save_cursor(
        &self,
        key: SyncKey,
        owner: &str,
        cursor: &Cursor,
    ) -> Result<(), StateError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(stream_key(key)))
            .update_expression("SET cursor_stamp = :stamp, cursor_id = :id")
            .condition_expression("#owner = :me")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":me", s(owner))
            .expression_attribute_values(
                ":stamp",
                s(cursor
                    .stamp
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
            )
            .expression_attribute_values(":id", s(&cursor.id))
            .send()
            .await
            .map(|_| ())
            .map_err(lease_failure)
    }

    async fn park(&self, key: SyncKey, job: &SyncJob) -> Result<bool, StateError> {
        // Read, merge, write if nobody merged meanwhile; a lost race reads again.
        for _ in 0..8 {
            let item = self.stream_item(key).await?;
            let waiting = pending_of(&item);
            let version = item
                .get("pending_version")
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse::<i64>().ok());
            let merged = match &waiting {
                Some(w) => w.merged_with(job),
                None => job.clone(),
            };
            let text = serde_json::to_string(&merged).map_err(unavailable)?;
            let mut update = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(stream_key(key)))
                .update_expression("SET pending = :job, pending_version = :next")
                .expression_attribute_values(":job", s(text))
                .expression_attribute_values(":next", n(version.unwrap_or(0) + 1));
            update = match version {
                Some(v) => update
                    .condition_expression("pending_version = :seen")
                    .expression_attribute_values(":seen", n(v)),
                None => update.condition_expression("attribute_not_exists(pending_version)"),
            };
            match update.send().await {
                Ok(_) => return Ok(waiting.is_none()),
                Err(e) => match write_failure(e, StoreError::Conflict) {
                    StoreError::Conflict => continue,
                    other => return Err(unavailable(other)),
                },
            }
        }
        Err(unavailable("the follow-up kept changing under us"))
    }

    async fn peek_pending(
        &self,
        key: SyncKey,
        owner: &str,
    ) -> Result<Option<PendingJob>, StateError> {
        let item = self.stream_item(key).await?;
        if item
            .get("owner")
            .and_then(|v| v.as_s().ok())
            .map(String::as_str)
            != Some(owner)
        {
            return Err(StateError::LeaseLost);
        }
        let version = item
            .get("pending_version")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        Ok(pending_of(&item).map(|job| PendingJob { job, version }))
    }

    async fn done_pending(&self, key: SyncKey, version: u64) -> Result<bool, StateError> {
        // Conditional on the version read: a job merged in meanwhile stays. Not on the lease:
        // the run of what was read has ended for good whoever holds the stream now.
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(stream_key(key)))
            .update_expression("REMOVE pending SET pending_version = pending_version + :one")
            .condition_expression("attribute_exists(pending) AND pending_version = :seen")
            .expression_attribute_values(":seen", n(i64::try_from(version).unwrap_or(i64::MAX)))
            .expression_attribute_values(":one", n(1))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) => match write_failure(e, StoreError::Conflict) {
                StoreError::Conflict => Ok(false),
                other => Err(unavailable(other)),
            },
        }
    }

    async fn release(&self, key: SyncKey, owner: &str) -> Result<(), StateError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(stream_key(key)))
            // (`lease_until` stays: when the stream was last worked on, for the sweeper.)
            .update_expression("REMOVE #owner")
            .condition_expression("#owner = :me")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":me", s(owner))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => match lease_failure(e) {
                // Not ours any more: leave it to its holder.
                StateError::LeaseLost => Ok(()),
                other => Err(other),
            },
        }
    }
}

/// How the lease's owner begins when a person set the cursor (the lease passes to the
/// setting, already run out).
const CURSOR_SETTER: &str = "cursor set by ";

#[async_trait]
impl StreamCursors for DynamoSyncState {
    async fn set_cursor(
        &self,
        key: SyncKey,
        cursor: &Cursor,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<CursorSet, StateError> {
        // The lease passes to the setting, already run out: a worker whose own lease ran
        // out meanwhile cannot save its cursor over this one, nor renew (its owner name no
        // longer matches).
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(stream_key(key)))
            .update_expression(
                "SET cursor_stamp = :stamp, cursor_id = :id, cursor_set_by = :by, cursor_set_at = :at, \
                 #owner = :setter, lease_until = :ran_out, epoch = if_not_exists(epoch, :zero) + :one",
            )
            .condition_expression("attribute_not_exists(#owner) OR lease_until < :now")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(
                ":stamp",
                s(cursor
                    .stamp
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
            )
            .expression_attribute_values(":id", s(&cursor.id))
            .expression_attribute_values(":by", s(by))
            .expression_attribute_values(
                ":at",
                s(now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            )
            .expression_attribute_values(":setter", s(format!("{CURSOR_SETTER}{by}")))
            .expression_attribute_values(":now", n(now.timestamp_millis()))
            .expression_attribute_values(":ran_out", n(now.timestamp_millis() - 1))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => Ok(CursorSet::Set {
                previous: out.attributes().and_then(cursor_of),
            }),
            Err(e) => match lease_failure(e) {
                StateError::LeaseLost => Ok(CursorSet::Busy),
                other => Err(other),
            },
        }
    }

    async fn view(&self, key: SyncKey, now: DateTime<Utc>) -> Result<StreamView, StateError> {
        let item = self.stream_item(key).await?;
        if item.is_empty() {
            return Ok(StreamView::default());
        }
        let lease_until = millis_at(&item, "lease_until");
        Ok(StreamView {
            cursor: cursor_of(&item),
            cursor_set_by: item
                .get("cursor_set_by")
                .and_then(|v| v.as_s().ok())
                .cloned(),
            cursor_set_at: rfc3339_at(&item, "cursor_set_at"),
            // (A cursor set by hand takes the lease, already run out: never running.)
            running: item
                .get("owner")
                .and_then(|v| v.as_s().ok())
                .is_some_and(|o| !o.starts_with(CURSOR_SETTER))
                && lease_until.is_some_and(|u| u >= now),
            lease_until,
            follow_up_kept: item.contains_key("pending"),
            webhook_at: millis_at(&item, "webhook_at"),
        })
    }
}

impl DynamoSyncState {
    /// The stream's item (lease, cursor, follow-up) as it is now; empty when there is none.
    async fn stream_item(&self, key: SyncKey) -> Result<Item, StateError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(stream_key(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable(describe(&e)))?;
        Ok(out.item().cloned().unwrap_or_default())
    }
}

fn record_key(connection: ConnectionId, entity: EntityType, id: &str) -> Item {
    record_index_key(connection, entity, id)
}

fn link_attribute(connection: ConnectionId) -> String {
    format!("l_{}", connection.as_uuid().simple())
}

/// The attribute holding the seal of what a record agrees on with its copy on `connection`.
fn agreed_attribute(connection: ConnectionId) -> String {
    format!("a_{}", connection.as_uuid().simple())
}

fn state_of(item: &Item) -> RecordState {
    let mut fingerprint = BTreeMap::new();
    let mut links = BTreeMap::new();
    let mut agreed = BTreeMap::new();
    for (name, value) in item {
        let Ok(text) = value.as_s() else { continue };
        if let Some(field) = name.strip_prefix("f_") {
            fingerprint.insert(field.to_string(), text.clone());
        } else if let Some(conn) = name.strip_prefix("l_") {
            if let Ok(uuid) = uuid::Uuid::parse_str(conn) {
                links.insert(ConnectionId::from(uuid), text.clone());
            }
        } else if let Some(conn) = name.strip_prefix("a_") {
            if let Ok(uuid) = uuid::Uuid::parse_str(conn) {
                agreed.insert(ConnectionId::from(uuid), text.clone());
            }
        }
    }
    RecordState {
        fingerprint: Fingerprint(fingerprint),
        written: item
            .get("written")
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or(false),
        links,
        agreed,
        failures: item
            .get("fails")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        swept: item.get("swept").and_then(|v| v.as_s().ok()).cloned(),
    }
}

impl DynamoSyncState {
    async fn update_one(&self, u: &RecordUpdate) -> Result<(), StateError> {
        let mut sets = Vec::new();
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(record_key(u.connection, u.entity, &u.id)));
        for (i, (field, hash)) in u.fingerprint.0.iter().enumerate() {
            sets.push(format!("#f{i} = :f{i}"));
            request = request
                .expression_attribute_names(format!("#f{i}"), format!("f_{field}"))
                .expression_attribute_values(format!(":f{i}"), s(hash));
        }
        if !u.fingerprint.is_empty() {
            sets.push("written = :written".into());
            request =
                request.expression_attribute_values(":written", AttributeValue::Bool(u.written));
        }
        if let Some((connection, id)) = &u.link {
            sets.push("#link = :link".into());
            request = request
                .expression_attribute_names("#link", link_attribute(*connection))
                .expression_attribute_values(":link", s(id));
        }
        if let Some((connection, seal)) = &u.agreed {
            sets.push("#agreed = :agreed".into());
            request = request
                .expression_attribute_names("#agreed", agreed_attribute(*connection))
                .expression_attribute_values(":agreed", s(seal));
        }
        if let Some(swept) = &u.swept {
            sets.push("swept = :swept".into());
            request = request.expression_attribute_values(":swept", s(swept));
        }
        let mut remove = "";
        match u.failures {
            Some(0) => remove = " REMOVE fails",
            Some(count) => {
                sets.push("fails = :fails".into());
                request = request
                    .expression_attribute_values(":fails", AttributeValue::N(count.to_string()));
            }
            None => {}
        }
        if sets.is_empty() && remove.is_empty() {
            return Ok(());
        }
        if let Some((stream, epoch)) = u.fence {
            sets.push("#fence = :epoch".into());
            request = request
                .condition_expression("attribute_not_exists(#fence) OR #fence <= :epoch")
                .expression_attribute_names("#fence", format!("x_{}", stream.as_uuid().simple()))
                .expression_attribute_values(":epoch", AttributeValue::N(epoch.to_string()));
        }
        let set = if sets.is_empty() {
            String::new()
        } else {
            format!("SET {}", sets.join(", "))
        };
        request
            .update_expression(format!("{set}{remove}").trim().to_string())
            .send()
            .await
            .map(|_| ())
            .map_err(lease_failure)
    }
}

#[async_trait]
impl RecordIndex for DynamoSyncState {
    async fn get(
        &self,
        connection: ConnectionId,
        entity: EntityType,
        ids: &[String],
    ) -> Result<HashMap<String, RecordState>, StateError> {
        let mut found = HashMap::new();
        let mut unique: Vec<&String> = ids.iter().collect();
        unique.sort();
        unique.dedup();
        for chunk in unique.chunks(BATCH_GET) {
            let keys: Vec<Item> = chunk
                .iter()
                .map(|id| record_key(connection, entity, id))
                .collect();
            let mut request = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .consistent_read(true)
                    .build()
                    .map_err(unavailable)?,
            );
            // DynamoDB may hand back some keys unprocessed; ask again for those.
            let mut rounds = 0;
            while let Some(keys) = request.take() {
                rounds += 1;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, keys)
                    .send()
                    .await
                    .map_err(|e| unavailable(describe(&e)))?;
                for item in out
                    .responses()
                    .and_then(|r| r.get(&self.table))
                    .into_iter()
                    .flatten()
                {
                    if let Some(id) = item.get("sk").and_then(|v| v.as_s().ok()) {
                        found.insert(id.clone(), state_of(item));
                    }
                }
                request = out
                    .unprocessed_keys()
                    .and_then(|u| u.get(&self.table))
                    .filter(|k| !k.keys().is_empty())
                    .cloned();
                if request.is_some() {
                    if rounds > 10 {
                        return Err(unavailable("the index kept leaving keys unprocessed"));
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50 * rounds)).await;
                }
            }
        }
        Ok(found)
    }

    async fn list(
        &self,
        connection: ConnectionId,
        entity: EntityType,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<(String, RecordState)>, Option<String>), StateError> {
        let pk = record_index_pk(connection, entity);
        let mut request = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(&pk))
            .consistent_read(true)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX));
        if let Some(after) = after {
            request = request.set_exclusive_start_key(Some(record_key(connection, entity, after)));
        }
        let out = request
            .send()
            .await
            .map_err(|e| unavailable(describe(&e)))?;
        let entries: Vec<(String, RecordState)> = out
            .items()
            .iter()
            .filter_map(|item| {
                let id = item.get("sk")?.as_s().ok()?.clone();
                Some((id, state_of(item)))
            })
            .collect();
        let next = out
            .last_evaluated_key()
            .and_then(|k| k.get("sk"))
            .and_then(|v| v.as_s().ok())
            .cloned();
        Ok((entries, next))
    }

    async fn update(&self, updates: &[RecordUpdate]) -> Result<(), StateError> {
        let writes: Vec<_> = updates.iter().map(|u| self.update_one(u)).collect();
        let results: Vec<_> = stream::iter(writes)
            .buffer_unordered(UPDATES_IN_FLIGHT)
            .collect()
            .await;
        results.into_iter().find(Result::is_err).unwrap_or(Ok(()))
    }
}
