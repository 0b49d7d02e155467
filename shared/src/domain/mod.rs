//! The domain model: identifiers, schedules and the job a schedule enqueues.

mod ids;
pub mod job;
mod schedule;

pub use ids::{ConnectionId, IdError, ScheduleId, TenantId};
pub use job::SyncJob;
pub use schedule::{
    EntityType, NewSchedule, Platform, Schedule, SchedulePatch, SyncMode, UnknownValue,
};
