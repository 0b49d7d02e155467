//! Webhook intake: every genuine platform event becomes at most one queued event; forged or
//! malformed deliveries change nothing.
//!
//! Order of work for one delivery, each step before anything is parsed or written:
//! 1. the connection named by the URL exists, is on the URL's platform, has webhooks on;
//! 2. the platform's module (see [`crate::platforms`]) checks the signature (or shared
//!    secret) over the raw body bytes, in constant time, then the media type, then parses
//!    the body into events.
//!
//! The connection and its opened secret are kept in the warm container for
//! [`IntakeSettings::connection_cache`] (a minute): a signature the kept secret refuses
//! re-reads the connection once before the 401, so a rotated secret works at once; a
//! deleted or disabled connection is refused, and a secret rotated away stops working,
//! within that minute.
//!
//! Each event is then claimed with one conditional write that is also its log entry (a
//! redelivery is a duplicate, told so by that write's refusal), and put on the
//! webhook-events queue: two sequential calls for a new event, one for a duplicate. If
//! queueing fails the claim is released and the delivery answered 5xx, so the platform's
//! retry gets through. If the process dies between claim and queue, the claim stays
//! unmarked; once its lease has run out a redelivery takes it over. The coalescer marks
//! each event's claim with its job before queueing the job, and the first message marked
//! carries the event: of a taken-over claim's message and its successor's, exactly one
//! becomes a job, whichever order they come in. Nothing is stranded as "seen" but never
//! queued. The intake never calls a platform.
//!
//! The claim key is the connection plus the event's own key: the same delivery sent to two
//! connections (two tenants with the same QuickBooks company, each with its own app) is two
//! events, one per connection, and each connection deduplicates on its own.
//!
//! A delivery can carry hundreds of events (QuickBooks batches them) and must be answered
//! within QuickBooks' 3 seconds, so the events of one delivery are claimed concurrently (a
//! bounded number at a time) and queued in batches of ten.

use chrono::{DateTime, Duration, Utc};
use futures::stream::{self, StreamExt};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use super::open_secrets;
use crate::clock::Clock;
use crate::crypto::sha256_hex;
use crate::domain::{
    Connection, ConnectionId, EventRecord, EventStatus, Platform, QueuedEvent, Secret,
};
use crate::platforms::{Parsed, Received, Refusal, WebhookDelivery};
use crate::ports::{Claim, ConnectionReader, EventClaims, EventQueue, SecretOpener};

/// Longest event key kept in the log (the claim uses its hash, whatever its length).
const MAX_LOGGED_KEY: usize = 512;

/// How many claims of one delivery are in flight at once: enough to answer a 200-event
/// QuickBooks delivery in well under its 3 seconds, few enough not to be throttled.
const CLAIM_CONCURRENCY: usize = 32;

/// Tunables of the intake.
#[derive(Clone)]
pub struct IntakeSettings {
    /// How long an event key stays claimed: redeliveries within it are duplicates.
    pub dedup_ttl: Duration,
    /// How long a claim may stay unmarked by the coalescer before a redelivery may take it
    /// over (its holder may have died between the claim and the queue).
    pub claim_lease: Duration,
    /// How long a warm intake keeps a connection and its opened webhook secret: a deleted or
    /// disabled connection is refused within this long; a rotated secret works at once (a
    /// signature the cached secret refuses re-reads the connection before answering 401).
    pub connection_cache: std::time::Duration,
    /// The deployment's own apps' webhook secrets (QuickBooks: the app's verifier token),
    /// for deliveries to `POST /webhooks/{platform}`.
    pub app_secrets: HashMap<Platform, Secret>,
}

