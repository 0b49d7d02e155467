//! Everything the service knows about each platform, one module per platform behind one
//! trait, [`PlatformModule`]: what a connection holds and which values are valid, how its
//! webhooks are authenticated and read, which entities it can be the source or target of,
//! its connector (over the [`crate::ports::HttpClient`] port, so no HTTP client is linked
//! here), and a sample connection and signed delivery for tests, benches and `syncctl`.
//!
//! Adding a platform is one module plus one line in the [`registry!`] below.

pub(crate) mod fields;
pub mod http;
pub mod limits;

use serde_json::Value;
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use crate::clock::Clock;
use crate::domain::{Connection, EntityType, Secrets, UnknownValue, WebhookEvent};
use crate::ports::{Connector, HttpClient, PlatformError, SecretSealer, TokenVault};
use std::sync::Arc;

/// The registry: each line names a platform's variant, its name on the wire, and its module.
macro_rules! registry {
    ($($variant:ident => $name:literal, $module:ident;)+) => {
        $(pub mod $module;)+

        /// A platform the service connects to.
        #[derive(
            Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug,
            serde::Serialize, serde::Deserialize,
        )]
        pub enum Platform {
            $(#[serde(rename = $name)] $variant,)+
        }

        impl Platform {
            /// Every platform, in registry order.
            pub const ALL: &'static [Platform] = &[$(Platform::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $(Platform::$variant => $name),+ }
            }

            /// The platform's module: everything the service knows about it.
            pub fn module(self) -> &'static dyn PlatformModule {
                match self { $(Platform::$variant => &$module::MODULE),+ }
            }
        }

        impl FromStr for Platform {
            type Err = UnknownValue;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                match text {
                    $($name => Ok(Platform::$variant),)+
                    _ => Err(UnknownValue { value: text.to_string(), allowed: concat!($($name, " "),+) }),
                }
            }
        }
    };
}

registry! {
    WooCommerce => "woocommerce", woocommerce;
    QuickBooks => "quickbooks", quickbooks;
    Supabase => "supabase", supabase;
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Platform {
    /// What a connection to this platform holds.
    pub fn spec(self) -> &'static PlatformSpec {
        self.module().spec()
    }
}

/// What a platform's connection holds: which config fields and secrets exist, which are
/// required, and which secret authenticates its webhooks.
#[derive(Debug)]
pub struct PlatformSpec {
    pub config_required: &'static [&'static str],
    pub config_optional: &'static [&'static str],
    pub secrets_required: &'static [&'static str],
    pub secrets_optional: &'static [&'static str],
    pub webhook_secret: &'static str,
}

/// One webhook delivery as a platform module reads it.
pub struct WebhookDelivery<'a> {
    /// Header names in lower case.
    pub headers: &'a HashMap<String, String>,
    pub body: &'a [u8],
}

impl WebhookDelivery<'_> {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// Whether the body is sent as `application/json` or one of `also`.
    pub fn is_json(&self, also: &[&str]) -> bool {
        is_json_content_type(self.header("content-type"), also)
    }
}

/// What a verified delivery contained.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub events: Vec<WebhookEvent>,
    /// Why each dropped part was dropped (a topic we do not sync, another realm, …).
    pub ignored: Vec<String>,
}

/// What a platform module made of a delivery it accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A platform's unsigned hello (WooCommerce's creation ping): answer exactly 200.
    Ping,
    Events(Parsed),
}

/// Why a platform module refused a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not authenticated; the reason is only logged.
    Unauthorized(&'static str),
    UnsupportedMediaType,
    /// Authenticated, but not what the platform sends.
    BadPayload(String),
}

/// A body that does not have the shape the platform documents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PayloadError(pub String);

/// Which entities a platform can read (be the source of) and write (be the target of),
/// with the canonical fields each direction carries (see [`crate::records`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Capabilities {
    pub read: Option<&'static [&'static str]>,
    pub write: Option<&'static [&'static str]>,
}

/// A connection as a sample: its config, its secrets (the webhook secret among them) and a
/// delivery signed with that secret.
pub struct Sample {
    pub config: Value,
    pub secrets: &'static [(&'static str, &'static str)],
    /// The connection id the sample deliveries in `events/` are addressed to.
    pub connection_id: &'static str,
}

/// How to sign a delivery the way the platform would (for `syncctl webhook send`).
#[derive(Debug, Clone, Default)]
pub struct SignOptions {
    /// WooCommerce: the topic, e.g. `order.updated`.
    pub topic: Option<String>,
    /// Supabase: the header that carries the shared secret.
    pub header: Option<String>,
}

/// Where OAuth connectors keep their rotating tokens (see [`crate::service::tokens`]).
#[derive(Clone)]
pub struct TokenServices {
    pub vault: Arc<dyn TokenVault>,
    pub sealer: Arc<dyn SecretSealer>,
}

/// What a connector is built from.
pub struct ConnectorContext<'a> {
    pub connection: &'a Connection,
    /// The connection's secrets, opened.
    pub secrets: &'a Secrets,
    pub http: Arc<dyn HttpClient>,
    pub clock: Arc<dyn Clock>,
    pub retry: http::RetryPolicy,
    /// Token storage, for platforms whose tokens rotate (QuickBooks); `None` where the
    /// function has none.
    pub tokens: Option<TokenServices>,
    /// The deployment's own app credentials for the platform (QuickBooks' client id and
    /// secret), for connections made through the deployment's app.
    pub app: Option<&'a Secrets>,
    /// This process's limits of platform accounts (shared with other processes where the
    /// function holds the call quota).
    pub limits: Arc<limits::CallLimits>,
}

