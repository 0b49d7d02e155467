//! Lambda entry point of the webhook intake: clients once per cold start, then
//! [`webhook_intake::handle`] per delivery.

use lambda_http::{run, service_fn, Error};
use std::sync::Arc;
use sync_core::clock::SystemClock;
use sync_core::config::IntakeConfig;
use webhook_intake::{handle, App};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let config = IntakeConfig::from_env()?;
    let sdk = sync_aws::sdk::from_env().await;
    let app = App {
        intake: sync_aws::wiring::intake(&sdk, &config, Arc::new(SystemClock)),
        max_body_bytes: config.max_body_bytes,
    };
    run(service_fn(|req| handle(&app, req))).await
}
