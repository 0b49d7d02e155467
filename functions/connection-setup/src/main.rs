//! Lambda entry point of connection setup: configuration, clients and the platform HTTP
//! client once per cold start, then [`connection_setup::handle`] per request.

use lambda_http::{run, service_fn, Error};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let sdk = sync_aws::sdk::from_env().await;
    let http = Arc::new(sync_http::ReqwestClient::new()?);
    let app = connection_setup::App::from_lookup(&sdk, |name| std::env::var(name).ok(), http)?;
    run(service_fn(|req| connection_setup::handle(&app, req))).await
}
