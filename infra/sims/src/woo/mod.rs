//! A WooCommerce store: the REST API v3 (`/wp-json/wc/v3`) for orders, products, customers
//! and webhooks, as `../shared/docs/platforms.md` describes it, over seeded, deterministic
//! data, sending signed webhooks when its data changes.
//!
//! - Authentication: over plain HTTP only one-legged OAuth 1.0a (query string or
//!   `Authorization: OAuth`), timestamps within 15 minutes, nonces not reused; HTTP basic
//!   auth (or `consumer_key`/`consumer_secret` in the query) only when the request is seen
//!   as HTTPS (`X-Forwarded-Proto: https`, a store behind a TLS proxy). Keys can be
//!   read-only.
//! - Lists: `page`, `per_page` (1–100, else 400), `offset`, `order`, `orderby` (with the
//!   id tie-break), `modified_after`/`modified_before`/`after`/`before` (exclusive, to the
//!   second; site time, `America/Edmonton` by default, unless `dates_are_gmt=true`),
//!   `include`/`exclude`, `status` (trash only when asked), `sku`, `email`, `role`,
//!   `search`, `customer`; `X-WP-Total`, `X-WP-TotalPages` and `Link` (`prev`/`next`).
//!   Customers have no date filters (they are ignored, as WooCommerce ignores them).
//! - Writes: create, update (`PUT`/`POST`/`PATCH`), delete (orders and products to the
//!   trash unless `force=true`; customers and webhooks need `force=true`), batch of at most
//!   100 items (413 beyond); SKUs and customer emails unique. Order refunds as
//!   `refunds.rs` says.
//! - Webhooks: CRUD on `/webhooks`, a ping on creation, deliveries as `webhooks.rs` says.
//!
//! Admin routes (no authentication, no faults): `POST /__admin/zone` (`{"zone":
//! "Pacific/Kiritimati"}`: the site's time zone), `POST /__admin/touch/{kind}`
//! (`{"set": {…}, "at": "<RFC 3339>"}`: a bulk edit, every record of the kind modified in
//! one second, now or at `at`),
//! `POST /__admin/ties`
//! (`{"newest_id_first": true}`: lists by modification give records of one second in
//! descending id order, as a store may), `POST /__admin/seed` (`{"products": 20,
//! "customers": 15, "orders": 60, "seed": 1}`), `POST /__admin/reset`, everything under
//! `/__admin/wc/v3/…` as the shop manager would do it in wp-admin, `PATCH
//! /__admin/raw/{orders|products|customers}/{id}` (fields stored as given, unchecked — a
//! record a plugin broke), `GET /__admin/deliveries`, `POST /__admin/deliver` (send what is
//! queued now), `GET /__admin/state`.

mod php;
mod refunds;
mod seed;
mod store;
mod webhooks;

pub use php::{constant_eq, hmac_base64, rawurlencode};
pub use seed::Seed;
pub use store::Kind;
pub use webhooks::signature;

use anyhow::Result;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use hyper::{Method, StatusCode};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::server::{lock, Faults, Handler, Req, Resp};
use store::{Doc, ListQuery, Records};
use webhooks::{Delivered, Pending, Webhook, Webhooks};

/// How a store is set up.
#[derive(Clone, Debug)]
pub struct WooConfig {
    pub consumer_key: String,
    pub consumer_secret: String,
    /// `read`, `write` or `read_write`.
    pub permissions: String,
    /// The site's time zone (the non-`_gmt` dates).
    pub zone: Tz,
    /// How long a change waits before its webhooks go out (Action Scheduler's queue).
    pub delivery_delay: Duration,
    /// How long a delivery may take.
    pub delivery_timeout: Duration,
    pub seed: Option<Seed>,
}

impl Default for WooConfig {
    fn default() -> Self {
        Self {
            consumer_key: "ck_local_demo_key".into(),
            consumer_secret: "cs_local_demo_secret".into(),
            permissions: "read_write".into(),
            zone: chrono_tz::America::Edmonton,
            delivery_delay: Duration::from_millis(500),
            delivery_timeout: Duration::from_secs(10),
            seed: Some(Seed::default()),
        }
    }
}

struct State {
    records: Records,
    webhooks: Webhooks,
    /// OAuth nonces by timestamp, as WooCommerce keeps them (one per second).
    nonces: BTreeMap<i64, String>,
}

pub struct WooStore {
    config: WooConfig,
    state: Mutex<State>,
    faults: Faults,
    home: Mutex<String>,
    wake: tokio::sync::Notify,
    http: reqwest::Client,
}

/// A WordPress REST error.
struct WpError {
    status: StatusCode,
    code: &'static str,
    message: String,
    params: Option<Value>,
}

fn wp_error(status: StatusCode, code: &'static str, message: impl Into<String>) -> WpError {
    WpError {
        status,
        code,
        message: message.into(),
        params: None,
    }
}

fn invalid_param(name: &str, why: &str) -> WpError {
    WpError {
        status: StatusCode::BAD_REQUEST,
        code: "rest_invalid_param",
        message: format!("Invalid parameter(s): {name}"),
        params: Some(json!({ name: why })),
    }
}

impl WpError {
    fn body(&self) -> Value {
        let mut data = json!({"status": self.status.as_u16()});
        if let Some(p) = &self.params {
            data["params"] = p.clone();
        }
        json!({"code": self.code, "message": self.message, "data": data})
    }

    fn response(&self) -> Resp {
        answer(self.status, &self.body())
    }
}

/// A JSON answer encoded as WordPress encodes it.
fn answer(status: StatusCode, body: &Value) -> Resp {
    let mut r = hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from(
        php::json_encode(body),
    )));
    *r.status_mut() = status;
    crate::server::with_header(r, "content-type", "application/json; charset=UTF-8")
}

fn now() -> DateTime<Utc> {
    store::second(Utc::now())
}

/// Whether a value is a JSON string (or absent).
fn string_or_absent(fields: &Map<String, Value>, name: &str) -> Result<(), WpError> {
    match fields.get(name) {
        None | Some(Value::String(_)) => Ok(()),
        Some(_) => Err(invalid_param(
            name,
            &format!("{name} is not of type string."),
        )),
    }
}

fn is_money(text: &str) -> bool {
    text.is_empty() || text.parse::<f64>().is_ok_and(|v| v.is_finite())
}

