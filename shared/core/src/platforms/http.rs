//! Calling a platform over the HTTP client port, the way every connector must: a timeout on
//! every call, retries with jittered exponential backoff on 429, 5xx, timeouts and broken
//! connections, honouring `Retry-After` — and never a blind retry of a request that creates
//! something, once it may have reached the platform (a lost response must not become a
//! second record; the connector's own matching decides on the next attempt).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::ports::{HttpClient, HttpRequest, HttpResponse, PlatformError, TransportError};

/// RFC 3986 percent-encoding (PHP's `rawurlencode`): everything but `A-Z a-z 0-9 - . _ ~`.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

tokio::task_local! {
    /// When the work calling platforms must have stopped (a run's checkpoint time).
    static DEADLINE: tokio::time::Instant;
}

/// Runs `work` with every platform call in it bounded by `deadline`: no call's timeout
/// reaches past it, and no retry waits past it. A call that would is given up as
/// `Unavailable` at once, so a run stops in time to checkpoint instead of being killed by
/// the function's timeout with its whole batch (one page can otherwise take minutes: five
/// tries of 30 s, QuickBooks' 60 s back-off).
pub async fn until<F: Future>(deadline: tokio::time::Instant, work: F) -> F::Output {
    DEADLINE.scope(deadline, work).await
}

/// Runs `work` free of any deadline `until` set around it: for a call whose outcome must
/// not be left unknown by a timeout cut short (a token refresh).
pub async fn unbounded<F: Future>(work: F) -> F::Output {
    // A day is beyond any invocation.
    let far = tokio::time::Instant::now() + Duration::from_secs(86_400);
    DEADLINE.scope(far, work).await
}

/// How long until the deadline `until` set, if any.
pub fn time_left() -> Option<Duration> {
    DEADLINE
        .try_with(|d| d.saturating_duration_since(tokio::time::Instant::now()))
        .ok()
}

/// How a connector retries.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Tries in all, the first included.
    pub attempts: u32,
    /// The backoff before the first retry (doubling, jittered, up to `max_delay`).
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// The longest `Retry-After` honoured; a platform asking for more fails the call.
    pub max_retry_after: Duration,
    /// Every call's timeout.
    pub timeout: Duration,
    /// How long to wait after a 429 that does not say (QuickBooks asks for 60 s);
    /// `None`: the backoff.
    pub throttle_wait: Option<Duration>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 5,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(20),
            max_retry_after: Duration::from_secs(120),
            timeout: Duration::from_secs(30),
            throttle_wait: None,
        }
    }
}

/// Whether a request may be sent again after it may have reached the platform.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replay {
    /// Reads, updates to a known id, upserts on a key: the same request twice is one effect.
    Safe,
    /// Creates: retried only when it certainly was not processed (no connection, 429).
    Unsafe,
}

/// A platform's HTTP client with the retry policy.
#[derive(Clone)]
pub struct Caller {
    client: Arc<dyn HttpClient>,
    policy: RetryPolicy,
    platform: &'static str,
}

impl Caller {
    pub fn new(client: Arc<dyn HttpClient>, policy: RetryPolicy, platform: &'static str) -> Self {
        Self {
            client,
            policy,
            platform,
        }
    }

    /// Sends `request`, retrying what retrying can fix. A response that is not retried is
    /// returned as it is (2xx, and the 4xx the connector interprets); `Unavailable` when the
    /// retries ran out.
    pub async fn send(
        &self,
        request: HttpRequest,
        replay: Replay,
    ) -> Result<HttpResponse, PlatformError> {
        self.send_fresh(&|| request.clone(), replay).await
    }

