//! OAuth token chains: where a connection's current access and refresh tokens are kept once
//! the platform starts rotating them, and how refreshes of one chain are serialised.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StateError;
use crate::domain::{Connection, ConnectionId, Sealed};

/// A connection's token chain as stored: the tokens sealed, a version that every stored
/// refresh moves on by one, and the refresh lease while one is under way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTokens {
    /// `None` until the first refresh (the chain starts from the connection's secrets).
    pub sealed: Option<Sealed>,
    pub version: u64,
    /// A digest of the refresh token the chain started from. A connection given a new
    /// refresh token (reconnected) starts a new chain; the old one is abandoned.
    pub origin: String,
    pub lease_owner: Option<String>,
    pub lease_until: Option<DateTime<Utc>>,
}

/// The token chains of connections, and their `needs_reauth` mark.
#[async_trait]
pub trait TokenVault: Send + Sync + 'static {
    async fn load(&self, connection: ConnectionId) -> Result<Option<StoredTokens>, StateError>;

    /// Takes the refresh lease of the chain at `version` until `until`: true when taken (the
    /// chain is still at `version` and no live lease is held by another owner).
    async fn lease(
        &self,
        connection: ConnectionId,
        version: u64,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StateError>;

    /// Stores refreshed tokens as version `version + 1`, only while the chain is at
    /// `version` (whoever holds the lease now: a refresh that outlived its lease still keeps
    /// its tokens unless another stored newer ones first); the lease ends. False when the
    /// chain had moved on.
    async fn store(
        &self,
        connection: ConnectionId,
        version: u64,
        sealed: &Sealed,
        origin: &str,
    ) -> Result<bool, StateError>;

    /// Gives up `owner`'s lease of the chain at `version` without storing anything (the
    /// refresh failed); a lease no longer ours is left alone.
    async fn release(
        &self,
        connection: ConnectionId,
        version: u64,
        owner: &str,
    ) -> Result<(), StateError>;

    /// Marks the connection as needing the user to connect it again (its grant is dead),
    /// with the reason shown to them, if it is still at `connection.version` (one given new
    /// credentials since is left alone). Cleared when the connection gets new credentials.
    async fn needs_reauth(&self, connection: &Connection, reason: &str) -> Result<(), StateError>;
}
