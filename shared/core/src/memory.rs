//! In-memory adapters: stateful fakes of the ports for fast domain and handler tests, with
//! switches that make them fail the way a real dependency can.

use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use crate::crypto;
use crate::domain::{
    Connection, ConnectionId, EventPage, EventRecord, EventStatus, QueuedEvent, Schedule,
    ScheduleId, Sealed, SyncJob, TenantId,
};
use crate::ports::{
    Claim, ConnectionStore, EventClaims, EventLog, EventLogError, EventQueue, JobQueue, QueueError,
    ScheduleStore, ScheduleTrigger, SealError, SecretSealer, StoreError, TriggerError,
    TriggerInventory, TriggerState, TriggerWrite,
};
use std::sync::Arc;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A schedule store in a hash map. Built with [`MemoryScheduleStore::checking`], it refuses
/// a schedule whose connection is missing, another tenant's, on another platform or being
/// deleted, as the DynamoDB store's transaction does.
#[derive(Default)]
pub struct MemoryScheduleStore {
    rows: Mutex<HashMap<(TenantId, ScheduleId), Schedule>>,
    connections: Option<Arc<MemoryConnectionStore>>,
    failing: AtomicBool,
    conflicting: AtomicBool,
}

impl MemoryScheduleStore {
    /// A store that checks each new schedule's connection in `connections`.
    pub fn checking(connections: Arc<MemoryConnectionStore>) -> Self {
        Self {
            connections: Some(connections),
            ..Self::default()
        }
    }

    /// While set, every call answers `Unavailable`.
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// While set, conditional writes (replace, delete) lose as if another request had
    /// changed the record first.
    pub fn set_conflicting(&self, conflicting: bool) {
        self.conflicting.store(conflicting, Ordering::SeqCst);
    }

