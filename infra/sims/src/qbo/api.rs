//! The accounting API under `/v3/company/{realmId}/…` (`platforms.md` §2.1–§2.13):
//!
//! - `GET|POST query` (the statement as `?query=` or as an `application/text` body),
//!   `GET cdc?entities=…&changedSince=…` (within 30 days, at most 1,000 objects),
//!   `GET {entity}/{id}`, `POST {entity}` (create, or update when the body has an `Id`;
//!   `?operation=delete|void`), `POST batch` (at most 30 items, run in order, each fault
//!   inside the HTTP 200).
//! - A bearer access token for the path's realm (else `401 AuthenticationFault`, or `403`
//!   for another company's token).
//! - `?requestid=` (≤ 50 characters, ≤ 36 on batch): the same id again answers the first
//!   answer and does nothing.
//! - Throttling per realm: `429` when more than `concurrent` (10) requests are in flight or
//!   `per_minute` (500) were admitted in the last minute; the highest concurrency and the most
//!   calls admitted in a minute are kept for tests to check (new `limits` start a new minute).
//! - Webhooks: each change is sent, signed with the registered verifier token, to every
//!   registered URL, classic or CloudEvents; a delivery that fails is retried, in order,
//!   before anything newer (Intuit's head-of-line rule).
//!
//! Admin (`/__admin/qbo/…`): `stats` (+ `/reset`), `limits`, `faults-in-200` (the next
//! writes answer a `SystemFault` inside a 200 and commit nothing), `refuse-queries`
//! (`{"containing", "count"}`: the next queries whose text holds it answer a 400
//! `QueryValidationError`, as Intuit does for a filter it does not support; a negative count
//! refuses every one, 0 stops), `lose-responses` (the next
//! writes commit, then the connection drops), `concurrent-edits` (the next updates find the
//! entity just saved by someone else: 5010), `webhooks` (register a URL, verifier and
//! format), `entities/{Entity}` (GET every one, deleted included; POST to change one as a
//! user would in QuickBooks' screens, which sends webhooks), `void/{Entity}` (POST `{"Id"}`:
//! the user voids a transaction; a voided payment's invoices owe again).

use chrono::{DateTime, Duration, Utc};
use hyper::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use super::company::{entity_name, stamp, Change, Company, Fault, WRITABLE};
use super::{query, QuickBooks};
use crate::server::{json_response, lock, Req, Resp};

/// Throttling and speed, settable with `POST /__admin/qbo/limits`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Limits {
    pub concurrent: usize,
    pub per_minute: usize,
    /// How long each accounting call takes.
    pub latency_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            concurrent: 10,
            per_minute: 500,
            latency_ms: 0,
        }
    }
}

/// A registered webhook endpoint.
#[derive(Debug, Clone, Deserialize)]
pub struct Hook {
    pub url: String,
    pub verifier: String,
    /// `classic` (default) or `cloudevents`.
    #[serde(default)]
    pub format: String,
    #[serde(skip)]
    queue: VecDeque<Change>,
}

#[derive(Default)]
struct Stats {
    max_in_flight: usize,
    /// The most calls at once, those refused with 429 included.
    max_attempted: usize,
    /// The most calls admitted in any 60 seconds.
    max_per_minute: usize,
    throttled: u64,
    replays: u64,
    calls: HashMap<String, u64>,
    deliveries: u64,
    failed_deliveries: u64,
    concurrent_edits: u64,
}

/// The company's books and everything around them.
pub struct Books {
    company: std::sync::Mutex<Company>,
    answers: std::sync::Mutex<HashMap<String, (u16, Value)>>,
    limits: std::sync::Mutex<Limits>,
    in_flight: AtomicUsize,
    admitted: std::sync::Mutex<VecDeque<Instant>>,
    stats: std::sync::Mutex<Stats>,
    faults_in_200: std::sync::Mutex<u32>,
    /// Queries whose text holds this are refused (the count left; negative: every one).
    refused_queries: std::sync::Mutex<Option<(String, i64)>>,
    lose: std::sync::Mutex<u32>,
    /// The next this many updates find the entity just changed by someone else.
    concurrent_edits: std::sync::Mutex<u32>,
    hooks: std::sync::Mutex<Vec<Hook>>,
    /// Changes already queued to the hooks.
    seen_changes: std::sync::Mutex<usize>,
}

