//! Lambda entry point of the sync worker: configuration, clients and the HTTP client once
//! per cold start, then [`sync_worker::handle`] per batch.

use lambda_runtime::{run, service_fn, Error};
use std::sync::Arc;
use sync_worker::{handle, App};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let sdk = sync_aws::sdk::from_env().await;
    let http = Arc::new(sync_http::ReqwestClient::new()?);
    let app = App::from_lookup(&sdk, |name| std::env::var(name).ok(), http)?;
    run(service_fn(|event| handle(&app, event))).await
}
