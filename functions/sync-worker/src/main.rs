//! Lambda entry point of the sync worker: configuration, clients and the HTTP client once
//! per cold start, then [`sync_worker::handle`] per batch.

use lambda_runtime::{run, service_fn, Error};
use std::sync::Arc;
use sync_core::clock::SystemClock;
use sync_core::config::WorkerConfig;
use sync_worker::{handle, App};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = WorkerConfig::from_env()?;
    let sdk = sync_aws::sdk::from_env().await;
    let http = Arc::new(sync_http::ReqwestClient::new()?);
    let app = App {
        worker: sync_aws::wiring::worker(&sdk, &config, http, Arc::new(SystemClock)),
    };
    run(service_fn(|event| handle(&app, event))).await
}
