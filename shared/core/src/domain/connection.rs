//! A connection (the original system's *credential*): one platform account of a tenant, its
//! non-secret configuration, and its secrets, which are only ever stored sealed.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;

use super::{ConnectionId, Platform, TenantId};

/// A secret value. It has no `Display`, and its `Debug` prints nothing of it, so it cannot
/// end up in a log line or a response by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that needs it (a signature check, an API call).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What a response may show: the last 4 characters of a long secret, nothing of a
    /// short one (where 4 characters would be too much of it).
    pub fn hint(&self) -> String {
        let chars: Vec<char> = self.0.chars().collect();
        if chars.len() >= 16 {
            let tail: String = chars[chars.len() - 4..].iter().collect();
            format!("…{tail}")
        } else {
            "****".to_string()
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

/// A connection's secrets by name (e.g. `consumer_secret`).
pub type Secrets = BTreeMap<String, Secret>;

/// Encrypted bytes with what is needed to decrypt them: the data key, itself encrypted by
/// the key-management service, the nonce, and the ciphertext with its tag.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Sealed {
    pub encrypted_key: Vec<u8>,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

/// A stored connection.
#[derive(Clone, Debug, PartialEq)]
pub struct Connection {
    pub id: ConnectionId,
    pub tenant_id: TenantId,
    pub platform: Platform,
    pub display_name: String,
    /// Validated against the platform's spec; strings, except Supabase's `tables` map.
    pub config: Map<String, Value>,
    pub sealed_secrets: Sealed,
    /// Per secret name, what a response may show of it.
    pub secret_hints: BTreeMap<String, String>,
    pub webhooks_enabled: bool,
    /// Set when a delete began: from then on no schedule can be created for the connection,
    /// its webhooks are refused, and a repeated delete finishes the job.
    pub deleting_since: Option<DateTime<Utc>>,
    /// Set when the platform refused the connection's grant for good (QuickBooks'
    /// `invalid_grant`): why, for the user, who must connect it again. Runs for it fail fast
    /// until new credentials clear it.
    pub needs_reauth: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

impl Connection {
    /// Where the platform delivers this connection's webhooks, below the API's `base_url`.
    pub fn webhook_url(&self, base_url: &str) -> String {
        format!(
            "{}/webhooks/{}/{}",
            base_url.trim_end_matches('/'),
            self.platform,
            self.id
        )
    }

    /// Whether a delete of this connection has begun.
    pub fn is_deleting(&self) -> bool {
        self.deleting_since.is_some()
    }

    /// The one check made of a connection named by id on a tenant's behalf: it exists, it
    /// is the tenant's (another tenant's is as good as missing), and no delete of it has
    /// begun. The stores' conditional writes make the same check (`sync_aws::table`).
    pub fn of_tenant(found: Option<Connection>, tenant: &TenantId) -> Result<Connection, Unusable> {
        match found {
            Some(c) if &c.tenant_id != tenant => Err(Unusable::Missing),
            Some(c) if c.is_deleting() => Err(Unusable::Deleting(Box::new(c))),
            Some(c) => Ok(c),
            None => Err(Unusable::Missing),
        }
    }

    pub fn config_str(&self, name: &str) -> Option<&str> {
        self.config.get(name).and_then(Value::as_str)
    }

    /// Whether its platform delivers webhooks for it: on its own URL (enabled), or on the
    /// deployment's app-wide one (QuickBooks companies connected through the app).
    pub fn takes_webhooks(&self) -> bool {
        self.webhooks_enabled || self.platform.module().route(self).is_some()
    }

    /// Whether the webhook secret is among the stored secrets.
    pub fn has_webhook_secret(&self) -> bool {
        self.secret_hints
            .contains_key(self.platform.spec().webhook_secret)
    }
}

/// A validated request to create a connection.
#[derive(Clone, Debug)]
pub struct NewConnection {
    pub platform: Platform,
    pub display_name: String,
    pub config: Map<String, Value>,
    pub secrets: Secrets,
    pub webhooks_enabled: Option<bool>,
}

/// A validated partial update. Config and secrets are merged by name: a given name is
/// replaced, the others are kept.
#[derive(Clone, Debug, Default)]
pub struct ConnectionPatch {
    pub display_name: Option<String>,
    pub config: Map<String, Value>,
    pub secrets: Secrets,
    pub webhooks_enabled: Option<bool>,
}

impl ConnectionPatch {
    pub fn is_empty(&self) -> bool {
        self.display_name.is_none()
            && self.config.is_empty()
            && self.secrets.is_empty()
            && self.webhooks_enabled.is_none()
    }
}

/// Why a connection named by id cannot be used for a tenant.
#[derive(Clone, Debug, PartialEq)]
pub enum Unusable {
    /// There is none, or it is another tenant's.
    Missing,
    /// It is the tenant's, but a delete of it has begun (and may be finished by deleting
    /// it again).
    Deleting(Box<Connection>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints_and_hints_only_at_long_ones() {
        let s = Secret::new("cs_0123456789abcdefWXYZ");
        assert_eq!(format!("{s:?}"), "Secret(****)");
        assert_eq!(s.hint(), "…WXYZ");
        assert_eq!(Secret::new("short").hint(), "****");
    }
}
