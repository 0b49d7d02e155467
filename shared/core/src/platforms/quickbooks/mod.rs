//! QuickBooks Online: a company (realm) reached through Intuit's accounting API with OAuth 2
//! tokens, sending webhooks signed with the app's verifier token.
//!
//! - [`webhook`]: the signature, and both payload formats (classic and CloudEvents).
//! - [`oauth`]: Intuit's OAuth 2.0 service (authorize URL, code exchange, refresh).
//! - [`connector`]: calling the accounting API; [`source`] and [`target`]: reading and
//!   writing ([`held`]: what QuickBooks holds, as the target reads it); [`mapping`]: its
//!   entities to and from the canonical records; [`settlements`]: the refund documents and
//!   payments that follow an order's document.
//!
//! A connection is a company (`realm_id`) reached with a refresh token, through either
//! the connection's own Intuit app (`client_id`/`client_secret` secrets) or the deployment's
//! app (configured on the functions). Config also says how the books are kept:
//! `income_account` (the account new items are booked to), `deposit_account` (where sales
//! receipts are deposited; QuickBooks' default otherwise), `orders_as` (`by_payment`: paid
//! orders as sales receipts, others as invoices; or always `sales_receipt` or `invoice`),
//! `tax` (`order_total`: the order's tax as the document's total tax; `company`: left to
//! QuickBooks' own tax settings), and `api_url`/`token_url` to reach another host (a sandbox
//! proxy, the local simulator). A document's `DocNumber` is the order's number after the
//! flow's `doc_number_prefix`, so several stores can keep one set of books.

pub mod connector;
mod held;
pub mod mapping;
pub mod oauth;
mod settlements;
mod source;
mod target;
pub mod webhook;

use serde_json::{json, Value};

use super::{
    Capabilities, ConnectorContext, Parsed, Platform, PlatformModule, PlatformSpec, Received,
    Refusal, Sample, SignOptions, WebhookDelivery,
};
use crate::domain::{Connection, EntityType, Secret};
use crate::platforms::http::Caller;
use crate::ports::{Connector, PlatformError};
use crate::records::{CUSTOMER_FIELDS, ORDER_FIELDS_WITH_REFUNDS};
use crate::service::tokens::{KeeperSettings, TokenKeeper};
use connector::{Books, OrdersAs, QboConnector, TaxRule, LIMITS};
use mapping::Document;
use std::sync::Arc;

/// The product fields QuickBooks items carry.
const ITEM_FIELDS: &[&str] = &["sku", "name", "description", "price", "status"];
/// The customer fields QuickBooks carries back: one name, one phone and one company per
/// customer, so a shipping address (its own name and phone) does not come back whole.
const CUSTOMER_READ_FIELDS: &[&str] = &["email", "first_name", "last_name", "billing"];
/// The order fields QuickBooks documents carry back.
const DOCUMENT_FIELDS: &[&str] = &[
    "number",
    "status",
    "customer_email",
    "billing",
    "shipping",
    "lines",
    "shipping_lines",
    "fee_lines",
    "discount_total",
    "total_tax",
    "total",
    "placed_at",
];

pub struct QuickBooks;

/// The registry's instance.
pub static MODULE: QuickBooks = QuickBooks;

const SPEC: PlatformSpec = PlatformSpec {
    config_required: &["realm_id"],
    config_optional: &[
        "app",
        "environment",
        "api_url",
        "token_url",
        "income_account",
        "deposit_account",
        "orders_as",
        "tax",
        "doc_number_prefix",
    ],
    secrets_required: &["refresh_token"],
    secrets_optional: &[
        "client_id",
        "client_secret",
        "access_token",
        "webhook_verifier_token",
    ],
    webhook_secret: "webhook_verifier_token",
};

