//! HTTP plumbing shared by the simulators: a local server over a handler, helpers for
//! reading requests and writing JSON answers, and fault injection.
//!
//! Faults are set with `POST /__admin/faults` and apply to the next `count` requests (or to
//! every request with `count: -1`) that are not admin requests:
//! `{"status": 503, "retry_after": "2", "latency_ms": 50, "drop": false, "count": 3}`.
//! `"one_in": 7` makes a fault hit one matching request in seven (a steady rate), and
//! `POST /__admin/faults/add` adds a fault to those in force instead of replacing them.
//! `latency_ms` alone slows every call (a platform far away). `GET /__admin/calls` counts the
//! calls made, by method and path; `POST /__admin/calls/reset` starts again.

use anyhow::Result;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::net::TcpListener;

static LISTEN_HOST: OnceLock<IpAddr> = OnceLock::new();

/// Makes this process's local servers (the simulators, and the local stack's moto) listen on
/// `host` instead of loopback, e.g. Docker's bridge address so that functions `sam local`
/// runs in containers can reach them. Set once, before any server starts; a later call
/// with another address is refused.
pub fn set_listen_host(host: IpAddr) -> Result<()> {
    let set = *LISTEN_HOST.get_or_init(|| host);
    anyhow::ensure!(
        set == host,
        "local servers already listen on {set}, not {host}"
    );
    Ok(())
}

/// Where this process's local servers listen (loopback unless [`set_listen_host`] said
/// otherwise).
pub fn listen_host() -> IpAddr {
    LISTEN_HOST
        .get()
        .copied()
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// A request as the simulators see it: method, path, decoded query pairs (in order), lower-
/// case headers, the raw body.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: Method,
    pub path: String,
    pub raw_query: String,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Req {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a parameter given several times, or as `name[]`.
    pub fn params(&self, name: &str) -> Vec<&str> {
        let bracket = format!("{name}[]");
        self.query
            .iter()
            .filter(|(k, _)| k == name || *k == bracket)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> Result<Value, String> {
        serde_json::from_slice(&self.body).map_err(|e| format!("the body is not JSON: {e}"))
    }
}

/// An answer.
pub type Resp = Response<Full<Bytes>>;

pub fn json_response(status: StatusCode, body: &Value) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    r
}

pub fn with_header(mut r: Resp, name: &'static str, value: &str) -> Resp {
    if let Ok(v) = hyper::header::HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
    r
}

pub fn empty(status: StatusCode) -> Resp {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = status;
    r
}

/// Percent-decodes a query component (`+` is a space, as forms send it).
pub fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn parse_query(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

/// Faults to inject.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Fault {
    /// Answer with this status instead of handling the request.
    pub status: Option<u16>,
    pub retry_after: Option<String>,
    /// Wait this long before answering.
    pub latency_ms: u64,
    /// Close the connection without an answer.
    pub drop: bool,
    /// How many requests this applies to; -1 for all.
    pub count: i64,
    /// Only one matching request in this many (a steady rate of faults); 0 or 1: each.
    pub one_in: u64,
    /// Only requests with this method (e.g. `POST`), when set.
    pub method: Option<String>,
    /// Only requests whose path ends with this (e.g. `/products/batch`), when set.
    pub path: Option<String>,
    /// Only AWS requests whose `X-Amz-Target` starts with this (e.g.
    /// `AmazonSQS.SendMessage`), when set: every AWS JSON call is `POST /`.
    pub target: Option<String>,
}

impl Fault {
    fn applies_to(&self, req: &Req) -> bool {
        self.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(req.method.as_str()))
            && self.path.as_deref().is_none_or(|p| req.path.ends_with(p))
            && self.target.as_deref().is_none_or(|t| {
                req.header("x-amz-target")
                    .is_some_and(|target| target.starts_with(t))
            })
    }
}

/// Faults and call counts of one simulator.
#[derive(Default)]
pub struct Faults {
    /// Faults in force, each with how many matching requests it has seen.
    pending: Mutex<Vec<(Fault, u64)>>,
    /// Latency on every call, independent of the one-off faults.
    latency_ms: Mutex<u64>,
    calls: Mutex<BTreeMap<String, u64>>,
    /// Requests answered or dropped by a fault.
    injected: std::sync::atomic::AtomicU64,
}

/// What a fault does to one request.
pub enum Injected {
    None,
    Answer(Resp),
    Drop,
}

impl Faults {
    pub fn set(&self, fault: Fault) {
        if fault.status.is_none() && !fault.drop && fault.latency_ms > 0 && fault.count == 0 {
            *lock(&self.latency_ms) = fault.latency_ms;
            return;
        }
        *lock(&self.pending) = vec![(fault, 0)];
    }

    /// Adds `fault` to those in force (`set` replaces them); a request gets the first that
    /// applies to it.
    pub fn add(&self, fault: Fault) {
        lock(&self.pending).push((fault, 0));
    }

    pub fn clear(&self) {
        lock(&self.pending).clear();
        *lock(&self.latency_ms) = 0;
    }

    pub fn calls(&self) -> BTreeMap<String, u64> {
        lock(&self.calls).clone()
    }

    pub fn reset_calls(&self) {
        lock(&self.calls).clear();
    }

