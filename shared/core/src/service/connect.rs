//! Connecting a QuickBooks company through the deployment's own Intuit app: the OAuth 2.0
//! authorization-code flow (`platforms.md` §2.2).
//!
//! - [`QuickBooksConnect::authorize`]: Intuit's consent URL for the accounting scope, with a
//!   `state` sealed by the key service (authenticated encryption, bound to its purpose) that
//!   carries the tenant, a nonce and an expiry ten minutes away. Nothing is stored yet.
//! - [`QuickBooksConnect::callback`]: the redirect back. The state must open (a forged or
//!   altered one does not), be unexpired, and its nonce must not have been used (a
//!   conditional write consumes it, so a replayed redirect is refused). Then the code is
//!   exchanged at Intuit's token endpoint, and the refresh token is stored sealed on the
//!   tenant's connection for that company made through the deployment's app (connecting
//!   again replaces its token and clears `needs_reauth`), or on a new one.
//!
//! Connections with their own Intuit app are made as any other, with `client_id`,
//! `client_secret` and `refresh_token` secrets.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map};
use std::sync::Arc;

use super::connections::{create_connection, update_connection};
use super::ServiceError;
use crate::clock::Clock;
use crate::domain::{
    Connection, ConnectionPatch, NewConnection, Platform, Sealed, Secret, Secrets, TenantId,
};
use crate::platforms::http::{Caller, RetryPolicy};
use crate::platforms::quickbooks::oauth::{self, App, TokenEndpoint};
use crate::ports::{ConnectionStore, HttpClient, OAuthStates, SecretSealer};
use crate::service::tokens::RefreshError;

/// How long a consent link stays good.
const STATE_TTL_MINUTES: i64 = 10;
const STATE_PURPOSE: [(&str, &str); 1] = [("purpose", "quickbooks-oauth-state")];

/// The deployment's Intuit app, and where its company connections reach Intuit.
#[derive(Clone)]
pub struct QuickBooksAppConfig {
    pub client_id: String,
    pub client_secret: String,
    pub authorize_url: String,
    pub token_url: String,
    /// The redirect URI registered for the app; by default the API's own callback route.
    pub redirect_uri: Option<String>,
    /// `sandbox` or `production` (the API host), for new connections.
    pub environment: Option<String>,
    /// Another accounting API host (a proxy, the local simulator); the worker is given the
    /// same (`QBO_API_URL`), connections never hold it.
    pub api_url: Option<String>,
}

impl std::fmt::Debug for QuickBooksAppConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuickBooksAppConfig")
            .field("client_id", &self.client_id)
            .field("authorize_url", &self.authorize_url)
            .field("token_url", &self.token_url)
            .finish_non_exhaustive()
    }
}

/// What the redirect back from Intuit carried.
#[derive(Clone, Debug, Default)]
pub struct Callback {
    pub code: Option<String>,
    pub state: Option<String>,
    pub realm_id: Option<String>,
    /// Set when the user declined (`access_denied`) or Intuit refused the request.
    pub error: Option<String>,
}

/// Why a connect step failed, in terms the page shown to the user needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    #[error("this deployment has no Intuit app configured (QBO_CLIENT_ID and QBO_CLIENT_SECRET)")]
    NotConfigured,
    /// The link is forged, altered, expired or used: start again.
    #[error("{0}")]
    BadState(&'static str),
    /// The user or Intuit declined, or the request was malformed.
    #[error("{0}")]
    Refused(String),
    /// Intuit or our store could not be reached: trying again later may work.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Service(#[from] ServiceError),
}

/// A company connected.
#[derive(Debug, Clone)]
pub struct Connected {
    pub connection: Connection,
    /// False when an existing connection for the company was connected again.
    pub created: bool,
}

#[derive(Serialize, Deserialize)]
struct State {
    /// The tenant.
    t: String,
    /// The nonce.
    n: String,
    /// Expiry, epoch seconds.
    e: i64,
}