/// Checks a delivery's signature with the verifier token (over the raw body, in constant
/// time, before anything is parsed), then its media type.
fn authenticate(secret: &str, d: &WebhookDelivery<'_>) -> Result<(), Refusal> {
    let sig = d
        .header("intuit-signature")
        .ok_or(Refusal::Unauthorized("missing signature"))?;
    if !webhook::verify(secret, d.body, sig) {
        return Err(Refusal::Unauthorized("bad signature"));
    }
    if !d.is_json(&["application/cloudevents+json"]) {
        return Err(Refusal::UnsupportedMediaType);
    }
    Ok(())
}

/// How the connection's books are kept, from its config.
fn books(connection: &Connection) -> Books {
    let config = |k: &str| connection.config_str(k).map(str::to_string);
    Books {
        income_account: config("income_account"),
        deposit_account: config("deposit_account"),
        orders_as: match connection.config_str("orders_as") {
            Some("sales_receipt") => OrdersAs::Always(Document::SalesReceipt),
            Some("invoice") => OrdersAs::Always(Document::Invoice),
            _ => OrdersAs::ByPayment,
        },
        tax: match connection.config_str("tax") {
            Some("company") => TaxRule::Company,
            _ => TaxRule::OrderTotal,
        },
        doc_number_prefix: config("doc_number_prefix").unwrap_or_default(),
    }
}