impl ConnectorContext<'_> {
    /// A secret the connector cannot work without.
    pub fn secret(&self, name: &str) -> Result<&str, PlatformError> {
        self.secrets
            .get(name)
            .map(|s| s.expose())
            .ok_or_else(|| PlatformError::Rejected(format!("the connection has no {name}")))
    }

    /// A secret of the connection, else of the deployment's app.
    pub fn app_secret(&self, name: &str) -> Result<&str, PlatformError> {
        self.secrets
            .get(name)
            .or_else(|| self.app.and_then(|a| a.get(name)))
            .map(|s| s.expose())
            .ok_or_else(|| {
                PlatformError::Rejected(format!(
                    "neither the connection nor the deployment's app has a {name}"
                ))
            })
    }
}

/// Everything the service knows about one platform.
pub trait PlatformModule: Send + Sync + 'static {
    fn platform(&self) -> Platform;

    /// What a connection to this platform holds.
    fn spec(&self) -> &'static PlatformSpec;

    /// Whether `value` is valid for config key `key` (a key the spec names); when it is
    /// not, what it must be, to tell the user.
    fn check_config(&self, key: &str, value: &Value) -> Result<(), &'static str>;

    /// Whether config key `key` of the existing `connection` may be changed by its user
    /// (some keys are fixed once the platform vouched for them); when not, why.
    fn check_change(&self, _connection: &Connection, _key: &str) -> Result<(), &'static str> {
        Ok(())
    }

    /// What this platform can be the source and the target of, for `entity`.
    fn capabilities(&self, entity: EntityType) -> Capabilities;

    /// Whether, as a target, it files orders under numbers of its own choosing from the
    /// source's order numbers (QuickBooks' `DocNumber`): such a flow has a prefix, so two
    /// stores' orders never share a number.
    fn numbers_orders(&self) -> bool {
        false
    }

    /// Whether, as a target, it reads its records back as it was given them (the same
    /// canonical values), so that an edit made there can be told from our own write. Needed
    /// by `newest_wins` flows into it.
    fn reads_back_as_written(&self) -> bool {
        true
    }

    /// Authenticates one delivery with the connection's webhook `secret` (over the raw body,
    /// in constant time, before anything is parsed) and reads it.
    fn receive(
        &self,
        connection: &Connection,
        secret: &str,
        delivery: &WebhookDelivery<'_>,
    ) -> Result<Received, Refusal>;

    /// Where a delivery to the deployment's app-wide webhook URL is routed: the connections
    /// with this route receive its events for them (QuickBooks: a connection made through the
    /// deployment's Intuit app, routed by its company). `None`: the connection receives only
    /// on its own URL.
    fn route(&self, _connection: &Connection) -> Option<String> {
        None
    }

    /// Authenticates one delivery to the deployment's app-wide webhook URL with the app's
    /// `secret` and reads it, its events grouped by route.
    fn receive_app(
        &self,
        _secret: &str,
        _delivery: &WebhookDelivery<'_>,
    ) -> Result<Vec<(String, Parsed)>, Refusal> {
        Err(Refusal::Unauthorized(
            "the platform has no app-wide webhook route",
        ))
    }

    /// The headers the platform would send with `body`, signed with `secret`.
    fn sign(&self, secret: &str, body: &[u8], options: &SignOptions) -> Vec<(String, String)>;

    /// A sample connection, for tests, benches and the local demo.
    fn sample(&self) -> Sample;

    /// The connection's way into the platform, for syncing.
    fn connector(&self, ctx: ConnectorContext<'_>) -> Result<Arc<dyn Connector>, PlatformError>;
}

/// An id as text: a JSON integer or a non-empty string (platforms use both).
pub(crate) fn id_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        Value::String(s) if !s.is_empty() && s.len() <= 128 => Some(s.clone()),
        _ => None,
    }
}

/// A stamp for payloads that carry none: a digest of the exact body.
pub(crate) fn body_digest(body: &[u8]) -> String {
    format!("body:{}", &crate::crypto::sha256_hex(body)[..32])
}

pub(crate) fn json(body: &[u8]) -> Result<Value, PayloadError> {
    serde_json::from_slice(body).map_err(|e| PayloadError(format!("the body is not JSON: {e}")))
}

/// `application/json`, or one of `also` (e.g. `application/cloudevents+json`), with or
/// without parameters.
pub fn is_json_content_type(value: Option<&str>, also: &[&str]) -> bool {
    let essence = value
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || also.contains(&essence.as_str())
}

/// Config rules shared by platforms.
pub(crate) mod rules {
    use serde_json::Value;

    /// Longest URL we accept.
    const MAX_URL: usize = 2048;

    pub fn url(value: &Value) -> Result<(), &'static str> {
        let ok = value.as_str().is_some_and(|u| {
            (u.starts_with("https://") || u.starts_with("http://"))
                && u.len() <= MAX_URL
                && !u.chars().any(char::is_whitespace)
                && u.len() > "https://".len()
        });
        ok.then_some(()).ok_or("an http(s) URL")
    }

    /// A SQL identifier we are willing to put in a URL: letters, digits, `_`.
    pub fn is_identifier(text: &str) -> bool {
        !text.is_empty()
            && text.len() <= 63
            && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    }

    pub fn identifier(value: &Value) -> Result<(), &'static str> {
        value
            .as_str()
            .filter(|c| is_identifier(c))
            .map(|_| ())
            .ok_or("a column name (letters, digits, _)")
    }

    pub fn header_name(value: &Value) -> Result<(), &'static str> {
        value
            .as_str()
            .filter(|h| {
                !h.is_empty()
                    && h.len() <= 64
                    && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
            .map(|_| ())
            .ok_or("an HTTP header name")
    }
}

#[cfg(test)]
mod tests;
