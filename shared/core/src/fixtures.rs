//! Samples shared by the tests, the benches and `syncctl`: one sample connection per
//! platform (from its module), the signed sample deliveries in `events/`, and requests built
//! from them. One place, so a platform's sample secrets and signatures cannot drift apart.

use chrono::{DateTime, Utc};

use crate::domain::{
    ConnectionId, EntityType, NewConnection, Platform, Run, RunCounts, RunId, RunStatus, Secret,
    SyncMode, TenantId, Trigger,
};

/// The repository's `events/` folder (sample API Gateway events and webhook bodies).
pub const EVENTS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events");

/// A file of `events/`, by its path below that folder (e.g. `webhooks/x.body.json`).
pub fn event_file(name: &str) -> Result<Vec<u8>, String> {
    let path = format!("{EVENTS_DIR}/{name}");
    std::fs::read(&path).map_err(|e| format!("{path}: {e}"))
}

/// The sample connection of `platform`, as a create request.
pub fn new_connection(platform: Platform) -> NewConnection {
    let sample = platform.module().sample();
    NewConnection {
        platform,
        display_name: format!("Sample {platform}"),
        config: sample.config.as_object().cloned().unwrap_or_default(),
        secrets: sample
            .secrets
            .iter()
            .map(|(k, v)| (k.to_string(), Secret::new(*v)))
            .collect(),
        webhooks_enabled: None,
    }
}

/// The sample connection of `platform` as the JSON body of `POST /api/connections`.
pub fn connection_body(platform: Platform) -> serde_json::Value {
    let sample = platform.module().sample();
    let secrets: serde_json::Map<String, serde_json::Value> = sample
        .secrets
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
        .collect();
    serde_json::json!({
        "platform": platform.as_str(),
        "display_name": format!("Sample {platform}"),
        "config": sample.config,
        "secrets": secrets,
    })
}

/// The webhook secret of `platform`'s sample connection (what `events/` is signed with).
pub fn webhook_secret(platform: Platform) -> &'static str {
    let name = platform.spec().webhook_secret;
    platform
        .module()
        .sample()
        .secrets
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| *v)
        .unwrap_or_default()
}

/// The tenant samples belong to.
pub fn tenant() -> TenantId {
    TenantId::parse("acme").unwrap_or_else(|_| unreachable!("a valid literal"))
}

/// A finished manual run of `job` on `connection`'s orders, started at `at` (its id is the
/// job's, as the worker makes it).
pub fn run(tenant: &TenantId, connection: ConnectionId, job: &str, at: DateTime<Utc>) -> Run {
    Run {
        id: RunId::for_job(at, job),
        tenant_id: tenant.clone(),
        job_id: job.to_string(),
        trigger: Trigger::Manual,
        schedule_id: None,
        connection_id: connection,
        platform: Platform::WooCommerce,
        entity_type: EntityType::Orders,
        sync_mode: SyncMode::Incremental,
        ids_requested: 0,
        ids: Vec::new(),
        status: RunStatus::Succeeded,
        counts: RunCounts::default(),
        flows: Vec::new(),
        failures: Vec::new(),
        conflicts: Vec::new(),
        message: None,
        cursor_before: None,
        cursor_after: None,
        triggered_at: at,
        started_at: at,
        finished_at: Some(at + chrono::Duration::seconds(1)),
        updated_at: at + chrono::Duration::seconds(1),
        continuations: 0,
        attempts: 1,
        window: None,
        redone_by: None,
        reported: false,
    }
}

/// A manual job for `connection`'s orders, sent at `at`.
pub fn job(
    tenant: &TenantId,
    connection: ConnectionId,
    at: DateTime<Utc>,
) -> crate::domain::SyncJob {
    crate::domain::SyncJob {
        job_id: format!("job-{}", at.timestamp_millis()),
        tenant_id: tenant.clone(),
        connection_id: connection,
        platform: Platform::WooCommerce,
        entity_type: EntityType::Orders,
        sync_mode: SyncMode::Incremental,
        trigger: Trigger::Manual,
        triggered_at: at,
        ids: Vec::new(),
        resume: None,
        attempt: 0,
        stands_for: Vec::new(),
        window: None,
        reported: Some(false),
    }
}