impl Default for Books {
    fn default() -> Self {
        Self {
            company: std::sync::Mutex::new(Company::new()),
            answers: Default::default(),
            limits: Default::default(),
            in_flight: AtomicUsize::new(0),
            admitted: Default::default(),
            stats: Default::default(),
            faults_in_200: Default::default(),
            refused_queries: Default::default(),
            lose: Default::default(),
            concurrent_edits: Default::default(),
            hooks: Default::default(),
            seen_changes: Default::default(),
        }
    }
}

/// The answer with a header that makes the server drop the connection instead of sending
/// it (the change is committed, the caller never hears so).
pub const DROP_MARKER: &str = "x-simulator-drop";

fn answer(status: u16, body: &Value) -> Resp {
    json_response(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        body,
    )
}

fn fault(f: &Fault) -> Resp {
    answer(f.status, &f.body())
}

struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// An error inside HTTP 200, as QuickBooks sends when the service failed part-way.
fn system_fault() -> Fault {
    Fault {
        status: 200,
        kind: "SystemFault",
        code: "10000".into(),
        message: "An application error has occurred while processing your request".into(),
        detail: "System Failure Error: An unexpected error occurred while accessing or saving your data. Please wait a few minutes and try again.".into(),
    }
}

impl Books {
    fn count(&self, kind: &str) {
        *lock(&self.stats).calls.entry(kind.to_string()).or_default() += 1;
    }

