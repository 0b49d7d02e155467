//! Ports: the narrow capabilities the domain needs from the outside world. Each function
//! gets only the ports it uses, mirroring one narrow IAM policy per function.

mod alerts;
mod http;
mod quota;
mod sync;
mod tokens;

pub use alerts::{AlertDestinations, AlertIssues, AlertTopic};
pub use http::{HttpClient, HttpRequest, HttpResponse, Method, TransportError};
pub use quota::CallQuota;
pub use sync::{
    Acquired, Connector, Connectors, CursorSet, FailureList, FailureLog, FlowSource, FlowStore,
    Item, Lease, Origin, Page, PendingJob, PlatformError, RecordError, RecordIndex, RecordState,
    RecordUpdate, RunHistory, RunListError, RunLog, RunSweep, Source, StateError, StreamCursors,
    StreamState, StreamView, StreamWatch, Subscription, SubscriptionChange, SweepCounts, SweepLog,
    SweepPass, SweepStatus, SyncKey, SyncLeases, Target, TriggerWalk, WebhookArrivals,
    WebhookSubscriptions, Write, WriteOutcome, MISSING_KEY, REFUSED, UNAVAILABLE, UNREADABLE,
};
pub use tokens::{StoredTokens, TokenVault};

use async_trait::async_trait;

use crate::domain::{
    Connection, ConnectionId, EventPage, EventRecord, QueuedEvent, Schedule, ScheduleId, Sealed,
    SyncJob, TenantId, TriggerDefinition,
};
use chrono::{DateTime, Utc};

/// What can go wrong in a store, in domain terms (adapters translate SDK errors to these).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A conditional create found a record with the same key.
    #[error("a record with this key already exists")]
    AlreadyExists,
    /// A conditional write found the record changed or gone since it was read.
    #[error("the record was changed or removed by another request")]
    Conflict,
    /// A record this write depends on (a schedule's connection) is gone or being deleted.
    #[error("a record this one depends on is gone or being deleted")]
    ReferenceGone,
    /// The store could not be reached or refused the call; the text is for logs only.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
}

/// A schedule as the worker sees it: read, and its last run noted (nothing else).
#[async_trait]
pub trait ScheduleRuns: Send + Sync + 'static {
    async fn get(&self, tenant: &TenantId, id: ScheduleId) -> Result<Option<Schedule>, StoreError>;
    /// Notes a finished run on the schedule (when and how it ended, and its failures in a
    /// row: one more for a failed run not counted yet, back to 0 for a succeeded or partial
    /// one); a schedule that is gone is left gone.
    async fn record_run(
        &self,
        tenant: &TenantId,
        id: ScheduleId,
        at: DateTime<Utc>,
        status: crate::domain::RunStatus,
        run: &crate::domain::RunId,
    ) -> Result<(), StoreError>;
}

/// Creating schedules (the API's alone).
#[async_trait]
pub trait ScheduleCreate: Send + Sync + 'static {
    /// Stores a new schedule; `AlreadyExists` if its id is taken, `ReferenceGone` unless its
    /// connection exists, is the tenant's, on the schedule's platform and not being deleted
    /// (checked in the same atomic write, so a schedule can never outlive its connection).
    async fn insert(&self, schedule: &Schedule) -> Result<(), StoreError>;
}

/// Durable storage of schedules, partitioned by tenant. The source of truth.
#[async_trait]
pub trait ScheduleStore: ScheduleRuns {
    /// Every schedule of the tenant, oldest first.
    async fn list(&self, tenant: &TenantId) -> Result<Vec<Schedule>, StoreError>;
    /// Every schedule of every tenant (through an index; for an operator's repair, never
    /// requests nor the sweeper, which walks [`ScheduleStore::page`]s).
    async fn list_all(&self) -> Result<Vec<Schedule>, StoreError>;
    /// At most `limit` schedules of sweep shard `shard` (see [`sweep_shard`]), in the
    /// shard's order, from after `after` (a [`SchedulePage::next`] of an earlier page; from
    /// the start when `None`). Through an index: a moment behind the table.
    async fn page(
        &self,
        shard: u8,
        after: Option<&str>,
        limit: usize,
    ) -> Result<SchedulePage, StoreError>;
    /// Writes `schedule`'s user-editable fields over the stored one if, and only if, the
    /// stored one is at `expected_version`; `Conflict` otherwise (including when it is gone).
    /// What the worker keeps on a schedule (its last run) is left as it is.
    async fn replace(&self, schedule: &Schedule, expected_version: u64) -> Result<(), StoreError>;
    /// Removes the schedule if it is at `expected_version`; `Conflict` otherwise.
    async fn delete(
        &self,
        tenant: &TenantId,
        id: ScheduleId,
        expected_version: u64,
    ) -> Result<(), StoreError>;
}

/// How many shards the sweep index splits schedules into (by their id's first hex digit).
pub const SWEEP_SHARDS: u8 = 16;