/// Merges `given` into `fields`, objects field by field (addresses), as WooCommerce's setters.
fn merge(fields: &mut Map<String, Value>, given: &Map<String, Value>) {
    for (k, v) in given {
        if matches!(
            k.as_str(),
            "id" | "date_created"
                | "date_created_gmt"
                | "date_modified"
                | "date_modified_gmt"
                | "_links"
        ) {
            continue;
        }
        match (fields.get_mut(k), v) {
            (Some(Value::Object(old)), Value::Object(new)) => {
                for (kk, vv) in new {
                    old.insert(kk.clone(), vv.clone());
                }
            }
            _ => {
                fields.insert(k.clone(), v.clone());
            }
        }
    }
}

impl WooStore {
    pub fn new(config: WooConfig) -> Arc<Self> {
        let mut records = Records::new(config.zone);
        if let Some(seed) = &config.seed {
            seed::fill(&mut records, seed, now());
        }
        Arc::new(Self {
            state: Mutex::new(State {
                records,
                webhooks: Webhooks::default(),
                nonces: BTreeMap::new(),
            }),
            faults: Faults::default(),
            home: Mutex::new(String::new()),
            wake: tokio::sync::Notify::new(),
            http: reqwest::Client::builder()
                .user_agent("WooCommerce/9.4.0 Hookshot (WordPress/6.7.1)")
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
            config,
        })
    }

    /// Starts a store on `port` (0 for a free one) with its webhook sender; returns the
    /// store's URL (the API is below `/wp-json/wc/v3`).
    pub async fn start(
        config: WooConfig,
        port: u16,
    ) -> Result<(String, Arc<Self>, Vec<tokio::task::JoinHandle<()>>)> {
        let store = Self::new(config);
        let (url, server) = crate::server::start(port, store.clone()).await?;
        *lock(&store.home) = url.clone();
        let sender = tokio::spawn(send_webhooks(store.clone()));
        Ok((url, store, vec![server, sender]))
    }

    pub fn config(&self) -> &WooConfig {
        &self.config
    }

    fn home(&self) -> String {
        lock(&self.home).clone()
    }

    /// Every record of a kind, rendered (for tests comparing a target with the store).
    pub fn all(&self, kind: Kind) -> Vec<Value> {
        let state = lock(&self.state);
        let q = ListQuery {
            page: 1,
            per_page: usize::MAX,
            orderby: "id".into(),
            status: vec![
                "any".into(),
                "trash".into(),
                "draft".into(),
                "pending".into(),
                "private".into(),
            ],
            role: Some("all".into()),
            ..Default::default()
        };
        let home = self.home();
        let (docs, _) = state.records.list(kind, &q);
        docs.into_iter()
            .map(|d| state.records.render(kind, d, &home))
            .collect()
    }

    // --- authentication -------------------------------------------------------------

    fn cannot(method: &Method, single: bool) -> WpError {
        let message = match (method.as_str(), single) {
            ("GET", false) => "Sorry, you cannot list resources.",
            ("GET", true) => "Sorry, you cannot view this resource.",
            ("DELETE", _) => "Sorry, you are not allowed to delete this resource.",
            ("POST", false) => "Sorry, you are not allowed to create resources.",
            _ => "Sorry, you are not allowed to edit this resource.",
        };
        wp_error(
            StatusCode::UNAUTHORIZED,
            "woocommerce_rest_cannot_view",
            message,
        )
    }

    fn authenticate(&self, req: &Req, single: bool) -> Result<(), WpError> {
        let ssl = req
            .header("x-forwarded-proto")
            .is_some_and(|p| p.eq_ignore_ascii_case("https"));
        let auth_error = |m: &str| {
            wp_error(
                StatusCode::UNAUTHORIZED,
                "woocommerce_rest_authentication_error",
                m,
            )
        };
        let basic = if ssl {
            match (req.param("consumer_key"), req.param("consumer_secret")) {
                (Some(k), Some(s)) => Some((k.to_string(), s.to_string())),
                _ => req
                    .header("authorization")
                    .and_then(|h| {
                        h.strip_prefix("Basic ")
                            .or_else(|| h.strip_prefix("basic "))
                    })
                    .and_then(|b| STANDARD.decode(b.trim()).ok())
                    .and_then(|b| String::from_utf8(b).ok())
                    .and_then(|t| {
                        t.split_once(':')
                            .map(|(k, s)| (k.to_string(), s.to_string()))
                    }),
            }
        } else {
            None
        };
        let authenticated = if let Some((key, secret)) = basic {
            if key != self.config.consumer_key {
                return Err(auth_error("Consumer key is invalid."));
            }
            if !php::constant_eq(secret.as_bytes(), self.config.consumer_secret.as_bytes()) {
                return Err(auth_error("Consumer secret is invalid."));
            }
            true
        } else {
            self.oauth(req, ssl)?
        };
        if !authenticated {
            return Err(Self::cannot(&req.method, single));
        }
        let writes = !matches!(req.method, Method::GET | Method::HEAD);
        let allowed = match self.config.permissions.as_str() {
            "read" => !writes,
            "write" => writes,
            _ => true,
        };
        if !allowed {
            return Err(auth_error(if writes {
                "The API key provided does not have write permissions."
            } else {
                "The API key provided does not have read permissions."
            }));
        }
        Ok(())
    }

    /// One-legged OAuth 1.0a; `false` when the request does not try it at all.
    fn oauth(&self, req: &Req, ssl: bool) -> Result<bool, WpError> {
        let mut params: Vec<(String, String)> = req.query.clone();
        if let Some(h) = req.header("authorization") {
            params.extend(php::oauth_header(h));
        }
        let get = |name: &str| {
            params
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .filter(|v| !v.is_empty())
        };
        let required = [
            "oauth_consumer_key",
            "oauth_timestamp",
            "oauth_nonce",
            "oauth_signature",
            "oauth_signature_method",
        ];
        let missing: Vec<&str> = required
            .iter()
            .copied()
            .filter(|p| get(p).is_none())
            .collect();
        if missing.len() == required.len() {
            return Ok(false);
        }
        if !missing.is_empty() {
            return Err(wp_error(
                StatusCode::UNAUTHORIZED,
                "woocommerce_rest_authentication_missing_parameter",
                format!(
                    "Missing OAuth parameter{} {}",
                    if missing.len() > 1 { "s" } else { "" },
                    missing.join(", ")
                ),
            ));
        }
        let auth_error = |m: &str| {
            wp_error(
                StatusCode::UNAUTHORIZED,
                "woocommerce_rest_authentication_error",
                m,
            )
        };
        if get("oauth_consumer_key") != Some(self.config.consumer_key.as_str()) {
            return Err(auth_error("Consumer key is invalid."));
        }
        let host = req.header("host").unwrap_or("localhost");
        let url = format!(
            "{}://{host}{}",
            if ssl { "https" } else { "http" },
            req.path
        );
        php::check_signature(
            req.method.as_str(),
            &url,
            &params,
            &self.config.consumer_secret,
        )
        .map_err(|php::Refused(m)| auth_error(&m))?;
        let timestamp: i64 = get("oauth_timestamp")
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        let nonce = get("oauth_nonce").unwrap_or_default().to_string();
        let window = 15 * 60;
        let now = Utc::now().timestamp();
        if timestamp < now - window || timestamp > now + window {
            return Err(auth_error("Invalid timestamp."));
        }
        let mut state = lock(&self.state);
        if state.nonces.values().any(|n| *n == nonce) {
            return Err(auth_error("Invalid nonce - nonce has already been used."));
        }
        state.nonces.insert(timestamp, nonce);
        state.nonces.retain(|t, _| *t >= now - window);
        Ok(true)
    }

