//! Intuit's OAuth 2.0 service (`platforms.md` §2.2): the authorize URL, the code exchange
//! and the refresh, with the app's client id and secret as HTTP basic credentials.
//!
//! A token request is never sent twice once it may have reached Intuit: a refresh Intuit
//! answered but we never heard may have retired the refresh token we hold, and sending it
//! again would then be refused as a dead grant. (See [`crate::service::tokens`].)

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{Duration, Utc};
use serde_json::Value;

use crate::platforms::fields::{read, Text};
use crate::platforms::http::{encode, Caller, Replay};
use crate::ports::{HttpRequest, Method, PlatformError};
use crate::service::tokens::{RefreshError, Refresher, Tokens};

pub const AUTHORIZE_URL: &str = "https://appcenter.intuit.com/connect/oauth2";
pub const TOKEN_URL: &str = "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer";
pub const ACCOUNTING_SCOPE: &str = "com.intuit.quickbooks.accounting";

/// What Intuit's token endpoint answers: the tokens, or an error and its description.
/// `expires_in` is read where it is used: one that does not read is an hour, never a
/// reason to drop tokens Intuit has already issued.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct TokenAnswer {
    access_token: Text,
    refresh_token: Text,
    expires_in: Value,
    error: Text,
    error_description: Text,
}

/// An Intuit app: its credentials and where its token endpoint is.
#[derive(Clone)]
pub struct App {
    pub client_id: String,
    pub client_secret: String,
    pub token_url: String,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("client_id", &self.client_id)
            .field("token_url", &self.token_url)
            .finish_non_exhaustive()
    }
}

/// The URL that sends the user to Intuit's consent screen for the accounting scope.
pub fn authorize_url(
    authorize_base: &str,
    client_id: &str,
    redirect_uri: &str,
    state: &str,
) -> String {
    format!(
        "{authorize_base}?client_id={}&response_type=code&scope={}&redirect_uri={}&state={}",
        encode(client_id),
        encode(ACCOUNTING_SCOPE),
        encode(redirect_uri),
        encode(state)
    )
}

/// The token endpoint of one app.
pub struct TokenEndpoint {
    caller: Caller,
    app: App,
}

impl TokenEndpoint {
    pub fn new(caller: Caller, app: App) -> Self {
        Self { caller, app }
    }

    async fn post(&self, form: &[(&str, &str)]) -> Result<Tokens, RefreshError> {
        let body: Vec<String> = form
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect();
        let basic = STANDARD.encode(format!("{}:{}", self.app.client_id, self.app.client_secret));
        let mut request = HttpRequest::new(Method::Post, self.app.token_url.clone())
            .header("authorization", format!("Basic {basic}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json");
        request.body = Some(body.join("&").into_bytes());
        // Outside the run's deadline: a refresh cut short after Intuit took it would leave
        // its outcome unknown, and the old refresh token possibly retired. So it is not
        // started at all without its whole timeout (and time to store the answer) ahead.
        if crate::platforms::http::time_left()
            .is_some_and(|left| left < std::time::Duration::from_secs(40))
        {
            return Err(RefreshError::Declined(
                "too little time left in this invocation to refresh the token safely".into(),
            ));
        }
        let response = crate::platforms::http::unbounded(self.caller.send(request, Replay::Unsafe))
            .await
            .map_err(|e| match e {
                PlatformError::Unavailable(m)
                | PlatformError::Rejected(m)
                | PlatformError::OutOfTime(m) => RefreshError::Unavailable(m),
            })?;
        // What does not read is an answer without tokens (and, on a 400, without a reason).
        let answer: TokenAnswer = response
            .json()
            .and_then(|v| read(&v, "the token answer"))
            .unwrap_or_default();
        let error = answer.error.as_str();
        match response.status {
            200 => {}
            400 if error == "invalid_grant" => {
                return Err(RefreshError::InvalidGrant(format!(
                    "invalid_grant: {}",
                    answer.error_description.as_str()
                )))
            }
            400 | 401 if error == "invalid_client" => {
                return Err(RefreshError::Rejected(
                    "Intuit refused the app's client id or secret (invalid_client)".into(),
                ))
            }
            status if status >= 500 || status == 429 => {
                return Err(RefreshError::Declined(format!(
                    "Intuit's token endpoint answered {status}"
                )))
            }
            status => {
                return Err(RefreshError::Rejected(format!(
                    "Intuit's token endpoint answered {status}: {}",
                    response.snippet()
                )))
            }
        }
        match (
            answer.access_token.non_empty(),
            answer.refresh_token.non_empty(),
        ) {
            (Some(access_token), Some(refresh_token)) => Ok(Tokens {
                access_token,
                access_expires_at: Utc::now()
                    // Within a day, whatever the answer says (and never out of range).
                    + Duration::seconds(answer.expires_in.as_i64().unwrap_or(3600).clamp(0, 86_400)),
                refresh_token,
            }),
            _ => Err(RefreshError::Unavailable(
                "Intuit's token answer has no access or refresh token".into(),
            )),
        }
    }

    /// Exchanges an authorization code (from the redirect back to us).
    pub async fn exchange(&self, code: &str, redirect_uri: &str) -> Result<Tokens, RefreshError> {
        self.post(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
        ])
        .await
    }
}

#[async_trait]
impl Refresher for TokenEndpoint {
    async fn refresh(&self, refresh_token: &str) -> Result<Tokens, RefreshError> {
        self.post(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
        .await
    }
}