/// The sweep shard of a schedule: its id's first hex digit.
pub fn sweep_shard(id: ScheduleId) -> u8 {
    id.to_string()
        .chars()
        .next()
        .and_then(|c| c.to_digit(16))
        .map_or(0, |d| d as u8)
}

/// One page of a sweep shard.
#[derive(Debug, Clone, Default)]
pub struct SchedulePage {
    pub schedules: Vec<Schedule>,
    /// Where the next page starts; `None` once the shard is done.
    pub next: Option<String>,
}

/// One page of the trigger side's names.
#[derive(Debug, Clone, Default)]
pub struct NamesPage {
    pub names: Vec<String>,
    /// Where the next page starts; `None` once every name was listed.
    pub next: Option<String>,
}

/// Why the trigger side (EventBridge Scheduler) refused or failed a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TriggerError {
    #[error("the scheduler is unavailable: {0}")]
    Unavailable(String),
}

/// What an update of a trigger found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerWrite {
    Applied,
    /// There was no trigger to update, and none was created.
    Missing,
}

/// The thing that fires schedules: EventBridge Scheduler in AWS. Every write carries the
/// whole schedule, because EventBridge replaces a schedule wholesale on update.
///
/// Only `create` ever creates: an update of a trigger that a concurrent delete just removed
/// reports `Missing` instead of bringing it back, so the caller can check the store first.
#[async_trait]
pub trait ScheduleTrigger: TriggerAligner {
    /// Creates the trigger; one that already exists is brought up to date instead.
    async fn create(&self, schedule: &Schedule) -> Result<(), TriggerError>;
}

/// Rewriting or removing existing triggers, never creating one: all the worker holds (a
/// job fired by a trigger that lags behind its schedule corrects it).
#[async_trait]
pub trait TriggerAligner: Send + Sync + 'static {
    /// Replaces an existing trigger with one built from `schedule`; never creates one.
    async fn update(&self, schedule: &Schedule) -> Result<TriggerWrite, TriggerError>;
    /// Removes the trigger named `name` (a schedule id); one already gone is not an error.
    async fn remove(&self, name: &str) -> Result<(), TriggerError>;
}

/// A trigger as the trigger side holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerState {
    /// The trigger's name: the schedule id, for the triggers we create.
    pub name: String,
    pub definition: TriggerDefinition,
    /// Whether it targets the queue, role and dead-letter queue this deployment uses.
    pub target_current: bool,
}

/// Reading the trigger side, for repair.
#[async_trait]
pub trait TriggerInventory: Send + Sync + 'static {
    /// The names of every trigger in our group.
    async fn names(&self) -> Result<Vec<String>, TriggerError>;
    /// At most `limit` of the names that begin with `prefix`, from `token` (a
    /// [`NamesPage::next`] of an earlier page; from the first when `None`). A token too old
    /// to go on from is an error: start the prefix again.
    async fn names_page(
        &self,
        prefix: &str,
        token: Option<&str>,
        limit: usize,
    ) -> Result<NamesPage, TriggerError>;
    /// One trigger in full; `None` if there is none by that name.
    async fn get(&self, name: &str) -> Result<Option<TriggerState>, TriggerError>;
}

/// Connections read (all the worker and the webhook intake do with them): by id, keyed by
/// connection id alone because a webhook names only the connection (every tenant-facing
/// caller checks the tenant itself), or by webhook route.
#[async_trait]
pub trait ConnectionReader: Send + Sync + 'static {
    async fn get(&self, id: ConnectionId) -> Result<Option<Connection>, StoreError>;
    /// Every connection (of any tenant) with this webhook route (see
    /// [`crate::platforms::PlatformModule::route`]), through an index.
    async fn routed(&self, route: &str) -> Result<Vec<Connection>, StoreError>;
}

/// Removing a connection (the API's alone).
#[async_trait]
pub trait ConnectionRemoval: Send + Sync + 'static {
    /// Removes the connection if it is at `expected_version`; `Conflict` otherwise.
    async fn delete(&self, id: ConnectionId, expected_version: u64) -> Result<(), StoreError>;
}

/// Durable storage of connections.
#[async_trait]
pub trait ConnectionStore: ConnectionReader {
    async fn insert(&self, connection: &Connection) -> Result<(), StoreError>;
    /// Every connection of the tenant, oldest first.
    async fn list(&self, tenant: &TenantId) -> Result<Vec<Connection>, StoreError>;
    async fn replace(
        &self,
        connection: &Connection,
        expected_version: u64,
    ) -> Result<(), StoreError>;
}

/// One-time use of OAuth `state` nonces: a consent link works once.
#[async_trait]
pub trait OAuthStates: Send + Sync + 'static {
    /// Marks `nonce` used; false when it already was. Kept until `expires` (after which
    /// the state is refused as expired anyway).
    async fn consume(&self, nonce: &str, expires: DateTime<Utc>) -> Result<bool, StoreError>;
}

