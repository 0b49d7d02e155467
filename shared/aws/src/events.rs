//! Webhook deduplication claims and the event log in DynamoDB (same table).
//!
//! An event's claim is its log entry: `pk = EVENTKEY#<platform>#<sha256 of the event
//! key>`, `sk = CLAIM`, with the event's fields, the claim's status, token and time, until
//! when it deduplicates (`dedup_until`), and when the entry goes (`expires_at`, DynamoDB's
//! TTL, 30 days). Claiming is one conditional `PutItem`, so a new event costs one write
//! and a duplicate learns it is one from that write's refusal, with nothing read first.
//! The entry is in a connection's log through the index: `gsi1pk = EVENTS#<connection>`,
//! `gsi1sk = EVENT#<received ms>#<claim token>`, so a connection's log is one query,
//! newest first.
//!
//! The coalescer's mark of an entry with its job is `event_jobs.rs`'s. Entries logged by
//! intakes before the claim became the log entry (`pk = CONNECTION#<id>`,
//! `sk = EVENT#…`) are listed with the rest until their 30 days are over. Expired entries
//! are treated as gone on read (DynamoDB's TTL deletion can lag by a day or two).

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
use aws_sdk_dynamodb::Client;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};

use crate::sdk::{condition_failed, describe};
use crate::table::{
    event_claim_key, event_log_pk, get_s, get_time, n, parsed, s, time, Item, EVENT_PREFIX,
    TENANT_INDEX,
};
use sync_core::domain::{ConnectionId, EventPage, EventRecord, EventStatus, TenantId};
use sync_core::ports::{Claim, EventClaims, EventLog, EventLogError};

/// How long log entries are kept.
const LOG_TTL_DAYS: i64 = 30;

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

    /// Up to `want` live entries of one of the log's two homes, newest first, older than
    /// the cursor's entry: the index (`gsi1`, entries that are claims) or the connection's
    /// own partition (entries logged apart from their claims).
    async fn older_than(
        &self,
        home: LogHome,
        connection: ConnectionId,
        before: Option<&str>,
        want: usize,
        now: DateTime<Utc>,
    ) -> Result<Vec<EventRecord>, EventLogError> {
        let (index, pk_name, sk_name, pk) = match home {
            LogHome::Index => (
                Some(TENANT_INDEX),
                "gsi1pk",
                "gsi1sk",
                event_index_pk(connection),
            ),
            LogHome::Partition => (None, "pk", "sk", event_log_pk(connection)),
        };
        // `BETWEEN` is inclusive: the cursor's own entry is skipped below. Every sort key
        // under `EVENT#` is below `EVENT$`.
        let upper = before.map_or_else(|| "EVENT$".to_string(), |b| format!("{EVENT_PREFIX}{b}"));
        let mut events = Vec::new();
        let mut start = None;
        // Expired entries are filtered out after the read, so a page may need more than
        // one query to fill.
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .set_index_name(index.map(str::to_string))
                .key_condition_expression("#pk = :pk AND #sk BETWEEN :lower AND :upper")
                .filter_expression("expires_at > :now")
                .expression_attribute_names("#pk", pk_name)
                .expression_attribute_names("#sk", sk_name)
                .expression_attribute_values(":pk", s(&pk))
                .expression_attribute_values(":lower", s(EVENT_PREFIX))
                .expression_attribute_values(":upper", s(&upper))
                .expression_attribute_values(":now", n(now.timestamp()))
                .scan_index_forward(false)
                .limit(i32::try_from(want + 1 - events.len().min(want)).unwrap_or(101))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| unavailable(describe(&e)))?;
            for item in out.items() {
                let record = from_log_item(item)?;
                if before != Some(record.log_key().as_str()) {
                    events.push(record);
                }
            }
            match out.last_evaluated_key() {
                Some(k) if !k.is_empty() && events.len() < want => start = Some(k.clone()),
                _ => break,
            }
        }
        events.truncate(want);
        Ok(events)
    }
}

/// Where a log entry is kept: see the module's notes.
#[derive(Clone, Copy)]
enum LogHome {
    Index,
    Partition,
}

/// The index partition of a connection's log.
fn event_index_pk(connection: ConnectionId) -> String {
    format!("EVENTS#{connection}")
}

fn unavailable(e: impl std::fmt::Display) -> EventLogError {
    EventLogError::Unavailable(e.to_string())
}

