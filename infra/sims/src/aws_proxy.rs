//! A stand-in in front of emulated AWS (moto) that passes every call through unchanged
//! unless a fault says otherwise, so that tests can make one AWS service fail the way it
//! does in AWS (a 500 `InternalFailure`, a dropped connection, latency) while the rest
//! keeps working: e.g. `Fault { target: Some("AmazonSQS.SendMessage".into()), status:
//! Some(500), count: -1, .. }` fails every enqueue and nothing else.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use anyhow::Result;
use http_body_util::Full;
use hyper::header::{CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use hyper::{Response, StatusCode};
use serde_json::json;

use crate::server::{json_response, Faults, Handler, Req, Resp};

/// Passes calls through to `upstream`, with the faults of [`Faults`].
pub struct AwsProxy {
    upstream: String,
    http: reqwest::Client,
    faults: Faults,
    /// The operation of every call passed through (its `X-Amz-Target`, e.g.
    /// `DynamoDB_20120810.PutItem`), in order.
    calls: std::sync::Mutex<Vec<String>>,
}

impl AwsProxy {
    /// Starts a proxy to `upstream` (e.g. moto's endpoint) on a free port; returns it and
    /// its endpoint URL. It serves until the returned task is dropped or aborted.
    pub async fn start(upstream: &str) -> Result<(Arc<Self>, String, tokio::task::JoinHandle<()>)> {
        let proxy = Arc::new(Self {
            upstream: upstream.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder().no_proxy().build()?,
            faults: Faults::default(),
            calls: std::sync::Mutex::default(),
        });
        let (url, task) = crate::server::start(0, proxy.clone()).await?;
        Ok((proxy, url, task))
    }

    /// The operations called since the last time they were taken, in order.
    pub fn take_calls(&self) -> Vec<String> {
        std::mem::take(&mut *self.calls.lock().unwrap_or_else(|p| p.into_inner()))
    }

    async fn forward(&self, req: Req) -> Resp {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).push(
            req.header("x-amz-target")
                .unwrap_or("(no target)")
                .to_string(),
        );
        let query = match req.raw_query.is_empty() {
            true => String::new(),
            false => format!("?{}", req.raw_query),
        };
        let mut call = self
            .http
            .request(req.method, format!("{}{}{query}", self.upstream, req.path))
            .body(req.body);
        for (name, value) in &req.headers {
            if ![HOST, CONTENT_LENGTH, CONNECTION, TRANSFER_ENCODING].contains(name) {
                call = call.header(name, value);
            }
        }
        let answer = match call.send().await {
            Ok(answer) => answer,
            Err(e) => {
                return json_response(
                    StatusCode::BAD_GATEWAY,
                    &json!({"__type": "InternalFailure", "message": e.to_string()}),
                )
            }
        };
        let status = answer.status();
        let headers = answer.headers().clone();
        let body = answer.bytes().await.unwrap_or_default();
        let mut out = Response::new(Full::new(body));
        *out.status_mut() = status;
        for (name, value) in &headers {
            if ![CONTENT_LENGTH, CONNECTION, TRANSFER_ENCODING].contains(name) {
                out.headers_mut().append(name, value.clone());
            }
        }
        out
    }
}

impl Handler for AwsProxy {
    fn faults(&self) -> &Faults {
        &self.faults
    }

    fn handle(&self, req: Req) -> Pin<Box<dyn Future<Output = Resp> + Send + '_>> {
        Box::pin(self.forward(req))
    }
}
