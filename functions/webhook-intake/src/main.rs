//! Lambda entry point of the webhook intake: clients once per cold start, then
//! [`webhook_intake::handle`] per delivery.

use lambda_http::{run, service_fn, Error};
use webhook_intake::{handle, App};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let sdk = sync_aws::sdk::from_env().await;
    let app = App::from_lookup(&sdk, |name| std::env::var(name).ok())?;
    run(service_fn(|req| handle(&app, req))).await
}