impl std::fmt::Debug for IntakeSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntakeSettings")
            .field("dedup_ttl", &self.dedup_ttl)
            .field("claim_lease", &self.claim_lease)
            .field("connection_cache", &self.connection_cache)
            .field("app_secrets", &self.app_secrets.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Default for IntakeSettings {
    fn default() -> Self {
        Self {
            dedup_ttl: Duration::hours(72),
            claim_lease: Duration::seconds(30),
            connection_cache: std::time::Duration::from_secs(60),
            app_secrets: HashMap::new(),
        }
    }
}

/// One HTTP delivery, as the intake needs it.
pub struct Delivery<'a> {
    /// The `{platform}` and `{connection_id}` segments of the URL.
    pub platform: &'a str,
    pub connection_id: &'a str,
    /// Header names in lower case.
    pub headers: &'a HashMap<String, String>,
    pub body: &'a [u8],
}

/// What the intake did with a delivery it accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// WooCommerce's unsigned creation ping: answer exactly 200.
    Ping,
    Accepted {
        queued: usize,
        duplicates: usize,
        ignored: usize,
    },
}

/// Why a delivery was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntakeError {
    /// Answered with a generic 401; the reason is only logged.
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("bad payload: {0}")]
    BadPayload(String),
    /// A dependency failed; answered 5xx so the platform retries.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// A connection as read, with its opened webhook secret.
#[derive(Clone)]
struct Known {
    connection: Arc<Connection>,
    secret: Option<Secret>,
    at: DateTime<Utc>,
}

/// The intake use case.
pub struct Intake {
    connections: Arc<dyn ConnectionReader>,
    sealer: Arc<dyn SecretOpener>,
    claims: Arc<dyn EventClaims>,
    queue: Arc<dyn EventQueue>,
    clock: Arc<dyn Clock>,
    settings: IntakeSettings,
    known: Mutex<HashMap<ConnectionId, Known>>,
    recent: RecentKeys,
}

fn refuse(connection: &str, platform: &str, reason: &'static str) -> IntakeError {
    tracing::warn!(
        connection_id = %crate::logtext::clip(connection),
        platform = %crate::logtext::clip(platform),
        reason,
        "webhook refused"
    );
    IntakeError::Unauthorized(reason)
}

impl Intake {
    pub fn new(
        connections: Arc<dyn ConnectionReader>,
        sealer: Arc<dyn SecretOpener>,
        claims: Arc<dyn EventClaims>,
        queue: Arc<dyn EventQueue>,
        clock: Arc<dyn Clock>,
        settings: IntakeSettings,
    ) -> Self {
        Self {
            connections,
            sealer,
            claims,
            queue,
            clock,
            recent: RecentKeys::new(settings.dedup_ttl),
            settings,
            known: Mutex::new(HashMap::new()),
        }
    }

    pub async fn handle(&self, d: &Delivery<'_>) -> Result<Outcome, IntakeError> {
        let refused = |reason| refuse(d.connection_id, d.platform, reason);
        let platform: Platform = d
            .platform
            .parse()
            .map_err(|_| refused("unknown platform"))?;
        let id: ConnectionId = d
            .connection_id
            .parse()
            .map_err(|_| refused("malformed connection id"))?;
        // A connection kept from an earlier delivery that refuses this one is read again
        // once: its secret may have been rotated, or webhooks turned back on, since.
        let mut known = self.known(id, false).await?;
        let mut verdict = Self::receive(platform, &known, d);
        if matches!(verdict, Err(IntakeError::Unauthorized(_)))
            && known.as_ref().is_some_and(|k| k.1)
        {
            known = self.known(id, true).await?;
            verdict = Self::receive(platform, &known, d);
        }
        match verdict {
            Ok(Received::Ping) => {
                tracing::info!(connection_id = %id, platform = %platform, "webhook ping acknowledged");
                Ok(Outcome::Ping)
            }
            Ok(Received::Events(parsed)) => match known {
                Some((k, _)) => self.enqueue(&k.connection, parsed).await,
                None => Err(refused("unknown connection")),
            },
            Err(IntakeError::Unauthorized(reason)) => Err(refused(reason)),
            Err(e) => Err(e),
        }
    }

