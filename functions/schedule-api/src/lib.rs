//! The API Lambda: schedules (CRUD and preview) and connections (CRUD and their webhook
//! event log), behind an API Gateway HTTP API with a JWT authorizer.
//!
//! ## Layout
//! - [`handle`]: the entry point Lambda (and the local gateway) calls for every request.
//! - `routes`: routing and one handler per route.
//! - `view`: the JSON shapes returned.
//! - `sync_api` (shared with the other functions behind the HTTP API): the tenant from the
//!   authorizer's claims, checked JSON bodies, the one error type.
//!
//! Every failure is answered as JSON; the handler itself never fails, so Lambda never
//! retries or reports a request as an invocation error.

mod routes;
mod view;

use sync_api::{error, request};

use lambda_http::{Body, Error, Request, Response};
use std::sync::Arc;

use sync_aws::{wiring::services, SdkConfig};
use sync_core::clock::SystemClock;
use sync_core::config::{ApiSettings, AwsResources, ConfigError};
use sync_core::service::Services;
use tracing::Instrument;

pub use sync_api::ApiError;

/// Everything a request needs, built once per cold start.
#[derive(Clone)]
pub struct App {
    pub services: Services,
    pub settings: ApiSettings,
}

impl App {
    pub fn new(mut services: Services, settings: ApiSettings) -> Self {
        services.alerts = services
            .alerts
            .allowing_internal_urls(settings.alert_local_urls);
        Self { services, settings }
    }

    /// The production wiring: DynamoDB, EventBridge Scheduler and the system clock, from an
    /// SDK configuration and the resource names.
    pub fn with_aws(sdk: &SdkConfig, resources: &AwsResources, settings: ApiSettings) -> Self {
        Self::new(services(sdk, resources, Arc::new(SystemClock)), settings)
    }

    /// The function's wiring from its environment (`get` reads one variable): what its
    /// `main` builds in Lambda, and what the local stack builds on loopback.
    pub fn from_lookup(
        sdk: &SdkConfig,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let resources = AwsResources::from_lookup(&get)?;
        Ok(Self::with_aws(
            sdk,
            &resources,
            ApiSettings::from_lookup(&get)?,
        ))
    }
}

/// Answers one request. Never returns `Err`: every failure becomes a JSON error response.
/// Every line logged while answering carries the request's id and its tenant.
pub async fn handle(app: &App, req: Request) -> Result<Response<Body>, Error> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let span = request::span(&req, &app.settings.tenant_claim);
    async {
        let response = match routes::dispatch(app, &req).await {
            Ok(response) => response,
            Err(e) => e.into_response(),
        };
        tracing::info!(%method, path = %sync_core::logtext::clip(&path), status = response.status().as_u16(), "request");
        Ok(response)
    }
    .instrument(span)
    .await
}

#[cfg(test)]
mod tests;