    /// How many requests a fault has answered or dropped so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Counts the call and decides its fault.
    pub async fn apply(&self, req: &Req) -> Injected {
        let path = req.path.clone();
        *lock(&self.calls)
            .entry(format!("{} {path}", req.method))
            .or_default() += 1;
        let latency = *lock(&self.latency_ms);
        let fault = {
            let mut pending = lock(&self.pending);
            pending
                .iter_mut()
                .filter(|(f, _)| f.count != 0 && f.applies_to(req))
                .find_map(|(f, seen)| {
                    *seen += 1;
                    if f.one_in > 1 && *seen % f.one_in != 0 {
                        return None;
                    }
                    if f.count > 0 {
                        f.count -= 1;
                    }
                    Some(f.clone())
                })
        };
        let wait = latency + fault.as_ref().map_or(0, |f| f.latency_ms);
        if wait > 0 {
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
        if fault.as_ref().is_some_and(|f| f.drop || f.status.is_some()) {
            self.injected
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        match fault {
            Some(f) if f.drop => Injected::Drop,
            Some(Fault {
                status: Some(status),
                retry_after,
                target,
                ..
            }) => {
                let code = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
                // An AWS service names its error in `__type` (AWS JSON protocols).
                let body = match target {
                    Some(_) => {
                        json!({"__type": "InternalFailure", "message": "fault injected by the stand-in"})
                    }
                    None => {
                        json!({"code": "injected_fault", "message": "fault injected by the simulator"})
                    }
                };
                let mut r = json_response(code, &body);
                if let Some(after) = retry_after {
                    r = with_header(r, "retry-after", &after);
                }
                Injected::Answer(r)
            }
            _ => Injected::None,
        }
    }

    /// The admin routes every simulator has; `None` for other paths.
    pub fn admin(&self, req: &Req) -> Option<Resp> {
        match (req.method.as_str(), req.path.as_str()) {
            ("POST", "/__admin/faults" | "/__admin/faults/add") => {
                Some(match serde_json::from_slice::<Fault>(&req.body) {
                    Ok(f) if req.path.ends_with("/add") => {
                        self.add(f);
                        json_response(StatusCode::OK, &json!({"ok": true}))
                    }
                    Ok(f) => {
                        self.set(f);
                        json_response(StatusCode::OK, &json!({"ok": true}))
                    }
                    Err(e) => {
                        json_response(StatusCode::BAD_REQUEST, &json!({"message": e.to_string()}))
                    }
                })
            }
            ("DELETE", "/__admin/faults") => {
                self.clear();
                Some(json_response(StatusCode::OK, &json!({"ok": true})))
            }
            ("GET", "/__admin/calls") => Some(json_response(StatusCode::OK, &json!(self.calls()))),
            ("POST", "/__admin/calls/reset") => {
                self.reset_calls();
                Some(json_response(StatusCode::OK, &json!({"ok": true})))
            }
            _ => None,
        }
    }
}

pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A simulator: answers requests.
pub trait Handler: Send + Sync + 'static {
    fn faults(&self) -> &Faults;
    fn handle(&self, req: Req) -> Pin<Box<dyn Future<Output = Resp> + Send + '_>>;
}

/// Largest body a simulator reads.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// Serves `handler` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, handler: Arc<dyn Handler>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let handler = handler.clone();
                async move { answer(handler, req).await }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// An error that makes hyper close the connection without an answer (a dropped connection).
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped on purpose")
    }
}

impl std::error::Error for Dropped {}

async fn answer(handler: Arc<dyn Handler>, req: Request<Incoming>) -> Result<Resp, Dropped> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(empty(StatusCode::PAYLOAD_TOO_LARGE)),
    };
    let raw_query = parts.uri.query().unwrap_or_default().to_string();
    let req = Req {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query: parse_query(&raw_query),
        raw_query,
        headers: parts.headers,
        body,
    };
    if let Some(r) = handler.faults().admin(&req) {
        return Ok(r);
    }
    if !req.path.starts_with("/__admin/") {
        match handler.faults().apply(&req).await {
            Injected::None => {}
            Injected::Answer(r) => return Ok(r),
            Injected::Drop => return Err(Dropped),
        }
    }
    let response = handler.handle(req).await;
    if response
        .headers()
        .contains_key(crate::qbo::api::DROP_MARKER)
    {
        return Err(Dropped);
    }
    Ok(response)
}

/// Binds a port (`0` for a free one) on [`listen_host`] and serves `handler` on it; returns
/// the base URL and the serving task.
pub async fn start(
    port: u16,
    handler: Arc<dyn Handler>,
) -> Result<(String, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind((listen_host(), port)).await?;
    let url = format!("http://{}", listener.local_addr()?);
    Ok((url, tokio::spawn(serve(listener, handler))))
}

/// Random printable text (for generated secrets).
pub fn random_text(len: usize) -> String {
    const CHARS: &[u8] =
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!@#$%^*()-_";
    let mut out = String::with_capacity(len);
    while out.len() < len {
        for b in uuid::Uuid::new_v4().as_bytes() {
            if out.len() < len {
                out.push(CHARS[*b as usize % CHARS.len()] as char);
            }
        }
    }
    out
}
