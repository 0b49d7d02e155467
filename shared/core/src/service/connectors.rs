//! Opening a connection's connector: its secrets opened through the sealer (never logged),
//! its platform's module building the connector over the HTTP client port.

use async_trait::async_trait;
use std::sync::Arc;

use super::open_secrets;
use crate::clock::Clock;
use crate::domain::Connection;
use crate::platforms::http::RetryPolicy;
use crate::platforms::ConnectorContext;
use crate::ports::{Connector, Connectors, HttpClient, PlatformError, SecretSealer};

/// Connectors for every registered platform.
pub struct PlatformConnectors {
    sealer: Arc<dyn SecretSealer>,
    http: Arc<dyn HttpClient>,
    clock: Arc<dyn Clock>,
    retry: RetryPolicy,
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
        }
    }
}

#[async_trait]
impl Connectors for PlatformConnectors {
    async fn open(&self, connection: &Connection) -> Result<Arc<dyn Connector>, PlatformError> {
        let secrets = open_secrets(self.sealer.as_ref(), connection)
            .await
            .map_err(|e| PlatformError::Unavailable(e.to_string()))?;
        connection.platform.module().connector(ConnectorContext {
            connection,
            secrets: &secrets,
            http: self.http.clone(),
            clock: self.clock.clone(),
            retry: self.retry.clone(),
        })
    }
}