    // --- routing --------------------------------------------------------------------

    async fn route(&self, req: Req) -> Resp {
        if let Some(rest) = req.path.strip_prefix("/__admin/") {
            return self.admin(rest, &req).await;
        }
        let Some(rest) = req.path.strip_prefix("/wp-json/wc/v3/") else {
            return wp_error(
                StatusCode::NOT_FOUND,
                "rest_no_route",
                "No route was found matching the URL and request method.",
            )
            .response();
        };
        let single = rest.trim_end_matches('/').split('/').count() > 1;
        if let Err(e) = self.authenticate(&req, single) {
            let r = e.response();
            return if e.code == "woocommerce_rest_authentication_error"
                && req
                    .header("authorization")
                    .is_some_and(|h| h.starts_with("Basic"))
            {
                crate::server::with_header(r, "www-authenticate", "Basic realm=\"WooCommerce API. Use a consumer key in the username field and a consumer secret in the password field\"")
            } else {
                r
            };
        }
        self.api(rest, &req)
    }

    /// The REST API below `/wc/v3/`, as an authenticated user with every capability.
    fn api(&self, rest: &str, req: &Req) -> Resp {
        let segments: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
        let result = match (req.method.clone(), segments.as_slice()) {
            (m, ["webhooks", rest @ ..]) => self.webhooks(m, rest, req),
            (Method::GET, [entity]) => match Kind::from_path(entity) {
                Some(kind) => return self.list(kind, req).unwrap_or_else(|e| e.response()),
                None => Err(no_route()),
            },
            (Method::POST, [entity]) => self
                .with_kind(entity)
                .and_then(|kind| self.create(kind, &body_object(req)?))
                .map(|v| (StatusCode::CREATED, v)),
            (Method::POST | Method::PUT | Method::PATCH, [entity, "batch"]) => self
                .with_kind(entity)
                .and_then(|kind| self.batch(kind, req))
                .map(|v| (StatusCode::OK, v)),
            (Method::GET, ["orders", id, "refunds"]) => {
                return self.refunds(id, req).unwrap_or_else(|e| e.response());
            }
            (Method::POST, ["orders", id, "refunds"]) => body_object(req)
                .and_then(|b| self.refund(id, &b))
                .map(|v| (StatusCode::CREATED, v)),
            (m, [entity, id]) => {
                let kind = match self.with_kind(entity) {
                    Ok(k) => k,
                    Err(e) => return e.response(),
                };
                let id = id.parse::<u64>().unwrap_or(0);
                match m {
                    Method::GET => self.read(kind, id),
                    Method::POST | Method::PUT | Method::PATCH => {
                        body_object(req).and_then(|b| self.update(kind, id, &b))
                    }
                    Method::DELETE => self.delete(kind, id, req.param("force").is_some_and(truthy)),
                    _ => Err(no_route()),
                }
                .map(|v| (StatusCode::OK, v))
            }
            _ => Err(no_route()),
        };
        match result {
            Ok((status, v)) => answer(status, &v),
            Err(e) => e.response(),
        }
    }

    /// An order's refunds, newest first unless `order=asc` (by date or id: a refund's id
    /// grows with its time), paged as every list (`page`, `per_page` 1–100, default 10,
    /// with `X-WP-Total` and `X-WP-TotalPages`).
    fn refunds(&self, order: &str, req: &Req) -> Result<Resp, WpError> {
        let number = |name: &str, max: usize, default: usize| -> Result<usize, WpError> {
            match req.param(name) {
                None => Ok(default),
                Some(v) => match v.trim().parse::<usize>() {
                    Ok(n) if (1..=max).contains(&n) => Ok(n),
                    _ => Err(invalid_param(
                        name,
                        &format!("{name} must be between 1 and {max}."),
                    )),
                },
            }
        };
        let page = number("page", usize::MAX, 1)?;
        let per_page = number("per_page", 100, 10)?;
        let oldest_first = match req.param("order") {
            None | Some("desc") => false,
            Some("asc") => true,
            Some(other) => {
                return Err(invalid_param(
                    "order",
                    &format!("order is not one of asc, desc ('{other}')."),
                ))
            }
        };
        let state = lock(&self.state);
        let order = order
            .parse::<u64>()
            .ok()
            .and_then(|id| state.records.get(Kind::Orders, id))
            .ok_or_else(invalid_order)?;
        let mut all = order.refunds.clone();
        if oldest_first {
            all.reverse();
        }
        let total = all.len();
        let items: Vec<Value> = all
            .into_iter()
            .skip((page - 1).saturating_mul(per_page))
            .take(per_page)
            .collect();
        let mut r = answer(StatusCode::OK, &Value::Array(items));
        r = crate::server::with_header(r, "x-wp-total", &total.to_string());
        r = crate::server::with_header(r, "x-wp-totalpages", &total.div_ceil(per_page).to_string());
        Ok(r)
    }

    /// Refunds (part of) an order.
    fn refund(&self, order: &str, given: &Map<String, Value>) -> Result<Value, WpError> {
        let mut state = lock(&self.state);
        let Some(mut doc) = order
            .parse::<u64>()
            .ok()
            .and_then(|id| state.records.get(Kind::Orders, id))
            .cloned()
        else {
            return Err(invalid_order());
        };
        let id = state.records.next_id(Kind::Orders);
        let at = now();
        let refund = refunds::build(&doc, id, given, at, state.records.local(at)).map_err(
            |(status, code, message)| {
                wp_error(
                    StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
                    code,
                    message,
                )
            },
        )?;
        refunds::add(&mut doc, refund.clone());
        doc.modified = at;
        let order_id = doc.id;
        state.records.put(Kind::Orders, doc);
        state.webhooks.fire(Kind::Orders, "updated", order_id);
        self.wake.notify_one();
        Ok(refund)
    }