    pub fn len(&self) -> usize {
        lock(&self.rows).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Puts a schedule in place directly, bypassing every check (to set up drift).
    pub fn seed(&self, schedule: Schedule) {
        lock(&self.rows).insert((schedule.tenant_id.clone(), schedule.id), schedule);
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable("memory store set to fail".into()))
        } else {
            Ok(())
        }
    }

    fn check_conditional(&self) -> Result<(), StoreError> {
        self.check()?;
        if self.conflicting.load(Ordering::SeqCst) {
            Err(StoreError::Conflict)
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl ScheduleStore for MemoryScheduleStore {
    async fn insert(&self, schedule: &Schedule) -> Result<(), StoreError> {
        self.check()?;
        if let Some(connections) = &self.connections {
            let ok = lock(&connections.rows)
                .get(&schedule.credential_id)
                .is_some_and(|c| {
                    c.tenant_id == schedule.tenant_id
                        && c.platform == schedule.platform
                        && !c.is_deleting()
                });
            if !ok {
                return Err(StoreError::ReferenceGone);
            }
        }
        let mut rows = lock(&self.rows);
        let key = (schedule.tenant_id.clone(), schedule.id);
        if rows.contains_key(&key) {
            return Err(StoreError::AlreadyExists);
        }
        rows.insert(key, schedule.clone());
        Ok(())
    }

    async fn get(&self, tenant: &TenantId, id: ScheduleId) -> Result<Option<Schedule>, StoreError> {
        self.check()?;
        Ok(lock(&self.rows).get(&(tenant.clone(), id)).cloned())
    }

    async fn list(&self, tenant: &TenantId) -> Result<Vec<Schedule>, StoreError> {
        self.check()?;
        let mut all: Vec<Schedule> = lock(&self.rows)
            .values()
            .filter(|s| &s.tenant_id == tenant)
            .cloned()
            .collect();
        all.sort_by_key(|s| (s.created_at, s.id.to_string()));
        Ok(all)
    }

    async fn list_all(&self) -> Result<Vec<Schedule>, StoreError> {
        self.check()?;
        let mut all: Vec<Schedule> = lock(&self.rows).values().cloned().collect();
        all.sort_by_key(|s| (s.created_at, s.id.to_string()));
        Ok(all)
    }

    async fn replace(&self, schedule: &Schedule, expected_version: u64) -> Result<(), StoreError> {
        self.check_conditional()?;
        let mut rows = lock(&self.rows);
        match rows.get_mut(&(schedule.tenant_id.clone(), schedule.id)) {
            Some(row) if row.version == expected_version => {
                let (last_run_at, last_run_status) = (row.last_run_at, row.last_run_status);
                *row = schedule.clone();
                row.last_run_at = last_run_at;
                row.last_run_status = last_run_status;
                Ok(())
            }
            _ => Err(StoreError::Conflict),
        }
    }

    async fn delete(
        &self,
        tenant: &TenantId,
        id: ScheduleId,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        self.check_conditional()?;
        let mut rows = lock(&self.rows);
        let key = (tenant.clone(), id);
        match rows.get(&key) {
            Some(row) if row.version == expected_version => {
                rows.remove(&key);
                Ok(())
            }
            _ => Err(StoreError::Conflict),
        }
    }
}

/// A trigger side that remembers what it was given, as EventBridge would: by name, the
/// definition, and (for tests) the schedule it was built from.
#[derive(Default)]
pub struct MemoryTrigger {
    triggers: Mutex<HashMap<String, (Option<Schedule>, TriggerState)>>,
    failing: AtomicBool,
}

impl MemoryTrigger {
    /// While set, every call answers `Unavailable` and changes nothing.
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// The schedule the trigger of `id` was last written from.
    pub fn get(&self, id: ScheduleId) -> Option<Schedule> {
        lock(&self.triggers)
            .get(&id.to_string())
            .and_then(|(s, _)| s.clone())
    }

    /// The trigger named `name` as held.
    pub fn state(&self, name: &str) -> Option<TriggerState> {
        lock(&self.triggers).get(name).map(|(_, t)| t.clone())
    }

    /// Puts a trigger in place directly, as drift would (a lost write, a stray schedule).
    pub fn put_raw(&self, state: TriggerState) {
        lock(&self.triggers).insert(state.name.clone(), (None, state));
    }

    pub fn len(&self) -> usize {
        lock(&self.triggers).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn check(&self) -> Result<(), TriggerError> {
        if self.failing.load(Ordering::SeqCst) {
            Err(TriggerError::Unavailable(
                "memory trigger set to fail".into(),
            ))
        } else {
            Ok(())
        }
    }

    fn write(&self, schedule: &Schedule) {
        let state = TriggerState {
            name: schedule.id.to_string(),
            definition: schedule.trigger_definition(),
            target_current: true,
        };
        lock(&self.triggers).insert(state.name.clone(), (Some(schedule.clone()), state));
    }
}

#[async_trait]
impl ScheduleTrigger for MemoryTrigger {
    async fn create(&self, schedule: &Schedule) -> Result<(), TriggerError> {
        self.check()?;
        self.write(schedule);
        Ok(())
    }

    async fn update(&self, schedule: &Schedule) -> Result<TriggerWrite, TriggerError> {
        self.check()?;
        if !lock(&self.triggers).contains_key(&schedule.id.to_string()) {
            return Ok(TriggerWrite::Missing);
        }
        self.write(schedule);
        Ok(TriggerWrite::Applied)
    }

    async fn remove(&self, name: &str) -> Result<(), TriggerError> {
        self.check()?;
        lock(&self.triggers).remove(name);
        Ok(())
    }
}

#[async_trait]
impl TriggerInventory for MemoryTrigger {
    async fn names(&self) -> Result<Vec<String>, TriggerError> {
        self.check()?;
        Ok(lock(&self.triggers).keys().cloned().collect())
    }

    async fn get(&self, name: &str) -> Result<Option<TriggerState>, TriggerError> {
        self.check()?;
        Ok(self.state(name))
    }
}

/// A connection store in a hash map.
#[derive(Default)]
pub struct MemoryConnectionStore {
    rows: Mutex<HashMap<ConnectionId, Connection>>,
    failing: AtomicBool,
}

impl MemoryConnectionStore {
    /// Puts a connection in place directly (tests that need one without the service).
    pub fn seed(&self, connection: Connection) {
        lock(&self.rows).insert(connection.id, connection);
    }

    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    pub fn len(&self) -> usize {
        lock(&self.rows).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable(
                "memory connection store set to fail".into(),
            ))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl ConnectionStore for MemoryConnectionStore {
    async fn insert(&self, connection: &Connection) -> Result<(), StoreError> {
        self.check()?;
        let mut rows = lock(&self.rows);
        if rows.contains_key(&connection.id) {
            return Err(StoreError::AlreadyExists);
        }
        rows.insert(connection.id, connection.clone());
        Ok(())
    }

    async fn get(&self, id: ConnectionId) -> Result<Option<Connection>, StoreError> {
        self.check()?;
        Ok(lock(&self.rows).get(&id).cloned())
    }

    async fn list(&self, tenant: &TenantId) -> Result<Vec<Connection>, StoreError> {
        self.check()?;
        let mut all: Vec<Connection> = lock(&self.rows)
            .values()
            .filter(|c| &c.tenant_id == tenant)
            .cloned()
            .collect();
        all.sort_by_key(|c| (c.created_at, c.id.to_string()));
        Ok(all)
    }

    async fn replace(
        &self,
        connection: &Connection,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        self.check()?;
        match lock(&self.rows).get_mut(&connection.id) {
            Some(row) if row.version == expected_version => {
                *row = connection.clone();
                Ok(())
            }
            _ => Err(StoreError::Conflict),
        }
    }

    async fn delete(&self, id: ConnectionId, expected_version: u64) -> Result<(), StoreError> {
        self.check()?;
        let mut rows = lock(&self.rows);
        match rows.get(&id) {
            Some(row) if row.version == expected_version => {
                rows.remove(&id);
                Ok(())
            }
            _ => Err(StoreError::Conflict),
        }
    }
}

/// Envelope encryption with a master key held in memory: the same scheme as the KMS
/// adapter (a random data key per seal, wrapped by the master key), for tests and local runs.
pub struct MemorySealer {
    master: Vec<u8>,
}

impl Default for MemorySealer {
    fn default() -> Self {
        Self {
            master: vec![0x42; 32],
        }
    }
}

fn context_aad(context: &[(&str, &str)]) -> Vec<u8> {
    context
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("\n")
        .into_bytes()
}

#[async_trait]
impl SecretSealer for MemorySealer {
    async fn seal(&self, plaintext: &[u8], context: &[(&str, &str)]) -> Result<Sealed, SealError> {
        let aad = context_aad(context);
        let data_key = crypto::random_bytes(32).map_err(|_| SealError::Corrupt)?;
        let (key_nonce, wrapped) =
            crypto::aes_gcm_seal(&self.master, &data_key, &aad).map_err(|_| SealError::Corrupt)?;
        let (nonce, ciphertext) =
            crypto::aes_gcm_seal(&data_key, plaintext, &aad).map_err(|_| SealError::Corrupt)?;
        let mut encrypted_key = key_nonce;
        encrypted_key.extend(wrapped);
        Ok(Sealed {
            encrypted_key,
            nonce,
            ciphertext,
        })
    }

    async fn open(&self, sealed: &Sealed, context: &[(&str, &str)]) -> Result<Vec<u8>, SealError> {
        let aad = context_aad(context);
        if sealed.encrypted_key.len() < 12 {
            return Err(SealError::Corrupt);
        }
        let (key_nonce, wrapped) = sealed.encrypted_key.split_at(12);
        let data_key = crypto::aes_gcm_open(&self.master, key_nonce, wrapped, &aad)
            .map_err(|_| SealError::Corrupt)?;
        crypto::aes_gcm_open(&data_key, &sealed.nonce, &sealed.ciphertext, &aad)
            .map_err(|_| SealError::Corrupt)
    }
}

/// A connection of `tenant` on `platform` with placeholder (unopenable) secrets, for tests
/// that need one to exist without going through the connection service.
pub fn connection_fixture(tenant: &TenantId, platform: crate::domain::Platform) -> Connection {
    let now = chrono::DateTime::from_timestamp(1_795_521_600, 0).unwrap_or_default();
    Connection {
        id: ConnectionId::new_random(),
        tenant_id: tenant.clone(),
        platform,
        display_name: format!("{platform} test connection"),
        config: serde_json::Map::new(),
        sealed_secrets: Sealed {
            encrypted_key: Vec::new(),
            nonce: Vec::new(),
            ciphertext: Vec::new(),
        },
        secret_hints: std::collections::BTreeMap::new(),
        webhooks_enabled: false,
        deleting_since: None,
        created_at: now,
        updated_at: now,
        version: 1,
    }
}

/// One of each in-memory adapter, shared between the services built on them and the test
/// that inspects them. The schedule store checks connections in `connections`.
#[derive(Clone)]
pub struct MemoryWorld {
    pub schedules: std::sync::Arc<MemoryScheduleStore>,
    pub trigger: std::sync::Arc<MemoryTrigger>,
    pub connections: std::sync::Arc<MemoryConnectionStore>,
    pub sealer: std::sync::Arc<MemorySealer>,
    pub events: std::sync::Arc<MemoryEventStore>,
    pub queue: std::sync::Arc<MemoryQueue>,
}

impl Default for MemoryWorld {
    fn default() -> Self {
        let connections = Arc::new(MemoryConnectionStore::default());
        Self {
            schedules: Arc::new(MemoryScheduleStore::checking(connections.clone())),
            trigger: Arc::default(),
            connections,
            sealer: Arc::default(),
            events: Arc::default(),
            queue: Arc::default(),
        }
    }
}

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
                entry.status = EventStatus::Queued;
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

/// A queue that keeps what it was sent.
#[derive(Default)]
pub struct MemoryQueue {
    events: Mutex<Vec<QueuedEvent>>,
    jobs: Mutex<Vec<SyncJob>>,
    failing: AtomicBool,
    /// Messages accepted before every further one is refused (a batch that half fails).
    accept_only: Mutex<Option<usize>>,
    calls: std::sync::atomic::AtomicUsize,
}

impl MemoryQueue {
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// Accepts `n` more messages, then refuses each one after (until set to `None`).
    pub fn accept_only(&self, n: Option<usize>) {
        *lock(&self.accept_only) = n;
    }

    pub fn events(&self) -> Vec<QueuedEvent> {
        lock(&self.events).clone()
    }

    pub fn jobs(&self) -> Vec<SyncJob> {
        lock(&self.jobs).clone()
    }

    /// How many calls were made (a batch is one call).
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn check(&self) -> Result<(), QueueError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(QueueError("memory queue set to fail".into()));
        }
        let mut quota = lock(&self.accept_only);
        match quota.as_mut() {
            Some(0) => Err(QueueError("memory queue refused the message".into())),
            Some(n) => {
                *n -= 1;
                Ok(())
            }
            None => Ok(()),
        }
    }
}

#[async_trait]
impl EventQueue for MemoryQueue {
    async fn send_events(&self, events: &[QueuedEvent]) -> Vec<Result<String, QueueError>> {
        let mut out = Vec::with_capacity(events.len());
        for chunk in events.chunks(crate::ports::QUEUE_BATCH) {
            self.calls.fetch_add(1, Ordering::SeqCst);
            for event in chunk {
                out.push(self.check().map(|()| {
                    let mut events = lock(&self.events);
                    events.push(event.clone());
                    format!("event-{}", events.len())
                }));
            }
        }
        out
    }
}

#[async_trait]
impl JobQueue for MemoryQueue {
    async fn send_job(&self, job: &SyncJob) -> Result<String, QueueError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        let mut jobs = lock(&self.jobs);
        jobs.push(job.clone());
        Ok(format!("job-{}", jobs.len()))
    }
}
