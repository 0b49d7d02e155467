//! Webhook deduplication claims and the event log in DynamoDB (same table).
//!
//! - Claim: `pk = EVENTKEY#<platform>#<sha256 of the event key>`, `sk = CLAIM`, with the
//!   claim's status, token, time and TTL (`expires_at`). Claiming is a conditional write:
//!   it succeeds only when no live claim exists (see [`EventClaims::claim`]).
//! - Log entry: `pk = CONNECTION#<id>`, `sk = EVENT#<received ms>#<claim token>`, beside
//!   the connection itself, so a connection's log is one query, newest first.
//!
//! The coalescer's mark of an entry with its job is `event_jobs.rs`'s.
//!
//! The claim and the log entry are written in one transaction, so there is never a claim
//! without its log entry or the other way round. Expired entries are treated as gone on
//! read (DynamoDB's TTL deletion can lag by a day or two).

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};

use crate::sdk::describe;
use crate::table::{
    event_claim_key, event_log_key, event_log_pk, get_s, get_time, n, parsed, s, time, Item,
    EVENT_PREFIX,
};
use sync_core::domain::{ConnectionId, EventPage, EventRecord, EventStatus, TenantId};
use sync_core::ports::{Claim, EventClaims, EventLog, EventLogError};

/// How long log entries are kept.
const LOG_TTL_DAYS: i64 = 30;

/// Events confirmed per transaction (two writes each; a transaction takes 100).
const CONFIRM_CHUNK: usize = 50;

#[derive(Clone, Debug)]
pub struct DynamoEventStore {
    client: Client,
    table: String,
}

impl DynamoEventStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Sets the log entry's status (and the queue's message id, once there is one).
    fn log_status(
        &self,
        record: &EventRecord,
        status: EventStatus,
        message_id: Option<&str>,
    ) -> Result<TransactWriteItem, EventLogError> {
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(event_log_key(record.connection_id, &record.log_key())))
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", s(status.as_str()));
        update = match message_id {
            Some(id) => update
                .update_expression("SET #status = :status, message_id = :message")
                .expression_attribute_values(":message", s(id)),
            None => update.update_expression("SET #status = :status"),
        };
        Ok(TransactWriteItem::builder()
            .update(update.build().map_err(unavailable)?)
            .build())
    }

    /// The two writes that confirm one queued event: the claim (still ours) becomes
    /// `queued`, and its log entry records the message id.
    fn confirmation(
        &self,
        record: &EventRecord,
        message_id: &str,
    ) -> Result<(TransactWriteItem, TransactWriteItem), EventLogError> {
        let claim = Update::builder()
            .table_name(&self.table)
            .set_key(Some(claim_key(record)))
            .update_expression("SET #status = :queued")
            .condition_expression("claim_token = :token")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":queued", s(EventStatus::Queued.as_str()))
            .expression_attribute_values(":token", s(&record.claim_token))
            .build()
            .map_err(unavailable)?;
        let log = self.log_status(record, EventStatus::Queued, Some(message_id))?;
        Ok((TransactWriteItem::builder().update(claim).build(), log))
    }

    /// Confirms up to [`CONFIRM_CHUNK`] events in one transaction, or one by one if that
    /// transaction is cancelled.
    async fn confirm_chunk(&self, chunk: &[(EventRecord, String)]) -> Result<(), EventLogError> {
        let mut items = Vec::with_capacity(chunk.len() * 2);
        for (record, message_id) in chunk {
            let (claim, log) = self.confirmation(record, message_id)?;
            items.push(claim);
            items.push(log);
        }
        let bulk = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        if bulk.is_ok() {
            return Ok(());
        }
        let singles: Vec<_> = chunk
            .iter()
            .map(|(record, message_id)| async move {
                let (claim, log) = self.confirmation(record, message_id)?;
                self.transact(claim, log).await
            })
            .collect();
        let results: Vec<_> = stream::iter(singles).buffer_unordered(8).collect().await;
        results.into_iter().find(Result::is_err).unwrap_or(Ok(()))
    }

    /// Writes the claim change and the log change together, or neither.
    async fn transact(
        &self,
        claim: TransactWriteItem,
        log: TransactWriteItem,
    ) -> Result<(), EventLogError> {
        self.client
            .transact_write_items()
            .transact_items(claim)
            .transact_items(log)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| unavailable(describe(&e)))
    }
}

