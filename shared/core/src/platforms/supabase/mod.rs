//! Supabase: a project's database reached through its Data API (PostgREST, `/rest/v1`) with a
//! service key, sending Database Webhooks (unsigned: a shared secret in a header).
//!
//! - [`webhook`]: the shared-secret check and the Database Webhook payload.
//! - [`connector`]: every entity as a source (keyset paging on `updated_at`, id) and as a
//!   target (bulk upserts on the row id, chunked, with uniform keys).
//! - [`mapping`]: rows to and from the canonical records; the tables `infra/supabase.sql`
//!   creates.

pub mod connector;
pub mod mapping;
pub mod webhook;

use serde_json::{json, Value};

use super::{
    http::Caller, rules, Capabilities, ConnectorContext, Platform, PlatformModule, PlatformSpec,
    Received, Refusal, Sample, SignOptions, WebhookDelivery,
};
use crate::domain::{Connection, EntityType};
use crate::ports::{Connector, PlatformError};
use crate::records::{CUSTOMER_FIELDS, ORDER_FIELDS, PRODUCT_FIELDS};
use std::sync::Arc;

pub struct Supabase;

/// The registry's instance.
pub static MODULE: Supabase = Supabase;

const SPEC: PlatformSpec = PlatformSpec {
    config_required: &["project_url"],
    config_optional: &["tables", "id_column", "updated_at_column", "secret_header"],
    secrets_required: &["service_key"],
    secrets_optional: &["webhook_secret"],
    webhook_secret: "webhook_secret",
};

/// The entity a table's rows are, from the connection's `tables` map.
/// A table the map does not name is the entity of its name (`orders`, …) unless the map
/// puts that entity in another table: the inverse of [`entity_table`].
pub fn table_entity(connection: &Connection, table: &str) -> Option<EntityType> {
    let mapped = connection
        .config
        .get("tables")
        .and_then(Value::as_object)
        .and_then(|m| m.get(table))
        .and_then(Value::as_str)
        .and_then(|e| e.parse().ok());
    mapped.or_else(|| {
        let entity: EntityType = table.parse().ok()?;
        (entity_table(connection, entity) == table).then_some(entity)
    })
}

/// The table that holds `entity`: the one the `tables` map names for it, else the table
/// of the same name (`orders`, `customers`, `products`, as `infra/supabase.sql` creates).
pub fn entity_table(connection: &Connection, entity: EntityType) -> String {
    connection
        .config
        .get("tables")
        .and_then(Value::as_object)
        .and_then(|m| {
            m.iter()
                .find(|(_, e)| e.as_str() == Some(entity.as_str()))
                .map(|(t, _)| t.clone())
        })
        .unwrap_or_else(|| entity.as_str().to_string())
}

/// The header that carries the shared secret (default `x-webhook-secret`).
pub fn secret_header(connection: &Connection) -> String {
    connection
        .config_str("secret_header")
        .unwrap_or("x-webhook-secret")
        .to_ascii_lowercase()
}

/// The rows' id column (default `id`).
pub fn id_column(connection: &Connection) -> &str {
    connection.config_str("id_column").unwrap_or("id")
}

/// The rows' modification stamp column (default `updated_at`).
pub fn updated_at_column(connection: &Connection) -> &str {
    connection
        .config_str("updated_at_column")
        .unwrap_or("updated_at")
}

impl PlatformModule for Supabase {
    fn platform(&self) -> Platform {
        Platform::Supabase
    }

    fn spec(&self) -> &'static PlatformSpec {
        &SPEC
    }

    fn check_config(&self, key: &str, value: &Value) -> Result<(), &'static str> {
        match key {
            "project_url" => rules::url(value),
            "id_column" | "updated_at_column" => rules::identifier(value),
            "secret_header" => rules::header_name(value),
            "tables" => value
                .as_object()
                .filter(|m| {
                    !m.is_empty()
                        && m.iter().all(|(t, e)| {
                            rules::is_identifier(t)
                                && e.as_str().is_some_and(|e| e.parse::<EntityType>().is_ok())
                        })
                })
                .map(|_| ())
                .ok_or("an object of table name to orders, customers or products"),
            _ => Err("not a Supabase setting"),
        }
    }

    fn capabilities(&self, entity: EntityType) -> Capabilities {
        let fields = match entity {
            EntityType::Orders => ORDER_FIELDS,
            EntityType::Customers => CUSTOMER_FIELDS,
            EntityType::Products => PRODUCT_FIELDS,
        };
        Capabilities {
            read: Some(fields),
            write: Some(fields),
        }
    }

    fn receive(
        &self,
        connection: &Connection,
        secret: &str,
        d: &WebhookDelivery<'_>,
    ) -> Result<Received, Refusal> {
        let header = secret_header(connection);
        if !webhook::verify(secret, &header, d.header(&header)) {
            return Err(Refusal::Unauthorized("bad or missing shared secret"));
        }
        if !d.is_json(&[]) {
            return Err(Refusal::UnsupportedMediaType);
        }
        webhook::parse(connection, d.body)
            .map(Received::Events)
            .map_err(|e| Refusal::BadPayload(e.0))
    }

    fn sign(&self, secret: &str, _body: &[u8], options: &SignOptions) -> Vec<(String, String)> {
        let header = options
            .header
            .clone()
            .unwrap_or_else(|| "x-webhook-secret".into())
            .to_ascii_lowercase();
        if header == "authorization" {
            vec![(header, format!("Bearer {secret}"))]
        } else {
            vec![(header, secret.to_string())]
        }
    }

    fn sample(&self) -> Sample {
        Sample {
            config: json!({"project_url": "https://abc.supabase.co",
                           "tables": {"shop_customers": "customers", "shop_orders": "orders"}}),
            secrets: &[
                ("service_key", "sb_secret_sample0123456789abcdef"),
                ("webhook_secret", "sb-shared-secret-0123456789abcdef"),
            ],
            connection_id: "2d3e4f5a-6b7c-4d8e-9f0a-1b2c3d4e5f6a",
        }
    }

    fn connector(&self, ctx: ConnectorContext<'_>) -> Result<Arc<dyn Connector>, PlatformError> {
        Ok(Arc::new(connector::SupabaseConnector::new(
            Caller::new(ctx.http.clone(), ctx.retry.clone(), "Supabase"),
            ctx.connection,
            ctx.secret("service_key")?,
            ctx.clock.clone(),
        )?))
    }
}
