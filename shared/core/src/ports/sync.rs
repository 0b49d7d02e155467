//! Ports of the sync engine: the platforms (as sources and targets, behind connectors), and
//! what the worker keeps in its store: leases and cursors, the record index (links between
//! the same record on two platforms, and fingerprints), runs and flows.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::StoreError;
use crate::domain::{
    Connection, ConnectionId, Cursor, EntityType, FailedRecord, FailurePage, Flow, FlowId, Run,
    RunFilter, RunId, RunPage, ScheduleId, SyncJob, TenantId,
};
use crate::records::{Fingerprint, Record};

/// What went wrong talking to a platform, in the terms the engine acts on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlatformError {
    /// Retrying later may help: the platform was down, throttling, or slow, beyond the
    /// retries already made.
    #[error("the platform is unavailable: {0}")]
    Unavailable(String),
    /// Retrying cannot help: credentials refused, the connection misconfigured.
    #[error("the platform refused: {0}")]
    Rejected(String),
    /// The run's deadline came first: the call was not made, or its retry not waited for.
    /// A new invocation, with its own time, goes on.
    #[error("no time left: {0}")]
    OutOfTime(String),
}

impl PlatformError {
    /// Whether trying again later may help.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, PlatformError::Rejected(_))
    }
}

/// One record a source read, or one it could not make sense of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Record(Record),
    /// A record that does not map (bad data): it fails alone, the rest of the run goes on.
    Bad {
        id: String,
        error: String,
    },
}

impl Item {
    pub fn id(&self) -> &str {
        match self {
            Item::Record(r) => &r.id,
            Item::Bad { id, .. } => id,
        }
    }
}

/// One page of changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    pub items: Vec<Item>,
    /// Where the cursor may move once this page (and every page before it) is in every
    /// target; `None` if it may not move yet (the source cannot tell until later pages).
    pub checkpoint: Option<Cursor>,
    /// The source's own state for reading the next page; `None` when this was the last.
    pub resume: Option<Value>,
}

/// A platform as the origin of records.
#[async_trait]
pub trait Source: Send + Sync {
    /// The next page of `entity` records changed after `after` (`None`: from the
    /// beginning), in the source's order, given the `resume` state of the previous page.
    async fn changes(
        &self,
        entity: EntityType,
        after: Option<&Cursor>,
        resume: Option<&Value>,
    ) -> Result<Page, PlatformError>;

    /// The records with these ids as they are now; one that no longer exists comes back as
    /// a deleted record.
    async fn fetch(&self, entity: EntityType, ids: &[String]) -> Result<Vec<Item>, PlatformError>;
}

/// Where a record written to a target comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub connection: ConnectionId,
    pub platform: crate::domain::Platform,
    /// The source's id of the record.
    pub id: String,
}

impl Origin {
    /// Stable across retries: a target can derive its own id or idempotency key from it.
    pub fn key(&self) -> String {
        format!("{}:{}", self.connection, self.id)
    }
}

/// One record to write to a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub record: Record,
    /// The target's id of this record, when the index links it already.
    pub target_id: Option<String>,
    pub origin: Origin,
    /// The canonical fields the flow carries (those the source reads and the target
    /// writes). A target writes these and leaves its others as they are: a field the source
    /// does not have (QuickBooks keeps no stock) never blanks the target's.
    pub fields: Vec<&'static str>,
    /// What goes before the source's order number where the target numbers its documents
    /// (the flow's `doc_number_prefix`). `None` for a flow made before flows had one: the
    /// target numbers as it did then.
    pub number_prefix: Option<String>,
}

/// What became of one write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// It is in the target, under this id.
    Written { target_id: String },
    /// A deletion of a record the target never had: nothing to do.
    Skipped,
    /// This record failed (bad data, refused by the platform); the others are unaffected.
    Failed(RecordError),
    /// This record's write failed in a way that trying again later may help (the platform
    /// answered 5xx or 429 for it, or a transient fault); the others are unaffected.
    Unavailable(String),
}

impl WriteOutcome {
    /// A refusal without a code of the platform's own (see [`RecordError`]).
    pub fn refused(message: String) -> Self {
        WriteOutcome::Failed(RecordError::new(REFUSED, message))
    }
}