    /// Admits a call or answers 429.
    fn admit(&self) -> Result<InFlight<'_>, Resp> {
        let limits = lock(&self.limits).clone();
        let now = Instant::now();
        let throttled = || {
            answer(
                429,
                &json!({"Fault": {"Error": [{"Message": "message=ThrottleExceeded; errorCode=003001; statusCode=429", "Detail": "The request limit was reached.", "code": "3001"}], "type": "ThrottlingFault"}, "time": stamp(Utc::now())}),
            )
        };
        {
            let mut admitted = lock(&self.admitted);
            while admitted
                .front()
                .is_some_and(|t| now.duration_since(*t).as_secs() >= 60)
            {
                admitted.pop_front();
            }
            if admitted.len() >= limits.per_minute {
                lock(&self.stats).throttled += 1;
                return Err(throttled());
            }
            let running = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            {
                let mut stats = lock(&self.stats);
                stats.max_attempted = stats.max_attempted.max(running);
            }
            if running > limits.concurrent {
                self.in_flight.fetch_sub(1, Ordering::SeqCst);
                lock(&self.stats).throttled += 1;
                return Err(throttled());
            }
            admitted.push_back(now);
            let mut stats = lock(&self.stats);
            stats.max_in_flight = stats.max_in_flight.max(running);
            stats.max_per_minute = stats.max_per_minute.max(admitted.len());
        }
        Ok(InFlight(&self.in_flight))
    }

    /// Whether this query is one `refuse-queries` asked to refuse (and counts it).
    fn refuses(&self, text: &str) -> bool {
        let mut refused = lock(&self.refused_queries);
        let Some((holding, left)) = refused.as_mut() else {
            return false;
        };
        if !text.contains(holding.as_str()) {
            return false;
        }
        if *left > 0 {
            *left -= 1;
            if *left == 0 {
                *refused = None;
            }
        }
        true
    }

    fn take_one(counter: &std::sync::Mutex<u32>) -> bool {
        let mut n = lock(counter);
        if *n > 0 {
            *n -= 1;
            true
        } else {
            false
        }
    }

    /// One write (create, update, delete or void) of `entity` with `body`.
    fn write(&self, entity: &'static str, operation: &str, body: Value) -> Result<Value, Fault> {
        if !WRITABLE.contains(&entity) {
            return Err(Fault::validation(
                "2500",
                "Invalid Reference Id",
                format!("{entity} cannot be written through this API"),
            ));
        }
        if Self::take_one(&self.faults_in_200) {
            return Err(system_fault());
        }
        let now = Utc::now();
        let mut company = lock(&self.company);
        if operation != "delete"
            && operation != "void"
            && body.get("Id").is_some()
            && Self::take_one(&self.concurrent_edits)
        {
            // A bookkeeper saves the same entity a moment before this update lands.
            let edit = json!({"Id": body["Id"], "PrivateNote": "edited in QuickBooks"});
            if let Err(f) = company.edit(entity, edit, now) {
                tracing::warn!(fault = ?f, "concurrent edit failed");
            }
            lock(&self.stats).concurrent_edits += 1;
        }
        let stored = match operation {
            "delete" => company.delete(entity, body, now)?,
            "void" => company.void(entity, body, now)?,
            _ if body.get("Id").is_some() => company.update(entity, body, now)?,
            _ => company.create(entity, body, now)?,
        };
        self.count(&format!("{operation} {entity}"));
        Ok(json!({ entity: stored, "time": stamp(now) }))
    }

    fn query_text(&self, text: &str) -> Result<Value, Fault> {
        if self.refuses(text) {
            return Err(Fault::validation(
                "4001",
                "Invalid query",
                "QueryValidationError: the query is not supported".to_string(),
            ));
        }
        let q = query::parse(text).map_err(|e| {
            Fault::validation(
                "4000",
                "Error parsing query",
                format!("QueryParserError: {e}"),
            )
        })?;
        self.count(&format!("query {}", q.entity));
        lock(&self.company).query(&q)
    }

    fn cdc(&self, req: &Req) -> Result<Value, Fault> {
        let mut entities = Vec::new();
        for name in req.param("entities").unwrap_or_default().split(',') {
            let e = entity_name(name.trim()).ok_or_else(|| {
                Fault::validation(
                    "2170",
                    "Invalid Enumeration",
                    format!("unknown entity {name}"),
                )
            })?;
            entities.push(e);
        }
        let since = req
            .param("changedSince")
            .and_then(query::parse_time)
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| {
                Fault::validation(
                    "2020",
                    "Required param missing, need to supply the required value for the API",
                    "changedSince is missing or not a date",
                )
            })?;
        if since < Utc::now() - Duration::days(30) {
            return Err(Fault::validation(
                "4001",
                "Invalid query",
                "changedSince must be within the last 30 days",
            ));
        }
        self.count("cdc");
        Ok(lock(&self.company).cdc(&entities, since, 1000))
    }

    fn batch(&self, body: &Value) -> Result<Value, Fault> {
        let items = body["BatchItemRequest"].as_array().ok_or_else(|| {
            Fault::validation(
                "2010",
                "Request has invalid or unsupported property",
                "BatchItemRequest is missing",
            )
        })?;
        if items.len() > 30 {
            return Err(Fault::validation(
                "6000",
                "A business validation error has occurred",
                "A batch request holds at most 30 items",
            ));
        }
        self.count("batch");
        let mut out = Vec::new();
        for item in items {
            let bid = item["bId"].clone();
            let result = if let Some(q) = item["Query"].as_str() {
                self.query_text(q)
                    .map(|v| json!({"QueryResponse": v["QueryResponse"]}))
            } else {
                let found = item.as_object().and_then(|o| {
                    o.iter().find_map(|(k, v)| {
                        entity_name(k).filter(|e| *e == k).map(|e| (e, v.clone()))
                    })
                });
                match found {
                    Some((entity, payload)) => {
                        let op = item["operation"].as_str().unwrap_or("create");
                        self.write(entity, op, payload).map(|mut v| {
                            v.as_object_mut().map(|o| o.remove("time"));
                            v
                        })
                    }
                    None => Err(Fault::validation(
                        "2010",
                        "Request has invalid or unsupported property",
                        "a batch item names no entity",
                    )),
                }
            };
            let mut entry = match result {
                Ok(v) => v,
                Err(f) => json!({"Fault": f.body()["Fault"]}),
            };
            entry["bId"] = bid;
            out.push(entry);
        }
        Ok(json!({"BatchItemResponse": out, "time": stamp(Utc::now())}))
    }
}

