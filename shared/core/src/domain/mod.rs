//! The domain model: identifiers, connections, schedules, webhook events and sync jobs.

mod connection;
mod ids;
pub mod job;
mod schedule;
mod webhook;

pub use connection::{
    Connection, ConnectionPatch, NewConnection, PlatformSpec, Sealed, Secret, Secrets,
};
pub use ids::{ConnectionId, IdError, ScheduleId, TenantId};
pub use job::SyncJob;
pub use schedule::{
    EntityType, NewSchedule, Platform, Schedule, SchedulePatch, SyncMode, UnknownValue,
};
pub use webhook::{EventPage, EventRecord, EventStatus, QueuedEvent, WebhookEvent};