/// Why secrets could not be sealed or opened. Carries no detail of the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The key service could not be reached or refused; the text is for logs only.
    #[error("the key service is unavailable: {0}")]
    Unavailable(String),
    /// The sealed bytes do not open with this context (tampered, or another record's).
    #[error("sealed data does not open")]
    Corrupt,
}

/// Opening what [`SecretSealer`] sealed: all that a function that only reads secrets holds
/// (the intake, the sweeper), as its key policy allows only decrypting.
#[async_trait]
pub trait SecretOpener: Send + Sync + 'static {
    async fn open(&self, sealed: &Sealed, context: &[(&str, &str)]) -> Result<Vec<u8>, SealError>;
}

/// Envelope encryption: a fresh data key per seal, itself encrypted by a master key that
/// never leaves the key service. `context` (tenant and connection) is bound into both the
/// data key and the ciphertext, so sealed secrets moved to another record do not open.
#[async_trait]
pub trait SecretSealer: SecretOpener {
    async fn seal(&self, plaintext: &[u8], context: &[(&str, &str)]) -> Result<Sealed, SealError>;
}

/// Why the event log or the claims failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventLogError {
    /// A `next` cursor that this API did not hand out.
    #[error("bad cursor")]
    BadCursor,
    #[error("the event store is unavailable: {0}")]
    Unavailable(String),
}

/// The outcome of claiming an event key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Ours: queue it, or release it if it cannot be queued.
    Claimed,
    /// Another delivery holds the key and its event is in no job yet: that holder may have
    /// died before queueing it, so queue this one too (nothing to release). The coalescer
    /// lets the first of the two messages it marks through.
    Unmarked,
    /// Seen already and in a job (or queued by an earlier version): drop it.
    Duplicate,
}

/// Deduplication claims and the event log, as the intake uses them. The claim of an event
/// is its log entry: one conditional write claims the key and logs the event, and a
/// duplicate learns it is one from that write's refusal.
#[async_trait]
pub trait EventClaims: Send + Sync + 'static {
    /// Claims `record.key_hash` and logs the record, in one write. A key is claimable when
    /// no claim exists, the old one is past the deduplication window `ttl`, it was
    /// released, or it is still unmarked by the coalescer after `lease` (its holder may
    /// have died before queueing). A claim already holding `record`'s own token (the write
    /// was retried after its answer was lost) is ours.
    async fn claim(
        &self,
        record: &EventRecord,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
        lease: chrono::Duration,
    ) -> Result<Claim, EventLogError>;
    /// Queueing failed: mark the claim released, so the platform's retry passes, unless it
    /// is no longer ours or the coalescer has marked it already (the queue took the event
    /// after all and only its answer was lost).
    async fn release(&self, record: &EventRecord) -> Result<(), EventLogError>;
}

/// The event log, as the API reads it.
#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Up to `limit` entries of the connection's log, newest first, from cursor `next`.
    async fn list(
        &self,
        connection: ConnectionId,
        limit: usize,
        next: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<EventPage, EventLogError>;
}

/// The event log, as the coalescer marks it.
#[async_trait]
pub trait EventJobs: Send + Sync + 'static {
    /// Records that the queued event went into sync job `job_id`, unless another message of
    /// the same event was marked first (the first to be marked carries the event; a message
    /// marked before, delivered again, is marked again). `Ok(false)`: another message
    /// carries it, so this one must not make a job. A message whose claim is gone (past its
    /// window) is carried, unmarked.
    async fn set_job(&self, event: &QueuedEvent, job_id: &str) -> Result<bool, EventLogError>;
}

/// Why a queue refused a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the queue is unavailable: {0}")]
pub struct QueueError(pub String);

/// Most messages one queue call carries (SQS's batch limit).
pub const QUEUE_BATCH: usize = 10;

/// The webhook-events queue, from the intake to the coalescer.
#[async_trait]
pub trait EventQueue: Send + Sync + 'static {
    /// Sends the events, up to [`QUEUE_BATCH`] per call; one outcome per event, in order:
    /// the queue's id for the message, or why that one was refused.
    async fn send_events(&self, events: &[QueuedEvent]) -> Vec<Result<String, QueueError>>;
}

/// Receives of one message (a job, or a batch of webhook events) before the queue moves it
/// to its dead-letter queue: the queues' `maxReceiveCount` (the template's and the local
/// stack's), so a run on its last receive knows that its failure is final.
pub const MAX_RECEIVES: u32 = 5;

/// The sync queue, where jobs for the worker go.
#[async_trait]
pub trait JobQueue: Send + Sync + 'static {
    async fn send_job(&self, job: &SyncJob) -> Result<String, QueueError>;
    /// Sends `job` to become visible after `delay` (at most 15 minutes, SQS's limit).
    async fn send_job_later(
        &self,
        job: &SyncJob,
        delay: std::time::Duration,
    ) -> Result<String, QueueError>;
}