    fn with_kind(&self, entity: &str) -> Result<Kind, WpError> {
        Kind::from_path(entity).ok_or_else(no_route)
    }

    // --- lists ----------------------------------------------------------------------

    fn list_query(&self, kind: Kind, req: &Req) -> Result<ListQuery, WpError> {
        let number =
            |name: &str, min: usize, max: usize, default: usize| -> Result<usize, WpError> {
                match req.param(name) {
                    None => Ok(default),
                    Some(v) => match v.trim().parse::<usize>() {
                        Ok(n) if n >= min && n <= max => Ok(n),
                        Ok(_) if max == usize::MAX => Err(invalid_param(
                            name,
                            &format!("{name} must be greater than or equal to {min}"),
                        )),
                        Ok(_) => Err(invalid_param(
                            name,
                            &format!(
                                "{name} must be between {min} (inclusive) and {max} (inclusive)"
                            ),
                        )),
                        Err(_) => Err(invalid_param(
                            name,
                            &format!("{name} is not of type integer."),
                        )),
                    },
                }
            };
        let ids = |name: &str| -> Result<Vec<u64>, WpError> {
            req.params(name)
                .iter()
                .flat_map(|v| v.split(','))
                .filter(|v| !v.trim().is_empty())
                .map(|v| {
                    v.trim().parse::<u64>().map_err(|_| {
                        invalid_param(name, &format!("{name}[0] is not of type integer."))
                    })
                })
                .collect()
        };
        let gmt = req.param("dates_are_gmt").is_some_and(truthy);
        let records = &lock(&self.state).records;
        let date = |name: &str| -> Result<Option<DateTime<Utc>>, WpError> {
            if kind == Kind::Customers {
                return Ok(None);
            }
            match req.param(name) {
                None => Ok(None),
                Some(v) => records
                    .date_param(v, gmt)
                    .map(Some)
                    .ok_or_else(|| invalid_param(name, "Invalid date.")),
            }
        };
        let order = match req.param("order") {
            None => kind == Kind::Customers,
            Some("asc") => true,
            Some("desc") => false,
            Some(_) => return Err(invalid_param("order", "order is not one of asc and desc.")),
        };
        let orderbys: &[&str] = if kind == Kind::Customers {
            &["id", "include", "name", "registered_date"]
        } else {
            &["date", "id", "include", "title", "slug", "modified"]
        };
        let orderby = req
            .param("orderby")
            .unwrap_or(if kind == Kind::Customers {
                "name"
            } else {
                "date"
            })
            .to_string();
        if !orderbys.contains(&orderby.as_str()) {
            return Err(invalid_param(
                "orderby",
                &format!("orderby is not one of {}.", orderbys.join(", ")),
            ));
        }
        let statuses: &[&str] = match kind {
            Kind::Orders => &[
                "any",
                "trash",
                "pending",
                "processing",
                "on-hold",
                "completed",
                "cancelled",
                "refunded",
                "failed",
                "checkout-draft",
            ],
            Kind::Products => &[
                "any", "future", "trash", "draft", "pending", "private", "publish",
            ],
            Kind::Customers => &[],
        };
        let status: Vec<String> = req
            .params("status")
            .iter()
            .flat_map(|v| v.split(','))
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if let Some(bad) = status.iter().find(|s| !statuses.contains(&s.as_str())) {
            return Err(invalid_param(
                "status",
                &format!("status[0] is not one of {} ('{bad}').", statuses.join(", ")),
            ));
        }
        let offset = match req.param("offset") {
            Some(_) => Some(number("offset", 0, usize::MAX, 0)?),
            None => None,
        };
        Ok(ListQuery {
            page: number("page", 1, usize::MAX, 1)?,
            per_page: number("per_page", 1, 100, 10)?,
            offset,
            desc: !order,
            orderby,
            include: ids("include")?,
            exclude: ids("exclude")?,
            status: if kind == Kind::Customers {
                Vec::new()
            } else {
                status
            },
            modified_after: date("modified_after")?,
            modified_before: date("modified_before")?,
            after: date("after")?,
            before: date("before")?,
            skus: req
                .param("sku")
                .map(|s| {
                    s.split(',')
                        .map(|x| x.trim().to_string())
                        .filter(|x| !x.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            email: req.param("email").map(str::to_string),
            role: req.param("role").map(str::to_string),
            search: req
                .param("search")
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            customer: req.param("customer").and_then(|c| c.parse().ok()),
        })
    }

    fn list(&self, kind: Kind, req: &Req) -> Result<Resp, WpError> {
        let q = self.list_query(kind, req)?;
        let home = self.home();
        let (items, total) = {
            let state = lock(&self.state);
            let (docs, total) = state.records.list(kind, &q);
            let items: Vec<Value> = docs
                .into_iter()
                .map(|d| state.records.render(kind, d, &home))
                .collect();
            (items, total)
        };
        let pages = total.div_ceil(q.per_page);
        let mut r = answer(StatusCode::OK, &Value::Array(items));
        r = crate::server::with_header(r, "x-wp-total", &total.to_string());
        r = crate::server::with_header(r, "x-wp-totalpages", &pages.to_string());
        let link = |page: usize| {
            let mut params: Vec<String> = req
                .query
                .iter()
                .filter(|(k, _)| k != "page" && !k.starts_with("oauth_"))
                .map(|(k, v)| format!("{}={}", php::rawurlencode(k), php::rawurlencode(v)))
                .collect();
            params.push(format!("page={page}"));
            format!("<{home}{}?{}>", req.path, params.join("&"))
        };
        let mut links = Vec::new();
        if q.page > 1 {
            links.push(format!(
                "{}; rel=\"prev\"",
                link((q.page - 1).min(pages.max(1)))
            ));
        }
        if q.page < pages {
            links.push(format!("{}; rel=\"next\"", link(q.page + 1)));
        }
        if !links.is_empty() {
            r = crate::server::with_header(r, "link", &links.join(", "));
        }
        Ok(r)
    }

    // --- records --------------------------------------------------------------------

    fn read(&self, kind: Kind, id: u64) -> Result<Value, WpError> {
        let state = lock(&self.state);
        let doc = state.records.get(kind, id).ok_or_else(|| missing(kind))?;
        Ok(state.records.render(kind, doc, &self.home()))
    }

    /// Checks fields given for a record, as the REST schema and the data stores do.
    fn check(
        &self,
        records: &Records,
        kind: Kind,
        id: Option<u64>,
        f: &Map<String, Value>,
    ) -> Result<(), WpError> {
        match kind {
            Kind::Products => {
                for name in [
                    "name",
                    "sku",
                    "regular_price",
                    "sale_price",
                    "description",
                    "status",
                ] {
                    string_or_absent(f, name)?;
                }
                for name in ["regular_price", "sale_price"] {
                    if f.get(name)
                        .and_then(Value::as_str)
                        .is_some_and(|p| !is_money(p))
                    {
                        return Err(invalid_param(
                            name,
                            &format!("{name} is not a valid price."),
                        ));
                    }
                }
                if let Some(status) = f.get("status").and_then(Value::as_str) {
                    if !["draft", "pending", "private", "publish", "future"].contains(&status) {
                        return Err(invalid_param(
                            "status",
                            "status is not one of draft, pending, private, publish and future.",
                        ));
                    }
                }
                match f.get("stock_quantity") {
                    None | Some(Value::Null) => {}
                    Some(v) if v.is_i64() => {}
                    Some(_) => {
                        return Err(invalid_param(
                            "stock_quantity",
                            "stock_quantity is not of type integer.",
                        ))
                    }
                }
                if let Some(sku) = f
                    .get("sku")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                {
                    if records
                        .product_by_sku(sku)
                        .is_some_and(|d| Some(d.id) != id)
                    {
                        return Err(wp_error(
                            StatusCode::BAD_REQUEST,
                            "product_invalid_sku",
                            "Invalid or duplicated SKU.",
                        ));
                    }
                }
            }
            Kind::Customers => {
                for name in ["email", "first_name", "last_name"] {
                    string_or_absent(f, name)?;
                }
                match f.get("email").and_then(Value::as_str) {
                    Some(email) => {
                        let valid = email
                            .split_once('@')
                            .is_some_and(|(a, b)| !a.is_empty() && b.contains('.'));
                        if !valid {
                            return Err(wp_error(
                                StatusCode::BAD_REQUEST,
                                "registration-error-invalid-email",
                                "Please provide a valid email address.",
                            ));
                        }
                        if records
                            .customer_by_email(email)
                            .is_some_and(|d| Some(d.id) != id)
                        {
                            return Err(wp_error(StatusCode::BAD_REQUEST, "registration-error-email-exists", "An account is already registered with your email address. <a href=\"#\" class=\"showlogin\">Please log in.</a>"));
                        }
                    }
                    None if id.is_none() => {
                        return Err(wp_error(
                            StatusCode::BAD_REQUEST,
                            "rest_missing_callback_param",
                            "Missing parameter(s): email",
                        ));
                    }
                    None => {}
                }
            }
            Kind::Orders => {
                for name in ["status", "currency", "total"] {
                    string_or_absent(f, name)?;
                }
            }
        }
        Ok(())
    }

    /// Fields derived on save: a product's active price, an order's number and totals.
    fn derive(kind: Kind, id: u64, fields: &mut Map<String, Value>) {
        match kind {
            Kind::Products => {
                let regular = fields
                    .get("regular_price")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let sale = fields
                    .get("sale_price")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let on_sale = !sale.is_empty();
                fields.insert("price".into(), json!(if on_sale { sale } else { regular }));
                fields.insert("on_sale".into(), json!(on_sale));
                if fields.get("manage_stock") != Some(&json!(true)) {
                    fields.insert("stock_quantity".into(), Value::Null);
                }
            }
            Kind::Orders => {
                fields
                    .entry("number")
                    .or_insert_with(|| json!(id.to_string()));
                if !fields.contains_key("total") {
                    let sum: i64 = fields
                        .get("line_items")
                        .and_then(Value::as_array)
                        .map(|l| {
                            l.iter()
                                .map(|x| seed::cents(x["total"].as_str().unwrap_or("0")))
                                .sum()
                        })
                        .unwrap_or(0);
                    fields.insert("total".into(), json!(seed::money(sum)));
                }
            }
            Kind::Customers => {}
        }
    }

    fn defaults(kind: Kind, given: &Map<String, Value>) -> Map<String, Value> {
        match kind {
            Kind::Products => seed::product_fields("", "", 0, None, ""),
            Kind::Customers => {
                let email = given.get("email").and_then(Value::as_str).unwrap_or("");
                let blank = json!({"first_name": "", "last_name": "", "company": "", "address_1": "", "address_2": "", "city": "", "state": "", "postcode": "", "country": "", "phone": ""});
                let mut billing = blank.clone();
                billing["email"] = json!("");
                seed::customer_fields(email, "", "", billing, blank)
            }
            Kind::Orders => {
                let v = json!({
                    "parent_id": 0, "status": "pending", "currency": "CAD", "customer_id": 0,
                    "prices_include_tax": false, "discount_total": "0.00", "shipping_total": "0.00",
                    "total_tax": "0.00", "billing": {}, "shipping": {}, "line_items": [],
                    "shipping_lines": [], "fee_lines": [], "coupon_lines": [], "meta_data": [],
                });
                v.as_object().cloned().unwrap_or_default()
            }
        }
    }

    fn create(&self, kind: Kind, given: &Map<String, Value>) -> Result<Value, WpError> {
        let mut state = lock(&self.state);
        self.check(&state.records, kind, None, given)?;
        let id = state.records.next_id(kind);
        let mut fields = Self::defaults(kind, given);
        merge(&mut fields, given);
        if kind == Kind::Products && !fields.contains_key("slug") {
            let slug = fields
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_lowercase()
                .replace(' ', "-");
            fields.insert("slug".into(), json!(slug));
        }
        Self::derive(kind, id, &mut fields);
        let doc = Doc::new(id, now(), fields);
        let skip = kind == Kind::Orders && matches!(doc.status(), "draft" | "auto-draft" | "new");
        state.records.put(kind, doc);
        if !skip {
            state.webhooks.fire(kind, "created", id);
            self.wake.notify_one();
        }
        let doc = state.records.get(kind, id).ok_or_else(|| missing(kind))?;
        Ok(state.records.render(kind, doc, &self.home()))
    }

    fn update(&self, kind: Kind, id: u64, given: &Map<String, Value>) -> Result<Value, WpError> {
        let mut state = lock(&self.state);
        let Some(mut doc) = state.records.get(kind, id).cloned() else {
            return Err(wp_error(
                StatusCode::BAD_REQUEST,
                kind.invalid_id(),
                "Invalid ID.",
            ));
        };
        self.check(&state.records, kind, Some(id), given)?;
        let was_trash = doc.status() == "trash";
        let was_refunded = doc.status() == "refunded";
        merge(&mut doc.fields, given);
        Self::derive(kind, id, &mut doc.fields);
        doc.modified = now();
        if kind == Kind::Orders
            && doc.status() == "refunded"
            && !was_refunded
            && refunds::left(&doc) > 0
        {
            let refund_id = state.records.next_id(Kind::Orders);
            let local = state.records.local(doc.modified);
            if let Ok(refund) = refunds::build(
                &doc,
                refund_id,
                &refunds::rest_of(&doc),
                doc.modified,
                local,
            ) {
                refunds::add(&mut doc, refund);
            }
        }
        let event = if was_trash && doc.status() != "trash" {
            doc.trashed_from = None;
            "restored"
        } else {
            "updated"
        };
        state.records.put(kind, doc);
        state.webhooks.fire(kind, event, id);
        self.wake.notify_one();
        let doc = state.records.get(kind, id).ok_or_else(|| missing(kind))?;
        Ok(state.records.render(kind, doc, &self.home()))
    }

    fn delete(&self, kind: Kind, id: u64, force: bool) -> Result<Value, WpError> {
        let home = self.home();
        let mut state = lock(&self.state);
        let Some(mut doc) = state.records.get(kind, id).cloned() else {
            return Err(missing(kind));
        };
        if kind == Kind::Customers && !force {
            return Err(wp_error(
                StatusCode::NOT_IMPLEMENTED,
                "woocommerce_rest_trash_not_supported",
                "Customers do not support trashing.",
            ));
        }
        if force {
            let shown = state.records.render(kind, &doc, &home);
            state.records.remove(kind, id);
            // A force-deleted order skips the trash, and `order.deleted` hooks only the trash.
            let fires = match kind {
                Kind::Customers => doc.text("role") == "customer",
                Kind::Products => true,
                Kind::Orders => false,
            };
            if fires {
                state.webhooks.fire(kind, "deleted", id);
                self.wake.notify_one();
            }
            return Ok(shown);
        }
        if doc.status() == "trash" {
            let what = if kind == Kind::Orders {
                "order"
            } else {
                "product"
            };
            return Err(wp_error(
                StatusCode::GONE,
                "woocommerce_rest_already_trashed",
                format!("The {what} has already been deleted."),
            ));
        }
        doc.trashed_from = Some(doc.status().to_string());
        doc.fields.insert("status".into(), json!("trash"));
        doc.modified = now();
        let shown = state.records.render(kind, &doc, &home);
        state.records.put(kind, doc);
        state.webhooks.fire(kind, "deleted", id);
        self.wake.notify_one();
        Ok(shown)
    }

    fn batch(&self, kind: Kind, req: &Req) -> Result<Value, WpError> {
        let body = body_object(req)?;
        let list = |name: &str| {
            body.get(name)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        let (creates, updates, deletes) = (list("create"), list("update"), list("delete"));
        if creates.len() + updates.len() + deletes.len() > 100 {
            return Err(wp_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "woocommerce_rest_request_entity_too_large",
                "Unable to accept more than 100 items for this request.",
            ));
        }
        let item_error = |id: u64, e: WpError| json!({"id": id, "error": {"code": e.code, "message": e.message, "data": {"status": e.status.as_u16()}}});
        let mut out = Map::new();
        if body.contains_key("create") {
            let results: Vec<Value> = creates
                .iter()
                .map(|item| match item.as_object() {
                    Some(fields) => self
                        .create(kind, fields)
                        .unwrap_or_else(|e| item_error(0, e)),
                    None => item_error(
                        0,
                        wp_error(
                            StatusCode::BAD_REQUEST,
                            "rest_invalid_param",
                            "Invalid item.",
                        ),
                    ),
                })
                .collect();
            out.insert("create".into(), Value::Array(results));
        }
        if body.contains_key("update") {
            let results: Vec<Value> = updates
                .iter()
                .map(|item| {
                    let id = item
                        .get("id")
                        .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
                        .unwrap_or(0);
                    match item.as_object() {
                        Some(fields) if id > 0 => self
                            .update(kind, id, fields)
                            .unwrap_or_else(|e| item_error(id, e)),
                        _ => item_error(
                            id,
                            wp_error(StatusCode::BAD_REQUEST, kind.invalid_id(), "Invalid ID."),
                        ),
                    }
                })
                .collect();
            out.insert("update".into(), Value::Array(results));
        }
        if body.contains_key("delete") {
            let results: Vec<Value> = deletes
                .iter()
                .map(|v| {
                    let id = v.as_u64().or_else(|| v.as_str()?.parse().ok()).unwrap_or(0);
                    self.delete(kind, id, true)
                        .unwrap_or_else(|e| item_error(id, e))
                })
                .collect();
            out.insert("delete".into(), Value::Array(results));
        }
        Ok(Value::Object(out))
    }

    // --- webhooks -------------------------------------------------------------------

    fn webhooks(
        &self,
        method: Method,
        rest: &[&str],
        req: &Req,
    ) -> Result<(StatusCode, Value), WpError> {
        let home = self.home();
        let edit = req.param("context") == Some("edit");
        match (method, rest) {
            (Method::GET, []) => {
                let state = lock(&self.state);
                let status = req.param("status").unwrap_or("all");
                // Paged as every WordPress list: `per_page` 1-100 (default 10), `page` from 1.
                let number = |name: &str, default: usize, max: usize| match req.param(name) {
                    None => Ok(default),
                    Some(v) => v
                        .trim()
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=max).contains(n))
                        .ok_or_else(|| {
                            invalid_param(name, &format!("{name} must be between 1 and {max}"))
                        }),
                };
                let per_page = number("per_page", 10, 100)?;
                let page = number("page", 1, usize::MAX)?;
                let items: Vec<Value> = state
                    .webhooks
                    .hooks
                    .values()
                    .filter(|h| status == "all" || h.status == status)
                    .skip((page - 1).saturating_mul(per_page))
                    .take(per_page)
                    .map(|h| h.render(&home, edit))
                    .collect();
                Ok((StatusCode::OK, Value::Array(items)))
            }
            (Method::POST, []) => {
                let body = body_object(req)?;
                let hook = self.new_webhook(&body)?;
                let shown = hook.render(&home, edit);
                self.ping(&hook);
                lock(&self.state).webhooks.hooks.insert(hook.id, hook);
                Ok((StatusCode::CREATED, shown))
            }
            (m, [id]) => {
                let id: u64 = id.parse().unwrap_or(0);
                let mut state = lock(&self.state);
                let Some(hook) = state.webhooks.hooks.get_mut(&id) else {
                    return Err(wp_error(
                        StatusCode::NOT_FOUND,
                        "woocommerce_rest_webhook_invalid_id",
                        "Invalid ID.",
                    ));
                };
                match m {
                    Method::GET => Ok((StatusCode::OK, hook.render(&home, edit))),
                    Method::POST | Method::PUT | Method::PATCH => {
                        let body = body_object(req)?;
                        apply_webhook_fields(hook, &body)?;
                        hook.modified = now();
                        Ok((StatusCode::OK, hook.render(&home, edit)))
                    }
                    Method::DELETE => {
                        if !req.param("force").is_some_and(truthy) {
                            return Err(wp_error(
                                StatusCode::NOT_IMPLEMENTED,
                                "woocommerce_rest_trash_not_supported",
                                "Webhooks do not support trashing.",
                            ));
                        }
                        let shown = hook.render(&home, edit);
                        state.webhooks.hooks.remove(&id);
                        Ok((StatusCode::OK, shown))
                    }
                    _ => Err(no_route()),
                }
            }
            _ => Err(no_route()),
        }
    }

    fn new_webhook(&self, body: &Map<String, Value>) -> Result<Webhook, WpError> {
        let at = now();
        let mut hook = Webhook {
            id: 0,
            name: String::new(),
            status: "active".into(),
            topic: String::new(),
            delivery_url: String::new(),
            // `wp_generate_password(50, true, true)` when none is given.
            secret: crate::server::random_text(50),
            failure_count: 0,
            created: at,
            modified: at,
        };
        if !body
            .get("topic")
            .and_then(Value::as_str)
            .is_some_and(webhooks::valid_topic)
        {
            return Err(wp_error(
                StatusCode::BAD_REQUEST,
                "woocommerce_rest_webhook_invalid_topic",
                "Webhook topic is required and must be valid.",
            ));
        }
        if body
            .get("delivery_url")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(wp_error(
                StatusCode::BAD_REQUEST,
                "woocommerce_rest_webhook_invalid_delivery_url",
                "Webhook delivery URL must be a valid URL starting with http:// or https://.",
            ));
        }
        apply_webhook_fields(&mut hook, body)?;
        if hook.name.is_empty() {
            hook.name = format!("Webhook created on {}", at.format("%B %-d, %Y @ %-I:%M %p"));
        }
        hook.id = lock(&self.state).webhooks.next_id();
        Ok(hook)
    }

