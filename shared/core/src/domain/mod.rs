//! The domain model: identifiers, connections, schedules, webhook events and sync jobs.

mod connection;
mod ids;
pub mod job;
mod run;
mod schedule;
mod webhook;

pub use crate::platforms::{Platform, PlatformSpec};
pub use connection::{Connection, ConnectionPatch, NewConnection, Sealed, Secret, Secrets};
pub use ids::{ConnectionId, IdError, ScheduleId, TenantId};
pub use job::{SyncJob, Trigger};
pub use run::RunStatus;
pub use schedule::{
    EntityType, NewSchedule, Schedule, SchedulePatch, SyncMode, TriggerDefinition, UnknownValue,
};
pub use webhook::{EventPage, EventRecord, EventStatus, QueuedEvent, WebhookEvent};
