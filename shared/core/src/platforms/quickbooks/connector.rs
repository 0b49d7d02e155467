//! The QuickBooks connector's way of calling the accounting API (`platforms.md` §2): a
//! bearer token from the [`TokenKeeper`] (a 401 gets one fresh token and one more try),
//! `minorversion=75` on every call, a deterministic `requestid` on every write, faults read
//! from the body whatever the HTTP status (QuickBooks sends some inside a 200), and every call
//! within the company's [`LIMITS`]: 10 at once and 500 a minute from every worker together
//! where the function holds the shared call quota, and this process's share of them in any
//! case (see [`crate::platforms::limits`]). A 429 waits as Intuit asks (60 s) before the retry.
//!
//! Reading is in [`super::source`], writing in [`super::target`].

use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::mapping::Document;
use crate::clock::Clock;
use crate::platforms::fields::{read, Text};
use crate::platforms::http::{encode, unexpected, Caller, Replay};
use crate::platforms::limits::{Limiter, Limits};
use crate::ports::{Connector, HttpRequest, Method, PlatformError, Source, Target};
use crate::service::tokens::TokenKeeper;

/// A company's limits (Intuit throttles beyond 10 calls at once and 500 a minute per app and
/// company): every process together holds to 10 at once and 490 in any minute (seven
/// 10-second windows of 70), one process to 4 at once (room for the others) and 450 a minute.
pub const LIMITS: Limits = Limits {
    platform: "QuickBooks",
    in_flight_here: 4,
    per_minute_here: 450,
    seats: 10,
    window: Duration::from_secs(10),
    per_window: 70,
    grant: 5,
    // A call within a run keeps its seat until the run's deadline; outside any, for as long
    // as an invocation can last.
    seat_lease: Duration::from_secs(900),
};
/// The most items in one batch request (Intuit's limits page recommends at most 30).
pub const BATCH: usize = 30;
/// The minor version every call asks for (lower ones are served as 75 since 2025-08-01).
pub const MINOR_VERSION: &str = "75";

/// How orders become documents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrdersAs {
    /// Paid orders as sales receipts, the others as invoices.
    ByPayment,
    Always(Document),
}

/// How an order's tax reaches its document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaxRule {
    /// WooCommerce's total tax as the document's `TxnTaxDetail.TotalTax`: the document's
    /// total equals the order's.
    OrderTotal,
    /// No tax sent: QuickBooks applies the company's own tax settings.
    Company,
}

/// What the connection says about the books (its config).
#[derive(Clone, Debug)]
pub struct Books {
    pub income_account: Option<String>,
    pub deposit_account: Option<String>,
    pub orders_as: OrdersAs,
    pub tax: TaxRule,
    /// Before the order number in `DocNumber`, for flows made before flows had a prefix of
    /// their own (the company's setting then).
    pub doc_number_prefix: String,
}

/// A fault QuickBooks answered with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    pub status: u16,
    pub kind: String,
    pub code: String,
    pub message: String,
    pub detail: String,
}

/// A fault as QuickBooks writes it: `{"type": …, "Error": [{"Message", "Detail", "code"}]}`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct FaultWire {
    #[serde(rename = "type")]
    kind: Text,
    #[serde(rename = "Error")]
    errors: Vec<ErrorWire>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ErrorWire {
    #[serde(rename = "Message")]
    message: Text,
    #[serde(rename = "Detail")]
    detail: Text,
    code: Text,
}

impl Fault {
    /// The fault's first error (QuickBooks sends one); a fault that does not read is kept
    /// with what is wrong with it as its detail.
    pub fn read(status: u16, fault: &Value) -> Self {
        match read::<FaultWire>(fault, "the fault") {
            Ok(wire) => {
                let error = wire.errors.into_iter().next().unwrap_or_default();
                Fault {
                    status,
                    kind: wire.kind.0,
                    code: error.code.0,
                    message: error.message.0,
                    detail: error.detail.0,
                }
            }
            Err(e) => Fault {
                status,
                kind: String::new(),
                code: String::new(),
                message: "a fault that does not read".into(),
                detail: e,
            },
        }
    }

