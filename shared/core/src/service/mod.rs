//! Use cases, written against ports only.

mod coalesce;
mod connections;
mod connectors;
mod intake;
mod repair;
mod schedules;
pub mod sync;

pub use coalesce::{CoalesceReport, Coalescer, Incoming, MAX_IDS_PER_JOB};
pub use connections::{open_secrets, ConnectionService};
pub use connectors::PlatformConnectors;
pub use intake::{Delivery, Intake, IntakeError, IntakeSettings, Outcome};
pub use repair::{Drift, RepairReport, ScheduleRepair, Scope};
pub use schedules::{FiredSchedule, Preview, ScheduleService, ServiceError, MAX_PREVIEW_COUNT};

/// The use cases the API function serves.
#[derive(Clone)]
pub struct Services {
    pub schedules: ScheduleService,
    pub connections: ConnectionService,
    pub events: std::sync::Arc<dyn crate::ports::EventLog>,
}

impl Services {
    /// Everything over in-memory fakes, for tests; the fakes are returned for inspection.
    pub fn in_memory(
        clock: std::sync::Arc<dyn crate::clock::Clock>,
    ) -> (Self, crate::memory::MemoryWorld) {
        let world = crate::memory::MemoryWorld::default();
        let schedules = ScheduleService::new(
            world.schedules.clone(),
            world.trigger.clone(),
            world.connections.clone(),
            clock.clone(),
        );
        let connections = ConnectionService::new(
            world.connections.clone(),
            world.sealer.clone(),
            schedules.clone(),
            clock,
        );
        let events = world.events.clone();
        (
            Self {
                schedules,
                connections,
                events,
            },
            world,
        )
    }
}