/// The claim of an event, which is its log entry.
fn to_claim_item(r: &EventRecord, now: DateTime<Utc>, ttl: chrono::Duration) -> Item {
    let mut item: Item = event_claim_key(r.platform, &r.key_hash);
    item.insert("gsi1pk".into(), s(event_index_pk(r.connection_id)));
    item.insert("gsi1sk".into(), s(format!("{EVENT_PREFIX}{}", r.log_key())));
    item.insert("claimed_at".into(), n(now.timestamp_millis()));
    item.insert("dedup_until".into(), n((now + ttl).timestamp()));
    item.insert("log_key".into(), s(r.log_key()));
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
    // The entry stays for the log's 30 days, or the deduplication window if longer.
    let kept = (r.received_at + chrono::Duration::days(LOG_TTL_DAYS)).max(now + ttl);
    item.insert("expires_at".into(), n(kept.timestamp()));
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

#[async_trait]
impl EventClaims for DynamoEventStore {
    async fn claim(
        &self,
        record: &EventRecord,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
        lease: chrono::Duration,
    ) -> Result<Claim, EventLogError> {
        // Claimable: never claimed; past its deduplication window (a claim written before
        // `dedup_until` existed kept it in `expires_at`); released; or still unmarked by
        // the coalescer after the lease.
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_claim_item(record, now, ttl)))
            .condition_expression(
                "attribute_not_exists(pk) OR dedup_until < :now \
                 OR (attribute_not_exists(dedup_until) AND expires_at < :now) \
                 OR #status = :failed OR (#status = :claimed AND claimed_at < :stale)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":now", n(now.timestamp()))
            .expression_attribute_values(":failed", s(EventStatus::EnqueueFailed.as_str()))
            .expression_attribute_values(":claimed", s(EventStatus::Claimed.as_str()))
            .expression_attribute_values(":stale", n((now - lease).timestamp_millis()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let e = match result {
            Ok(_) => return Ok(Claim::Claimed),
            Err(e) => e,
        };
        match e.as_service_error() {
            Some(PutItemError::ConditionalCheckFailedException(refused)) => {
                // The SDK retries a write whose answer was lost: the claim it then finds
                // may be the one this very write made.
                let held = |field| refused.item().and_then(|i| get_s(i, field).ok());
                if held("claim_token") == Some(record.claim_token.as_str()) {
                    return Ok(Claim::Claimed);
                }
                if held("status") == Some(EventStatus::Claimed.as_str()) {
                    return Ok(Claim::Unmarked);
                }
                Ok(Claim::Duplicate)
            }
            _ => Err(unavailable(describe(&e))),
        }
    }

    async fn release(&self, record: &EventRecord) -> Result<(), EventLogError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(event_claim_key(record.platform, &record.key_hash)))
            .update_expression("SET #status = :failed")
            .condition_expression("claim_token = :ours AND #status = :claimed")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":ours", s(&record.claim_token))
            .expression_attribute_values(":claimed", s(EventStatus::Claimed.as_str()))
            .expression_attribute_values(":failed", s(EventStatus::EnqueueFailed.as_str()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Another delivery holds the key now, or the coalescer marked it (the queue took
            // the event after all): nothing to release.
            Err(e) if condition_failed(&e) => Ok(()),
            Err(e) => Err(unavailable(describe(&e))),
        }
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
        let before = match next {
            None => None,
            Some(cursor) => {
                let bytes = URL_SAFE_NO_PAD
                    .decode(cursor)
                    .map_err(|_| EventLogError::BadCursor)?;
                let sk = String::from_utf8(bytes).map_err(|_| EventLogError::BadCursor)?;
                let Some(log_key) = sk.strip_prefix(EVENT_PREFIX) else {
                    return Err(EventLogError::BadCursor);
                };
                Some(log_key.to_string())
            }
        };
        // The two homes of the log, each read as far as a page could need, merged newest
        // first; one more than the page tells whether another follows.
        let (claims, apart) = futures::try_join!(
            self.older_than(
                LogHome::Index,
                connection,
                before.as_deref(),
                limit + 1,
                now
            ),
            self.older_than(
                LogHome::Partition,
                connection,
                before.as_deref(),
                limit + 1,
                now
            ),
        )?;
        let mut events: Vec<EventRecord> = claims.into_iter().chain(apart).collect();
        events.sort_by_key(|r| std::cmp::Reverse(r.log_key()));
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