    /// `deliver_ping`: `webhook_id=N`, form-encoded, unsigned; the answer is ignored.
    fn ping(&self, hook: &Webhook) {
        let http = self.http.clone();
        let url = hook.delivery_url.clone();
        let body = format!("webhook_id={}", hook.id);
        tokio::spawn(async move {
            let _ = http
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .timeout(Duration::from_secs(10))
                .body(body)
                .send()
                .await;
        });
    }

    /// The secrets of the store's webhooks.
    pub fn webhook_secrets(&self) -> Vec<String> {
        lock(&self.state)
            .webhooks
            .hooks
            .values()
            .map(|h| h.secret.clone())
            .collect()
    }

    /// The signatures of the deliveries made (the latest 2,000).
    pub fn delivered_signatures(&self) -> Vec<String> {
        lock(&self.state)
            .webhooks
            .log
            .iter()
            .map(|d| d.signature.clone())
            .collect()
    }

    /// Sends every queued delivery now; returns how many were tried.
    pub async fn deliver_now(&self) -> usize {
        let pending = lock(&self.state).webhooks.take();
        let n = pending.len();
        for p in pending {
            self.deliver(p).await;
        }
        n
    }

    async fn deliver(&self, p: Pending) {
        let home = self.home();
        let prepared = {
            let state = lock(&self.state);
            let Some(hook) = state.webhooks.hooks.get(&p.webhook).cloned() else {
                return;
            };
            if hook.status != "active" {
                return;
            }
            // Built now, from the record as it is now.
            let payload = if hook.event() == "deleted" {
                Some(json!({"id": p.resource}))
            } else {
                state
                    .records
                    .get(p.kind, p.resource)
                    .map(|d| state.records.render(p.kind, d, &home))
            };
            payload.map(|payload| (hook, php::json_encode(&payload)))
        };
        let Some((hook, body)) = prepared else {
            return;
        };
        let at = Utc::now();
        let signed = signature(&hook.secret, body.as_bytes());
        let result = self
            .http
            .post(&hook.delivery_url)
            .timeout(self.config.delivery_timeout)
            .header("content-type", "application/json")
            .header("x-wc-webhook-source", format!("{home}/"))
            .header("x-wc-webhook-topic", &hook.topic)
            .header("x-wc-webhook-resource", hook.resource())
            .header("x-wc-webhook-event", hook.event())
            .header("x-wc-webhook-signature", &signed)
            .header("x-wc-webhook-id", hook.id.to_string())
            .header(
                "x-wc-webhook-delivery-id",
                webhooks::delivery_id(hook.id, at),
            )
            .body(body)
            .send()
            .await;
        let status = result.as_ref().map_or(0, |r| r.status().as_u16());
        lock(&self.state).webhooks.settle(Delivered {
            webhook_id: hook.id,
            topic: hook.topic.clone(),
            resource_id: p.resource,
            delivery_url: hook.delivery_url.clone(),
            status,
            ok: (200..303).contains(&status),
            at: at.to_rfc3339(),
            signature: signed,
        });
    }