/// The code of a record's failure that names no code of the platform's.
pub const REFUSED: &str = "refused";
/// The code of a record a target will not create without the key that finds it again (a
/// product's SKU, a customer's email): a retry could not tell it was made, and would make
/// it twice.
pub const MISSING_KEY: &str = "missing_key";
/// The code of a record that could not be read or mapped (bad data at the source).
pub const UNREADABLE: &str = "unreadable";
/// The code of a record's write that may pass later (the platform answered 429 or 5xx for
/// it, or a transient fault).
pub const UNAVAILABLE: &str = "unavailable";

/// Why a platform refused a record: a code to filter and retry by (the platform's own where
/// it gave one, prefixed with the platform: `quickbooks_6240`, `woocommerce_rest_invalid_sku`,
/// `supabase_23505`; else `http_<status>` or what kind of failure, such as `refused`), and
/// the message a person reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    pub code: String,
    pub message: String,
}

impl RecordError {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// A platform as the destination of records.
#[async_trait]
pub trait Target: Send + Sync {
    /// Writes the records (creating, updating or marking deleted), one outcome per write,
    /// in order. An unlinked record is matched first by its natural key (SKU, email), so a
    /// retry after a lost response creates nothing twice. `Err` when the platform could not
    /// be written at all (the whole call failed).
    async fn write(
        &self,
        entity: EntityType,
        writes: &[Write],
    ) -> Result<Vec<WriteOutcome>, PlatformError>;
}

/// One connection's way into its platform.
pub trait Connector: Send + Sync {
    fn source(&self) -> Option<&dyn Source>;
    fn target(&self) -> Option<&dyn Target>;
    /// The platform's webhook subscriptions, where its API manages them.
    fn webhooks(&self) -> Option<&dyn WebhookSubscriptions> {
        None
    }
}

/// One webhook subscription at a platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The platform's id for it.
    pub id: String,
    pub topic: String,
    pub status: String,
    pub change: SubscriptionChange,
}

/// What a call did to a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionChange {
    Created,
    Updated,
    Removed,
}

impl SubscriptionChange {
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionChange::Created => "created",
            SubscriptionChange::Updated => "updated",
            SubscriptionChange::Removed => "removed",
        }
    }
}

/// A platform's webhook subscriptions for one delivery URL, managed through its API.
#[async_trait]
pub trait WebhookSubscriptions: Send + Sync {
    /// Makes the platform send every change the sync uses to `url`, signed with `secret`:
    /// one subscription per topic, created where missing and updated (secret, URL, active)
    /// where one exists; duplicates for the same topic and URL are removed. Calling it
    /// again changes nothing but the secret.
    async fn subscribe(&self, url: &str, secret: &str) -> Result<Vec<Subscription>, PlatformError>;

    /// Removes every subscription that delivers to `url`.
    async fn unsubscribe(&self, url: &str) -> Result<Vec<Subscription>, PlatformError>;
}

/// Opens connectors for connections (secrets opened, HTTP client attached).
#[async_trait]
pub trait Connectors: Send + Sync + 'static {
    async fn open(&self, connection: &Connection) -> Result<Arc<dyn Connector>, PlatformError>;
}

/// What went wrong in the worker's store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// Our lease was taken over (it expired while we worked): stop, the new holder goes on.
    #[error("the lease was lost")]
    LeaseLost,
    #[error("the sync state store is unavailable: {0}")]
    Unavailable(String),
}

/// One sync stream: a connection's records of one entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SyncKey {
    pub connection: ConnectionId,
    pub entity: EntityType,
}

/// A stream's lease as its new holder finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acquired {
    /// The stream's cursor as stored.
    pub cursor: Option<Cursor>,
    /// The lease's fencing token: higher with every acquisition, so the record index can
    /// refuse a write made under an older one (a worker whose lease ran out while it worked).
    pub epoch: u64,
    /// When the cursor was last set by hand, if ever.
    pub cursor_set_at: Option<DateTime<Utc>>,
    /// When webhooks of the stream last arrived, if ever (see [`WebhookArrivals`]).
    pub webhook_at: Option<DateTime<Utc>>,
}

/// The outcome of asking for a stream's lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lease {
    /// Ours until renewed or released.
    Acquired(Acquired),
    /// Another run holds it.
    Held,
}

