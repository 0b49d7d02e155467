//! Lambda entry point: configuration and clients are built once per cold start, then every
//! request goes to [`schedule_api::handle`].

use lambda_http::{run, service_fn, Error};
use schedule_api::{handle, App};
use sync_core::config::{ApiSettings, AwsResources};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let resources = AwsResources::from_env()?;
    let settings = ApiSettings::from_env()?;
    let sdk = sync_aws::sdk::from_env().await;
    let app = App::with_aws(&sdk, &resources, settings);
    run(service_fn(|req| handle(&app, req))).await
}