pub struct QuickBooksConnect {
    store: Arc<dyn ConnectionStore>,
    sealer: Arc<dyn SecretSealer>,
    states: Arc<dyn OAuthStates>,
    http: Arc<dyn HttpClient>,
    clock: Arc<dyn Clock>,
    retry: RetryPolicy,
    app: Option<QuickBooksAppConfig>,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl QuickBooksConnect {
    pub fn new(
        store: Arc<dyn ConnectionStore>,
        sealer: Arc<dyn SecretSealer>,
        states: Arc<dyn OAuthStates>,
        http: Arc<dyn HttpClient>,
        clock: Arc<dyn Clock>,
        retry: RetryPolicy,
        app: Option<QuickBooksAppConfig>,
    ) -> Self {
        Self {
            store,
            sealer,
            states,
            http,
            clock,
            retry,
            app,
        }
    }

    fn app(&self) -> Result<&QuickBooksAppConfig, ConnectError> {
        self.app.as_ref().ok_or(ConnectError::NotConfigured)
    }

    /// Where Intuit sends the user back: the app's registered URI, or the API's route.
    pub fn redirect_uri(&self, base_url: &str) -> String {
        self.app
            .as_ref()
            .and_then(|a| a.redirect_uri.clone())
            .unwrap_or_else(|| {
                format!(
                    "{}/oauth/quickbooks/callback",
                    base_url.trim_end_matches('/')
                )
            })
    }

    /// Intuit's consent URL for `tenant`, and when its state expires.
    pub async fn authorize(
        &self,
        tenant: &TenantId,
        base_url: &str,
    ) -> Result<(String, DateTime<Utc>), ConnectError> {
        let app = self.app()?;
        let expires = self.clock.now() + Duration::minutes(STATE_TTL_MINUTES);
        let nonce = crate::crypto::random_bytes(16)
            .map_err(|_| ConnectError::Unavailable("no randomness".into()))?;
        let state = State {
            t: tenant.as_str().to_string(),
            n: b64(&nonce),
            e: expires.timestamp(),
        };
        let plain =
            serde_json::to_vec(&state).map_err(|e| ConnectError::Unavailable(e.to_string()))?;
        let sealed = self
            .sealer
            .seal(&plain, &STATE_PURPOSE)
            .await
            .map_err(|e| ConnectError::Unavailable(e.to_string()))?;
        let text = format!(
            "{}.{}.{}",
            b64(&sealed.encrypted_key),
            b64(&sealed.nonce),
            b64(&sealed.ciphertext)
        );
        let url = oauth::authorize_url(
            &app.authorize_url,
            &app.client_id,
            &self.redirect_uri(base_url),
            &text,
        );
        Ok((url, expires))
    }

    /// Opens and checks a state; its tenant and nonce.
    async fn open_state(&self, text: &str) -> Result<State, ConnectError> {
        const BAD: ConnectError =
            ConnectError::BadState("this link is not valid: start connecting again");
        let parts: Vec<Vec<u8>> = text
            .split('.')
            .map(|p| URL_SAFE_NO_PAD.decode(p))
            .collect::<Result<_, _>>()
            .map_err(|_| BAD)?;
        let [encrypted_key, nonce, ciphertext] =
            <[Vec<u8>; 3]>::try_from(parts).map_err(|_| BAD)?;
        let sealed = Sealed {
            encrypted_key,
            nonce,
            ciphertext,
        };
        let plain = match self.sealer.open(&sealed, &STATE_PURPOSE).await {
            Ok(p) => p,
            Err(crate::ports::SealError::Corrupt) => return Err(BAD),
            Err(e) => return Err(ConnectError::Unavailable(e.to_string())),
        };
        let state: State = serde_json::from_slice(&plain).map_err(|_| BAD)?;
        if state.e < self.clock.now().timestamp() {
            return Err(ConnectError::BadState(
                "this link has expired: start connecting again",
            ));
        }
        Ok(state)
    }

    /// Finishes connecting: see the module's documentation.
    pub async fn callback(
        &self,
        callback: &Callback,
        base_url: &str,
    ) -> Result<Connected, ConnectError> {
        let app = self.app()?;
        let state = self
            .open_state(callback.state.as_deref().unwrap_or_default())
            .await?;
        let tenant = TenantId::parse(&state.t).map_err(|_| {
            ConnectError::BadState("this link is not valid: start connecting again")
        })?;
        let expires = DateTime::from_timestamp(state.e, 0).unwrap_or_default();
        let fresh = self
            .states
            .consume(&state.n, expires)
            .await
            .map_err(|e| ConnectError::Unavailable(e.to_string()))?;
        if !fresh {
            return Err(ConnectError::BadState(
                "this link was already used: start connecting again",
            ));
        }
        if let Some(error) = &callback.error {
            return Err(ConnectError::Refused(format!(
                "QuickBooks was not connected: {}",
                crate::logtext::clip(error)
            )));
        }
        let realm = callback
            .realm_id
            .clone()
            .filter(|r| !r.is_empty() && r.len() <= 32 && r.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| {
                ConnectError::Refused("the answer from Intuit names no company".into())
            })?;
        let code = callback
            .code
            .clone()
            .filter(|c| !c.is_empty() && c.len() <= 512)
            .ok_or_else(|| {
                ConnectError::Refused("the answer from Intuit carries no code".into())
            })?;
        let endpoint = TokenEndpoint::new(
            Caller::new(self.http.clone(), self.retry.clone(), "Intuit OAuth"),
            App {
                client_id: app.client_id.clone(),
                client_secret: app.client_secret.clone(),
                token_url: app.token_url.clone(),
            },
        );
        let tokens = endpoint
            .exchange(&code, &self.redirect_uri(base_url))
            .await
            .map_err(|e| match e {
                RefreshError::InvalidGrant(why) => ConnectError::Refused(format!(
                    "Intuit refused the authorization code ({why}): start connecting again"
                )),
                RefreshError::Rejected(why) => ConnectError::Refused(why),
                RefreshError::Unavailable(why) | RefreshError::Declined(why) => {
                    ConnectError::Unavailable(why)
                }
            })?;
        let mut secrets = Secrets::new();
        secrets.insert("refresh_token".into(), Secret::new(tokens.refresh_token));
        let mut config = Map::new();
        config.insert("realm_id".into(), json!(realm));
        if let Some(env) = &app.environment {
            config.insert("environment".into(), json!(env));
        }
        // Set by this flow alone (users cannot): the company is the one Intuit named.
        let mut trusted = Map::new();
        trusted.insert("app".into(), json!("deployment"));
        let now = self.clock.now();
        let existing = self
            .store
            .list(&tenant)
            .await
            .map_err(ServiceError::from)?
            .into_iter()
            .find(|c| {
                c.platform == Platform::QuickBooks
                    && !c.is_deleting()
                    && c.config_str("realm_id") == Some(realm.as_str())
                    && !c.secret_hints.contains_key("client_id")
            });
        match existing {
            Some(current) => {
                // The same company: its realm stays as it is.
                config.remove("realm_id");
                let patch = ConnectionPatch {
                    config,
                    secrets,
                    ..ConnectionPatch::default()
                };
                let connection = update_connection(
                    self.store.as_ref(),
                    self.sealer.as_ref(),
                    &current,
                    patch,
                    trusted,
                    now,
                )
                .await?;
                Ok(Connected {
                    connection,
                    created: false,
                })
            }
            None => {
                let new = NewConnection {
                    platform: Platform::QuickBooks,
                    display_name: format!("QuickBooks company {realm}"),
                    config,
                    secrets,
                    webhooks_enabled: None,
                };
                let connection = create_connection(
                    self.store.as_ref(),
                    self.sealer.as_ref(),
                    &tenant,
                    crate::domain::ConnectionId::new_random(),
                    new,
                    trusted,
                    now,
                )
                .await?;
                Ok(Connected {
                    connection,
                    created: true,
                })
            }
        }
    }
}

#[cfg(test)]
#[path = "connect_tests.rs"]
mod tests;
