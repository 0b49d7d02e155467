//! Use cases, written against ports only.

mod schedules;

pub use schedules::{Preview, ScheduleService, ServiceError, MAX_PREVIEW_COUNT};
