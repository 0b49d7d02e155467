//! Keeping an OAuth connection's tokens fresh when the platform rotates refresh tokens
//! (QuickBooks: an access token lasts an hour; each refresh may return a new refresh token,
//! and the one it replaced may stop working).
//!
//! The chain of tokens lives in the [`TokenVault`], sealed, with a version. One refresh per
//! chain at a time: a worker that needs new tokens first takes the chain's lease at the
//! version it read (a conditional write); one that loses waits, re-reads, and uses the
//! winner's access token. The new tokens are stored, conditional on the version, before the
//! access token is used at all.
//!
//! A refresh never burns a good grant on our side:
//! - its tokens are stored even when it outlived its lease (the chain is versioned: they are
//!   stored unless another refresh stored newer ones first);
//! - a refresh whose outcome is unknown (no answer: it may have reached the platform) keeps
//!   its lease until the lease expires instead of releasing it, so no other worker sends the
//!   same refresh token again at once;
//! - a refresh refused with `invalid_grant` after taking over another worker's lease, or
//!   while the chain moved on, first waits for that other refresh to store its tokens and
//!   uses them: the token it sent was spent by that refresh, not dead.
//!
//! A refresh whose answer is lost before it is stored (the process dies between the
//! platform's answer and our write) cannot be recovered by us if the platform has already
//! retired the old refresh token. That window is kept as small as it can be: the store is
//! the very next step, retried with backoff within the lease; access tokens are reused for
//! their hour so refreshes are rare. If it happens, the next refresh is refused with
//! `invalid_grant` and the connection is marked `needs_reauth` with that reason, which the
//! user sees on the connection and in runs, and clears by connecting again. Nothing is
//! retried against the platform in a loop.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};

use crate::clock::Clock;
use crate::domain::{Connection, Secret};
use crate::ports::{PlatformError, SecretSealer, TokenVault};

/// The prefix of the error of a run for a connection whose grant is dead.
pub const NEEDS_REAUTH: &str = "needs_reauth";

/// An access token with its expiry, and the refresh token to get the next one.
#[derive(Clone, Serialize, Deserialize)]
pub struct Tokens {
    pub access_token: String,
    pub access_expires_at: DateTime<Utc>,
    pub refresh_token: String,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("access_expires_at", &self.access_expires_at)
            .finish_non_exhaustive()
    }
}

/// Why a refresh failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshError {
    /// The grant is dead (revoked, expired, or the refresh token was replaced): only the
    /// user connecting again can fix it.
    InvalidGrant(String),
    /// No answer: the refresh may have been made (retrying later may help).
    Unavailable(String),
    /// Not made, for certain (never sent, or answered with an error such as a 5xx):
    /// retrying later may help.
    Declined(String),
    /// The app's own credentials were refused.
    Rejected(String),
}

/// The platform's token endpoint.
#[async_trait]
pub trait Refresher: Send + Sync {
    async fn refresh(&self, refresh_token: &str) -> Result<Tokens, RefreshError>;
}

/// Timings of the keeper.
#[derive(Clone, Debug)]
pub struct KeeperSettings {
    /// How long a refresh lease lasts (longer than a refresh takes with its retries).
    pub lease: Duration,
    /// How long to wait for another worker's refresh before giving up for now.
    pub wait: Duration,
    pub poll: std::time::Duration,
    /// An access token closer than this to its expiry is refreshed first.
    pub margin: Duration,
}

impl Default for KeeperSettings {
    fn default() -> Self {
        Self {
            lease: Duration::seconds(60),
            wait: Duration::seconds(30),
            poll: std::time::Duration::from_millis(200),
            margin: Duration::seconds(120),
        }
    }
}

