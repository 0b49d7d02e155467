//! QuickBooks Online: a company (realm) reached through Intuit's accounting API with OAuth 2
//! tokens, sending webhooks signed with the app's verifier token.
//!
//! - [`webhook`]: the signature, and both payload formats (classic and CloudEvents).
//!
//! QuickBooks cannot be a flow's source or target yet: its connector comes with OAuth.

pub mod webhook;

use serde_json::{json, Value};

use super::{
    Capabilities, ConnectorContext, Parsed, Platform, PlatformModule, PlatformSpec, Received,
    Refusal, Sample, SignOptions, WebhookDelivery,
};
use crate::ports::{Connector, PlatformError};
use std::sync::Arc;
use crate::domain::{Connection, EntityType};

pub struct QuickBooks;

/// The registry's instance.
pub static MODULE: QuickBooks = QuickBooks;

const SPEC: PlatformSpec = PlatformSpec {
    config_required: &["realm_id"],
    config_optional: &["environment"],
    secrets_required: &["client_id", "client_secret", "refresh_token"],
    secrets_optional: &["access_token", "webhook_verifier_token"],
    webhook_secret: "webhook_verifier_token",
};

/// The company (realm) a connection is for.
pub fn realm_id(connection: &Connection) -> Option<&str> {
    connection.config_str("realm_id")
}

impl PlatformModule for QuickBooks {
    fn platform(&self) -> Platform {
        Platform::QuickBooks
    }

    fn spec(&self) -> &'static PlatformSpec {
        &SPEC
    }

    fn check_config(&self, key: &str, value: &Value) -> Result<(), &'static str> {
        let text = value.as_str();
        match key {
            "realm_id" => text
                .filter(|r| !r.is_empty() && r.len() <= 32 && r.bytes().all(|b| b.is_ascii_digit()))
                .map(|_| ())
                .ok_or("the company's numeric realm id"),
            "environment" => matches!(text, Some("sandbox" | "production"))
                .then_some(())
                .ok_or("sandbox or production"),
            _ => Err("not a QuickBooks setting"),
        }
    }

    fn capabilities(&self, _entity: EntityType) -> Capabilities {
        Capabilities::default()
    }

    fn receive(
        &self,
        connection: &Connection,
        secret: &str,
        d: &WebhookDelivery<'_>,
    ) -> Result<Received, Refusal> {
        let sig = d
            .header("intuit-signature")
            .ok_or(Refusal::Unauthorized("missing signature"))?;
        if !webhook::verify(secret, d.body, sig) {
            return Err(Refusal::Unauthorized("bad signature"));
        }
        if !d.is_json(&["application/cloudevents+json"]) {
            return Err(Refusal::UnsupportedMediaType);
        }
        let realm = realm_id(connection).unwrap_or_default();
        // Intuit asks receivers to acknowledge what they cannot parse (a non-200 makes it
        // retry the whole batch), so a signed but unreadable body is logged and answered
        // 200 with nothing queued.
        Ok(Received::Events(webhook::parse(realm, d.body).unwrap_or_else(|e| {
            tracing::warn!(connection_id = %connection.id, error = %e, "unreadable QuickBooks payload acknowledged");
            Parsed {
                events: Vec::new(),
                ignored: vec![format!("unreadable payload: {e}")],
            }
        })))
    }

    fn sign(&self, secret: &str, body: &[u8], _options: &SignOptions) -> Vec<(String, String)> {
        vec![("intuit-signature".into(), webhook::sign(secret, body))]
    }

    fn sample(&self) -> Sample {
        Sample {
            config: json!({"realm_id": "9130350000000001", "environment": "sandbox"}),
            secrets: &[
                ("client_id", "ABsampleclientid0123456789"),
                ("client_secret", "sample-client-secret-0123456789"),
                ("refresh_token", "AB11-sample-refresh-0123456789"),
                ("webhook_verifier_token", "verifier-token-0123456789abcdef"),
            ],
            connection_id: "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f",
        }
    }

    fn connector(&self, _ctx: ConnectorContext<'_>) -> Result<Arc<dyn Connector>, PlatformError> {
        Err(PlatformError::Rejected(
            "QuickBooks cannot be synced yet: its connector comes with OAuth".into(),
        ))
    }
}
