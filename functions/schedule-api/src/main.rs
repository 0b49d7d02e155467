//! Lambda entry point: configuration and clients are built once per cold start, then every
//! request goes to [`schedule_api::handle`].

use lambda_http::{run, service_fn, Error};
use schedule_api::{handle, App};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let sdk = sync_aws::sdk::from_env().await;
    let app = App::from_lookup(&sdk, |name| std::env::var(name).ok())?;
    run(service_fn(|req| handle(&app, req))).await
}