/// The follow-up kept for a stream, as read: the job and the version it was read at (every
/// merge makes a new version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingJob {
    pub job: SyncJob,
    pub version: u64,
}

/// One sync per stream at a time: a lease with an owner and an expiry a dead worker cannot
/// hold forever; the stream's cursor (written only by the lease's holder); and at most one
/// follow-up job kept while the lease is held.
#[async_trait]
pub trait SyncLeases: Send + Sync + 'static {
    /// Takes the lease if it is free, expired, or already `owner`'s (then it is extended).
    async fn acquire(
        &self,
        key: SyncKey,
        owner: &str,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> Result<Lease, StateError>;
    /// Extends our lease; `LeaseLost` if it is no longer ours.
    async fn renew(
        &self,
        key: SyncKey,
        owner: &str,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> Result<(), StateError>;
    /// Moves the cursor, only while the lease is ours (`LeaseLost` otherwise).
    async fn save_cursor(
        &self,
        key: SyncKey,
        owner: &str,
        cursor: &Cursor,
    ) -> Result<(), StateError>;
    /// Keeps `job` as the stream's follow-up, merged with one already waiting. True when
    /// none was waiting (so the caller arranges for it to be woken).
    async fn park(&self, key: SyncKey, job: &SyncJob) -> Result<bool, StateError>;
    /// The waiting follow-up, if any, while the lease is ours (`LeaseLost` otherwise). It
    /// stays kept until [`done_pending`](Self::done_pending): a run of it that fails in a way
    /// that may pass, or an invocation that dies, leaves it to be run again.
    async fn peek_pending(
        &self,
        key: SyncKey,
        owner: &str,
    ) -> Result<Option<PendingJob>, StateError>;
    /// Drops the follow-up read at `version`, once a run of it has ended for good. False when
    /// a job was merged into it since (a newer version): that one stays, to be run too.
    async fn done_pending(&self, key: SyncKey, version: u64) -> Result<bool, StateError>;
    /// Gives the lease up (a lease no longer ours is left alone).
    async fn release(&self, key: SyncKey, owner: &str) -> Result<(), StateError>;
}

/// What setting a stream's cursor by hand did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CursorSet {
    /// Set; the cursor it had before.
    Set { previous: Option<Cursor> },
    /// A run holds the stream: nothing was changed.
    Busy,
}

/// A stream's cursor as a person sets it (`POST /api/sync/resync` with `cursor`).
#[async_trait]
pub trait StreamCursors: Send + Sync + 'static {
    /// Sets the stream's cursor while no run holds its lease, noting `by` and `now` on the
    /// stream. The lease changes hands to the setting itself, so a run whose lease had run
    /// out can no longer move the cursor or renew its lease (it stops at its next renewal);
    /// a continuation that finds the cursor moved stops rather than overwrite it.
    async fn set_cursor(
        &self,
        key: SyncKey,
        cursor: &Cursor,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<CursorSet, StateError>;
    /// The stream as a person looks at it (a consistent read); the default for a stream
    /// never run.
    async fn view(&self, key: SyncKey, now: DateTime<Utc>) -> Result<StreamView, StateError>;
}

/// A stream as `GET /api/connections/{id}/streams` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamView {
    /// Up to where its incremental runs have read the source.
    pub cursor: Option<Cursor>,
    /// Who set the cursor by hand last, and when (`POST /api/sync/resync` with `cursor`).
    pub cursor_set_by: Option<String>,
    pub cursor_set_at: Option<DateTime<Utc>>,
    /// A run holds its lease now, until `lease_until`.
    pub running: bool,
    pub lease_until: Option<DateTime<Utc>>,
    /// A follow-up is kept for it: waiting for the run that holds it, or that run itself
    /// (kept until it ends).
    pub follow_up_kept: bool,
    /// When its webhooks last arrived, if ever.
    pub webhook_at: Option<DateTime<Utc>>,
}

