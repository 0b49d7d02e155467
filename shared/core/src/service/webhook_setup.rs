//! Registering a connection's webhooks at its platform, for platforms whose API manages
//! them (WooCommerce): `POST /api/connections/{id}/webhooks` and its `DELETE`.
//!
//! The secret is generated here (unless the connection has one already, which is reused so
//! that registering twice changes nothing), sealed and stored on the connection *before*
//! the platform hears of it: a platform that signs with a secret we did not keep would have
//! every delivery refused, while a stored secret the platform does not use yet costs
//! nothing. Webhooks are switched on for the connection at the same time.

use chrono::SubsecRound;
use std::sync::Arc;

use super::connections::{hints, open_secrets, seal_secrets};
use super::schedules::invalid;
use super::ServiceError;
use crate::clock::Clock;
use crate::domain::{Connection, ConnectionId, Secret, TenantId, Unusable};
use crate::ports::{
    ConnectionStore, Connectors, PlatformError, SecretSealer, StoreError, Subscription,
};

/// The length of a generated webhook secret (random bytes, hex-encoded twice as long).
const SECRET_BYTES: usize = 24;

/// What a registration did.
#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    pub connection: Connection,
    pub webhook_url: String,
    pub subscriptions: Vec<Subscription>,
}

#[derive(Clone)]
pub struct WebhookSetup {
    connections: Arc<dyn ConnectionStore>,
    sealer: Arc<dyn SecretSealer>,
    connectors: Arc<dyn Connectors>,
    clock: Arc<dyn Clock>,
}

impl From<PlatformError> for ServiceError {
    fn from(e: PlatformError) -> Self {
        match e {
            PlatformError::Rejected(why) => ServiceError::Platform(why),
            PlatformError::Unavailable(why) | PlatformError::OutOfTime(why) => {
                ServiceError::Platform(format!(
                    "the platform could not be reached or failed; nothing was changed there: {why}"
                ))
            }
        }
    }
}

impl WebhookSetup {
    pub fn new(
        connections: Arc<dyn ConnectionStore>,
        sealer: Arc<dyn SecretSealer>,
        connectors: Arc<dyn Connectors>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            connections,
            sealer,
            connectors,
            clock,
        }
    }

    async fn connection(
        &self,
        tenant: &TenantId,
        id: ConnectionId,
    ) -> Result<Connection, ServiceError> {
        match Connection::of_tenant(self.connections.get(id).await?, tenant) {
            Ok(c) => Ok(c),
            Err(Unusable::Deleting(_)) => Err(ServiceError::Conflict(
                "this connection is being deleted; delete it again to finish".into(),
            )),
            Err(Unusable::Missing) => Err(ServiceError::NotFound("connection")),
        }
    }

    fn unsupported(connection: &Connection) -> ServiceError {
        invalid(
            "platform",
            format!(
                "{} webhooks are set up in {} itself, not through its API; point them at the connection's webhook_url",
                connection.platform, connection.platform
            ),
        )
    }

    /// Makes the platform deliver the connection's webhooks to its URL below `base_url`.
    pub async fn register(
        &self,
        tenant: &TenantId,
        id: ConnectionId,
        base_url: &str,
    ) -> Result<Registration, ServiceError> {
        let current = self.connection(tenant, id).await?;
        let connector = self.connectors.open(&current).await?;
        let Some(subscriptions) = connector.webhooks() else {
            return Err(Self::unsupported(&current));
        };
        let name = current.platform.spec().webhook_secret;
        let mut secrets = open_secrets(self.sealer.as_ref(), &current).await?;
        let secret = match secrets.get(name) {
            Some(s) => s.clone(),
            _ => {
                let fresh = crate::crypto::random_bytes(SECRET_BYTES)
                    .map_err(|e| ServiceError::Unavailable(e.to_string()))?
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>();
                Secret::new(fresh)
            }
        };
        let changed = secrets.get(name) != Some(&secret) || !current.webhooks_enabled;
        let connection = if changed {
            secrets.insert(name.to_string(), secret.clone());
            let mut next = current.clone();
            next.sealed_secrets = seal_secrets(self.sealer.as_ref(), tenant, id, &secrets).await?;
            next.secret_hints = hints(&secrets);
            next.webhooks_enabled = true;
            next.updated_at = self.clock.now().trunc_subsecs(3);
            next.version = current.version + 1;
            match self.connections.replace(&next, current.version).await {
                Err(StoreError::Conflict) => {
                    return Err(ServiceError::Conflict(
                        "the connection changed meanwhile; try again".into(),
                    ))
                }
                other => other?,
            }
            next
        } else {
            current
        };
        let url = connection.webhook_url(base_url);
        let done = subscriptions.subscribe(&url, secret.expose()).await?;
        tracing::info!(connection_id = %id, subscriptions = done.len(), "webhooks registered");
        Ok(Registration {
            connection,
            webhook_url: url,
            subscriptions: done,
        })
    }

    /// Removes the platform's webhooks that deliver to the connection's URL.
    pub async fn unregister(
        &self,
        tenant: &TenantId,
        id: ConnectionId,
        base_url: &str,
    ) -> Result<Registration, ServiceError> {
        let connection = self.connection(tenant, id).await?;
        let connector = self.connectors.open(&connection).await?;
        let Some(subscriptions) = connector.webhooks() else {
            return Err(Self::unsupported(&connection));
        };
        let url = connection.webhook_url(base_url);
        let done = subscriptions.unsubscribe(&url).await?;
        tracing::info!(connection_id = %id, removed = done.len(), "webhooks removed");
        Ok(Registration {
            connection,
            webhook_url: url,
            subscriptions: done,
        })
    }
}

#[cfg(test)]
#[path = "webhook_setup_tests.rs"]
mod tests;