impl QuickBooks {
    /// `/v3/company/{realm}/…`.
    pub(super) async fn accounting(&self, req: &Req) -> Resp {
        let rest = req.path.trim_start_matches("/v3/company/");
        let (realm, tail) = rest.split_once('/').unwrap_or((rest, ""));
        match self.realm_of(req.header("authorization")) {
            None => {
                return fault(&Fault {
                    status: 401,
                    kind: "AuthenticationFault",
                    code: "3200".into(),
                    message: "message=AuthenticationFailed; errorCode=003200; statusCode=401"
                        .into(),
                    detail: "Token expired or revoked".into(),
                })
            }
            Some(r) if r != realm => {
                return fault(&Fault {
                    status: 403,
                    kind: "AuthorizationFault",
                    code: "3100".into(),
                    message:
                        "message=ApplicationAuthorizationFailed; errorCode=003100; statusCode=403"
                            .into(),
                    detail: "The token is not for this company".into(),
                })
            }
            Some(_) => {}
        }
        let books = &self.books;
        let _slot = match books.admit() {
            Ok(slot) => slot,
            Err(r) => return r,
        };
        let latency = lock(&books.limits).latency_ms;
        if latency > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(latency)).await;
        }
        let request_id = req.param("requestid").map(str::to_string);
        let is_write = req.method == Method::POST && !tail.starts_with("query");
        // A batch of queries changes nothing; any other POST may.
        let changes = is_write
            && (tail != "batch"
                || req.json().ok().is_some_and(|b| {
                    b["BatchItemRequest"]
                        .as_array()
                        .is_some_and(|items| items.iter().any(|i| i.get("Query").is_none()))
                }));
        if let Some(id) = request_id.as_ref().filter(|_| is_write) {
            let limit = if tail == "batch" { 36 } else { 50 };
            if id.len() > limit {
                return fault(&Fault::validation(
                    "2010",
                    "Request has invalid or unsupported property",
                    format!("requestid is longer than {limit} characters"),
                ));
            }
            if let Some((status, body)) = lock(&books.answers).get(id).cloned() {
                lock(&books.stats).replays += 1;
                return answer(status, &body);
            }
        }
        let result = match (&req.method, tail) {
            (&Method::GET, "query") => books.query_text(req.param("query").unwrap_or_default()),
            (&Method::POST, "query") => books.query_text(&String::from_utf8_lossy(&req.body)),
            (&Method::GET, "cdc") => books.cdc(req),
            (&Method::POST, "batch") => match req.json() {
                Ok(body) => books.batch(&body),
                Err(e) => Err(Fault::validation(
                    "2010",
                    "Request has invalid or unsupported property",
                    e,
                )),
            },
            (&Method::GET, path) => match path
                .split_once('/')
                .and_then(|(e, id)| Some((entity_name(e)?, id)))
            {
                Some((entity, id)) => {
                    books.count(&format!("read {entity}"));
                    lock(&books.company)
                        .get(entity, id)
                        .map(|v| json!({ entity: v, "time": stamp(Utc::now()) }))
                        .ok_or_else(|| {
                            Fault::validation(
                                "610",
                                "Object Not Found",
                                format!("Object Not Found : {entity} Id={id}"),
                            )
                        })
                }
                None => Err(Fault::validation(
                    "2500",
                    "Invalid Reference Id",
                    format!("unknown path {path}"),
                )),
            },
            (&Method::POST, entity) => match (entity_name(entity), req.json()) {
                (Some(entity), Ok(body)) => {
                    let op = req.param("operation").unwrap_or("write");
                    books.write(entity, op, body)
                }
                (None, _) => Err(Fault::validation(
                    "2500",
                    "Invalid Reference Id",
                    format!("unknown entity {entity}"),
                )),
                (_, Err(e)) => Err(Fault::validation(
                    "2010",
                    "Request has invalid or unsupported property",
                    e,
                )),
            },
            _ => Err(Fault::validation(
                "2500",
                "Invalid Reference Id",
                "unsupported method",
            )),
        };
        let (status, body) = match &result {
            Ok(v) => (200, v.clone()),
            Err(f) => (f.status, f.body()),
        };
        let service_failed = matches!(&result, Err(f) if f.kind == "SystemFault");
        if let Some(id) = request_id.filter(|_| is_write && !service_failed) {
            lock(&books.answers).insert(id, (status, body.clone()));
        }
        self.queue_changes();
        let response = answer(status, &body);
        if changes && !service_failed && Books::take_one(&books.lose) {
            return crate::server::with_header(response, DROP_MARKER, "1");
        }
        response
    }

    /// Moves new changes into every hook's queue.
    fn queue_changes(&self) {
        let books = &self.books;
        let company = lock(&books.company);
        let mut seen = lock(&books.seen_changes);
        let fresh = &company.changes[*seen..];
        for hook in lock(&books.hooks).iter_mut() {
            hook.queue.extend(fresh.iter().cloned());
        }
        *seen = company.changes.len();
    }

    /// Sends what every hook has waiting; returns how many events were delivered.
    pub async fn deliver_webhooks(&self) -> usize {
        self.queue_changes();
        let hooks: Vec<Hook> = lock(&self.books.hooks).clone();
        let mut delivered = 0;
        for (n, hook) in hooks.into_iter().enumerate() {
            if hook.queue.is_empty() {
                continue;
            }
            let events: Vec<Change> = hook.queue.iter().cloned().collect();
            let realm = self.config().realm_id.clone();
            let (body, content_type) = webhook_body(&hook.format, &realm, &events);
            let body = body.to_string();
            let signature = crate::woo::hmac_base64(hook.verifier.as_bytes(), body.as_bytes());
            let ok = self
                .http
                .post(&hook.url)
                .timeout(std::time::Duration::from_secs(10))
                .header("content-type", content_type)
                .header("intuit-signature", signature)
                .body(body)
                .send()
                .await
                .is_ok_and(|r| r.status() == reqwest::StatusCode::OK);
            let mut stats = lock(&self.books.stats);
            if ok {
                stats.deliveries += 1;
                delivered += events.len();
                if let Some(h) = lock(&self.books.hooks).get_mut(n) {
                    h.queue.drain(..events.len().min(h.queue.len()));
                }
            } else {
                stats.failed_deliveries += 1;
            }
        }
        delivered
    }

    pub(super) fn accounting_admin(&self, req: &Req) -> Option<Resp> {
        let books = &self.books;
        let ok = || json_response(StatusCode::OK, &json!({"ok": true}));
        let count = || {
            serde_json::from_slice::<Value>(&req.body)
                .ok()
                .and_then(|v| v["count"].as_u64())
                .unwrap_or(1) as u32
        };
        let path = req.path.strip_prefix("/__admin/qbo/")?;
        Some(match (req.method.clone(), path) {
            (Method::GET, "stats") => {
                let s = lock(&books.stats);
                json_response(
                    StatusCode::OK,
                    &json!({
                        "max_in_flight": s.max_in_flight,
                        "max_attempted": s.max_attempted,
                        "max_per_minute": s.max_per_minute,
                        "throttled": s.throttled,
                        "replays": s.replays,
                        "calls": s.calls,
                        "deliveries": s.deliveries,
                        "concurrent_edits": s.concurrent_edits,
                        "failed_deliveries": s.failed_deliveries,
                    }),
                )
            }
            (Method::POST, "stats/reset") => {
                *lock(&books.stats) = Stats::default();
                ok()
            }
            (Method::POST, "limits") => match serde_json::from_slice::<Limits>(&req.body) {
                Ok(l) => {
                    // New limits start a fresh minute.
                    *lock(&books.limits) = l;
                    lock(&books.admitted).clear();
                    ok()
                }
                Err(e) => {
                    json_response(StatusCode::BAD_REQUEST, &json!({"message": e.to_string()}))
                }
            },
            (Method::POST, "faults-in-200") => {
                *lock(&books.faults_in_200) = count();
                ok()
            }
            (Method::POST, "refuse-queries") => {
                #[derive(Deserialize)]
                struct Refuse {
                    containing: String,
                    #[serde(default = "one")]
                    count: i64,
                }
                fn one() -> i64 {
                    1
                }
                match serde_json::from_slice::<Refuse>(&req.body) {
                    Ok(r) => {
                        *lock(&books.refused_queries) =
                            (r.count != 0).then_some((r.containing, r.count));
                        ok()
                    }
                    Err(e) => {
                        json_response(StatusCode::BAD_REQUEST, &json!({"message": e.to_string()}))
                    }
                }
            }
            (Method::POST, "lose-responses") => {
                *lock(&books.lose) = count();
                ok()
            }
            (Method::POST, "concurrent-edits") => {
                *lock(&books.concurrent_edits) = count();
                ok()
            }
            (Method::POST, "webhooks") => match serde_json::from_slice::<Hook>(&req.body) {
                Ok(hook) => {
                    self.queue_changes();
                    lock(&books.hooks).push(hook);
                    ok()
                }
                Err(e) => {
                    json_response(StatusCode::BAD_REQUEST, &json!({"message": e.to_string()}))
                }
            },
            (Method::GET, p) if p.starts_with("entities/") => {
                match entity_name(&p["entities/".len()..]) {
                    Some(e) => json_response(StatusCode::OK, &json!(lock(&books.company).all(e))),
                    None => {
                        json_response(StatusCode::NOT_FOUND, &json!({"message": "no such entity"}))
                    }
                }
            }
            (Method::POST, p) if p.starts_with("entities/") || p.starts_with("void/") => {
                let (verb, name) = p.split_once('/').unwrap_or_default();
                let result = match (entity_name(name), req.json()) {
                    // The bookkeeper voids a transaction in QuickBooks' own screens.
                    (Some(e), Ok(body)) if verb == "void" => {
                        lock(&books.company).void(e, body, Utc::now())
                    }
                    (Some(e), Ok(body)) => lock(&books.company).edit(e, body, Utc::now()),
                    _ => Err(Fault::validation(
                        "2010",
                        "bad admin edit",
                        "unknown entity or not JSON",
                    )),
                };
                self.queue_changes();
                match result {
                    Ok(v) => json_response(StatusCode::OK, &v),
                    Err(f) => fault(&f),
                }
            }
            _ => return None,
        })
    }
}

