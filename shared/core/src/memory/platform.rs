//! An in-memory platform: a store of records that is both a source and a target, with
//! switches that make it fail the way a platform does (down for a few calls, refusing the
//! credentials, refusing one record, holding a record it cannot map).

use async_trait::async_trait;
use serde_json::{json, Value};
use std::cmp::Ordering as Order;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::lock;
use crate::clock::Clock;
use crate::domain::{Connection, ConnectionId, Cursor, EntityType};
use crate::ports::{
    Connector, Connectors, Item, Page, PlatformError, Source, Subscription, SubscriptionChange,
    Target, WebhookSubscriptions, Write, WriteOutcome,
};
use crate::records::{Body, Record};

#[derive(Default)]
struct Faults {
    /// The next this many calls answer `Unavailable`.
    unavailable: usize,
    rejected: bool,
    /// Writes of records with these source ids fail alone.
    refuse: HashSet<String>,
    /// Writes of records with these source ids fail alone, in a way that may pass (a 503
    /// for that record).
    busy: HashSet<String>,
    /// These records read as data that does not map.
    unreadable: HashSet<String>,
    /// Its API does not manage webhooks (they are set up by hand there).
    no_webhook_api: bool,
    /// How long its webhook calls take to answer.
    latency: std::time::Duration,
}

/// A webhook subscription held by the platform: (id, topic, url, secret).
pub type HeldSubscription = (String, String, String, String);

/// The topics an in-memory platform sends.
const TOPICS: [&str; 3] = ["orders", "customers", "products"];

/// One platform's records, in memory.
pub struct MemoryPlatform {
    records: Mutex<HashMap<EntityType, BTreeMap<String, Record>>>,
    next_id: AtomicUsize,
    page_size: usize,
    clock: Arc<dyn Clock>,
    faults: Mutex<Faults>,
    writes: AtomicUsize,
    calls: AtomicUsize,
    subscriptions: Mutex<Vec<HeldSubscription>>,
}

/// Ids compare as numbers when both are numbers (as platforms order them).
fn id_order(a: &str, b: &str) -> Order {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.cmp(b),
    }
}

fn after(r: &Record, cursor: &Cursor) -> bool {
    match r.modified_at.cmp(&cursor.stamp) {
        Order::Greater => true,
        Order::Less => false,
        Order::Equal => cursor.id.is_empty() || id_order(&r.id, &cursor.id) == Order::Greater,
    }
}

impl MemoryPlatform {
    /// A platform that serves pages of `page_size` records.
    pub fn new(clock: Arc<dyn Clock>, page_size: usize) -> Self {
        Self {
            records: Mutex::default(),
            next_id: AtomicUsize::new(1000),
            page_size: page_size.max(1),
            clock,
            faults: Mutex::default(),
            writes: AtomicUsize::new(0),
            calls: AtomicUsize::new(0),
            subscriptions: Mutex::default(),
        }
    }

    /// The webhook subscriptions it holds.
    pub fn subscriptions(&self) -> Vec<HeldSubscription> {
        lock(&self.subscriptions).clone()
    }

    /// Makes its webhook calls, page reads and writes this slow to answer.
    pub fn set_latency(&self, latency: std::time::Duration) {
        lock(&self.faults).latency = latency;
    }