    /// As [`send`](Self::send), with the request built anew for every try: for requests
    /// signed with a nonce and a timestamp (OAuth 1.0a), which a platform refuses to see
    /// twice.
    pub async fn send_fresh(
        &self,
        build: &(dyn Fn() -> HttpRequest + Sync),
        replay: Replay,
    ) -> Result<HttpResponse, PlatformError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let last = attempt >= self.policy.attempts;
            let left = time_left();
            if left == Some(Duration::ZERO) {
                return Err(PlatformError::OutOfTime(format!(
                    "{}: no time left for the call before the run's deadline",
                    self.platform
                )));
            }
            // A create is sent only with its whole timeout ahead: cut short, its outcome would
            // be unknown, and the continuation could make it again before it lands.
            if replay == Replay::Unsafe && left.is_some_and(|l| l < self.policy.timeout) {
                return Err(PlatformError::OutOfTime(format!(
                    "{}: too little time left to send a create",
                    self.platform
                )));
            }
            let mut request = build();
            request.timeout = left.map_or(self.policy.timeout, |l| l.min(self.policy.timeout));
            let (why, wait) = match self.client.send(request).await {
                Ok(response) if response.status == 429 => {
                    let wait = retry_after(&response).or(self.policy.throttle_wait);
                    (format!("{} answered 429 (throttled)", self.platform), wait)
                }
                Ok(response) if response.status >= 500 && replay == Replay::Safe => {
                    let wait = retry_after(&response);
                    (
                        format!(
                            "{} answered {}: {}",
                            self.platform,
                            response.status,
                            response.snippet()
                        ),
                        wait,
                    )
                }
                Ok(response) => return Ok(response),
                Err(TransportError::Connect(e)) => {
                    (format!("could not connect to {}: {e}", self.platform), None)
                }
                Err(e) if replay == Replay::Safe => (format!("{}: {e}", self.platform), None),
                Err(e) => {
                    return Err(PlatformError::Unavailable(format!(
                        "{}: {e} (not retried: the request may have been processed)",
                        self.platform
                    )))
                }
            };
            if last {
                return Err(PlatformError::Unavailable(format!(
                    "{why}; gave up after {attempt} tries"
                )));
            }
            let delay = match wait {
                Some(asked) if asked > self.policy.max_retry_after => {
                    return Err(PlatformError::Unavailable(format!(
                        "{why}; it asked to wait {}s",
                        asked.as_secs()
                    )))
                }
                Some(asked) => asked,
                None => self.backoff(attempt),
            };
            if time_left().is_some_and(|left| delay >= left) {
                return Err(PlatformError::OutOfTime(format!(
                    "{why}; no time left to wait {} ms before the run's deadline",
                    delay.as_millis()
                )));
            }
            tracing::info!(platform = self.platform, attempt, delay_ms = delay.as_millis() as u64, reason = %why, "retrying");
            tokio::time::sleep(delay).await;
        }
    }

    /// Full jitter: a random delay up to the capped exponential.
    fn backoff(&self, attempt: u32) -> Duration {
        let cap = self
            .policy
            .base_delay
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.policy.max_delay);
        let random = crate::crypto::random_bytes(4)
            .ok()
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
            .unwrap_or(u32::MAX / 2);
        cap.mul_f64(f64::from(random) / f64::from(u32::MAX))
    }
}

/// `Retry-After` as seconds or as an HTTP date.
fn retry_after(response: &HttpResponse) -> Option<Duration> {
    let value = response.header("retry-after")?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or_default())
}

/// A record's failed write answered with `status`: one that may pass (429, 5xx) is tried
/// again later, any other is the record's own failure.
pub fn failed_write(status: u16, why: String) -> crate::ports::WriteOutcome {
    if status == 429 || status >= 500 {
        crate::ports::WriteOutcome::Unavailable(why)
    } else {
        crate::ports::WriteOutcome::Failed(crate::ports::RecordError::new(
            format!("http_{status}"),
            why,
        ))
    }
}

