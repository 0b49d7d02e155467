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
            Some(row) if row.version == version => {
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

    async fn release(
        &self,
        connection: ConnectionId,
        version: u64,
        owner: &str,
    ) -> Result<(), StateError> {
        if let Some(row) = lock(&self.rows).get_mut(&connection) {
            if row.version == version && row.lease_owner.as_deref() == Some(owner) {
                row.lease_owner = None;
                row.lease_until = None;
            }
        }
        Ok(())
    }

    async fn needs_reauth(&self, connection: &Connection, reason: &str) -> Result<(), StateError> {
        lock(&self.marks).push((connection.id, reason.to_string()));
        if let Some(store) = &self.connections {
            if let Some(c) = lock(&store.rows)
                .get_mut(&connection.id)
                .filter(|c| c.version == connection.version)
            {
                c.needs_reauth = Some(reason.to_string());
                c.version += 1;
            }
        }
        Ok(())
    }
}

/// Used OAuth state nonces in memory.
#[derive(Default)]
pub struct MemoryOAuthStates {
    used: Mutex<std::collections::HashSet<String>>,
}

#[async_trait]
impl crate::ports::OAuthStates for MemoryOAuthStates {
    async fn consume(
        &self,
        nonce: &str,
        _expires: DateTime<Utc>,
    ) -> Result<bool, crate::ports::StoreError> {
        Ok(lock(&self.used).insert(nonce.to_string()))
    }
}

/// Intuit's token endpoint over the HTTP port, in memory: authorization codes granted with
/// [`MemoryIntuit::grant`] are single-use; refresh tokens rotate; anything else is
/// `invalid_grant`. It can be made to answer 503.
#[derive(Default)]
pub struct MemoryIntuit {
    codes: Mutex<std::collections::HashSet<String>>,
    refresh: Mutex<std::collections::HashSet<String>>,
    issued: AtomicU32,
    down: std::sync::atomic::AtomicBool,
}

impl MemoryIntuit {
    pub fn grant(&self, code: &str) {
        lock(&self.codes).insert(code.to_string());
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Whether `token` is a live refresh token.
    pub fn is_live(&self, token: &str) -> bool {
        lock(&self.refresh).contains(token)
    }

    pub fn issued(&self) -> u32 {
        self.issued.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl crate::ports::HttpClient for MemoryIntuit {
    async fn send(
        &self,
        request: crate::ports::HttpRequest,
    ) -> Result<crate::ports::HttpResponse, crate::ports::TransportError> {
        let answer = |status: u16, body: serde_json::Value| crate::ports::HttpResponse {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
        };
        if self.down.load(Ordering::SeqCst) {
            return Ok(answer(
                503,
                serde_json::json!({"error": "temporarily_unavailable"}),
            ));
        }
        let form = String::from_utf8_lossy(request.body.as_deref().unwrap_or_default()).to_string();
        let field = |name: &str| {
            form.split('&')
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
                .unwrap_or_default()
        };
        let known = match field("grant_type").as_str() {
            "authorization_code" => lock(&self.codes).remove(&field("code")),
            "refresh_token" => lock(&self.refresh).remove(&field("refresh_token")),
            _ => false,
        };
        if !known {
            return Ok(answer(400, serde_json::json!({"error": "invalid_grant"})));
        }
        let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        let refresh = format!("refresh-{n}");
        lock(&self.refresh).insert(refresh.clone());
        Ok(answer(
            200,
            serde_json::json!({"access_token": format!("access-{n}"), "token_type": "bearer",
                               "expires_in": 3600, "refresh_token": refresh,
                               "x_refresh_token_expires_in": 8_640_000}),
        ))
    }
}
