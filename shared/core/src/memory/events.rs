//! Webhook claims and the event log in memory.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use super::lock;
use crate::domain::{ConnectionId, EventPage, EventRecord, EventStatus};
use crate::ports::{Claim, EventClaims, EventJobs, EventLog, EventLogError};

/// One live claim: status, holder's token, when claimed, when it expires.
type ClaimRow = (EventStatus, String, DateTime<Utc>, DateTime<Utc>);

/// Claims and the event log in memory, with the same rules as the DynamoDB adapter.
#[derive(Default)]
pub struct MemoryEventStore {
    claims: Mutex<HashMap<String, ClaimRow>>,
    log: Mutex<std::collections::BTreeMap<(ConnectionId, String), EventRecord>>,
    failing: AtomicBool,
}

impl MemoryEventStore {
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// Every logged record, oldest first.
    pub fn records(&self) -> Vec<EventRecord> {
        lock(&self.log).values().cloned().collect()
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
        self.check()?;
        let mut claims = lock(&self.claims);
        let free = match claims.get(&record.key_hash) {
            None => true,
            Some((status, _, claimed_at, expires_at)) => {
                *expires_at < now || (*status == EventStatus::Claimed && *claimed_at < now - lease)
            }
        };
        if !free {
            return Ok(Claim::Duplicate);
        }
        claims.insert(
            record.key_hash.clone(),
            (
                EventStatus::Claimed,
                record.claim_token.clone(),
                now,
                now + ttl,
            ),
        );
        lock(&self.log).insert((record.connection_id, record.log_key()), record.clone());
        Ok(Claim::Claimed)
    }

    async fn confirm(&self, queued: &[(EventRecord, String)]) -> Result<(), EventLogError> {
        self.check()?;
        for (record, message_id) in queued {
            if let Some(claim) = lock(&self.claims).get_mut(&record.key_hash) {
                if claim.1 == record.claim_token {
                    claim.0 = EventStatus::Queued;
                }
            }
            if let Some(entry) = lock(&self.log).get_mut(&(record.connection_id, record.log_key()))
            {
                // A coalescer that got there first keeps its status (as the table does).
                if entry.job_id.is_none() {
                    entry.status = EventStatus::Queued;
                }
                entry.message_id = Some(message_id.clone());
            }
        }
        Ok(())
    }

    async fn release(&self, record: &EventRecord) -> Result<(), EventLogError> {
        self.check()?;
        let mut claims = lock(&self.claims);
        if claims
            .get(&record.key_hash)
            .is_some_and(|c| c.1 == record.claim_token)
        {
            claims.remove(&record.key_hash);
        }
        if let Some(entry) = lock(&self.log).get_mut(&(record.connection_id, record.log_key())) {
            entry.status = EventStatus::EnqueueFailed;
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
        let log = lock(&self.log);
        let mut entries: Vec<&EventRecord> = log
            .iter()
            .filter(|((c, key), _)| *c == connection && next.is_none_or(|n| key.as_str() < n))
            .map(|(_, r)| r)
            .collect();
        entries.reverse();
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
    async fn set_job(
        &self,
        connection: ConnectionId,
        log_key: &str,
        job_id: &str,
    ) -> Result<(), EventLogError> {
        self.check()?;
        if let Some(entry) = lock(&self.log).get_mut(&(connection, log_key.to_string())) {
            entry.status = EventStatus::Coalesced;
            entry.job_id = Some(job_id.to_string());
        }
        Ok(())
    }
}