/// The error for a response the connector did not expect: credentials refused are
/// `Rejected` (retrying cannot help), anything else `Unavailable`.
pub fn unexpected(platform: &str, what: &str, response: &HttpResponse) -> PlatformError {
    let detail = format!(
        "{platform} answered {} to {what}: {}",
        response.status,
        response.snippet()
    );
    if matches!(response.status, 401 | 403 | 404) {
        PlatformError::Rejected(detail)
    } else {
        PlatformError::Unavailable(detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::Method;
    use async_trait::async_trait;
    use std::sync::Mutex;

    /// A scripted answer: a status and its `Retry-After`, or a transport error.
    type Answer = Result<(u16, Option<&'static str>), TransportError>;

    /// Answers with the scripted statuses (or transport errors), then 200.
    struct Scripted {
        answers: Mutex<Vec<Answer>>,
        calls: Mutex<usize>,
    }

    #[async_trait]
    impl HttpClient for Scripted {
        async fn send(&self, _request: HttpRequest) -> Result<HttpResponse, TransportError> {
            *self.calls.lock().unwrap_or_else(|p| p.into_inner()) += 1;
            let next = {
                let mut answers = self.answers.lock().unwrap_or_else(|p| p.into_inner());
                if answers.is_empty() {
                    Ok((200, None))
                } else {
                    answers.remove(0)
                }
            };
            next.map(|(status, retry_after)| HttpResponse {
                status,
                headers: retry_after
                    .map(|v| vec![("retry-after".to_string(), v.to_string())])
                    .unwrap_or_default(),
                body: Vec::new(),
            })
        }
    }

    fn caller(
        answers: Vec<Result<(u16, Option<&'static str>), TransportError>>,
    ) -> (Caller, Arc<Scripted>) {
        let client = Arc::new(Scripted {
            answers: Mutex::new(answers),
            calls: Mutex::new(0),
        });
        let policy = RetryPolicy {
            attempts: 4,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            max_retry_after: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            throttle_wait: None,
        };
        (Caller::new(client.clone(), policy, "test"), client)
    }

    fn calls(s: &Scripted) -> usize {
        *s.calls.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get() -> HttpRequest {
        HttpRequest::new(Method::Get, "http://127.0.0.1/x")
    }

    #[tokio::test]
    async fn throttling_and_server_errors_are_retried_until_they_pass() {
        let (c, s) = caller(vec![
            Ok((429, Some("0"))),
            Ok((503, None)),
            Err(TransportError::Timeout),
        ]);
        let r = c.send(get(), Replay::Safe).await;
        assert_eq!(r.map(|r| r.status), Ok(200));
        assert_eq!(calls(&s), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn no_retry_waits_past_the_deadline_and_no_call_starts_after_it() {
        // GIVEN a platform asking to wait 2 s, with 1 s left
        let (c, s) = caller(vec![Ok((429, Some("2")))]);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        let started = tokio::time::Instant::now();
        // WHEN the call is made within the deadline
        let r = until(deadline, c.send(get(), Replay::Safe)).await;
        // THEN it gives up at once instead of waiting
        assert!(
            matches!(&r, Err(PlatformError::OutOfTime(_))),
            "{:?}",
            r.map(|r| r.status)
        );
        assert_eq!(calls(&s), 1);
        assert!(started.elapsed() < Duration::from_millis(10));
        // AND once the deadline has passed, no call is made at all
        tokio::time::advance(Duration::from_secs(2)).await;
        let r = until(deadline, c.send(get(), Replay::Safe)).await;
        assert!(r.is_err());
        assert_eq!(calls(&s), 1);
    }

    #[tokio::test]
    async fn a_client_error_is_not_retried_but_handed_back() {
        let (c, s) = caller(vec![Ok((400, None))]);
        assert_eq!(c.send(get(), Replay::Safe).await.map(|r| r.status), Ok(400));
        assert_eq!(calls(&s), 1);
    }

    #[tokio::test]
    async fn retries_run_out_as_unavailable() {
        let (c, s) = caller(vec![Ok((500, None)); 9]);
        assert!(matches!(
            c.send(get(), Replay::Safe).await,
            Err(PlatformError::Unavailable(_))
        ));
        assert_eq!(calls(&s), 4);
    }

    #[tokio::test]
    async fn a_create_is_not_sent_again_once_it_may_have_been_processed() {
        // A timeout or a 5xx: the platform may have created it. Not retried.
        for answer in [Err(TransportError::Timeout), Ok((502, None))] {
            let (c, s) = caller(vec![answer]);
            let r = c.send(get(), Replay::Unsafe).await;
            assert!(
                r.is_err() || r.as_ref().map(|r| r.status).ok() == Some(502),
                "{:?}",
                r.map(|r| r.status)
            );
            assert_eq!(calls(&s), 1);
        }
        // Refused before processing (no connection, 429): retried.
        let (c, s) = caller(vec![
            Err(TransportError::Connect("refused".into())),
            Ok((429, Some("0"))),
        ]);
        assert_eq!(
            c.send(get(), Replay::Unsafe).await.map(|r| r.status),
            Ok(200)
        );
        assert_eq!(calls(&s), 3);
    }

    #[tokio::test]
    async fn a_retry_after_beyond_the_limit_fails_the_call_instead_of_waiting() {
        let (c, s) = caller(vec![Ok((429, Some("3600")))]);
        assert!(matches!(
            c.send(get(), Replay::Safe).await,
            Err(PlatformError::Unavailable(_))
        ));
        assert_eq!(calls(&s), 1);
    }
}