fn unavailable(e: impl std::fmt::Display) -> EventLogError {
    EventLogError::Unavailable(e.to_string())
}

fn claim_key(r: &EventRecord) -> Item {
    event_claim_key(r.platform, &r.key_hash)
}

fn to_log_item(r: &EventRecord) -> Item {
    let mut item: Item = event_log_key(r.connection_id, &r.log_key());
    item.insert("kind".into(), s("event"));
    item.insert("connection_id".into(), s(r.connection_id.to_string()));
    item.insert("tenant_id".into(), s(r.tenant_id.as_str()));
    item.insert("platform".into(), s(r.platform.as_str()));
    item.insert("event_key".into(), s(&r.event_key));
    item.insert("key_hash".into(), s(&r.key_hash));
    item.insert("event_type".into(), s(&r.event_type));
    item.insert("entity_type".into(), s(r.entity_type.as_str()));
    item.insert("entity_id".into(), s(&r.entity_id));
    item.insert("received_at".into(), time(r.received_at));
    item.insert("status".into(), s(r.status.as_str()));
    item.insert("claim_token".into(), s(&r.claim_token));
    item.insert(
        "expires_at".into(),
        n((r.received_at + chrono::Duration::days(LOG_TTL_DAYS)).timestamp()),
    );
    item
}

fn from_log_item(item: &Item) -> Result<EventRecord, EventLogError> {
    let opt = |f: &str| item.get(f).and_then(|v| v.as_s().ok()).cloned();
    let bad = |_| EventLogError::Unavailable("stored event has a bad field".into());
    Ok(EventRecord {
        connection_id: parsed(item, "connection_id").map_err(bad)?,
        tenant_id: TenantId::parse(get_s(item, "tenant_id").map_err(bad)?)
            .map_err(|_| EventLogError::Unavailable("stored event has a bad tenant".into()))?,
        platform: parsed(item, "platform").map_err(bad)?,
        event_key: get_s(item, "event_key").map_err(bad)?.to_string(),
        key_hash: get_s(item, "key_hash").map_err(bad)?.to_string(),
        event_type: get_s(item, "event_type").map_err(bad)?.to_string(),
        entity_type: parsed(item, "entity_type").map_err(bad)?,
        entity_id: get_s(item, "entity_id").map_err(bad)?.to_string(),
        received_at: get_time(item, "received_at").map_err(bad)?,
        // The coalescer's job id is the mark of a coalesced event: the intake's confirm
        // (status `queued`) may land after the coalescer already merged the event.
        status: match opt("job_id") {
            Some(_) => EventStatus::Coalesced,
            None => parsed::<EventStatus>(item, "status").map_err(bad)?,
        },
        message_id: opt("message_id"),
        job_id: opt("job_id"),
        claim_token: get_s(item, "claim_token").map_err(bad)?.to_string(),
    })
}

/// True when the claim transaction was cancelled because the claim's condition failed,
/// i.e. a live claim exists. A cancellation for any other reason (a concurrent transaction
/// on the same key, throttling) is not a duplicate: the caller answers 5xx and the
/// platform's retry settles it.
fn claim_condition_failed(e: &TransactWriteItemsError) -> bool {
    match e {
        TransactWriteItemsError::TransactionCanceledException(cancel) => cancel
            .cancellation_reasons()
            .first()
            .and_then(|r| r.code())
            .is_some_and(|code| code == "ConditionalCheckFailed"),
        _ => false,
    }
}

