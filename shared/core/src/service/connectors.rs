//! Opening a connection's connector: its secrets opened through the sealer (never logged),
//! its platform's module building the connector over the HTTP client port.

use async_trait::async_trait;
use std::sync::Arc;

use super::open_secrets;
use crate::clock::Clock;
use crate::domain::Connection;
use crate::domain::{Platform, Secrets};
use crate::platforms::http::RetryPolicy;
use crate::platforms::limits::CallLimits;
use crate::platforms::{ConnectorContext, TokenServices};
use crate::ports::{
    CallQuota, Connector, Connectors, HttpClient, PlatformError, SecretSealer, TokenVault,
};
use std::collections::BTreeMap;

/// Connectors for every registered platform.
pub struct PlatformConnectors {
    sealer: Arc<dyn SecretSealer>,
    http: Arc<dyn HttpClient>,
    clock: Arc<dyn Clock>,
    retry: RetryPolicy,
    tokens: Option<Arc<dyn TokenVault>>,
    apps: BTreeMap<Platform, Secrets>,
    limits: Arc<CallLimits>,
}

impl PlatformConnectors {
    pub fn new(
        sealer: Arc<dyn SecretSealer>,
        http: Arc<dyn HttpClient>,
        clock: Arc<dyn Clock>,
        retry: RetryPolicy,
    ) -> Self {
        Self {
            sealer,
            http,
            clock,
            retry,
            tokens: None,
            apps: BTreeMap::new(),
            limits: Arc::new(CallLimits::here()),
        }
    }

    /// With platform limits held with every other process through `quota` (else each
    /// process keeps its own share alone).
    pub fn with_call_quota(mut self, quota: Arc<dyn CallQuota>) -> Self {
        self.limits = Arc::new(CallLimits::shared(quota));
        self
    }

    /// With token storage, for platforms whose refresh tokens rotate.
    pub fn with_tokens(mut self, vault: Arc<dyn TokenVault>) -> Self {
        self.tokens = Some(vault);
        self
    }

    /// With the deployment's own app credentials for `platform`.
    pub fn with_app(mut self, platform: Platform, secrets: Secrets) -> Self {
        if !secrets.is_empty() {
            self.apps.insert(platform, secrets);
        }
        self
    }
}

#[async_trait]
impl Connectors for PlatformConnectors {
    async fn open(&self, connection: &Connection) -> Result<Arc<dyn Connector>, PlatformError> {
        if let Some(reason) = &connection.needs_reauth {
            return Err(PlatformError::Rejected(format!(
                "{}: {reason}",
                crate::service::tokens::NEEDS_REAUTH
            )));
        }
        let secrets = open_secrets(self.sealer.as_ref(), connection)
            .await
            .map_err(|e| PlatformError::Unavailable(e.to_string()))?;
        connection.platform.module().connector(ConnectorContext {
            connection,
            secrets: &secrets,
            http: self.http.clone(),
            clock: self.clock.clone(),
            retry: self.retry.clone(),
            tokens: self.tokens.clone().map(|vault| TokenServices {
                vault,
                sealer: self.sealer.clone(),
            }),
            app: self.apps.get(&connection.platform),
            limits: self.limits.clone(),
        })
    }
}
