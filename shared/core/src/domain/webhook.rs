//! Webhook events: what a delivery is parsed into, what is logged per accepted event, and
//! the message that carries it to the coalescer.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use super::{ConnectionId, EntityType, Platform, TenantId};

/// One change a platform told us about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookEvent {
    /// What makes this event itself, across redeliveries: QBO's CloudEvents `id`, else
    /// entity + id + modification stamp (or a digest of the exact body where there is none).
    pub key: String,
    /// The platform's name for what happened, e.g. `order.updated`, `Customer.Update`.
    pub event_type: String,
    pub entity_type: EntityType,
    pub entity_id: String,
}

/// Where an accepted event is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    /// Accepted: on the webhook-events queue, or about to be (the claim is the log entry,
    /// and the next write to it is the coalescer's).
    Claimed,
    /// On the webhook-events queue (entries logged by intakes before the claim became the
    /// log entry).
    Queued,
    /// Merged into a sync job (see `job_id`).
    Coalesced,
    /// The queue refused it; the claim was released so the platform's retry gets through.
    EnqueueFailed,
}

impl EventStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Claimed => "claimed",
            EventStatus::Queued => "queued",
            EventStatus::Coalesced => "coalesced",
            EventStatus::EnqueueFailed => "enqueue_failed",
        }
    }
}

impl fmt::Display for EventStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventStatus {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        Ok(match s {
            "claimed" => EventStatus::Claimed,
            "queued" => EventStatus::Queued,
            "coalesced" => EventStatus::Coalesced,
            "enqueue_failed" => EventStatus::EnqueueFailed,
            _ => return Err(()),
        })
    }
}

/// The log entry of one accepted event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRecord {
    pub connection_id: ConnectionId,
    pub tenant_id: TenantId,
    pub platform: Platform,
    /// The event key as built (truncated for storage), and its SHA-256, which is what the
    /// deduplication claim is keyed on.
    pub event_key: String,
    pub key_hash: String,
    pub event_type: String,
    pub entity_type: EntityType,
    pub entity_id: String,
    pub received_at: DateTime<Utc>,
    pub status: EventStatus,
    /// The id SQS gave the queued event.
    pub message_id: Option<String>,
    /// The sync job the event was merged into.
    pub job_id: Option<String>,
    /// Unique per claim; only its holder may release or confirm the claim.
    pub claim_token: String,
}

impl EventRecord {
    /// Sort key of the log entry: newest first when read backwards.
    pub fn log_key(&self) -> String {
        format!(
            "{:013}#{}",
            self.received_at.timestamp_millis().max(0),
            self.claim_token
        )
    }
}

/// A page of a connection's event log, newest first.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct EventPage {
    pub events: Vec<EventRecord>,
    /// Pass back as `next` for the following page; `None` on the last.
    pub next: Option<String>,
}

/// What the intake puts on the webhook-events queue for each accepted event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedEvent {
    pub tenant_id: TenantId,
    pub connection_id: ConnectionId,
    pub platform: Platform,
    pub entity_type: EntityType,
    pub entity_id: String,
    pub event_type: String,
    pub key_hash: String,
    pub log_key: String,
    pub received_at: DateTime<Utc>,
}

impl QueuedEvent {
    /// The token of the claim that queued the event (the log key is the receipt time and
    /// the token): only while the claim still holds it may the event become a job.
    pub fn claim_token(&self) -> &str {
        self.log_key
            .split_once('#')
            .map_or(self.log_key.as_str(), |(_, token)| token)
    }

    pub fn from_record(r: &EventRecord) -> Self {
        Self {
            tenant_id: r.tenant_id.clone(),
            connection_id: r.connection_id,
            platform: r.platform,
            entity_type: r.entity_type,
            entity_id: r.entity_id.clone(),
            event_type: r.event_type.clone(),
            key_hash: r.key_hash.clone(),
            log_key: r.log_key(),
            received_at: r.received_at,
        }
    }
}
