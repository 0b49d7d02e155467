//! Connections and sealed secrets in memory.

use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use super::lock;
use crate::crypto;
use crate::domain::{Connection, ConnectionId, Sealed, TenantId};
use crate::ports::{
    ConnectionReader, ConnectionRemoval, ConnectionStore, SealError, SecretOpener, SecretSealer,
    StoreError,
};

/// A connection store in a hash map.
#[derive(Default)]
pub struct MemoryConnectionStore {
    pub(super) rows: Mutex<HashMap<ConnectionId, Connection>>,
    failing: AtomicBool,
    /// Conditional writes lose, as when another request changed the connection first.
    conflicting: AtomicBool,
}

impl MemoryConnectionStore {
    /// Puts a connection in place directly (tests that need one without the service).
    pub fn seed(&self, connection: Connection) {
        lock(&self.rows).insert(connection.id, connection);
    }

    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    pub fn set_conflicting(&self, conflicting: bool) {
        self.conflicting.store(conflicting, Ordering::SeqCst);
    }

    pub fn len(&self) -> usize {
        lock(&self.rows).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable(
                "memory connection store set to fail".into(),
            ))
        } else {
            Ok(())
        }
    }

    fn check_conditional(&self) -> Result<(), StoreError> {
        self.check()?;
        if self.conflicting.load(Ordering::SeqCst) {
            Err(StoreError::Conflict)
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl ConnectionReader for MemoryConnectionStore {
    async fn get(&self, id: ConnectionId) -> Result<Option<Connection>, StoreError> {
        self.check()?;
        Ok(lock(&self.rows).get(&id).cloned())
    }

    async fn routed(&self, route: &str) -> Result<Vec<Connection>, StoreError> {
        self.check()?;
        let mut all: Vec<Connection> = lock(&self.rows)
            .values()
            .filter(|c| c.platform.module().route(c).as_deref() == Some(route))
            .cloned()
            .collect();
        all.sort_by_key(|c| c.id.to_string());
        Ok(all)
    }
}

#[async_trait]
impl ConnectionStore for MemoryConnectionStore {
    async fn insert(&self, connection: &Connection) -> Result<(), StoreError> {
        self.check()?;
        let mut rows = lock(&self.rows);
        if rows.contains_key(&connection.id) {
            return Err(StoreError::AlreadyExists);
        }
        rows.insert(connection.id, connection.clone());
        Ok(())
    }

    async fn list(&self, tenant: &TenantId) -> Result<Vec<Connection>, StoreError> {
        self.check()?;
        let mut all: Vec<Connection> = lock(&self.rows)
            .values()
            .filter(|c| &c.tenant_id == tenant)
            .cloned()
            .collect();
        all.sort_by_key(|c| (c.created_at, c.id.to_string()));
        Ok(all)
    }

    async fn replace(
        &self,
        connection: &Connection,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        self.check_conditional()?;
        match lock(&self.rows).get_mut(&connection.id) {
            Some(row) if row.version == expected_version => {
                *row = connection.clone();
                Ok(())
            }
            _ => Err(StoreError::Conflict),
        }
    }
}

#[async_trait]
impl ConnectionRemoval for MemoryConnectionStore {
    async fn delete(&self, id: ConnectionId, expected_version: u64) -> Result<(), StoreError> {
        self.check_conditional()?;
        let mut rows = lock(&self.rows);
        match rows.get(&id) {
            Some(row) if row.version == expected_version => {
                rows.remove(&id);
                Ok(())
            }
            _ => Err(StoreError::Conflict),
        }
    }
}

/// Envelope encryption with a master key held in memory: the same scheme as the KMS
/// adapter (a random data key per seal, wrapped by the master key), for tests and local runs.
pub struct MemorySealer {
    master: Vec<u8>,
}

impl Default for MemorySealer {
    fn default() -> Self {
        Self {
            master: vec![0x42; 32],
        }
    }
}

fn context_aad(context: &[(&str, &str)]) -> Vec<u8> {
    context
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("\n")
        .into_bytes()
}

#[async_trait]
impl SecretSealer for MemorySealer {
    async fn seal(&self, plaintext: &[u8], context: &[(&str, &str)]) -> Result<Sealed, SealError> {
        let aad = context_aad(context);
        let data_key = crypto::random_bytes(32).map_err(|_| SealError::Corrupt)?;
        let (key_nonce, wrapped) =
            crypto::aes_gcm_seal(&self.master, &data_key, &aad).map_err(|_| SealError::Corrupt)?;
        let (nonce, ciphertext) =
            crypto::aes_gcm_seal(&data_key, plaintext, &aad).map_err(|_| SealError::Corrupt)?;
        let mut encrypted_key = key_nonce;
        encrypted_key.extend(wrapped);
        Ok(Sealed {
            encrypted_key,
            nonce,
            ciphertext,
        })
    }
}

#[async_trait]
impl SecretOpener for MemorySealer {
    async fn open(&self, sealed: &Sealed, context: &[(&str, &str)]) -> Result<Vec<u8>, SealError> {
        let aad = context_aad(context);
        if sealed.encrypted_key.len() < 12 {
            return Err(SealError::Corrupt);
        }
        let (key_nonce, wrapped) = sealed.encrypted_key.split_at(12);
        let data_key = crypto::aes_gcm_open(&self.master, key_nonce, wrapped, &aad)
            .map_err(|_| SealError::Corrupt)?;
        crypto::aes_gcm_open(&data_key, &sealed.nonce, &sealed.ciphertext, &aad)
            .map_err(|_| SealError::Corrupt)
    }
}

/// A connection of `tenant` on `platform` with placeholder (unopenable) secrets, for tests
/// that need one to exist without going through the connection service.
pub fn connection_fixture(tenant: &TenantId, platform: crate::domain::Platform) -> Connection {
    let now = chrono::DateTime::from_timestamp(1_795_521_600, 0).unwrap_or_default();
    Connection {
        id: ConnectionId::new_random(),
        tenant_id: tenant.clone(),
        platform,
        display_name: format!("{platform} test connection"),
        config: serde_json::Map::new(),
        sealed_secrets: Sealed {
            encrypted_key: Vec::new(),
            nonce: Vec::new(),
            ciphertext: Vec::new(),
        },
        secret_hints: std::collections::BTreeMap::new(),
        webhooks_enabled: false,
        deleting_since: None,
        needs_reauth: None,
        created_at: now,
        updated_at: now,
        version: 1,
    }
}
