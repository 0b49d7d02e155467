//! Lambda entry point of connection setup: configuration, clients and the platform HTTP
//! client once per cold start, then [`connection_setup::handle`] per request.

use lambda_http::{run, service_fn, Error};
use std::sync::Arc;
use sync_core::clock::SystemClock;
use sync_core::config::{ApiSettings, SetupConfig};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let config = SetupConfig::from_env()?;
    let sdk = sync_aws::sdk::from_env().await;
    let http = Arc::new(sync_http::ReqwestClient::new()?);
    let app = connection_setup::App {
        setup: sync_aws::wiring::webhook_setup(&sdk, &config, http.clone(), Arc::new(SystemClock)),
        connect: sync_aws::wiring::quickbooks_connect(&sdk, &config, http, Arc::new(SystemClock)),
        settings: ApiSettings::from_env()?,
        time_limit: connection_setup::TIME_LIMIT,
    };
    run(service_fn(|req| connection_setup::handle(&app, req))).await
}
