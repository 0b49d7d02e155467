//! In-memory adapters: stateful fakes of the ports for fast domain and handler tests, with
//! switches that make them fail the way a real dependency can.

mod alerts;
mod connections;
mod events;
mod platform;
mod queue;
mod quota;
mod schedules;
mod sync;
mod tokens;

pub use alerts::{MemoryAlerts, MemoryReceiver, MemoryTopic};
pub use connections::{connection_fixture, MemoryConnectionStore, MemorySealer};
pub use events::MemoryEventStore;
pub use platform::{MemoryConnectors, MemoryPlatform};
pub use queue::MemoryQueue;
pub use quota::MemoryCallQuota;
pub use schedules::{MemoryScheduleStore, MemoryTrigger};
pub use sync::{
    MemoryFailures, MemoryFlows, MemoryRecordIndex, MemoryRuns, MemorySweepLog, MemorySyncLeases,
};
pub use tokens::{MemoryIntuit, MemoryOAuthStates, MemoryTokenVault};

use std::sync::{Arc, Mutex};

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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
    pub flows: std::sync::Arc<MemoryFlows>,
    pub runs: std::sync::Arc<MemoryRuns>,
    pub failures: std::sync::Arc<MemoryFailures>,
    /// Streams' leases and cursors (the API sets a cursor by hand).
    pub leases: std::sync::Arc<MemorySyncLeases>,
    /// Alert issues and destinations.
    pub alerts: std::sync::Arc<MemoryAlerts>,
}

impl Default for MemoryWorld {
    fn default() -> Self {
        let connections = Arc::new(MemoryConnectionStore::default());
        Self {
            flows: Arc::new(MemoryFlows::new(connections.clone())),
            schedules: Arc::new(MemoryScheduleStore::checking(connections.clone())),
            trigger: Arc::default(),
            connections,
            sealer: Arc::default(),
            events: Arc::default(),
            queue: Arc::default(),
            runs: Arc::default(),
            failures: Arc::default(),
            leases: Arc::default(),
            alerts: Arc::default(),
        }
    }
}