    /// What a write's answer that does not read stands for (the record fails; it is not
    /// worth another try on the spot).
    pub fn unreadable(what: &str) -> Self {
        Fault {
            status: 200,
            kind: String::new(),
            code: String::new(),
            message: "an answer that does not read".into(),
            detail: format!("QuickBooks answered a write of {what} without the {what}"),
        }
    }

    pub fn is_stale(&self) -> bool {
        self.code == "5010"
    }

    pub fn is_duplicate_name(&self) -> bool {
        self.code == "6240"
    }

    /// A request QuickBooks refuses as it is (a query or body it does not accept): the
    /// same request is refused again, however often it is sent.
    pub fn is_refusal(&self) -> bool {
        self.kind == "ValidationFault"
    }

    /// A failure of the service, not of the request: worth one more try.
    pub fn is_transient(&self) -> bool {
        self.kind == "SystemFault" || self.code == "10000"
    }

    /// The record's failure this fault stands for, with `message`: coded by the fault's
    /// code (`quickbooks_6240`).
    /// A fault without a code (an answer that did not read) is `refused`.
    pub fn record_error(&self, message: String) -> crate::ports::RecordError {
        let code = match self.code.trim() {
            "" => crate::ports::REFUSED.to_string(),
            code => format!("quickbooks_{}", crate::logtext::clip(code)),
        };
        crate::ports::RecordError::new(code, message)
    }

    pub fn text(&self) -> String {
        let detail = crate::logtext::clip(&self.detail);
        format!(
            "QuickBooks fault {} ({}): {detail}",
            self.code, self.message
        )
    }
}

/// The body of a call.
pub(super) enum Body {
    None,
    Json(Value),
    /// A query statement, sent as `application/text`.
    Text(String),
}

pub struct QboConnector {
    caller: Caller,
    /// `{base}/v3/company/{realm}`
    api: String,
    pub(super) realm: String,
    keeper: TokenKeeper,
    limiter: Arc<Limiter>,
    pub(super) books: Books,
    pub(super) clock: Arc<dyn Clock>,
}

/// A `requestid` from a key: 32 hex digits (Intuit allows 50, and 36 on batch).
pub(super) fn request_id(key: &str) -> String {
    crate::crypto::sha256_hex(key.as_bytes())[..32].to_string()
}

impl QboConnector {
    /// The `requestid` of a write with this key, now. QuickBooks answers a `requestid` it
    /// has seen with its first answer, a refusal included, so the same id would keep a
    /// record refused after its cause was fixed (an item made active again). The id is
    /// therefore scoped to the hour: a retry of a lost answer (within the same call, or the
    /// next run in the same hour) gets the first answer back; later, the look-up by natural
    /// key (`DocNumber`, email, SKU) done before every create finds what the lost write made.
    pub(super) fn request_id_now(&self, key: &str) -> String {
        request_id(&format!("{key}|{}", self.clock.now().format("%Y%m%d%H")))
    }
}

/// A value inside a query's quotes (`'` escaped as Intuit's SDKs do).
pub(super) fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

