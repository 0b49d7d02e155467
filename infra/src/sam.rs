//! What `sam local invoke` and `sam local start-api` need from the local stack
//! (`syncctl local --sam-env-file`): the connections the `events/` samples name, created
//! under their ids, and SAM's `--env-vars` file, which points every function in the
//! template at the stack's emulated AWS and simulators.
//!
//! The samples' world, beside the demo tenant's:
//! - tenant `acme` (the signed webhook samples and `sync-worker-jobs.json`): the sample
//!   WooCommerce connection on the demo store, the sample Supabase connection on the demo
//!   project, a flow of products between them, and the sample QuickBooks connection (its own
//!   app, as the sample says);
//! - tenant `tenant-demo` (the API samples' JWT claims): the WooCommerce connection
//!   `schedules-create.json` schedules and the one `connections-webhooks-*.json` registers
//!   webhooks for, both on the demo store.

use anyhow::{Context, Result};
use serde_json::{json, Map, Value};
use std::path::Path;
use std::sync::Arc;

use crate::local::LocalStack;
use sync_core::clock::SystemClock;
use sync_core::domain::{
    ConflictPolicy, ConnectionId, EntityType, NewConnection, NewFlow, Platform, TenantId,
};
use sync_core::fixtures;

/// The tenant the API samples' claims name.
pub const API_SAMPLES_TENANT: &str = "tenant-demo";
/// The WooCommerce connection `events/schedules-create.json` schedules.
pub const SCHEDULED_CONNECTION: &str = "8d2f5b7a-1c3e-4f60-9a8b-2e4d6f8a0b1c";
/// The connection `events/connections-webhooks-*.json` registers and removes webhooks for.
pub const WEBHOOKS_CONNECTION: &str = "3f6c2a1e-9b7d-4c55-8e21-0a4b6d9c7f10";

/// Seeds the samples' connections, writes SAM's `--env-vars` file to `path` and the same
/// variables as `KEY=VALUE` lines beside it, with the extension `.env`, with a region and
/// credentials (for `cargo lambda watch --env-file`).
pub async fn prepare(stack: &LocalStack, path: &Path) -> Result<()> {
    seed_samples(stack).await?;
    let vars = env_vars(stack);
    let text = serde_json::to_string_pretty(&vars)?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    // `cargo lambda watch` runs the binaries on this machine, without the region and
    // credentials SAM and Lambda give them (moto takes any).
    let local_aws = [
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
    ];
    let dotenv: String = vars["Parameters"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or_default()))
        .chain(local_aws)
        .map(|(k, v)| format!("{k}={v}\n"))
        .collect();
    let path = path.with_extension("env");
    std::fs::write(&path, dotenv).with_context(|| format!("writing {}", path.display()))
}

/// SAM's `--env-vars` file: one `Parameters` map, which SAM applies to every function for
/// the variables the template declares for it (the others it ignores).
pub fn env_vars(stack: &LocalStack) -> Value {
    let mut vars = Map::new();
    vars.insert(
        "AWS_ENDPOINT_URL".into(),
        Value::from(stack.aws_endpoint.as_str()),
    );
    // The resources, then Intuit's app as the stack's own functions have it (the
    // simulator's), and its redirect back to this stack's callback.
    for (name, value) in stack.environment() {
        vars.insert(name, Value::from(value));
    }
    vars.entry("QBO_REDIRECT_URI")
        .or_insert_with(|| Value::from(format!("{}/oauth/quickbooks/callback", stack.api_url)));
    json!({ "Parameters": vars })
}

async fn seed_samples(stack: &LocalStack) -> Result<()> {
    let demo = stack
        .demo
        .as_ref()
        .context("the samples' connections live on the demo platforms: run without --no-demo")?;
    let sdk = sync_aws::sdk::local(&stack.aws_endpoint).await;
    let services = sync_aws::wiring::services(&sdk, &stack.resources, Arc::new(SystemClock));
    let create = |tenant: TenantId, id: ConnectionId, new: NewConnection| {
        let services = &services;
        async move {
            services
                .connections
                .create_with_id(&tenant, id, new)
                .await
                .map_err(|e| anyhow::anyhow!("sample connection {id}: {e}"))
        }
    };

    let acme = fixtures::tenant();
    let store = create(
        acme.clone(),
        sample_id(Platform::WooCommerce)?,
        on_demo_store(demo),
    )
    .await?;
    let mut project = fixtures::new_connection(Platform::Supabase);
    project
        .config
        .insert("project_url".into(), json!(demo.project_url));
    put_secret(&mut project, "service_key", &demo.service_key);
    let project = create(acme.clone(), sample_id(Platform::Supabase)?, project).await?;
    create(
        acme.clone(),
        sample_id(Platform::QuickBooks)?,
        fixtures::new_connection(Platform::QuickBooks),
    )
    .await?;
    services
        .flows
        .create(
            &acme,
            NewFlow {
                source_connection_id: store.id,
                target_connection_id: project.id,
                entities: vec![EntityType::Products],
                conflict_policy: ConflictPolicy::SourceWins,
                doc_number_prefix: None,
                enabled: true,
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("sample flow: {e}"))?;

    let api_tenant = TenantId::parse(API_SAMPLES_TENANT).map_err(anyhow::Error::msg)?;
    for (id, name) in [
        (SCHEDULED_CONNECTION, "Scheduled store"),
        (WEBHOOKS_CONNECTION, "Store with webhooks"),
    ] {
        let mut new = on_demo_store(demo);
        new.display_name = name.into();
        let id = id.parse::<ConnectionId>().map_err(anyhow::Error::msg)?;
        create(api_tenant.clone(), id, new).await?;
    }
    Ok(())
}

/// The id the samples address `platform`'s sample connection by.
fn sample_id(platform: Platform) -> Result<ConnectionId> {
    platform
        .module()
        .sample()
        .connection_id
        .parse::<ConnectionId>()
        .map_err(anyhow::Error::msg)
}

/// The sample WooCommerce connection, on the demo store (its URL and REST API keys; the
/// sample's webhook secret, which the signed samples need).
fn on_demo_store(demo: &crate::demo::Demo) -> NewConnection {
    let mut new = fixtures::new_connection(Platform::WooCommerce);
    new.config.insert("base_url".into(), json!(demo.store_url));
    put_secret(&mut new, "consumer_key", &demo.consumer_key);
    put_secret(&mut new, "consumer_secret", &demo.consumer_secret);
    new
}

fn put_secret(new: &mut NewConnection, name: &str, value: &str) {
    new.secrets
        .insert(name.into(), sync_core::domain::Secret::new(value));
}
