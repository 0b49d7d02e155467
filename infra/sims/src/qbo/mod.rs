//! QuickBooks Online as Intuit runs it, where it matters to us (`../shared/docs/platforms.md`
//! §2). This part is Intuit's OAuth 2.0 service for one app and one company:
//!
//! - Discovery documents at `/.well-known/openid_sandbox_configuration` and
//!   `/.well-known/openid_configuration`, naming this server's endpoints (Intuit's own Python
//!   client takes a discovery URL as its environment).
//! - `GET /connect/oauth2` (Intuit's authorize page): checks the client, the redirect URI and
//!   the scope, and, as the user would on the consent screen, connects the company at once:
//!   `302` to `redirect_uri?code=…&state=…&realmId=…`. An unknown client or redirect URI is a
//!   `400` page (nothing is redirected to an unregistered URI); a bad `response_type` or a
//!   scope without `com.intuit.quickbooks.accounting` is redirected back with `error=`.
//! - `POST /oauth2/v1/tokens/bearer`: HTTP basic client authentication (else `401
//!   invalid_client`), a form body. `authorization_code`: a code is single-use, expires after
//!   `code_ttl` and is bound to its `redirect_uri`. `refresh_token`: the refresh token
//!   rotates on every refresh and the one it replaced is dead from then on (the strictest
//!   reading of Intuit's "use the latest refresh_token returned"). A dead, unknown or used
//!   code or token is `400 {"error":"invalid_grant"}`. Answers carry `access_token`,
//!   `token_type`, `expires_in` (3600), `refresh_token`, `x_refresh_token_expires_in`, and
//!   `x_refresh_token_hard_expires_in` when the request asks with
//!   `x-include-refresh-token-hard-expires-in: true`.
//! - `POST /v2/oauth2/tokens/revoke` (`{"token": …}`): the refresh token and its access
//!   tokens stop working.
//!
//! Admin: `GET /__admin/oauth` (counts of codes and live tokens), `POST
//! /__admin/oauth/expire-access` (every access token expires now), `POST
//! /__admin/oauth/revoke-all` (every grant revoked, as when the user disconnects the app),
//! `POST /__admin/oauth/lose-refreshes` (`{"count": n}`: the next n refreshes are made, the
//! refresh tokens they replace dead, but the connection drops before the answer).
//!
//! The accounting API and the company's books: [`api`] and [`company`]; the query language:
//! [`query`].

pub mod api;
pub mod company;
pub mod query;

use anyhow::Result;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use hyper::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use crate::server::{
    json_response, lock, parse_query, random_text, with_header, Faults, Handler, Req, Resp,
};

/// The accounting scope every connection of ours asks for.
pub const ACCOUNTING_SCOPE: &str = "com.intuit.quickbooks.accounting";

/// The app and company the simulator serves.
#[derive(Clone, Debug)]
pub struct QboConfig {
    pub client_id: String,
    pub client_secret: String,
    /// Redirect URIs registered for the app (exact match, as Intuit checks them).
    pub redirect_uris: Vec<String>,
    /// The company the consent screen connects.
    pub realm_id: String,
    pub code_ttl: Duration,
    pub access_ttl_seconds: i64,
    pub refresh_ttl_seconds: i64,
    /// What the 5-year hard limit has left (seconds).
    pub refresh_hard_ttl_seconds: i64,
}

impl Default for QboConfig {
    fn default() -> Self {
        Self {
            client_id: "ABlocalSimulatorClientId0123456789".into(),
            client_secret: "localSimulatorClientSecret0123456789".into(),
            redirect_uris: vec!["http://127.0.0.1:3000/oauth/quickbooks/callback".into()],
            realm_id: "9341453050263456".into(),
            code_ttl: Duration::minutes(10),
            access_ttl_seconds: 3600,
            refresh_ttl_seconds: 8_640_000,
            refresh_hard_ttl_seconds: 157_680_000,
        }
    }
}

struct Code {
    redirect_uri: String,
    expires: DateTime<Utc>,
}

#[derive(Default)]
struct State {
    codes: HashMap<String, Code>,
    /// Live refresh tokens → realm.
    refresh: HashMap<String, String>,
    /// Access tokens → (realm, expiry, the refresh token they came from).
    access: HashMap<String, (String, DateTime<Utc>, String)>,
    redirect_uris: Vec<String>,
    /// How many of the next refreshes are made but answered with a dropped connection.
    lose_refreshes: u32,
    /// Every code and token handed out, live or not (for tests that look for them where
    /// they must not be).
    issued: Vec<String>,
}