#[async_trait]
impl EventClaims for DynamoEventStore {
    async fn claim(
        &self,
        record: &EventRecord,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
        lease: chrono::Duration,
    ) -> Result<Claim, EventLogError> {
        let mut claim: Item = claim_key(record);
        claim.insert("status".into(), s(EventStatus::Claimed.as_str()));
        claim.insert("claim_token".into(), s(&record.claim_token));
        claim.insert("claimed_at".into(), n(now.timestamp_millis()));
        claim.insert("expires_at".into(), n((now + ttl).timestamp()));
        claim.insert("connection_id".into(), s(record.connection_id.to_string()));
        claim.insert("log_key".into(), s(record.log_key()));
        let put_claim = Put::builder()
            .table_name(&self.table)
            .set_item(Some(claim))
            .condition_expression(
                "attribute_not_exists(pk) OR expires_at < :now OR (#status = :claimed AND claimed_at < :stale)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":now", n(now.timestamp()))
            .expression_attribute_values(":claimed", s(EventStatus::Claimed.as_str()))
            .expression_attribute_values(":stale", n((now - lease).timestamp_millis()))
            .build()
            .map_err(unavailable)?;
        let put_log = Put::builder()
            .table_name(&self.table)
            .set_item(Some(to_log_item(record)))
            .build()
            .map_err(unavailable)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put_claim).build())
            .transact_items(TransactWriteItem::builder().put(put_log).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(Claim::Claimed),
            Err(e) => match e.as_service_error() {
                Some(se) if claim_condition_failed(se) => Ok(Claim::Duplicate),
                _ => Err(unavailable(describe(&e))),
            },
        }
    }

    async fn confirm(&self, queued: &[(EventRecord, String)]) -> Result<(), EventLogError> {
        // A transaction takes up to 100 writes: 50 events, two writes each, a few
        // transactions in flight at once. If one event's condition fails (its lease ran out
        // and a retry took the claim over), its whole transaction is cancelled; that chunk's
        // events are then confirmed one by one, so only the taken-over one stays unconfirmed.
        let chunks: Vec<_> = queued
            .chunks(CONFIRM_CHUNK)
            .map(|chunk| self.confirm_chunk(chunk))
            .collect();
        let results: Vec<_> = stream::iter(chunks).buffer_unordered(4).collect().await;
        results.into_iter().find(Result::is_err).unwrap_or(Ok(()))
    }

    async fn release(&self, record: &EventRecord) -> Result<(), EventLogError> {
        let claim = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(claim_key(record)))
            .condition_expression("claim_token = :token")
            .expression_attribute_values(":token", s(&record.claim_token))
            .build()
            .map_err(unavailable)?;
        let log = self.log_status(record, EventStatus::EnqueueFailed, None)?;
        self.transact(TransactWriteItem::builder().delete(claim).build(), log)
            .await
    }
}

#[async_trait]
impl EventLog for DynamoEventStore {
    async fn list(
        &self,
        connection: ConnectionId,
        limit: usize,
        next: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<EventPage, EventLogError> {
        let start = match next {
            None => None,
            Some(cursor) => {
                let bytes = URL_SAFE_NO_PAD
                    .decode(cursor)
                    .map_err(|_| EventLogError::BadCursor)?;
                let sk = String::from_utf8(bytes).map_err(|_| EventLogError::BadCursor)?;
                let Some(log_key) = sk.strip_prefix(EVENT_PREFIX) else {
                    return Err(EventLogError::BadCursor);
                };
                Some(event_log_key(connection, log_key))
            }
        };
        let mut events = Vec::new();
        let mut start = start;
        // Expired entries are filtered out after the read, so a page may need more than
        // one query to fill; the cursor is always the last entry returned.
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .filter_expression("expires_at > :now")
                .expression_attribute_values(":pk", s(event_log_pk(connection)))
                .expression_attribute_values(":prefix", s(EVENT_PREFIX))
                .expression_attribute_values(":now", n(now.timestamp()))
                .scan_index_forward(false)
                .limit(i32::try_from(limit + 1 - events.len()).unwrap_or(101))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| unavailable(describe(&e)))?;
            for item in out.items() {
                events.push(from_log_item(item)?);
            }
            match out.last_evaluated_key() {
                Some(k) if !k.is_empty() && events.len() <= limit => start = Some(k.clone()),
                _ => break,
            }
        }
        let has_more = events.len() > limit;
        events.truncate(limit);
        let next = if has_more {
            events
                .last()
                .map(|r| URL_SAFE_NO_PAD.encode(format!("{EVENT_PREFIX}{}", r.log_key())))
        } else {
            None
        };
        Ok(EventPage { events, next })
    }
}
