//! Samples shared by the tests, the benches and `syncctl`: one sample connection per
//! platform (from its module), the signed sample deliveries in `events/`, and requests built
//! from them. One place, so a platform's sample secrets and signatures cannot drift apart.

use crate::domain::{NewConnection, Platform, Secret, TenantId};

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