impl QboConnector {
    pub fn new(
        caller: Caller,
        api_base: &str,
        realm: &str,
        keeper: TokenKeeper,
        limiter: Arc<Limiter>,
        books: Books,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            caller,
            api: format!("{}/v3/company/{realm}", api_base.trim_end_matches('/')),
            realm: realm.to_string(),
            keeper,
            limiter,
            books,
            clock,
        }
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: &Body,
        token: &str,
    ) -> HttpRequest {
        let mut params = vec![format!("minorversion={MINOR_VERSION}")];
        params.extend(query.iter().map(|(k, v)| format!("{k}={}", encode(v))));
        let mut request =
            HttpRequest::new(method, format!("{}/{path}?{}", self.api, params.join("&")))
                .header("accept", "application/json")
                .header("authorization", format!("Bearer {token}"));
        match body {
            Body::None => {}
            Body::Json(v) => request = request.json(v),
            Body::Text(t) => {
                request = request.header("content-type", "application/text");
                request.body = Some(t.clone().into_bytes());
            }
        }
        request
    }

    /// One call: the entity JSON, or the fault QuickBooks answered with. A fault inside a
    /// 200 that says the service failed is tried once more (with the same `requestid`, so
    /// nothing is done twice).
    pub(super) async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Body,
    ) -> Result<Result<Value, Fault>, PlatformError> {
        let mut tried_again = false;
        loop {
            let answer = self.call_once(method, path, query, &body).await?;
            match answer {
                Err(f) if f.is_transient() && !tried_again => {
                    tracing::info!(realm = %self.realm, path, fault = %f.text(), "QuickBooks service fault; trying once more");
                    tried_again = true;
                }
                other => return Ok(other),
            }
        }
    }

    async fn call_once(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: &Body,
    ) -> Result<Result<Value, Fault>, PlatformError> {
        let mut token = self.keeper.access_token().await?;
        let mut refreshed = false;
        loop {
            let admission = self.limiter.admit().await?;
            let response = self
                .caller
                .send(
                    self.request(method, path, query, body, &token),
                    Replay::Safe,
                )
                .await;
            admission.done().await;
            let response = response?;
            if response.status == 401 {
                if refreshed {
                    return Err(PlatformError::Rejected(
                        "QuickBooks refused a freshly refreshed access token (401)".into(),
                    ));
                }
                token = self.keeper.after_rejection(&token).await?;
                refreshed = true;
                continue;
            }
            // Amounts exactly as QuickBooks wrote them: numbers are kept as their text.
            let json = super::mapping::exact_json(&response.body).ok();
            if let Some(fault) = json.as_ref().and_then(|j| j.get("Fault")) {
                return Ok(Err(Fault::read(response.status, fault)));
            }
            return match json {
                Some(v) if response.is_success() => Ok(Ok(v)),
                _ => Err(unexpected(
                    "QuickBooks",
                    &format!("{} {path}", method.as_str()),
                    &response,
                )),
            };
        }
    }

    /// Every entity a statement selects (`MAXRESULTS` as given; one page).
    pub(super) async fn query(
        &self,
        entity: &str,
        statement: &str,
    ) -> Result<Vec<Value>, PlatformError> {
        self.query_answer(entity, statement)
            .await?
            .map_err(|f| PlatformError::Unavailable(f.text()))
    }

    /// [`Self::query`], a fault QuickBooks answered kept as it is.
    async fn query_answer(
        &self,
        entity: &str,
        statement: &str,
    ) -> Result<Result<Vec<Value>, Fault>, PlatformError> {
        let answer = if statement.len() > 1500 {
            self.call(
                Method::Post,
                "query",
                &[],
                Body::Text(statement.to_string()),
            )
            .await?
        } else {
            self.call(
                Method::Get,
                "query",
                &[("query", statement.to_string())],
                Body::None,
            )
            .await?
        };
        let v = match answer {
            Ok(v) => v,
            Err(fault) => return Ok(Err(fault)),
        };
        let answer: QueryAnswer =
            read(&v, "the query's answer").map_err(PlatformError::Unavailable)?;
        list(&answer.response, entity).map(Ok)
    }

    /// Several queries in one call (a batch of `Query` items), each answer in order.
    pub(super) async fn queries(
        &self,
        statements: &[(String, String)],
    ) -> Result<Vec<Vec<Value>>, PlatformError> {
        self.queries_each(statements)
            .await?
            .into_iter()
            .map(|answer| answer.map_err(|f| PlatformError::Unavailable(f.text())))
            .collect()
    }

    /// [`Self::queries`], each query's own fault kept as its answer: a query QuickBooks
    /// refuses does not lose the others' answers.
    pub(super) async fn queries_each(
        &self,
        statements: &[(String, String)],
    ) -> Result<Vec<Result<Vec<Value>, Fault>>, PlatformError> {
        let mut out = Vec::new();
        for chunk in statements.chunks(BATCH) {
            if chunk.len() == 1 {
                out.push(self.query_answer(&chunk[0].0, &chunk[0].1).await?);
                continue;
            }
            let items: Vec<Value> = chunk
                .iter()
                .enumerate()
                .map(|(i, (_, q))| json!({"bId": format!("q{i}"), "Query": q}))
                .collect();
            let answer = self
                .call(
                    Method::Post,
                    "batch",
                    &[],
                    Body::Json(json!({"BatchItemRequest": items})),
                )
                .await?
                .map_err(|f| PlatformError::Unavailable(f.text()))?;
            let by_id = batch_answers(&answer)?;
            for (i, (entity, _)) in chunk.iter().enumerate() {
                let Some(item) = by_id.get(&format!("q{i}")) else {
                    return Err(PlatformError::Unavailable(
                        "a batch answer left a query out".into(),
                    ));
                };
                if let Some(fault) = item.get("Fault") {
                    out.push(Err(Fault::read(200, fault)));
                    continue;
                }
                let response: Map<String, Value> = match item.get("QueryResponse") {
                    Some(r) => read(r, "a query's answer").map_err(PlatformError::Unavailable)?,
                    None => {
                        return Err(PlatformError::Unavailable(
                            "a batch answer held a query's item without its QueryResponse".into(),
                        ))
                    }
                };
                out.push(Ok(list(&response, entity)?));
            }
        }
        Ok(out)
    }

    /// The entities found by the lookups, all in one list.
    pub(super) async fn found(
        &self,
        statements: Vec<(String, String)>,
    ) -> Result<Vec<Value>, PlatformError> {
        if statements.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self
            .queries(&statements)
            .await?
            .into_iter()
            .flatten()
            .collect())
    }

    /// The entities of `entity` whose `field` is one of `values` (inactive ones too), keyed
    /// by the field's value as `key` reads it.
    pub(super) fn lookups(entity: &str, field: &str, values: &[String]) -> Vec<(String, String)> {
        let mut unique: Vec<&String> = values.iter().filter(|v| !v.is_empty()).collect();
        unique.sort();
        unique.dedup();
        let active = if matches!(entity, "Customer" | "Item") {
            " AND Active IN (true, false)"
        } else {
            ""
        };
        unique
            .chunks(50)
            .map(|chunk| {
                let list: Vec<String> = chunk.iter().map(|v| quoted(v)).collect();
                (
                    entity.to_string(),
                    format!(
                        "SELECT * FROM {entity} WHERE {field} IN ({}){active} MAXRESULTS 1000",
                        list.join(", ")
                    ),
                )
            })
            .collect()
    }
}

