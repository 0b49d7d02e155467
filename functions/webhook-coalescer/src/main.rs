//! Lambda entry point of the coalescer.

use lambda_runtime::{run, service_fn, Error};
use sync_core::config::CoalescerConfig;
use webhook_coalescer::handle;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = CoalescerConfig::from_env()?;
    let sdk = sync_aws::sdk::from_env().await;
    let coalescer = sync_aws::wiring::coalescer(&sdk, &config);
    run(service_fn(|event| handle(&coalescer, event))).await
}
