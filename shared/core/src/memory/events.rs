//! Webhook claims and the event log in memory.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use super::lock;
use crate::domain::{ConnectionId, EventPage, EventRecord, EventStatus, QueuedEvent};
use crate::ports::{Claim, EventClaims, EventJobs, EventLog, EventLogError};

/// One claim, which is also the event's log entry: the record, until when it keeps its key
/// from redeliveries, and the token of the message the coalescer marked it by.
struct ClaimRow {
    record: EventRecord,
    dedup_until: DateTime<Utc>,
    marked_by: Option<String>,
}

impl ClaimRow {
    fn new(record: EventRecord, dedup_until: DateTime<Utc>) -> Self {
        Self {
            record,
            dedup_until,
            marked_by: None,
        }
    }
}

/// Claims and the event log in memory, with the same rules as the DynamoDB adapter.
#[derive(Default)]
pub struct MemoryEventStore {
    claims: Mutex<HashMap<String, ClaimRow>>,
    failing: AtomicBool,
    writes: AtomicUsize,
}

impl MemoryEventStore {
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// Every logged record, oldest first.
    pub fn records(&self) -> Vec<EventRecord> {
        let mut records: Vec<EventRecord> = lock(&self.claims)
            .values()
            .map(|c| c.record.clone())
            .collect();
        records.sort_by_key(EventRecord::log_key);
        records
    }

    /// Holds the claim of a queued event as the intake left it (for tests of the coalescer).
    pub fn hold(&self, event: &QueuedEvent) {
        let record = EventRecord {
            connection_id: event.connection_id,
            tenant_id: event.tenant_id.clone(),
            platform: event.platform,
            event_key: event.key_hash.clone(),
            key_hash: event.key_hash.clone(),
            event_type: event.event_type.clone(),
            entity_type: event.entity_type,
            entity_id: event.entity_id.clone(),
            received_at: event.received_at,
            status: EventStatus::Claimed,
            message_id: None,
            job_id: None,
            claim_token: event.claim_token().to_string(),
        };
        lock(&self.claims).insert(
            event.key_hash.clone(),
            ClaimRow::new(record, event.received_at + chrono::Duration::hours(72)),
        );
    }

    /// How many writes (claims, releases, marks) were asked of the store, refused ones
    /// included: each is one call in DynamoDB.
    pub fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }

    /// One write asked of the store.
    fn write(&self) -> Result<(), EventLogError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.check()
    }

    fn check(&self) -> Result<(), EventLogError> {
        if self.failing.load(Ordering::SeqCst) {
            Err(EventLogError::Unavailable(
                "memory event store set to fail".into(),
            ))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl EventClaims for MemoryEventStore {
    async fn claim(
        &self,
        record: &EventRecord,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
        lease: chrono::Duration,
    ) -> Result<Claim, EventLogError> {
        self.write()?;
        let mut claims = lock(&self.claims);
        if let Some(row) = claims.get(&record.key_hash) {
            let held = &row.record;
            let abandoned = held.status == EventStatus::Claimed && held.received_at < now - lease;
            let claimable =
                row.dedup_until < now || held.status == EventStatus::EnqueueFailed || abandoned;
            if held.claim_token == record.claim_token {
                return Ok(Claim::Claimed);
            }
            if !claimable {
                return Ok(match held.status {
                    EventStatus::Claimed => Claim::Unmarked,
                    _ => Claim::Duplicate,
                });
            }
        }
        claims.insert(
            record.key_hash.clone(),
            ClaimRow::new(record.clone(), now + ttl),
        );
        Ok(Claim::Claimed)
    }

    async fn release(&self, record: &EventRecord) -> Result<(), EventLogError> {
        self.write()?;
        if let Some(row) = lock(&self.claims).get_mut(&record.key_hash).filter(|row| {
            row.record.claim_token == record.claim_token
                && row.record.status == EventStatus::Claimed
        }) {
            row.record.status = EventStatus::EnqueueFailed;
        }
        Ok(())
    }
}

#[async_trait]
impl EventLog for MemoryEventStore {
    async fn list(
        &self,
        connection: ConnectionId,
        limit: usize,
        next: Option<&str>,
        _now: DateTime<Utc>,
    ) -> Result<EventPage, EventLogError> {
        self.check()?;
        let claims = lock(&self.claims);
        let mut entries: Vec<&EventRecord> = claims
            .values()
            .map(|c| &c.record)
            .filter(|r| r.connection_id == connection)
            .filter(|r| next.is_none_or(|n| r.log_key().as_str() < n))
            .collect();
        entries.sort_by_key(|r| std::cmp::Reverse(r.log_key()));
        let has_more = entries.len() > limit;
        let events: Vec<EventRecord> = entries.into_iter().take(limit).cloned().collect();
        let next = if has_more {
            events.last().map(EventRecord::log_key)
        } else {
            None
        };
        Ok(EventPage { events, next })
    }
}

#[async_trait]
impl EventJobs for MemoryEventStore {
    async fn set_job(&self, event: &QueuedEvent, job_id: &str) -> Result<bool, EventLogError> {
        self.write()?;
        let mut claims = lock(&self.claims);
        let Some(row) = claims.get_mut(&event.key_hash) else {
            return Ok(true);
        };
        let token = event.claim_token();
        if row.record.job_id.is_some() && row.marked_by.as_deref() != Some(token) {
            return Ok(false);
        }
        row.record.status = EventStatus::Coalesced;
        row.record.job_id = Some(job_id.to_string());
        row.marked_by = Some(token.to_string());
        Ok(true)
    }
}