/// Whether the connection was made by the deployment app's connect flow.
pub fn is_app_connection(connection: &Connection) -> bool {
    connection.config_str("app") == Some("deployment")
}

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
            "api_url" | "token_url" => super::rules::url(value),
            "app" => Err(
                "set by connecting a company through the deployment's Intuit app, never by hand",
            ),
            "income_account" | "deposit_account" => text
                .filter(|r| !r.is_empty() && r.len() <= 20 && r.bytes().all(|b| b.is_ascii_digit()))
                .map(|_| ())
                .ok_or("an account's numeric id"),
            "orders_as" => matches!(text, Some("by_payment" | "sales_receipt" | "invoice"))
                .then_some(())
                .ok_or("by_payment, sales_receipt or invoice"),
            "tax" => matches!(text, Some("order_total" | "company"))
                .then_some(())
                .ok_or("order_total or company"),
            // Kept as it is for flows made before flows had a prefix of their own: changing
            // it would renumber their documents.
            "doc_number_prefix" => Err(
                "set on each flow now (doc_number_prefix of POST /api/flows); the company's old setting is kept as it is",
            ),
            _ => Err("not a QuickBooks setting"),
        }
    }

    fn numbers_orders(&self) -> bool {
        true
    }

    /// Documents come back numbered with the flow's prefix, with QuickBooks' own statuses
    /// and its item ids on their lines; customers without their shipping address.
    fn reads_back_as_written(&self) -> bool {
        false
    }

    fn capabilities(&self, entity: EntityType) -> Capabilities {
        match entity {
            EntityType::Customers => Capabilities {
                read: Some(CUSTOMER_READ_FIELDS),
                write: Some(CUSTOMER_FIELDS),
            },
            EntityType::Products => Capabilities {
                read: Some(ITEM_FIELDS),
                write: Some(ITEM_FIELDS),
            },
            EntityType::Orders => Capabilities {
                read: Some(DOCUMENT_FIELDS),
                write: Some(ORDER_FIELDS_WITH_REFUNDS),
            },
        }
    }

    fn receive(
        &self,
        connection: &Connection,
        secret: &str,
        d: &WebhookDelivery<'_>,
    ) -> Result<Received, Refusal> {
        authenticate(secret, d)?;
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

    fn route(&self, connection: &Connection) -> Option<String> {
        // Made through the deployment's app, by its connect flow (so the company is the one
        // Intuit named): Intuit sends its company's webhooks to the app's one URL.
        let own_app = connection.secret_hints.contains_key("client_id");
        realm_id(connection)
            .filter(|_| !own_app && is_app_connection(connection))
            .map(|realm| format!("quickbooks#{realm}"))
    }

    fn check_change(&self, connection: &Connection, key: &str) -> Result<(), &'static str> {
        if key == "realm_id" && is_app_connection(connection) {
            return Err("the company of a connection made through the deployment's Intuit app changes only by connecting again");
        }
        Ok(())
    }

    fn receive_app(
        &self,
        secret: &str,
        d: &WebhookDelivery<'_>,
    ) -> Result<Vec<(String, Parsed)>, Refusal> {
        authenticate(secret, d)?;
        // As on a connection's own URL, a signed body that does not read is acknowledged.
        let realms = webhook::realms(d.body).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "unreadable QuickBooks payload acknowledged");
            Vec::new()
        });
        Ok(realms
            .into_iter()
            .filter_map(|realm| {
                let mut parsed = webhook::parse(&realm, d.body).ok()?;
                // The other companies' events are routed on their own.
                parsed
                    .ignored
                    .retain(|r| !r.contains("not this connection's"));
                Some((format!("quickbooks#{realm}"), parsed))
            })
            .collect())
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

    fn connector(&self, ctx: ConnectorContext<'_>) -> Result<Arc<dyn Connector>, PlatformError> {
        let connection = ctx.connection;
        let realm = realm_id(connection)
            .ok_or_else(|| PlatformError::Rejected("the connection has no realm_id".into()))?;
        let tokens = ctx.tokens.clone().ok_or_else(|| {
            PlatformError::Rejected("this function keeps no QuickBooks tokens".into())
        })?;
        // A connection with its own Intuit app may name other hosts; one made through the
        // deployment's app never does: its hosts are the deployment's, so the app's secret
        // goes nowhere a tenant chose.
        let (app, hosts) = if ctx.secrets.contains_key("client_id") {
            (
                oauth::App {
                    client_id: ctx.secret("client_id")?.to_string(),
                    client_secret: ctx.secret("client_secret")?.to_string(),
                    token_url: connection
                        .config_str("token_url")
                        .unwrap_or(oauth::TOKEN_URL)
                        .to_string(),
                },
                connection.config_str("api_url").map(str::to_string),
            )
        } else {
            let deployment = ctx.app.ok_or_else(|| {
                PlatformError::Rejected(
                    "the connection has no client_id and the deployment has no Intuit app".into(),
                )
            })?;
            let value = |k: &str| deployment.get(k).map(|s| s.expose().to_string());
            (
                oauth::App {
                    client_id: ctx.app_secret("client_id")?.to_string(),
                    client_secret: ctx.app_secret("client_secret")?.to_string(),
                    token_url: value("token_url").unwrap_or_else(|| oauth::TOKEN_URL.to_string()),
                },
                value("api_url"),
            )
        };
        let api = hosts.unwrap_or_else(|| {
            match connection.config_str("environment") {
                Some("sandbox") => "https://sandbox-quickbooks.api.intuit.com",
                _ => "https://quickbooks.api.intuit.com",
            }
            .to_string()
        });
        let endpoint = oauth::TokenEndpoint::new(
            Caller::new(ctx.http.clone(), ctx.retry.clone(), "Intuit OAuth"),
            app,
        );
        let keeper = TokenKeeper::new(
            tokens.vault,
            tokens.sealer,
            ctx.clock.clone(),
            Arc::new(endpoint),
            connection,
            Secret::new(ctx.secret("refresh_token")?),
            KeeperSettings::default(),
        );
        let mut policy = ctx.retry.clone();
        // Intuit: "wait 60 seconds before retrying" a 429.
        policy
            .throttle_wait
            .get_or_insert(std::time::Duration::from_secs(60));
        Ok(Arc::new(QboConnector::new(
            Caller::new(ctx.http.clone(), policy, "QuickBooks"),
            &api,
            realm,
            keeper,
            ctx.limits
                .limiter(&format!("quickbooks/{realm}"), LIMITS, ctx.clock.clone()),
            books(connection),
            ctx.clock.clone(),
        )))
    }
}