/// What the index knows of one record on one platform.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordState {
    /// The fields as last written there by us, or read from there.
    pub fingerprint: Fingerprint,
    /// Whether the fingerprint was last set by a write of ours (so a change matching it is
    /// our own write coming back).
    pub written: bool,
    /// The same record on other connections.
    pub links: BTreeMap<ConnectionId, String>,
    /// Per linked connection, the seal ([`Fingerprint::seal`]) of what this record and its
    /// copy there last agreed on: the fields one of our flows last carried between the two,
    /// in either direction. A change is a change since then, whatever other flows have read
    /// or written since (a document carried on from QuickBooks to Supabase does not make the
    /// store's order look changed).
    pub agreed: BTreeMap<ConnectionId, String>,
    /// Failed tries in a row of this record as a source (0: none kept).
    pub failures: u32,
    /// The last full run that read this record from its connection (its run id): a linked
    /// record a finished full run did not read is asked for again, and deleted at its
    /// targets if the source no longer has it.
    pub swept: Option<String>,
}

/// A change to one record's entry in the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordUpdate {
    pub connection: ConnectionId,
    pub entity: EntityType,
    pub id: String,
    /// Fields to set (the others are kept). Empty: the fingerprint, and `written`, are left
    /// as they are (the update only adds a link).
    pub fingerprint: Fingerprint,
    pub written: bool,
    pub link: Option<(ConnectionId, String)>,
    /// The seal of what this record now agrees on with its copy on that connection.
    pub agreed: Option<(ConnectionId, String)>,
    /// Its failed tries in a row as a source, when that changes (0: it succeeded).
    pub failures: Option<u32>,
    /// The stream (its connection; the entity is the entry's) and lease epoch the update is
    /// made under: refused, as `LeaseLost`, when the entry was written under a later epoch
    /// of that stream. `None`: unfenced.
    pub fence: Option<(ConnectionId, u64)>,
    /// The full run that read it now (see [`RecordState::swept`]).
    pub swept: Option<String>,
}

/// Links and fingerprints of records, by connection and entity.
#[async_trait]
pub trait RecordIndex: Send + Sync + 'static {
    async fn get(
        &self,
        connection: ConnectionId,
        entity: EntityType,
        ids: &[String],
    ) -> Result<HashMap<String, RecordState>, StateError>;
    /// Applies the updates; each merges into what is there, so concurrent runs of other
    /// streams lose nothing of each other's links. `LeaseLost` when a fenced update was
    /// refused (the others may have been applied).
    async fn update(&self, updates: &[RecordUpdate]) -> Result<(), StateError>;
    /// Up to `limit` entries of the stream's records, in id order, after id `after`; and
    /// the id to go on after, if there are more.
    async fn list(
        &self,
        connection: ConnectionId,
        entity: EntityType,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<(String, RecordState)>, Option<String>), StateError>;
}

/// Records that keep failing, per stream (see [`FailedRecord`]): the worker's side.
#[async_trait]
pub trait FailureLog: Send + Sync + 'static {
    /// Keeps these failures, each replacing what was kept for its record.
    async fn keep(&self, failures: &[FailedRecord]) -> Result<(), StateError>;
    /// Forgets the failures of these records of the stream (they succeeded).
    async fn forget(&self, key: SyncKey, ids: &[String]) -> Result<(), StateError>;
    /// Up to `limit` quarantined records of the stream due for another try at `now`.
    async fn due(
        &self,
        key: SyncKey,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<FailedRecord>, StateError>;
}

/// Records that keep failing: the API's side.
#[async_trait]
pub trait FailureList: Send + Sync + 'static {
    /// Up to `limit` failures kept for `connection`'s records (of `entity`, if given), by
    /// entity and record id, from cursor `next`.
    async fn list(
        &self,
        connection: ConnectionId,
        entity: Option<EntityType>,
        limit: usize,
        next: Option<&str>,
    ) -> Result<FailurePage, RunListError>;
}