pub struct QuickBooks {
    config: QboConfig,
    state: Mutex<State>,
    faults: Faults,
    home: Mutex<String>,
    books: api::Books,
    http: reqwest::Client,
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Resp {
    json_response(
        status,
        &json!({ "error": error, "error_description": description }),
    )
}

fn page(status: StatusCode, text: &str) -> Resp {
    let mut r = hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from(format!(
        "<!doctype html><title>Intuit</title><p>{text}</p>"
    ))));
    *r.status_mut() = status;
    with_header(r, "content-type", "text/html; charset=utf-8")
}

fn redirect(to: &str) -> Resp {
    with_header(crate::server::empty(StatusCode::FOUND), "location", to)
}

/// `base?k=v&…` with the values form-encoded.
fn with_query(base: &str, pairs: &[(&str, &str)]) -> String {
    let encoded: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", crate::woo::rawurlencode(v)))
        .collect();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{}", encoded.join("&"))
}

impl QuickBooks {
    pub fn new(config: QboConfig) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                redirect_uris: config.redirect_uris.clone(),
                ..State::default()
            }),
            config,
            faults: Faults::default(),
            home: Mutex::new(String::new()),
            books: api::Books::default(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
        })
    }

    /// Starts the simulator on `port` (0 for a free one); returns its URL.
    pub async fn start(
        config: QboConfig,
        port: u16,
    ) -> Result<(String, Arc<Self>, Vec<tokio::task::JoinHandle<()>>)> {
        let qbo = Self::new(config);
        let (url, server) = crate::server::start(port, qbo.clone()).await?;
        *lock(&qbo.home) = url.clone();
        let sender = {
            let qbo = qbo.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    qbo.deliver_webhooks().await;
                }
            })
        };
        Ok((url, qbo, vec![server, sender]))
    }

    pub fn config(&self) -> &QboConfig {
        &self.config
    }

    /// Registers one more redirect URI for the app (the developer portal's list).
    pub fn allow_redirect_uri(&self, uri: &str) {
        let mut state = lock(&self.state);
        if !state.redirect_uris.iter().any(|u| u == uri) {
            state.redirect_uris.push(uri.to_string());
        }
    }

    /// A refresh token for the company, as the consent screen and the code exchange would
    /// give one (for benchmarks, which have no browser).
    pub fn grant(&self) -> String {
        let mut state = lock(&self.state);
        let body = self.issue(&mut state, None, false);
        body["refresh_token"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Every authorization code, access token and refresh token handed out so far.
    pub fn issued_credentials(&self) -> Vec<String> {
        lock(&self.state).issued.clone()
    }

    /// Whether `token` is a refresh token that still works.
    pub fn is_live_refresh_token(&self, token: &str) -> bool {
        lock(&self.state).refresh.contains_key(token)
    }

    /// The realm an `Authorization: Bearer` access token is good for, if it is live.
    pub fn realm_of(&self, authorization: Option<&str>) -> Option<String> {
        let token = authorization?.strip_prefix("Bearer ")?;
        let state = lock(&self.state);
        let (realm, expires, _) = state.access.get(token)?;
        (*expires > Utc::now()).then(|| realm.clone())
    }

    fn home(&self) -> String {
        lock(&self.home).clone()
    }

    fn discovery(&self) -> Value {
        let home = self.home();
        json!({
            "issuer": "https://oauth.platform.intuit.com/op/v1",
            "authorization_endpoint": format!("{home}/connect/oauth2"),
            "token_endpoint": format!("{home}/oauth2/v1/tokens/bearer"),
            "userinfo_endpoint": format!("{home}/v1/openid_connect/userinfo"),
            "revocation_endpoint": format!("{home}/v2/oauth2/tokens/revoke"),
            "jwks_uri": format!("{home}/op/v1/jwks"),
            "response_types_supported": ["code"],
            "scopes_supported": ["openid", "email", "profile", "address", "phone", ACCOUNTING_SCOPE],
            "grant_types_supported": ["authorization_code", "refresh_token"],
        })
    }

    fn authorize(&self, req: &Req) -> Resp {
        let client = req.param("client_id").unwrap_or_default();
        let redirect_uri = req.param("redirect_uri").unwrap_or_default();
        if client != self.config.client_id {
            return page(StatusCode::BAD_REQUEST, "Invalid client_id.");
        }
        if !lock(&self.state)
            .redirect_uris
            .iter()
            .any(|u| u == redirect_uri)
        {
            return page(
                StatusCode::BAD_REQUEST,
                "The redirect_uri query parameter value is invalid. Make sure it is listed in the Redirect URIs section on your app's keys tab and matches it exactly.",
            );
        }
        let state = req.param("state").unwrap_or_default();
        if req.param("response_type") != Some("code") {
            return redirect(&with_query(
                redirect_uri,
                &[("error", "unsupported_response_type"), ("state", state)],
            ));
        }
        let scopes: Vec<&str> = req
            .param("scope")
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        if !scopes.contains(&ACCOUNTING_SCOPE) {
            return redirect(&with_query(
                redirect_uri,
                &[("error", "invalid_scope"), ("state", state)],
            ));
        }
        let code = format!("AB1{}", random_text(40));
        let mut state_now = lock(&self.state);
        state_now.issued.push(code.clone());
        state_now.codes.insert(
            code.clone(),
            Code {
                redirect_uri: redirect_uri.to_string(),
                expires: Utc::now() + self.config.code_ttl,
            },
        );
        drop(state_now);
        redirect(&with_query(
            redirect_uri,
            &[
                ("code", &code),
                ("state", state),
                ("realmId", &self.config.realm_id),
            ],
        ))
    }

    /// Whether the request's basic credentials are the app's.
    fn client_ok(&self, req: &Req) -> bool {
        let Some(encoded) = req
            .header("authorization")
            .and_then(|h| h.strip_prefix("Basic "))
        else {
            return false;
        };
        let Ok(decoded) = STANDARD.decode(encoded.trim()) else {
            return false;
        };
        let expected = format!("{}:{}", self.config.client_id, self.config.client_secret);
        crate::woo::constant_eq(&decoded, expected.as_bytes())
    }

    /// New tokens for the realm, replacing `previous` (a refresh token) if given.
    fn issue(&self, state: &mut State, previous: Option<&str>, hard: bool) -> Value {
        let realm = self.config.realm_id.clone();
        if let Some(old) = previous {
            state.refresh.remove(old);
        }
        let refresh = format!("RT1-{}", random_text(48));
        let access = format!("eyJ{}", random_text(120));
        state.issued.extend([refresh.clone(), access.clone()]);
        state.refresh.insert(refresh.clone(), realm.clone());
        state.access.insert(
            access.clone(),
            (
                realm,
                Utc::now() + Duration::seconds(self.config.access_ttl_seconds),
                refresh.clone(),
            ),
        );
        let mut body = json!({
            "access_token": access,
            "token_type": "bearer",
            "expires_in": self.config.access_ttl_seconds,
            "refresh_token": refresh,
            "x_refresh_token_expires_in": self.config.refresh_ttl_seconds,
        });
        if hard {
            body["x_refresh_token_hard_expires_in"] = json!(self.config.refresh_hard_ttl_seconds);
        }
        body
    }

    fn token(&self, req: &Req) -> Resp {
        if !self.client_ok(req) {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication failed",
            );
        }
        let form = parse_query(&String::from_utf8_lossy(&req.body));
        let field = |name: &str| {
            form.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let hard = req
            .header("x-include-refresh-token-hard-expires-in")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let mut state = lock(&self.state);
        let body = match field("grant_type") {
            Some("authorization_code") => {
                let code = field("code").unwrap_or_default();
                // A code is used up by its first exchange, right or wrong.
                match state.codes.remove(code) {
                    Some(c)
                        if c.expires > Utc::now()
                            && Some(c.redirect_uri.as_str()) == field("redirect_uri") =>
                    {
                        self.issue(&mut state, None, hard)
                    }
                    _ => {
                        return oauth_error(
                            StatusCode::BAD_REQUEST,
                            "invalid_grant",
                            "the authorization code is invalid, expired, used, or for another redirect_uri",
                        )
                    }
                }
            }
            Some("refresh_token") => {
                let token = field("refresh_token").unwrap_or_default().to_string();
                if !state.refresh.contains_key(&token) {
                    return oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_grant",
                        "the refresh token is invalid, expired, revoked or already replaced",
                    );
                }
                let body = self.issue(&mut state, Some(&token), hard);
                if state.lose_refreshes > 0 {
                    // Made (the token it replaced is dead), but the answer never arrives.
                    state.lose_refreshes -= 1;
                    return crate::server::with_header(
                        json_response(StatusCode::OK, &body),
                        api::DROP_MARKER,
                        "1",
                    );
                }
                body
            }
            _ => {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "unsupported_grant_type",
                    "grant_type must be authorization_code or refresh_token",
                )
            }
        };
        json_response(StatusCode::OK, &body)
    }

    fn revoke(&self, req: &Req) -> Resp {
        if !self.client_ok(req) {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication failed",
            );
        }
        let token = serde_json::from_slice::<Value>(&req.body)
            .ok()
            .and_then(|v| v["token"].as_str().map(str::to_string))
            .unwrap_or_default();
        let mut state = lock(&self.state);
        state.refresh.remove(&token);
        state
            .access
            .retain(|a, (_, _, from)| *a != token && *from != token);
        crate::server::empty(StatusCode::OK)
    }

    fn admin(&self, req: &Req) -> Resp {
        match (req.method.clone(), req.path.as_str()) {
            (Method::GET, "/__admin/oauth") => {
                let state = lock(&self.state);
                json_response(
                    StatusCode::OK,
                    &json!({
                        "codes": state.codes.len(),
                        "refresh_tokens": state.refresh.len(),
                        "access_tokens": state.access.len(),
                    }),
                )
            }
            (Method::POST, "/__admin/oauth/revoke-all") => {
                let mut state = lock(&self.state);
                state.refresh.clear();
                state.access.clear();
                json_response(StatusCode::OK, &json!({"ok": true}))
            }
            (Method::POST, "/__admin/oauth/lose-refreshes") => {
                let count = serde_json::from_slice::<Value>(&req.body)
                    .ok()
                    .and_then(|v| v["count"].as_u64())
                    .unwrap_or(1);
                lock(&self.state).lose_refreshes = u32::try_from(count).unwrap_or(u32::MAX);
                json_response(StatusCode::OK, &json!({"ok": true}))
            }
            (Method::POST, "/__admin/oauth/expire-access") => {
                let past = Utc::now() - Duration::seconds(1);
                for (_, expires, _) in lock(&self.state).access.values_mut() {
                    *expires = past;
                }
                json_response(StatusCode::OK, &json!({"ok": true}))
            }
            _ => json_response(
                StatusCode::NOT_FOUND,
                &json!({"message": "no such admin route"}),
            ),
        }
    }

    async fn route(&self, req: Req) -> Resp {
        match (req.method.clone(), req.path.as_str()) {
            (Method::GET, "/.well-known/openid_sandbox_configuration")
            | (Method::GET, "/.well-known/openid_sandbox_configuration/")
            | (Method::GET, "/.well-known/openid_configuration")
            | (Method::GET, "/.well-known/openid_configuration/") => {
                json_response(StatusCode::OK, &self.discovery())
            }
            (Method::GET, "/connect/oauth2") => self.authorize(&req),
            (Method::POST, "/oauth2/v1/tokens/bearer") => self.token(&req),
            (Method::POST, "/v2/oauth2/tokens/revoke") => self.revoke(&req),
            (_, path) if path.starts_with("/v3/company/") => self.accounting(&req).await,
            (_, path) if path.starts_with("/__admin/qbo/") => self
                .accounting_admin(&req)
                .unwrap_or_else(|| self.admin(&req)),
            (_, path) if path.starts_with("/__admin/") => self.admin(&req),
            _ => json_response(
                StatusCode::NOT_FOUND,
                &json!({"Fault": {"Error": [{"Message": "Not found", "code": "404"}], "type": "ValidationFault"}}),
            ),
        }
    }
}

impl Handler for QuickBooks {
    fn faults(&self) -> &Faults {
        &self.faults
    }

    fn handle(&self, req: Req) -> Pin<Box<dyn Future<Output = Resp> + Send + '_>> {
        Box::pin(self.route(req))
    }
}