/// One connection's tokens, for its connector.
pub struct TokenKeeper {
    vault: Arc<dyn TokenVault>,
    sealer: Arc<dyn SecretSealer>,
    clock: Arc<dyn Clock>,
    refresher: Arc<dyn Refresher>,
    connection: Connection,
    /// The refresh token on the connection: where a chain starts.
    seed: Secret,
    origin: String,
    settings: KeeperSettings,
    cached: Mutex<Option<Tokens>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn unavailable(e: impl std::fmt::Display) -> PlatformError {
    PlatformError::Unavailable(e.to_string())
}

impl TokenKeeper {
    pub fn new(
        vault: Arc<dyn TokenVault>,
        sealer: Arc<dyn SecretSealer>,
        clock: Arc<dyn Clock>,
        refresher: Arc<dyn Refresher>,
        connection: &Connection,
        seed: Secret,
        settings: KeeperSettings,
    ) -> Self {
        let origin = crate::crypto::sha256_hex(seed.expose().as_bytes())[..32].to_string();
        Self {
            vault,
            sealer,
            clock,
            refresher,
            connection: connection.clone(),
            seed,
            origin,
            settings,
            cached: Mutex::new(None),
        }
    }

    fn context(&self) -> Vec<(&'static str, String)> {
        vec![
            ("tenant_id", self.connection.tenant_id.as_str().to_string()),
            ("connection_id", self.connection.id.to_string()),
            ("purpose", "oauth-tokens".to_string()),
        ]
    }

    async fn open(&self, sealed: &crate::domain::Sealed) -> Result<Tokens, PlatformError> {
        let context = self.context();
        let pairs: Vec<(&str, &str)> = context.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let bytes = self
            .sealer
            .open(sealed, &pairs)
            .await
            .map_err(unavailable)?;
        serde_json::from_slice(&bytes).map_err(|_| unavailable("stored tokens do not read"))
    }

    async fn seal(&self, tokens: &Tokens) -> Result<crate::domain::Sealed, PlatformError> {
        let context = self.context();
        let pairs: Vec<(&str, &str)> = context.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let bytes = serde_json::to_vec(tokens).map_err(unavailable)?;
        self.sealer.seal(&bytes, &pairs).await.map_err(unavailable)
    }

    /// An access token good for a while yet.
    pub async fn access_token(&self) -> Result<String, PlatformError> {
        let fresh = lock(&self.cached).as_ref().and_then(|t| {
            (t.access_expires_at > self.clock.now() + self.settings.margin)
                .then(|| t.access_token.clone())
        });
        match fresh {
            Some(token) => Ok(token),
            None => self.current(None).await,
        }
    }

    /// A replacement for an access token the platform refused (401): another worker's newer
    /// one if there is one, else a refresh.
    pub async fn after_rejection(&self, rejected: &str) -> Result<String, PlatformError> {
        *lock(&self.cached) = None;
        self.current(Some(rejected)).await
    }

