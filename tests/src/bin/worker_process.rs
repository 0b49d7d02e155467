//! The sync worker's own handler in a process of its own, fed by the sync queue as its
//! event source mapping feeds it in Lambda, so that a test can kill it with `SIGKILL` at any
//! point of a run. It is configured as the function is, by its environment variables
//! (`TABLE_NAME`, `KMS_KEY_ID`, `SYNC_QUEUE_URL`, `LEASE_SECONDS`, ...), plus
//! `AWS_ENDPOINT_URL` (emulated AWS), `SYNC_QUEUE_ARN` and `VISIBILITY_SECONDS` (how soon a
//! batch the process was killed in is handed over again).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use infra::event_source::{Mapping, SqsEventSource};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let var = |name: &str| std::env::var(name).with_context(|| format!("{name} is not set"));
    let sdk = sync_aws::sdk::local(&var("AWS_ENDPOINT_URL")?).await;
    let http = Arc::new(sync_http::ReqwestClient::new().map_err(anyhow::Error::msg)?);
    let app = sync_worker::App::from_lookup(&sdk, |name| std::env::var(name).ok(), http)?;
    let visibility: u64 = var("VISIBILITY_SECONDS")?.parse()?;
    let source = SqsEventSource::new(
        &sdk,
        Mapping {
            queue_url: var("SYNC_QUEUE_URL")?,
            queue_arn: var("SYNC_QUEUE_ARN")?,
            batch_size: sync_worker::BATCH_SIZE,
            window: Duration::ZERO,
            timeout: sync_worker::TIMEOUT,
            visibility_timeout: Duration::from_secs(visibility),
        },
    );
    source
        .run(
            |event| sync_worker::handle(&app, event),
            Duration::from_millis(100),
        )
        .await;
    Ok(())
}
