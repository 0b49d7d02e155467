//! The HTTP client adapter: the core's [`HttpClient`] port on reqwest (rustls, so no system
//! TLS library is needed in Lambda). It moves bytes and turns reqwest's errors into the
//! port's [`TransportError`]s; retries, timeouts per call and reading responses are the
//! core's (`sync_core::platforms::http`).

use async_trait::async_trait;
use std::time::Duration;

use sync_core::domain::is_internal;
use sync_core::ports::{HttpClient, HttpRequest, HttpResponse, Method, TransportError};

/// The reqwest client, built once per cold start and shared by every connector.
#[derive(Clone, Debug)]
pub struct ReqwestClient {
    client: reqwest::Client,
}

impl ReqwestClient {
    pub fn new() -> Result<Self, String> {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("sync-service/", env!("CARGO_PKG_VERSION")))
            .build()
            .map(|client| Self { client })
            .map_err(|e| e.to_string())
    }

    /// The client that sends alert notices to URLs tenants gave: no redirects (a URL checked
    /// once must not lead elsewhere) and, unless `allow_internal` (the local stack), a
    /// resolver that refuses any name that resolves to an internal address (loopback,
    /// private, link-local, the instance metadata service), checked at every connection.
    pub fn for_alerts(allow_internal: bool) -> Result<Self, String> {
        let builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("sync-service-alerts/", env!("CARGO_PKG_VERSION")));
        let builder = if allow_internal {
            builder
        } else {
            builder.dns_resolver(std::sync::Arc::new(PublicOnly))
        };
        builder
            .build()
            .map(|client| Self { client })
            .map_err(|e| e.to_string())
    }
}

/// A resolver that answers only public addresses.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<std::net::SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if found.is_empty() || found.iter().any(|a| is_internal(a.ip())) {
                let refused: Box<dyn std::error::Error + Send + Sync> =
                    format!("{host} resolves to an internal address; not sent").into();
                return Err(refused);
            }
            let addrs: reqwest::dns::Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}

fn method(m: Method) -> reqwest::Method {
    match m {
        Method::Get => reqwest::Method::GET,
        Method::Post => reqwest::Method::POST,
        Method::Put => reqwest::Method::PUT,
        Method::Patch => reqwest::Method::PATCH,
        Method::Delete => reqwest::Method::DELETE,
    }
}

/// What reqwest's error means for a retry: whether the request could have been processed.
/// The URL is taken out first: its query can carry credentials (OAuth 1 signatures).
fn transport(e: reqwest::Error) -> TransportError {
    let e = e.without_url();
    let text = e.to_string();
    if e.is_timeout() {
        TransportError::Timeout
    } else if e.is_connect() {
        TransportError::Connect(text)
    } else if e.is_request() || e.is_body() || e.is_decode() {
        TransportError::Broken(text)
    } else {
        TransportError::Other(text)
    }
}

#[async_trait]
impl HttpClient for ReqwestClient {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        let mut builder = self
            .client
            .request(method(request.method), &request.url)
            .timeout(request.timeout);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        if let Some(body) = request.body {
            builder = builder.body(body);
        }
        let response = builder.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = response.bytes().await.map_err(transport)?.to_vec();
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// A listener on loopback that counts the connections made to it (and closes each).
    async fn loopback() -> (u16, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("{e}"))
            .port();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        (port, connections)
    }

    fn notice(port: u16) -> HttpRequest {
        HttpRequest::new(Method::Post, format!("http://localhost:{port}/hook"))
    }

    #[tokio::test]
    async fn an_alert_notice_to_a_name_that_resolves_to_loopback_is_refused_before_connecting() {
        let (port, connections) = loopback().await;
        let client = ReqwestClient::for_alerts(false).unwrap_or_else(|e| panic!("{e}"));
        let refused = client.send(notice(port)).await;
        let text = format!("{refused:?}");
        assert!(refused.is_err(), "{text}");
        assert_eq!(connections.load(Ordering::SeqCst), 0, "{text}");
        // The local stack's client may reach it: the refusal is the resolver's.
        let local = ReqwestClient::for_alerts(true).unwrap_or_else(|e| panic!("{e}"));
        let _ = local.send(notice(port)).await;
        assert_eq!(connections.load(Ordering::SeqCst), 1);
    }
}