    // --- admin ----------------------------------------------------------------------

    async fn admin(&self, rest: &str, req: &Req) -> Resp {
        let ok = |v: Value| answer(StatusCode::OK, &v);
        match (req.method.as_str(), rest) {
            ("POST", "seed") => {
                let seed: Seed = if req.body.is_empty() {
                    Seed::default()
                } else {
                    match serde_json::from_slice(&req.body) {
                        Ok(s) => s,
                        Err(e) => {
                            return wp_error(
                                StatusCode::BAD_REQUEST,
                                "rest_invalid_json",
                                e.to_string(),
                            )
                            .response()
                        }
                    }
                };
                let mut state = lock(&self.state);
                seed::fill(&mut state.records, &seed, now());
                ok(self.counts(&state))
            }
            ("POST", "reset") => {
                let mut state = lock(&self.state);
                state.records.clear();
                state.webhooks.clear();
                ok(self.counts(&state))
            }
            ("GET", "state") => ok(self.counts(&lock(&self.state))),
            ("POST", r) if r.starts_with("touch/") => {
                let Some(kind) = Kind::from_path(&r["touch/".len()..]) else {
                    return no_route().response();
                };
                let body = serde_json::from_slice::<Value>(&req.body).unwrap_or_default();
                let set = body["set"].as_object().cloned().unwrap_or_default();
                // (`at`: when the shop says they changed, as when a plugin's batch job
                // wrote them a while ago; now if not given.)
                let at = body["at"]
                    .as_str()
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .map_or_else(now, |t| t.with_timezone(&Utc));
                let touched = lock(&self.state).records.touch_all(kind, &set, at);
                ok(json!({ "touched": touched }))
            }
            ("POST", "zone") => {
                let zone = serde_json::from_slice::<Value>(&req.body)
                    .ok()
                    .and_then(|v| v["zone"].as_str()?.parse::<Tz>().ok());
                match zone {
                    Some(zone) => {
                        lock(&self.state).records.zone = zone;
                        ok(json!({ "zone": zone.name() }))
                    }
                    None => wp_error(
                        StatusCode::BAD_REQUEST,
                        "rest_invalid_param",
                        "zone must be an IANA time zone",
                    )
                    .response(),
                }
            }
            ("POST", "ties") => {
                let newest_first = serde_json::from_slice::<Value>(&req.body)
                    .ok()
                    .and_then(|v| v["newest_id_first"].as_bool())
                    .unwrap_or(false);
                lock(&self.state).records.ties_newest_first = newest_first;
                ok(json!({ "newest_id_first": newest_first }))
            }
            ("GET", "deliveries") => ok(json!(lock(&self.state).webhooks.log)),
            ("POST", "deliver") => ok(json!({"delivered": self.deliver_now().await})),
            (_, r) if r.starts_with("wc/v3/") => self.api(&r["wc/v3/".len()..], req),
            ("PATCH", r) if r.starts_with("raw/") => self
                .raw(&r["raw/".len()..], req)
                .unwrap_or_else(|e| e.response()),
            _ => no_route().response(),
        }
    }