    /// Checks one delivery against the connection it names, as known: the platform, that
    /// webhooks are on, then the platform module's signature check and parse.
    fn receive(
        platform: Platform,
        known: &Option<(Known, bool)>,
        d: &Delivery<'_>,
    ) -> Result<Received, IntakeError> {
        let Some((known, _)) = known else {
            return Err(IntakeError::Unauthorized("unknown connection"));
        };
        let connection = known.connection.as_ref();
        if connection.platform != platform {
            return Err(IntakeError::Unauthorized(
                "connection is on another platform",
            ));
        }
        if !connection.webhooks_enabled {
            return Err(IntakeError::Unauthorized(
                "webhooks are disabled for the connection",
            ));
        }
        if connection.is_deleting() {
            return Err(IntakeError::Unauthorized("the connection is being deleted"));
        }
        let secret = known.secret.as_ref().ok_or(IntakeError::Unauthorized(
            "the connection has no webhook secret",
        ))?;
        let delivery = WebhookDelivery {
            headers: d.headers,
            body: d.body,
        };
        platform
            .module()
            .receive(connection, secret.expose(), &delivery)
            .map_err(|refusal| match refusal {
                Refusal::Unauthorized(reason) => IntakeError::Unauthorized(reason),
                Refusal::UnsupportedMediaType => IntakeError::UnsupportedMediaType,
                Refusal::BadPayload(why) => IntakeError::BadPayload(why),
            })
    }

    /// A delivery to the deployment's app-wide URL (`POST /webhooks/{platform}`): verified
    /// with the app's secret, then each company's events go to every connection routed to
    /// it, each deduplicating on its own. Events for a company no connection has are
    /// acknowledged and dropped.
    pub async fn handle_app(
        &self,
        platform: &str,
        headers: &HashMap<String, String>,
        body: &[u8],
    ) -> Result<Outcome, IntakeError> {
        let refused = |reason| refuse("(app)", platform, reason);
        let platform: Platform = platform.parse().map_err(|_| refused("unknown platform"))?;
        let secret =
            self.settings.app_secrets.get(&platform).ok_or_else(|| {
                refused("the deployment has no app webhook secret for the platform")
            })?;
        let delivery = WebhookDelivery { headers, body };
        let routed = match platform.module().receive_app(secret.expose(), &delivery) {
            Ok(routed) => routed,
            Err(Refusal::Unauthorized(reason)) => return Err(refused(reason)),
            Err(Refusal::UnsupportedMediaType) => return Err(IntakeError::UnsupportedMediaType),
            Err(Refusal::BadPayload(why)) => return Err(IntakeError::BadPayload(why)),
        };
        let (mut queued, mut duplicates, mut ignored) = (0, 0, 0);
        for (route, parsed) in routed {
            let connections = self
                .connections
                .routed(&route)
                .await
                .map_err(|e| IntakeError::Unavailable(e.to_string()))?;
            if connections.is_empty() {
                tracing::info!(route = %crate::logtext::clip(&route), events = parsed.events.len(), "app webhook events for no connection dropped");
                ignored += parsed.events.len();
                continue;
            }
            for connection in connections.iter().filter(|c| !c.is_deleting()) {
                if let Outcome::Accepted {
                    queued: q,
                    duplicates: d,
                    ignored: i,
                } = self.enqueue(connection, parsed.clone()).await?
                {
                    queued += q;
                    duplicates += d;
                    ignored += i;
                }
            }
        }
        Ok(Outcome::Accepted {
            queued,
            duplicates,
            ignored,
        })
    }

