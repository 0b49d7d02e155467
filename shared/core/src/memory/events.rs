//! Webhook claims and the event log in memory.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use super::lock;
use crate::domain::{ConnectionId, EventPage, EventRecord, EventStatus, QueuedEvent};
use crate::ports::{Claim, ClaimHolder, EventClaims, EventJobs, EventLog, EventLogError};

/// One claim, which is also the event's log entry: the record and until when it keeps its
/// key from redeliveries.
type ClaimRow = (EventRecord, DateTime<Utc>);

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
            .map(|(r, _)| r.clone())
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
            (record, event.received_at + chrono::Duration::hours(72)),
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
        let took_over = match claims.get(&record.key_hash) {
            None => None,
            Some((held, dedup_until)) => {
                let abandoned =
                    held.status == EventStatus::Claimed && held.received_at < now - lease;
                if !(*dedup_until < now || held.status == EventStatus::EnqueueFailed || abandoned) {
                    return Ok(Claim::Duplicate);
                }
                abandoned.then(|| ClaimHolder {
                    token: held.claim_token.clone(),
                    claimed_at: held.received_at,
                })
            }
        };
        claims.insert(record.key_hash.clone(), (record.clone(), now + ttl));
        Ok(Claim::Claimed { took_over })
    }

    async fn release(
        &self,
        record: &EventRecord,
        took_over: Option<&ClaimHolder>,
    ) -> Result<(), EventLogError> {
        self.write()?;
        if let Some((held, _)) = lock(&self.claims)
            .get_mut(&record.key_hash)
            .filter(|(held, _)| held.claim_token == record.claim_token)
        {
            match took_over {
                Some(previous) => {
                    held.claim_token = previous.token.clone();
                    held.received_at = previous.claimed_at;
                }
                None => held.status = EventStatus::EnqueueFailed,
            }
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
            .map(|(r, _)| r)
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
        let Some((held, _)) = claims
            .get_mut(&event.key_hash)
            .filter(|(held, _)| held.claim_token == event.claim_token())
        else {
            return Ok(false);
        };
        held.status = EventStatus::Coalesced;
        held.job_id = Some(job_id.to_string());
        Ok(true)
    }
}