    /// Stores fields as given, unchecked (a record a plugin wrote badly).
    fn raw(&self, rest: &str, req: &Req) -> Result<Resp, WpError> {
        let (entity, id) = rest.split_once('/').ok_or_else(no_route)?;
        let kind = self.with_kind(entity)?;
        let id: u64 = id.parse().unwrap_or(0);
        let given = body_object(req)?;
        let mut state = lock(&self.state);
        let mut doc = state
            .records
            .get(kind, id)
            .cloned()
            .ok_or_else(|| missing(kind))?;
        for (k, v) in given {
            doc.fields.insert(k, v);
        }
        doc.modified = now();
        state.records.put(kind, doc);
        state.webhooks.fire(kind, "updated", id);
        self.wake.notify_one();
        let doc = state.records.get(kind, id).ok_or_else(|| missing(kind))?;
        Ok(answer(
            StatusCode::OK,
            &state.records.render(kind, doc, &self.home()),
        ))
    }

    fn counts(&self, state: &State) -> Value {
        json!({
            "orders": state.records.count(Kind::Orders),
            "products": state.records.count(Kind::Products),
            "customers": state.records.count(Kind::Customers),
            "webhooks": state.webhooks.hooks.len(),
            "deliveries_waiting": state.webhooks.waiting(),
        })
    }
}