    async fn enqueue(
        &self,
        connection: &Connection,
        parsed: Parsed,
    ) -> Result<Outcome, IntakeError> {
        for reason in &parsed.ignored {
            tracing::info!(connection_id = %connection.id, reason = %reason, "webhook event ignored");
        }
        let now = self.clock.now();
        let mut duplicates = 0;
        let mut seen = HashSet::new();
        let mut records = Vec::new();
        for event in parsed.events {
            let key_hash = claim_key(connection, &event.key);
            // The same event twice in one delivery is one event; one this container queued
            // a moment ago is a duplicate without asking the table.
            if !seen.insert(key_hash.clone()) || self.recent.seen(&key_hash, now) {
                duplicates += 1;
                continue;
            }
            records.push(EventRecord {
                connection_id: connection.id,
                tenant_id: connection.tenant_id.clone(),
                platform: connection.platform,
                event_key: event.key.chars().take(MAX_LOGGED_KEY).collect(),
                key_hash,
                event_type: event.event_type,
                entity_type: event.entity_type,
                entity_id: event.entity_id,
                received_at: now,
                status: EventStatus::Claimed,
                message_id: None,
                job_id: None,
                claim_token: uuid::Uuid::new_v4().simple().to_string(),
            });
        }

        let (ttl, lease) = (self.settings.dedup_ttl, self.settings.claim_lease);
        let claims: Vec<_> = records
            .iter()
            .map(|r| self.claims.claim(r, now, ttl, lease))
            .collect();
        let outcomes: Vec<_> = stream::iter(claims)
            .buffered(CLAIM_CONCURRENCY)
            .collect()
            .await;
        let mut claimed = Vec::new();
        let mut claim_error = None;
        // A claim whose write failed may still have been written (its answer lost): it is
        // given back like an unqueued one, which changes nothing if it was not.
        let mut unqueued = Vec::new();
        for (record, outcome) in records.into_iter().zip(outcomes) {
            match outcome {
                Ok(Claim::Claimed) => claimed.push((record, true)),
                Ok(Claim::Unmarked) => {
                    tracing::info!(connection_id = %connection.id, key = %record.event_key, "duplicate of an event in no job yet: queued as well, in case its first delivery never was");
                    claimed.push((record, false));
                }
                Ok(Claim::Duplicate) => {
                    tracing::info!(connection_id = %connection.id, key = %record.event_key, "duplicate delivery dropped");
                    duplicates += 1;
                }
                Err(e) => {
                    claim_error = Some(e);
                    unqueued.push(record);
                }
            }
        }

        // What was claimed is queued even when other claims failed: the platform's retry
        // then finds those as duplicates and claims only the rest. Once queued, the claim
        // needs no further write: the coalescer marks it with its job.
        let messages: Vec<QueuedEvent> = claimed
            .iter()
            .map(|(r, _)| QueuedEvent::from_record(r))
            .collect();
        let mut sent = self.queue.send_events(&messages).await.into_iter();
        let mut queued = 0;
        let mut queue_error = None;
        for (record, ours) in claimed {
            match sent.next() {
                Some(Ok(_)) => {
                    self.recent.remember(&record.key_hash, now);
                    match ours {
                        true => queued += 1,
                        false => duplicates += 1,
                    }
                }
                failed => {
                    queue_error = Some(match failed {
                        Some(Err(e)) => e.to_string(),
                        _ => "the queue answered for fewer events than sent".into(),
                    });
                    if ours {
                        unqueued.push(record);
                    }
                }
            }
        }
        let releases: Vec<_> = unqueued.iter().map(|r| self.claims.release(r)).collect();
        let released: Vec<_> = stream::iter(releases)
            .buffer_unordered(CLAIM_CONCURRENCY)
            .collect()
            .await;
        for e in released.into_iter().filter_map(Result::err) {
            tracing::error!(connection_id = %connection.id, error = %e, "claim not released; its lease will expire");
        }
        if let Some(e) = queue_error {
            return Err(IntakeError::Unavailable(e));
        }
        if let Some(e) = claim_error {
            return Err(IntakeError::Unavailable(e.to_string()));
        }
        Ok(Outcome::Accepted {
            queued,
            duplicates,
            ignored: parsed.ignored.len(),
        })
    }