/// Runs, as the worker writes them (and the API, as it queues or cancels one).
#[async_trait]
pub trait RunLog: Send + Sync + 'static {
    async fn get(&self, tenant: &TenantId, id: &RunId) -> Result<Option<Run>, StoreError>;
    /// Stores the run as it is now (creating or replacing it).
    async fn save(&self, run: &Run) -> Result<(), StoreError>;
    /// Stores the run only while the stored one was last written at `seen` (with `None`:
    /// while there is none), so that a worker taking a run up never overwrites what the
    /// sweeper or the API wrote after the worker read it; whether it did.
    async fn save_if_unchanged(
        &self,
        run: &Run,
        seen: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError>;
    /// Replaces the run with `run` only while the stored one is still `queued` (no worker
    /// has taken it up); whether it did.
    async fn replace_queued(&self, run: &Run) -> Result<bool, StoreError>;
    /// Notes that someone asked the run to stop, at `at`. Kept apart from the run, which
    /// its worker replaces whole as it goes: the request is never overwritten, and the
    /// worker finds it ([`RunLog::cancel_requested`]). Asking again keeps the first time.
    async fn request_cancel(
        &self,
        tenant: &TenantId,
        id: &RunId,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// When someone asked the run to stop, if anyone did.
    async fn cancel_requested(
        &self,
        tenant: &TenantId,
        id: &RunId,
    ) -> Result<Option<DateTime<Utc>>, StoreError>;
}

/// Why a run list could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunListError {
    #[error("bad cursor")]
    BadCursor,
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// Runs, as the API reads them.
#[async_trait]
pub trait RunHistory: Send + Sync + 'static {
    async fn get(&self, tenant: &TenantId, id: &RunId) -> Result<Option<Run>, StoreError>;
    /// Up to `limit` of the tenant's runs matching `filter`, newest first, from cursor
    /// `next`. A page may hold fewer than `limit` runs and still have a `next`.
    async fn list(
        &self,
        tenant: &TenantId,
        filter: &RunFilter,
        limit: usize,
        next: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<RunPage, RunListError>;
}

/// Flows, as the API keeps them.
#[async_trait]
pub trait FlowStore: Send + Sync + 'static {
    /// Stores a new flow; `ReferenceGone` unless both its connections exist, are the
    /// tenant's and are not being deleted (checked in the same atomic write).
    async fn insert(&self, flow: &Flow) -> Result<(), StoreError>;
    async fn get(&self, tenant: &TenantId, id: FlowId) -> Result<Option<Flow>, StoreError>;
    /// Every flow of the tenant, oldest first.
    async fn list(&self, tenant: &TenantId) -> Result<Vec<Flow>, StoreError>;
    async fn replace(&self, flow: &Flow, expected_version: u64) -> Result<(), StoreError>;
    async fn delete(
        &self,
        tenant: &TenantId,
        id: FlowId,
        expected_version: u64,
    ) -> Result<(), StoreError>;
}

/// Flows, as the worker finds them.
#[async_trait]
pub trait FlowSource: Send + Sync + 'static {
    /// The flows whose source is `connection` (enabled or not).
    async fn flows_from(&self, connection: ConnectionId) -> Result<Vec<Flow>, StoreError>;
}

/// A stream as the sweeper sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamState {
    /// A run holds its lease (one not yet expired).
    pub busy: bool,
    /// Until when the last lease on it ran, released or not: a stream worked on a moment
    /// ago may have a continuation, or a job sent again for later, on its way.
    pub lease_until: Option<DateTime<Utc>>,
    /// A follow-up job is kept for it.
    pub pending: bool,
    /// When webhooks of the stream last arrived, if ever (see [`WebhookArrivals`]).
    pub webhook_at: Option<DateTime<Utc>>,
}

/// Where the coalescer notes, on the stream, when its webhooks arrived: a poll measures
/// what it finds against it (changes made after it that no webhook brought), and the
/// sweeper sees webhooks arrive again.
#[async_trait]
pub trait WebhookArrivals: Send + Sync + 'static {
    /// Notes that webhooks of the stream arrived at `at` (never moving the note back).
    async fn arrived(&self, key: SyncKey, at: DateTime<Utc>) -> Result<(), StateError>;
}

/// Streams as the sweeper looks at them.
#[async_trait]
pub trait StreamWatch: Send + Sync + 'static {
    async fn state(&self, key: SyncKey, now: DateTime<Utc>) -> Result<StreamState, StateError>;
}