fn apply_webhook_fields(hook: &mut Webhook, body: &Map<String, Value>) -> Result<(), WpError> {
    if let Some(topic) = body.get("topic").and_then(Value::as_str) {
        if !webhooks::valid_topic(topic) {
            return Err(wp_error(
                StatusCode::BAD_REQUEST,
                "woocommerce_rest_webhook_invalid_topic",
                "Webhook topic is required and must be valid.",
            ));
        }
        hook.topic = topic.to_string();
    }
    if let Some(url) = body.get("delivery_url").and_then(Value::as_str) {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(invalid_param("delivery_url", "Invalid URL."));
        }
        hook.delivery_url = url.to_string();
    }
    if let Some(name) = body.get("name").and_then(Value::as_str) {
        hook.name = name.to_string();
    }
    if let Some(secret) = body
        .get("secret")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        hook.secret = secret.to_string();
    }
    if let Some(status) = body.get("status").and_then(Value::as_str) {
        if !["active", "paused", "disabled"].contains(&status) {
            return Err(invalid_param(
                "status",
                "status is not one of active, paused and disabled.",
            ));
        }
        hook.status = status.to_string();
        if status == "active" {
            hook.failure_count = 0;
        }
    }
    Ok(())
}

/// A boolean parameter as WordPress reads one (`rest_sanitize_boolean`): `false`, `0` and
/// the empty string in any case are false, anything else true (Python clients send `True`).
fn truthy(v: &str) -> bool {
    !matches!(v.trim().to_ascii_lowercase().as_str(), "false" | "0" | "")
}

fn no_route() -> WpError {
    wp_error(
        StatusCode::NOT_FOUND,
        "rest_no_route",
        "No route was found matching the URL and request method.",
    )
}

fn invalid_order() -> WpError {
    wp_error(
        StatusCode::NOT_FOUND,
        "woocommerce_rest_order_invalid_id",
        "Invalid order ID.",
    )
}

fn missing(kind: Kind) -> WpError {
    let message = if kind == Kind::Customers {
        "Invalid resource ID."
    } else {
        "Invalid ID."
    };
    wp_error(StatusCode::NOT_FOUND, kind.invalid_id(), message)
}

/// The JSON object a write sends (WordPress also takes form fields; clients send JSON).
fn body_object(req: &Req) -> Result<Map<String, Value>, WpError> {
    if req.body.is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(&req.body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(wp_error(
            StatusCode::BAD_REQUEST,
            "rest_invalid_json",
            "Invalid JSON body passed.",
        )),
        Err(_) => Err(wp_error(
            StatusCode::BAD_REQUEST,
            "rest_invalid_json",
            "Invalid JSON body passed.",
        )),
    }
}

/// Sends queued deliveries a little after the changes that queued them.
async fn send_webhooks(store: Arc<WooStore>) {
    loop {
        store.wake.notified().await;
        tokio::time::sleep(store.config.delivery_delay).await;
        store.deliver_now().await;
    }
}

impl Handler for WooStore {
    fn faults(&self) -> &Faults {
        &self.faults
    }

    fn handle(&self, req: Req) -> Pin<Box<dyn Future<Output = Resp> + Send + '_>> {
        Box::pin(self.route(req))
    }
}