/// A query's answer: `QueryResponse` holds a list per entity found.
#[derive(Deserialize)]
struct QueryAnswer {
    #[serde(rename = "QueryResponse")]
    response: Map<String, Value>,
}

/// The entity list in a `QueryResponse` (left out when nothing was found); anything else
/// where the list belongs is an error, never "nothing found".
pub(super) fn list(
    response: &Map<String, Value>,
    entity: &str,
) -> Result<Vec<Value>, PlatformError> {
    match response.get(entity) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => Ok(items.clone()),
        Some(_) => Err(PlatformError::Unavailable(format!(
            "QuickBooks answered a query with a {entity} that is not a list"
        ))),
    }
}

/// A batch answer: one item per request item, named by its `bId`.
#[derive(Deserialize)]
struct BatchAnswer {
    #[serde(rename = "BatchItemResponse")]
    items: Vec<BatchItem>,
}

#[derive(Deserialize)]
struct BatchItem {
    #[serde(rename = "bId")]
    id: String,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

/// A batch answer's items by `bId` (each its fields: `Fault`, `QueryResponse`, or the
/// entity written under its name).
pub(super) fn batch_answers(
    answer: &Value,
) -> Result<HashMap<String, Map<String, Value>>, PlatformError> {
    let answer: BatchAnswer =
        read(answer, "the batch answer").map_err(PlatformError::Unavailable)?;
    Ok(answer
        .items
        .into_iter()
        .map(|item| (item.id, item.rest))
        .collect())
}

impl Connector for QboConnector {
    fn source(&self) -> Option<&dyn Source> {
        Some(self)
    }

    fn target(&self) -> Option<&dyn Target> {
        Some(self)
    }
}