/// Runs as the sweeper finds and settles them, across tenants.
#[async_trait]
pub trait RunSweep: Send + Sync + 'static {
    /// The run as stored now (a consistent read).
    async fn get(&self, tenant: &TenantId, id: &RunId) -> Result<Option<Run>, StoreError>;
    /// Up to `limit` runs of any tenant still `queued` or `running` whose record was last
    /// written before `before`, least recently written first. Read through an index, so a
    /// run may show as it was a moment ago: read it again before acting on it.
    async fn stale(&self, before: DateTime<Utc>, limit: usize) -> Result<Vec<Run>, StoreError>;
    /// Replaces the stored run with `run` only while the stored one is still open and was
    /// last written at `seen` (no worker has touched it since it was read); whether it did.
    async fn replace_if_untouched(
        &self,
        run: &Run,
        seen: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Records `run` unless a run with its id exists already; whether it did.
    async fn create(&self, run: &Run) -> Result<bool, StoreError>;
    /// When someone asked the run to stop, if anyone did (see [`RunLog::request_cancel`]).
    async fn cancel_requested(
        &self,
        tenant: &TenantId,
        id: &RunId,
    ) -> Result<Option<DateTime<Utc>>, StoreError>;
    /// Whether any run of schedule `schedule` was triggered at or after `since`.
    async fn ran_since(
        &self,
        tenant: &TenantId,
        schedule: ScheduleId,
        since: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
}

/// What the sweeper did in one sweep, or in all of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SweepCounts {
    /// Runs left open with no worker on them, ended `failed` and their work queued again.
    pub abandoned: u64,
    /// Missed fire times inside their schedule's catch-up window: one run each.
    pub caught_up: u64,
    /// Missed fire times outside it: recorded, not run.
    pub missed: u64,
    /// Differences between stored schedules and EventBridge's, fixed.
    pub repairs: u64,
    /// Schedules paused after failing in a row.
    #[serde(default)]
    pub paused: u64,
    /// Schedules looked at (their fire times, their triggers, their alerts).
    #[serde(default)]
    pub schedules: u64,
    /// Triggers looked at for a schedule that is gone.
    #[serde(default)]
    pub triggers: u64,
}

impl SweepCounts {
    pub fn add(&mut self, other: &SweepCounts) {
        self.abandoned += other.abandoned;
        self.caught_up += other.caught_up;
        self.missed += other.missed;
        self.repairs += other.repairs;
        self.paused += other.paused;
        self.schedules += other.schedules;
        self.triggers += other.triggers;
    }
}

/// Where the sweeper's walk over every schedule stands: a pass checks the fire times in
/// `(from, until]` of every schedule, shard by shard, page by page, over as many sweeps as
/// it takes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SweepPass {
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// The shard being walked (`0..SWEEP_SHARDS`).
    pub shard: u8,
    /// Where in it the next page starts (`None`: at its start).
    pub after: Option<String>,
    /// When the pass began.
    pub started_at: DateTime<Utc>,
    /// Sweeps in a row that could not wholly check the page at `after`.
    #[serde(default)]
    pub failed_tries: u32,
}

/// Where the sweeper's listing of triggers stands: names are listed by their first hex
/// digit (schedule ids are UUIDs), so a listing token that expires costs one prefix's
/// progress, not the whole listing's.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TriggerWalk {
    /// The prefix being listed (`0..16`, a hex digit).
    pub prefix: u8,
    /// EventBridge's token for the next page of it (`None`: its first).
    pub token: Option<String>,
}

/// The sweeper's record of itself: when it last swept, up to when schedules' fire times
/// were checked, what the last sweep did and all of them together.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SweepStatus {
    pub last_sweep_at: DateTime<Utc>,
    /// Fire times up to here have been checked against the runs (by the last whole pass).
    pub checked_until: DateTime<Utc>,
    /// The pass under way, if one is: the next sweep goes on from it.
    #[serde(default)]
    pub pass: Option<SweepPass>,
    /// Where the next sweep goes on listing triggers (`None`: from the first).
    #[serde(default)]
    pub triggers_at: Option<TriggerWalk>,
    pub last: SweepCounts,
    pub totals: SweepCounts,
    /// What the last sweep could not do (it is tried again by the next).
    pub errors: Vec<String>,
}

/// Where the sweeper keeps its status.
#[async_trait]
pub trait SweepLog: Send + Sync + 'static {
    async fn last(&self) -> Result<Option<SweepStatus>, StoreError>;
    async fn record(&self, status: &SweepStatus) -> Result<(), StoreError>;
}
