//! Lambda entry point of the coalescer.

use lambda_runtime::{run, service_fn, Error};
use webhook_coalescer::handle;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let sdk = sync_aws::sdk::from_env().await;
    let app = webhook_coalescer::from_lookup(&sdk, |name| std::env::var(name).ok())?;
    run(service_fn(|event| handle(&app, event))).await
}
