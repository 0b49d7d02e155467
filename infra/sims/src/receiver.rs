//! Receivers of alert notices, as a person's tools take them: a Slack-compatible incoming
//! webhook (a JSON body with a non-empty `text`, answered `ok`; anything else `400
//! no_text`, as Slack does) and a generic webhook that checks the service's signature
//! (`x-sync-signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`) when it
//! knows the secret, answering 401 to one that does not verify. Both keep what they took,
//! and take faults like every simulator.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use crate::server::{empty, json_response, lock, Faults, Handler, Req, Resp};
use hyper::StatusCode;

/// One notice taken.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Value,
    /// For a webhook receiver that knows the secret: whether the signature verified.
    pub verified: Option<bool>,
}

/// What kind of receiver.
#[derive(Debug, Clone)]
pub enum Kind {
    Slack,
    /// A generic webhook, with the signing secret once it is known.
    Webhook(Arc<Mutex<Option<String>>>),
}

pub struct Receiver {
    kind: Kind,
    faults: Faults,
    taken: Mutex<Vec<Received>>,
}

impl Receiver {
    pub fn new(kind: Kind) -> Arc<Self> {
        Arc::new(Self {
            kind,
            faults: Faults::default(),
            taken: Mutex::default(),
        })
    }

    /// Everything taken (answered 2xx), oldest first.
    pub fn taken(&self) -> Vec<Received> {
        lock(&self.taken).clone()
    }

    /// Sets the secret a webhook receiver checks signatures with.
    pub fn set_secret(&self, secret: &str) {
        if let Kind::Webhook(s) = &self.kind {
            *lock(s) = Some(secret.to_string());
        }
    }
}

/// Whether `header` signs `body` under `secret`.
pub fn verify(secret: &str, header: &str, body: &[u8]) -> bool {
    let Some((t, v1)) = header
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
    else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    expected == v1
}

impl Handler for Receiver {
    fn faults(&self) -> &Faults {
        &self.faults
    }

    fn handle(&self, req: Req) -> Pin<Box<dyn Future<Output = Resp> + Send + '_>> {
        Box::pin(async move {
            let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
            let headers = req
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let mut received = Received {
                path: req.path.clone(),
                headers,
                body: body.clone(),
                verified: None,
            };
            let answer = match &self.kind {
                Kind::Slack => {
                    if body["text"].as_str().is_none_or(str::is_empty) {
                        return json_response(
                            StatusCode::BAD_REQUEST,
                            &serde_json::json!("no_text"),
                        );
                    }
                    let mut ok = empty(StatusCode::OK);
                    *ok.body_mut() = http_body_util::Full::new(bytes::Bytes::from_static(b"ok"));
                    ok
                }
                Kind::Webhook(secret) => {
                    let secret = lock(secret).clone();
                    if let Some(secret) = secret {
                        let header = req
                            .headers
                            .get("x-sync-signature")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default();
                        let ok = verify(&secret, header, &req.body);
                        received.verified = Some(ok);
                        if !ok {
                            return empty(StatusCode::UNAUTHORIZED);
                        }
                    }
                    empty(StatusCode::NO_CONTENT)
                }
            };
            lock(&self.taken).push(received);
            answer
        })
    }
}