    async fn current(&self, rejected: Option<&str>) -> Result<String, PlatformError> {
        let started = self.clock.now();
        // One owner per attempt: two calls of this keeper at once are two workers too.
        let owner = uuid::Uuid::new_v4().to_string();
        loop {
            let now = self.clock.now();
            let stored = self
                .vault
                .load(self.connection.id)
                .await
                .map_err(unavailable)?;
            // Another worker's refresh that outlived its lease may still land: a refusal of
            // the token it was sending then proves nothing about the grant.
            let contested = stored
                .as_ref()
                .is_some_and(|s| s.lease_owner.as_deref().is_some_and(|o| o != owner));
            let (tokens, version) = match stored {
                Some(s) if s.origin == self.origin => match &s.sealed {
                    Some(sealed) => (Some(self.open(sealed).await?), s.version),
                    None => (None, s.version),
                },
                // The connection was given a new refresh token: a new chain starts from it.
                Some(s) => (None, s.version),
                None => (None, 0),
            };
            if let Some(t) = &tokens {
                if t.access_expires_at > now + self.settings.margin
                    && Some(t.access_token.as_str()) != rejected
                {
                    *lock(&self.cached) = Some(t.clone());
                    return Ok(t.access_token.clone());
                }
            }
            let leased = self
                .vault
                .lease(
                    self.connection.id,
                    version,
                    &owner,
                    now,
                    now + self.settings.lease,
                )
                .await
                .map_err(unavailable)?;
            if !leased {
                if self.clock.now() - started > self.settings.wait {
                    return Err(PlatformError::Unavailable(
                        "another worker's token refresh for this connection has not finished"
                            .into(),
                    ));
                }
                tokio::time::sleep(self.settings.poll).await;
                continue;
            }
            let from = tokens
                .map(|t| t.refresh_token)
                .unwrap_or_else(|| self.seed.expose().to_string());
            let refreshed = self.refresher.refresh(&from).await;
            // A refusal was answered: the lease can go. With no answer the refresh may have
            // reached the platform: the lease stays until it expires.
            if matches!(
                refreshed,
                Err(RefreshError::InvalidGrant(_)
                    | RefreshError::Rejected(_)
                    | RefreshError::Declined(_))
            ) {
                if let Err(e) = self
                    .vault
                    .release(self.connection.id, version, &owner)
                    .await
                {
                    tracing::warn!(connection_id = %self.connection.id, error = %e, "could not release the token refresh lease; it expires on its own");
                }
            }
            if matches!(refreshed, Err(RefreshError::InvalidGrant(_)))
                && self.chain_moved_on(version, contested, started).await?
            {
                // The token we sent was spent by another refresh that has stored its tokens.
                continue;
            }
            return match refreshed {
                Ok(new) => {
                    self.keep(version, &new).await;
                    *lock(&self.cached) = Some(new.clone());
                    Ok(new.access_token)
                }
                Err(RefreshError::InvalidGrant(why)) => {
                    let reason = format!(
                        "the platform refused the connection's refresh token ({why}); connect the company again"
                    );
                    if let Err(e) = self.vault.needs_reauth(&self.connection, &reason).await {
                        tracing::warn!(connection_id = %self.connection.id, error = %e, "could not mark the connection needs_reauth");
                    }
                    Err(PlatformError::Rejected(format!("{NEEDS_REAUTH}: {reason}")))
                }
                Err(RefreshError::Rejected(why)) => Err(PlatformError::Rejected(why)),
                Err(RefreshError::Unavailable(why) | RefreshError::Declined(why)) => {
                    Err(PlatformError::Unavailable(why))
                }
            };
        }
    }

    /// Whether the chain moved past `version` (another refresh stored its tokens), waiting
    /// for that when another worker's refresh may still be landing (`contested`), within
    /// the keeper's wait.
    async fn chain_moved_on(
        &self,
        version: u64,
        contested: bool,
        started: DateTime<Utc>,
    ) -> Result<bool, PlatformError> {
        loop {
            let stored = self
                .vault
                .load(self.connection.id)
                .await
                .map_err(unavailable)?;
            if stored.is_some_and(|s| s.version > version && s.origin == self.origin) {
                return Ok(true);
            }
            if !contested || self.clock.now() - started > self.settings.wait {
                return Ok(false);
            }
            tokio::time::sleep(self.settings.poll).await;
        }
    }

    /// Stores refreshed tokens, retrying a store that fails (even once the lease is lost:
    /// unless another refresh stored newer tokens first, ours are the chain's next).
    async fn keep(&self, version: u64, tokens: &Tokens) {
        let mut delay = std::time::Duration::from_millis(100);
        for attempt in 1..=6 {
            let result = match self.seal(tokens).await {
                Ok(sealed) => self
                    .vault
                    .store(self.connection.id, version, &sealed, &self.origin)
                    .await
                    .map_err(unavailable),
                Err(e) => Err(e),
            };
            match result {
                Ok(true) => return,
                Ok(false) => {
                    tracing::warn!(connection_id = %self.connection.id, "another refresh stored newer tokens first; ours are not kept");
                    return;
                }
                Err(e) => {
                    tracing::warn!(connection_id = %self.connection.id, attempt, error = %e, "storing refreshed tokens failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
        tracing::error!(connection_id = %self.connection.id, "refreshed tokens could not be stored; if the platform retired the old refresh token the connection will need connecting again");
    }
}

#[cfg(test)]
#[path = "tokens_tests.rs"]
mod tests;
