//! Token chains in memory, with the switches tests need: a store that fails for a while, and
//! a view of every version stored.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use super::{lock, MemoryConnectionStore};
use crate::domain::{Connection, ConnectionId, Sealed};
use crate::ports::{StateError, StoredTokens, TokenVault};

#[derive(Default)]
pub struct MemoryTokenVault {
    rows: Mutex<HashMap<ConnectionId, StoredTokens>>,
    /// The next this many `store` calls fail as unavailable.
    failing_stores: AtomicU32,
    /// Where `needs_reauth` marks the connection, when given.
    connections: Option<Arc<MemoryConnectionStore>>,
    marks: Mutex<Vec<(ConnectionId, String)>>,
}

impl MemoryTokenVault {
    /// A vault that marks `needs_reauth` on the connections in `connections`.
    pub fn with_connections(connections: Arc<MemoryConnectionStore>) -> Self {
        Self {
            connections: Some(connections),
            ..Self::default()
        }
    }

    pub fn fail_stores(&self, count: u32) {
        self.failing_stores.store(count, Ordering::SeqCst);
    }

    pub fn version(&self, connection: ConnectionId) -> Option<u64> {
        lock(&self.rows).get(&connection).map(|r| r.version)
    }

    /// The `needs_reauth` marks made, in order.
    pub fn marks(&self) -> Vec<(ConnectionId, String)> {
        lock(&self.marks).clone()
    }
}

#[async_trait]
impl TokenVault for MemoryTokenVault {
    async fn load(&self, connection: ConnectionId) -> Result<Option<StoredTokens>, StateError> {
        Ok(lock(&self.rows).get(&connection).cloned())
    }

    async fn lease(
        &self,
        connection: ConnectionId,
        version: u64,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StateError> {
        let mut rows = lock(&self.rows);
        let row = rows.entry(connection).or_insert_with(|| StoredTokens {
            sealed: None,
            version: 0,
            origin: String::new(),
            lease_owner: None,
            lease_until: None,
        });
        let free =
            row.lease_until.is_none_or(|t| t < now) || row.lease_owner.as_deref() == Some(owner);
        if row.version != version || !free {
            return Ok(false);
        }
        row.lease_owner = Some(owner.to_string());
        row.lease_until = Some(until);
        Ok(true)
    }

    async fn store(
        &self,
        connection: ConnectionId,
        version: u64,
        owner: &str,
        sealed: &Sealed,
        origin: &str,
    ) -> Result<bool, StateError> {
        let failing = self.failing_stores.load(Ordering::SeqCst);
        if failing > 0 {
            self.failing_stores.store(failing - 1, Ordering::SeqCst);
            return Err(StateError::Unavailable(
                "memory token vault set to fail".into(),
            ));
        }
        let mut rows = lock(&self.rows);
        match rows.get_mut(&connection) {
            Some(row) if row.version == version && row.lease_owner.as_deref() == Some(owner) => {
                row.sealed = Some(sealed.clone());
                row.origin = origin.to_string();
                row.version += 1;
                row.lease_owner = None;
                row.lease_until = None;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn needs_reauth(&self, connection: &Connection, reason: &str) -> Result<(), StateError> {
        lock(&self.marks).push((connection.id, reason.to_string()));
        if let Some(store) = &self.connections {
            if let Some(c) = lock(&store.rows).get_mut(&connection.id) {
                c.needs_reauth = Some(reason.to_string());
                c.version += 1;
            }
        }
        Ok(())
    }
}
