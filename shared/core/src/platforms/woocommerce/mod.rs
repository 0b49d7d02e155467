//! WooCommerce: a store reached through its REST API (`/wp-json/wc/v3`) with a consumer key
//! and secret, sending signed webhooks.
//!
//! - [`webhook`]: signatures (HMAC with the entity-decoded secret), the creation ping, topics.
//! - [`connector`]: orders, customers and products as a source; customers and products as a
//!   target (batch writes, matched by the id map, then by SKU or email).
//! - [`mapping`]: WooCommerce JSON to and from the canonical records.
//! - [`subscriptions`]: the store's webhooks for a connection, through `wc/v3/webhooks`.

pub mod connector;
pub mod mapping;
pub mod subscriptions;
pub mod webhook;

use serde_json::{json, Value};

use super::{
    http::Caller, rules, Capabilities, ConnectorContext, Platform, PlatformModule, PlatformSpec,
    Received, Refusal, Sample, SignOptions, WebhookDelivery,
};
use crate::domain::{Connection, EntityType};
use crate::ports::{Connector, PlatformError};
use crate::records::{CUSTOMER_FIELDS, ORDER_FIELDS_WITH_REFUNDS, PRODUCT_FIELDS};
use std::sync::Arc;

pub struct WooCommerce;

/// The registry's instance.
pub static MODULE: WooCommerce = WooCommerce;

const SPEC: PlatformSpec = PlatformSpec {
    config_required: &["base_url"],
    config_optional: &[],
    secrets_required: &["consumer_key", "consumer_secret"],
    secrets_optional: &["webhook_secret"],
    webhook_secret: "webhook_secret",
};

impl PlatformModule for WooCommerce {
    fn platform(&self) -> Platform {
        Platform::WooCommerce
    }

    fn spec(&self) -> &'static PlatformSpec {
        &SPEC
    }

    fn check_config(&self, key: &str, value: &Value) -> Result<(), &'static str> {
        match key {
            "base_url" => rules::url(value),
            _ => Err("not a WooCommerce setting"),
        }
    }

    fn capabilities(&self, entity: EntityType) -> Capabilities {
        match entity {
            EntityType::Orders => Capabilities {
                read: Some(ORDER_FIELDS_WITH_REFUNDS),
                write: None,
            },
            EntityType::Customers => Capabilities {
                read: Some(CUSTOMER_FIELDS),
                write: Some(CUSTOMER_FIELDS),
            },
            EntityType::Products => Capabilities {
                read: Some(PRODUCT_FIELDS),
                write: Some(PRODUCT_FIELDS),
            },
        }
    }

    fn receive(
        &self,
        connection: &Connection,
        secret: &str,
        d: &WebhookDelivery<'_>,
    ) -> Result<Received, Refusal> {
        match d.header("x-wc-webhook-signature") {
            None if webhook::is_ping(d.body) => return Ok(Received::Ping),
            None => return Err(Refusal::Unauthorized("missing signature")),
            Some(sig) if !webhook::verify(secret, d.body, sig) => {
                return Err(Refusal::Unauthorized("bad signature"))
            }
            Some(_) => {}
        }
        if !d.is_json(&[]) {
            return Err(Refusal::UnsupportedMediaType);
        }
        webhook::parse(connection.id, d.header("x-wc-webhook-topic"), d.body)
            .map(Received::Events)
            .map_err(|e| Refusal::BadPayload(e.0))
    }

    fn sign(&self, secret: &str, body: &[u8], options: &SignOptions) -> Vec<(String, String)> {
        let topic = options.topic.as_deref().unwrap_or("order.updated");
        let (resource, event) = topic.split_once('.').unwrap_or((topic, ""));
        vec![
            ("x-wc-webhook-signature".into(), webhook::sign(secret, body)),
            ("x-wc-webhook-topic".into(), topic.into()),
            ("x-wc-webhook-resource".into(), resource.into()),
            ("x-wc-webhook-event".into(), event.into()),
            (
                "user-agent".into(),
                "WooCommerce/9.4.0 Hookshot (WordPress/6.7)".into(),
            ),
        ]
    }

    fn sample(&self) -> Sample {
        Sample {
            config: json!({"base_url": "https://shop.example.com"}),
            secrets: &[
                ("consumer_key", "ck_sample_0123456789abcdef"),
                ("consumer_secret", "cs_sample_0123456789abcdef"),
                ("webhook_secret", "whsec_Sample&amp;Secret-0123456789"),
            ],
            connection_id: "0b9e1a52-3c4d-4e5f-8a6b-7c8d9e0f1a2b",
        }
    }

    fn connector(&self, ctx: ConnectorContext<'_>) -> Result<Arc<dyn Connector>, PlatformError> {
        let base = ctx
            .connection
            .config_str("base_url")
            .ok_or_else(|| PlatformError::Rejected("the connection has no base_url".into()))?;
        Ok(Arc::new(connector::WooConnector::new(
            Caller::new(ctx.http.clone(), ctx.retry.clone(), "WooCommerce"),
            base,
            ctx.secret("consumer_key")?,
            ctx.secret("consumer_secret")?,
            ctx.clock.clone(),
        )?))
    }
}