/// The body Intuit sends for these changes: classic (one `eventNotifications` entry for the
/// realm) or CloudEvents (one event per change).
fn webhook_body(format: &str, realm: &str, events: &[Change]) -> (Value, &'static str) {
    if format == "cloudevents" {
        let list: Vec<Value> = events
            .iter()
            .map(|c| {
                let past = match c.operation {
                    "Create" => "created",
                    "Delete" => "deleted",
                    "Void" => "voided",
                    "Merge" => "merged",
                    _ => "updated",
                };
                json!({
                    "specversion": "1.0",
                    "id": uuid::Uuid::new_v4().to_string(),
                    "source": "intuit.simulator",
                    "type": format!("qbo.{}.{past}.v1", c.entity.to_lowercase()),
                    "datacontenttype": "application/json",
                    "time": c.at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
                    "intuitentityid": c.id,
                    "intuitaccountid": realm,
                    "data": {},
                })
            })
            .collect();
        (Value::Array(list), "application/cloudevents+json")
    } else {
        let entities: Vec<Value> = events
            .iter()
            .map(|c| json!({"name": c.entity, "id": c.id, "operation": c.operation, "lastUpdated": at_text(c.at)}))
            .collect();
        (
            json!({"eventNotifications": [{"realmId": realm, "dataChangeEvent": {"entities": entities}}]}),
            "application/json",
        )
    }
}

fn at_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
