//! The domain model: identifiers, connections, schedules, webhook events and sync jobs.

mod alert;
mod connection;
mod failure;
mod flow;
mod ids;
pub mod job;
mod run;
mod schedule;
mod webhook;

pub use crate::platforms::{Platform, PlatformSpec};
pub use alert::{
    alert_id, check_destination_url, is_internal, AlertDestination, AlertIssue, AlertKind,
    AlertStatus, AlertSubject, DestinationKind, DestinationSecret, Hearing, Notice, Raised,
    UrlRefused, ALERT_AFTER_FAILURES, MAX_DELIVERY_ATTEMPTS, WEBHOOK_GRACE, WEBHOOK_QUIET,
};
pub use connection::{
    Connection, ConnectionPatch, NewConnection, Sealed, Secret, Secrets, Unusable,
};
pub use failure::{FailedRecord, FailurePage};
pub use flow::{ConflictPolicy, DocPrefix, Flow, FlowPatch, NewFlow};
pub use ids::{ConnectionId, FlowId, IdError, ScheduleId, TenantId};
pub use job::{Checkpoint, SyncJob, Trigger, Window, MAX_JOB_IDS};
pub use run::{
    Conflict, Cursor, FlowRun, RecordFailure, Run, RunCounts, RunFilter, RunId, RunPage, RunStatus,
    Winner, MAX_RUN_FAILURES,
};
pub use schedule::{
    EntityType, NewSchedule, OverlapPolicy, Schedule, ScheduleOptions, SchedulePatch, SyncMode,
    TriggerDefinition, UnknownValue, DEFAULT_AUTO_PAUSE_AFTER_FAILURES,
    DEFAULT_CATCH_UP_WINDOW_MINUTES, MAX_AUTO_PAUSE_AFTER_FAILURES, MAX_CATCH_UP_WINDOW_MINUTES,
    MAX_FLEXIBLE_WINDOW_MINUTES, MAX_PAUSE_NOTE_CHARS, MIN_CATCH_UP_WINDOW_MINUTES,
};
pub use webhook::{EventPage, EventRecord, EventStatus, QueuedEvent, WebhookEvent};
