//! Use cases, written against ports only.

mod alerts;
mod audit;
mod coalesce;
mod connect;
mod connections;
mod connectors;
mod flows;
mod intake;
mod operations;
mod repair;
mod schedules;
mod sweeper;
pub mod sync;
pub mod tokens;
mod webhook_setup;

pub use alerts::{
    AlertConsole, AlertDelivery, AlertRaiser, DeliveryReport, DeliverySettings, NewDestination,
    MAX_DESTINATIONS, MAX_DUE_ISSUES,
};
pub use audit::{Audit, AuditedFire, FireLabel, ScheduleAudit, MAX_AUDIT_DAYS, MAX_AUDIT_FIRES};
pub use coalesce::{CoalesceReport, Coalescer, Incoming, MAX_IDS_PER_JOB};
pub use connect::{Callback, ConnectError, Connected, QuickBooksAppConfig, QuickBooksConnect};
pub use connections::{open_secrets, ConnectionService};
pub use connectors::PlatformConnectors;
pub use flows::FlowService;
pub use intake::{Delivery, Intake, IntakeError, IntakeSettings, Outcome};
pub use operations::{
    Cancelled, CursorChange, FailureFilter, Operations, OperationsPorts, ResyncRequest, Retried,
    RunRequest, MAX_RETRY_RECORDS,
};
pub use repair::{Drift, RepairReport, ScheduleRepair, Scope};
pub use schedules::{
    preview, FiredCheck, FiredSchedule, Preview, ScheduleService, ServiceError, MAX_PREVIEW_COUNT,
};
pub use sweeper::{MissedFire, SweepReport, Sweeper, SweeperPorts, SweeperSettings};
pub use webhook_setup::{Registration, WebhookSetup};

/// The use cases the API function serves.
#[derive(Clone)]
pub struct Services {
    pub schedules: ScheduleService,
    pub connections: ConnectionService,
    pub flows: FlowService,
    /// Runs a person asks for.
    pub operations: Operations,
    pub events: std::sync::Arc<dyn crate::ports::EventLog>,
    pub runs: std::sync::Arc<dyn crate::ports::RunHistory>,
    /// Records that keep failing, as the API lists them.
    pub failures: std::sync::Arc<dyn crate::ports::FailureList>,
    /// A schedule's fire times set against its runs.
    pub audit: ScheduleAudit,
    /// What the sweeper last did.
    pub sweeps: std::sync::Arc<dyn crate::ports::SweepLog>,
    /// Alert issues and destinations.
    pub alerts: AlertConsole,
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
        )
        .creating(world.schedules.clone());
        let connections = ConnectionService::new(
            world.connections.clone(),
            world.connections.clone(),
            world.sealer.clone(),
            schedules.clone(),
            world.flows.clone(),
            clock.clone(),
        );
        let flows = FlowService::new(
            world.flows.clone(),
            world.connections.clone(),
            world.queue.clone(),
            clock.clone(),
        );
        let operations = Operations::new(OperationsPorts {
            connections: world.connections.clone(),
            flows: world.flows.clone(),
            schedules: world.schedules.clone(),
            runs: world.runs.clone(),
            failures: world.failures.clone(),
            jobs: world.queue.clone(),
            cursors: world.leases.clone(),
            clock: clock.clone(),
        });
        let alerts = AlertConsole::new(
            world.alerts.clone(),
            world.alerts.clone(),
            world.sealer.clone(),
            clock.clone(),
            false,
        );
        let audit = ScheduleAudit::new(world.schedules.clone(), world.runs.clone(), clock);
        let events = world.events.clone();
        let runs = world.runs.clone();
        let failures = world.failures.clone();
        (
            Self {
                schedules,
                connections,
                flows,
                operations,
                events,
                runs,
                failures,
                audit,
                sweeps: std::sync::Arc::new(crate::memory::MemorySweepLog::default()),
                alerts,
            },
            world,
        )
    }
}