    async fn delay(&self) {
        let wait = lock(&self.faults).latency;
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Whether its API manages webhooks (default yes).
    pub fn set_webhook_api(&self, available: bool) {
        lock(&self.faults).no_webhook_api = !available;
    }

    /// Creates or edits a record as a user of the platform would (modified now).
    pub fn put(&self, entity: EntityType, id: &str, body: Body) {
        let record = Record {
            id: id.to_string(),
            modified_at: self.clock.now(),
            body: Some(body),
            unknown: Vec::new(),
        };
        lock(&self.records)
            .entry(entity)
            .or_default()
            .insert(id.to_string(), record);
    }

    /// Deletes a record as a user would (it reads as deleted from now on).
    pub fn delete(&self, entity: EntityType, id: &str) {
        let now = self.clock.now();
        if let Some(r) = lock(&self.records).entry(entity).or_default().get_mut(id) {
            r.body = None;
            r.modified_at = now;
        }
    }

    /// Removes a record outright (as WooCommerce deletes a customer): no read shows it, not
    /// even as deleted.
    pub fn forget(&self, entity: EntityType, id: &str) {
        lock(&self.records).entry(entity).or_default().remove(id);
    }

    pub fn get(&self, entity: EntityType, id: &str) -> Option<Record> {
        lock(&self.records).get(&entity)?.get(id).cloned()
    }

    /// Every record that is not deleted, by id.
    pub fn live(&self, entity: EntityType) -> BTreeMap<String, Body> {
        lock(&self.records)
            .get(&entity)
            .map(|m| {
                m.iter()
                    .filter_map(|(id, r)| r.body.clone().map(|b| (id.clone(), b)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How many records were written to it.
    pub fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }

    /// How many calls were made to it.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// The next `n` calls fail as if the platform were down.
    pub fn fail_next(&self, n: usize) {
        lock(&self.faults).unavailable = n;
    }

    /// Every call is refused as if the credentials were revoked.
    pub fn set_rejecting(&self, rejecting: bool) {
        lock(&self.faults).rejected = rejecting;
    }

    /// Writes of the record with source id `id` fail (bad data for this platform).
    pub fn refuse(&self, id: &str) {
        lock(&self.faults).refuse.insert(id.to_string());
    }

    /// Writes of the record with source id `id` are taken again.
    pub fn accept(&self, id: &str) {
        let mut faults = lock(&self.faults);
        faults.refuse.remove(id);
        faults.busy.remove(id);
    }

    /// Writes of the record with source id `id` fail for now (a 503 for it), until `accept`.
    pub fn turn_away(&self, id: &str) {
        lock(&self.faults).busy.insert(id.to_string());
    }

    /// The record `id` reads as data that does not map (until `readable`).
    pub fn unreadable(&self, id: &str) {
        lock(&self.faults).unreadable.insert(id.to_string());
    }

    pub fn readable(&self, id: &str) {
        lock(&self.faults).unreadable.remove(id);
    }

    fn call(&self) -> Result<(), PlatformError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut faults = lock(&self.faults);
        if faults.rejected {
            return Err(PlatformError::Rejected("credentials refused".into()));
        }
        if faults.unavailable > 0 {
            faults.unavailable -= 1;
            return Err(PlatformError::Unavailable("503 from the platform".into()));
        }
        Ok(())
    }

    fn item(&self, r: Record) -> Item {
        if lock(&self.faults).unreadable.contains(&r.id) {
            Item::Bad {
                id: r.id,
                error: "price 'abc' is not a decimal number".into(),
            }
        } else {
            Item::Record(r)
        }
    }
}

#[async_trait]
impl Source for MemoryPlatform {
    async fn changes(
        &self,
        entity: EntityType,
        from: Option<&Cursor>,
        _resume: Option<&Value>,
    ) -> Result<Page, PlatformError> {
        self.delay().await;
        self.call()?;
        let mut all: Vec<Record> = lock(&self.records)
            .get(&entity)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        all.sort_by(|a, b| {
            a.modified_at
                .cmp(&b.modified_at)
                .then_with(|| id_order(&a.id, &b.id))
        });
        let rest: Vec<Record> = all
            .into_iter()
            .filter(|r| from.is_none_or(|c| after(r, c)))
            .collect();
        let more = rest.len() > self.page_size;
        let page: Vec<Record> = rest.into_iter().take(self.page_size).collect();
        let checkpoint = page.last().map(|r| Cursor {
            stamp: r.modified_at,
            id: r.id.clone(),
        });
        Ok(Page {
            items: page.into_iter().map(|r| self.item(r)).collect(),
            checkpoint,
            resume: more.then(|| json!({})),
        })
    }

    async fn fetch(&self, entity: EntityType, ids: &[String]) -> Result<Vec<Item>, PlatformError> {
        self.call()?;
        let now = self.clock.now();
        Ok(ids
            .iter()
            .map(|id| {
                let r = self.get(entity, id).unwrap_or(Record {
                    id: id.clone(),
                    modified_at: now,
                    body: None,
                    unknown: Vec::new(),
                });
                self.item(r)
            })
            .collect())
    }
}

#[async_trait]
impl Target for MemoryPlatform {
    async fn write(
        &self,
        entity: EntityType,
        writes: &[Write],
    ) -> Result<Vec<WriteOutcome>, PlatformError> {
        self.delay().await;
        self.call()?;
        let now = self.clock.now();
        let (refuse, busy) = {
            let faults = lock(&self.faults);
            (faults.refuse.clone(), faults.busy.clone())
        };
        let mut records = lock(&self.records);
        let table = records.entry(entity).or_default();
        let mut out = Vec::with_capacity(writes.len());
        for w in writes {
            if busy.contains(&w.record.id) {
                out.push(WriteOutcome::Unavailable(format!(
                    "record {}: 503 from the platform",
                    w.record.id
                )));
                continue;
            }
            if refuse.contains(&w.record.id) {
                out.push(WriteOutcome::refused(format!(
                    "record {} refused: a required field is missing",
                    w.record.id
                )));
                continue;
            }
            let Some(body) = &w.record.body else {
                match w.target_id.as_ref().and_then(|t| table.get_mut(t)) {
                    Some(existing) => {
                        existing.body = None;
                        existing.modified_at = now;
                        self.writes.fetch_add(1, Ordering::SeqCst);
                        out.push(WriteOutcome::Written {
                            target_id: existing.id.clone(),
                        });
                    }
                    None => out.push(WriteOutcome::Skipped),
                }
                continue;
            };
            let matched = body.natural_key().and_then(|key| {
                table
                    .values()
                    .find(|r| {
                        r.body.as_ref().and_then(Body::natural_key).as_deref() == Some(key.as_str())
                    })
                    .map(|r| r.id.clone())
            });
            let id = w
                .target_id
                .clone()
                .or(matched)
                .unwrap_or_else(|| self.next_id.fetch_add(1, Ordering::SeqCst).to_string());
            table.insert(
                id.clone(),
                Record {
                    id: id.clone(),
                    modified_at: now,
                    body: Some(body.clone()),
                    unknown: Vec::new(),
                },
            );
            self.writes.fetch_add(1, Ordering::SeqCst);
            out.push(WriteOutcome::Written { target_id: id });
        }
        Ok(out)
    }
}

impl Connector for MemoryPlatform {
    fn source(&self) -> Option<&dyn Source> {
        Some(self)
    }

    fn target(&self) -> Option<&dyn Target> {
        Some(self)
    }

    fn webhooks(&self) -> Option<&dyn WebhookSubscriptions> {
        if lock(&self.faults).no_webhook_api {
            None
        } else {
            Some(self)
        }
    }
}

#[async_trait]
impl WebhookSubscriptions for MemoryPlatform {
    async fn subscribe(&self, url: &str, secret: &str) -> Result<Vec<Subscription>, PlatformError> {
        self.delay().await;
        self.call()?;
        let mut held = lock(&self.subscriptions);
        let mut done = Vec::new();
        for topic in TOPICS {
            let existing = held.iter_mut().find(|h| h.1 == topic && h.2 == url);
            let (id, change) = match existing {
                Some(h) => {
                    h.3 = secret.to_string();
                    (h.0.clone(), SubscriptionChange::Updated)
                }
                None => {
                    let id = self.next_id.fetch_add(1, Ordering::SeqCst).to_string();
                    held.push((id.clone(), topic.into(), url.into(), secret.into()));
                    (id, SubscriptionChange::Created)
                }
            };
            done.push(Subscription {
                id,
                topic: topic.into(),
                status: "active".into(),
                change,
            });
        }
        Ok(done)
    }

    async fn unsubscribe(&self, url: &str) -> Result<Vec<Subscription>, PlatformError> {
        self.delay().await;
        self.call()?;
        let mut held = lock(&self.subscriptions);
        let (gone, kept): (Vec<_>, Vec<_>) = held.drain(..).partition(|h| h.2 == url);
        *held = kept;
        Ok(gone
            .into_iter()
            .map(|(id, topic, _, _)| Subscription {
                id,
                topic,
                status: "deleted".into(),
                change: SubscriptionChange::Removed,
            })
            .collect())
    }
}

/// Connectors that open in-memory platforms, one per connection.
#[derive(Default)]
pub struct MemoryConnectors {
    platforms: Mutex<HashMap<ConnectionId, Arc<MemoryPlatform>>>,
}

impl MemoryConnectors {
    pub fn attach(&self, connection: ConnectionId, platform: Arc<MemoryPlatform>) {
        lock(&self.platforms).insert(connection, platform);
    }
}

#[async_trait]
impl Connectors for MemoryConnectors {
    /// As the platform connectors do, a connection marked `needs_reauth` does not open.
    async fn open(&self, connection: &Connection) -> Result<Arc<dyn Connector>, PlatformError> {
        if let Some(reason) = &connection.needs_reauth {
            return Err(PlatformError::Rejected(format!(
                "{}: {reason}",
                crate::service::tokens::NEEDS_REAUTH
            )));
        }
        lock(&self.platforms)
            .get(&connection.id)
            .cloned()
            .map(|p| p as Arc<dyn Connector>)
            .ok_or_else(|| PlatformError::Rejected("no platform attached".into()))
    }
}
