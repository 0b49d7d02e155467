//! Lambda entry point of the sweeper.

use lambda_runtime::{run, service_fn, Error};
use sweeper::handle;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let sdk = sync_aws::sdk::from_env().await;
    let app = sweeper::from_lookup(&sdk, |name| std::env::var(name).ok())?;
    run(service_fn(|event| handle(&app, event))).await
}