    /// The connection and its opened webhook secret, from this container's memory if read
    /// within [`IntakeSettings::connection_cache`] (and `fresh` is not asked), with whether
    /// it came from there. A secret is opened (a KMS call) only when the connection's
    /// version changed. `None`: no such connection (not remembered, so that one created a
    /// moment later is found).
    async fn known(
        &self,
        id: ConnectionId,
        fresh: bool,
    ) -> Result<Option<(Known, bool)>, IntakeError> {
        let kept = self
            .known
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned();
        if let Some(kept) = &kept {
            if !fresh && self.fresh_since(kept.at) {
                return Ok(Some((kept.clone(), true)));
            }
        }
        let Some(connection) = self
            .connections
            .get(id)
            .await
            .map_err(|e| IntakeError::Unavailable(e.to_string()))?
        else {
            self.known
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            return Ok(None);
        };
        let secret = match kept.filter(|k| k.connection.version == connection.version) {
            Some(kept) => kept.secret,
            None => self.webhook_secret(&connection).await?,
        };
        let known = Known {
            connection: Arc::new(connection),
            secret,
            at: self.clock.now(),
        };
        self.known
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, known.clone());
        Ok(Some((known, false)))
    }

    /// Whether something read at `at` is still within the cache period.
    fn fresh_since(&self, at: DateTime<Utc>) -> bool {
        (self.clock.now() - at)
            .to_std()
            .is_ok_and(|age| age < self.settings.connection_cache)
    }

    /// The connection's webhook secret, opened (a KMS call).
    async fn webhook_secret(&self, connection: &Connection) -> Result<Option<Secret>, IntakeError> {
        let mut secrets = open_secrets(self.sealer.as_ref(), connection)
            .await
            .map_err(|e| IntakeError::Unavailable(e.to_string()))?;
        Ok(secrets.remove(connection.platform.spec().webhook_secret))
    }
}

/// Event keys this container queued in the last few minutes: a redelivery of one (a
/// platform retrying a delivery whose answer it missed usually reaches the same warm
/// container) is a duplicate without a call. Only keys whose event is on the queue are
/// kept, and for less than the deduplication window: the table would at most let a
/// redelivery queue a second message of the event, which the coalescer drops (a queued
/// message that never becomes a job ends in the dead-letter queue, which is alarmed).
struct RecentKeys {
    keys: Mutex<KeysByAge>,
    kept_for: Duration,
}

/// Each key with when it was queued, and the keys oldest first.
type KeysByAge = (HashMap<String, DateTime<Utc>>, VecDeque<String>);

/// How many keys a container keeps, oldest dropped first (about 100 bytes each).
const RECENT_KEYS: usize = 10_000;

impl RecentKeys {
    fn new(dedup_ttl: Duration) -> Self {
        Self {
            keys: Mutex::default(),
            kept_for: dedup_ttl.min(Duration::minutes(10)),
        }
    }

    fn seen(&self, key: &str, now: DateTime<Utc>) -> bool {
        let keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        keys.0.get(key).is_some_and(|at| now - *at < self.kept_for)
    }

    fn remember(&self, key: &str, now: DateTime<Utc>) {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        let (by_key, order) = &mut *keys;
        if by_key.insert(key.to_string(), now).is_none() {
            order.push_back(key.to_string());
        }
        while order.len() > RECENT_KEYS {
            if let Some(oldest) = order.pop_front() {
                by_key.remove(&oldest);
            }
        }
    }
}

/// What an event is deduplicated on: the connection and the event's own key, hashed (keys
/// can be long; the claim's key must not be).
fn claim_key(connection: &Connection, event_key: &str) -> String {
    sha256_hex(format!("{}|{}|{event_key}", connection.id, connection.platform).as_bytes())
}

#[cfg(test)]
#[path = "intake_tests.rs"]
mod tests;
