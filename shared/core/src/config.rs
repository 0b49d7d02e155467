//! Configuration, read once from the environment at cold start.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `TABLE_NAME` | DynamoDB table holding schedules | required |
//! | `SCHEDULE_GROUP` | EventBridge Scheduler group for our schedules | required |
//! | `SYNC_QUEUE_ARN` | SQS queue that receives sync jobs | required |
//! | `SYNC_DLQ_ARN` | dead-letter queue for jobs EventBridge could not deliver | required |
//! | `SCHEDULER_ROLE_ARN` | role EventBridge Scheduler assumes to send to the queue | required |
//! | `KMS_KEY_ID` | KMS key that seals connection secrets | required |
//! | `DEFAULT_TIMEZONE` | zone for schedules that name none | `America/Edmonton` |
//! | `TENANT_CLAIM` | JWT claim that carries the tenant id | `tenant_id` |
//! | `MAX_BODY_BYTES` | largest request body accepted | `65536` |
//! | `PUBLIC_BASE_URL` | base of the webhook URLs shown on connections | the API's own domain |
//! | `SYNC_QUEUE_URL` | the sync queue (backfill jobs of new flows) | required |

use crate::time::{Zone, DEFAULT_ZONE};

/// A missing or malformed setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

/// Where our AWS resources are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsResources {
    pub table_name: String,
    pub schedule_group: String,
    pub sync_queue_url: String,
    pub sync_queue_arn: String,
    pub sync_dlq_arn: String,
    pub scheduler_role_arn: String,
    pub kms_key_id: String,
}

/// How the API behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiSettings {
    pub default_timezone: Zone,
    pub tenant_claim: String,
    pub max_body_bytes: usize,
    /// Base of the webhook URLs shown on connections; `None` uses the API's own domain.
    pub public_base_url: Option<String>,
    /// Alert destinations may be `http` URLs of internal hosts (`ALERT_LOCAL_URLS=true`:
    /// only the local stack, whose receivers are on loopback).
    pub alert_local_urls: bool,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            default_timezone: DEFAULT_ZONE.parse().unwrap_or(Zone::UTC),
            tenant_claim: "tenant_id".to_string(),
            max_body_bytes: 64 * 1024,
            public_base_url: None,
            alert_local_urls: false,
        }
    }
}

impl AwsResources {
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let rest = Self::without_key(&get)?;
        Ok(Self {
            kms_key_id: required(&get, "KMS_KEY_ID")?,
            ..rest
        })
    }

    /// Everything but the key.
    fn without_key(get: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Ok(Self {
            table_name: required(get, "TABLE_NAME")?,
            schedule_group: required(get, "SCHEDULE_GROUP")?,
            sync_queue_url: required(get, "SYNC_QUEUE_URL")?,
            sync_queue_arn: required(get, "SYNC_QUEUE_ARN")?,
            sync_dlq_arn: required(get, "SYNC_DLQ_ARN")?,
            scheduler_role_arn: required(get, "SCHEDULER_ROLE_ARN")?,
            kms_key_id: String::new(),
        })
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }
}

impl ApiSettings {
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut settings = Self::default();
        if let Some(zone) = get("DEFAULT_TIMEZONE").filter(|v| !v.is_empty()) {
            settings.default_timezone = zone
                .parse()
                .map_err(|e| ConfigError(format!("DEFAULT_TIMEZONE: {e}")))?;
        }
        if let Some(claim) = get("TENANT_CLAIM").filter(|v| !v.is_empty()) {
            settings.tenant_claim = claim;
        }
        settings.max_body_bytes = number(&get, "MAX_BODY_BYTES", settings.max_body_bytes)?;
        settings.public_base_url = get("PUBLIC_BASE_URL").filter(|v| !v.is_empty());
        settings.alert_local_urls = alert_local_urls(&get);
        Ok(settings)
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }
}

/// What the webhook intake function is configured with.
///
/// | variable | meaning | default |
/// |---|---|---|
/// | `TABLE_NAME` | table of connections, claims and the event log | required |
/// | `KMS_KEY_ID` | key that opens connection secrets | required |
/// | `WEBHOOK_QUEUE_URL` | queue accepted events go to | required |
/// | `DEDUP_TTL_HOURS` | how long a delivered event key counts as seen | `72` |
/// | `CLAIM_LEASE_SECONDS` | how long an unconfirmed claim blocks a retry | `30` |
/// | `MAX_WEBHOOK_BODY_BYTES` | largest delivery accepted | `2097152` |
/// | `QBO_WEBHOOK_VERIFIER` | the deployment's Intuit app's webhook verifier token, for `POST /webhooks/quickbooks` | none: that route refuses |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntakeConfig {
    pub table_name: String,
    pub kms_key_id: String,
    pub webhook_queue_url: String,
    pub dedup_ttl_hours: i64,
    pub claim_lease_seconds: i64,
    pub max_body_bytes: usize,
    pub quickbooks_verifier: Option<String>,
}

/// An optional http(s) URL.
fn optional_url(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
) -> Result<Option<String>, ConfigError> {
    match get(name).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) if v.starts_with("https://") || v.starts_with("http://") => {
            Ok(Some(v.trim_end_matches('/').to_string()))
        }
        Some(v) => Err(ConfigError(format!("{name}: '{v}' is not an http(s) URL"))),
    }
}

fn number<T: std::str::FromStr + PartialOrd + Default>(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: T,
) -> Result<T, ConfigError> {
    match get(name).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(text) => text
            .parse()
            .ok()
            .filter(|v| *v > T::default())
            .ok_or_else(|| ConfigError(format!("{name}: '{text}' is not a positive number"))),
    }
}

/// The CloudWatch namespace a function's metrics go to (`METRICS_NAMESPACE`, default
/// `SyncService`; the template sets `SyncService/<stack name>`).
pub fn metrics_namespace(get: &impl Fn(&str) -> Option<String>) -> String {
    get("METRICS_NAMESPACE")
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "SyncService".into())
}

/// A whole number that may be 0 (`default` when unset).
fn non_negative(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: i64,
) -> Result<i64, ConfigError> {
    match get(name).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(text) => text
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|v| *v >= 0)
            .ok_or_else(|| ConfigError(format!("{name}: '{text}' is not 0 or a positive number"))),
    }
}

fn required(get: &impl Fn(&str) -> Option<String>, name: &str) -> Result<String, ConfigError> {
    get(name)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ConfigError(format!("{name} is not set")))
}

impl IntakeConfig {
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Ok(Self {
            table_name: required(&get, "TABLE_NAME")?,
            kms_key_id: required(&get, "KMS_KEY_ID")?,
            webhook_queue_url: required(&get, "WEBHOOK_QUEUE_URL")?,
            dedup_ttl_hours: number(&get, "DEDUP_TTL_HOURS", 72)?,
            claim_lease_seconds: number(&get, "CLAIM_LEASE_SECONDS", 30)?,
            max_body_bytes: number(&get, "MAX_WEBHOOK_BODY_BYTES", 2 * 1024 * 1024)?,
            quickbooks_verifier: get("QBO_WEBHOOK_VERIFIER").filter(|v| !v.trim().is_empty()),
        })
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn settings(&self) -> crate::service::IntakeSettings {
        crate::service::IntakeSettings {
            dedup_ttl: chrono::Duration::hours(self.dedup_ttl_hours),
            claim_lease: chrono::Duration::seconds(self.claim_lease_seconds),
            app_secrets: self
                .quickbooks_verifier
                .iter()
                .map(|v| {
                    (
                        crate::domain::Platform::QuickBooks,
                        crate::domain::Secret::new(v.clone()),
                    )
                })
                .collect(),
            ..crate::service::IntakeSettings::default()
        }
    }
}

/// What the coalescer function is configured with: `TABLE_NAME` (the event log) and
/// `SYNC_QUEUE_URL` (where jobs go).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoalescerConfig {
    pub table_name: String,
    pub sync_queue_url: String,
}

impl CoalescerConfig {
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Ok(Self {
            table_name: required(&get, "TABLE_NAME")?,
            sync_queue_url: required(&get, "SYNC_QUEUE_URL")?,
        })
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }
}

/// What the connection-setup function (webhook registration at a platform) is configured
/// with, besides the [`ApiSettings`] every API function reads.
///
/// | variable | meaning | default |
/// |---|---|---|
/// | `TABLE_NAME` | table of connections | required |
/// | `KMS_KEY_ID` | key that seals and opens connection secrets | required |
/// | `HTTP_TIMEOUT_SECONDS` | every platform call's timeout | `10` |
/// | `HTTP_ATTEMPTS` | tries per platform call | `3` |
/// | `QBO_CLIENT_ID`, `QBO_CLIENT_SECRET` | the deployment's own Intuit app (connecting companies through it) | none: not offered |
/// | `QBO_REDIRECT_URI` | the redirect URI registered for that app | `{public base URL}/oauth/quickbooks/callback` |
/// | `QBO_ENVIRONMENT` | `sandbox` or `production`, for companies connected through it | `production` |
/// | `QBO_AUTHORIZE_URL`, `QBO_TOKEN_URL`, `QBO_API_URL` | Intuit's hosts, replaced (a proxy, the local simulator) | Intuit's |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupConfig {
    pub table_name: String,
    pub kms_key_id: String,
    pub http_timeout_seconds: u64,
    pub http_attempts: u32,
    pub quickbooks_app: QuickBooksApp,
    pub quickbooks_redirect_uri: Option<String>,
    pub quickbooks_environment: Option<String>,
    pub quickbooks_authorize_url: Option<String>,
    pub quickbooks_token_url: Option<String>,
    pub quickbooks_api_url: Option<String>,
}

impl SetupConfig {
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Ok(Self {
            table_name: required(&get, "TABLE_NAME")?,
            kms_key_id: required(&get, "KMS_KEY_ID")?,
            http_timeout_seconds: number(&get, "HTTP_TIMEOUT_SECONDS", 10)?,
            http_attempts: number(&get, "HTTP_ATTEMPTS", 3)?,
            quickbooks_app: QuickBooksApp::from_lookup(&get),
            quickbooks_redirect_uri: optional_url(&get, "QBO_REDIRECT_URI")?,
            quickbooks_environment: match get("QBO_ENVIRONMENT").filter(|v| !v.is_empty()) {
                None => None,
                Some(v) if v == "sandbox" || v == "production" => Some(v),
                Some(v) => {
                    return Err(ConfigError(format!(
                        "QBO_ENVIRONMENT: '{v}' is not sandbox or production"
                    )))
                }
            },
            quickbooks_authorize_url: optional_url(&get, "QBO_AUTHORIZE_URL")?,
            quickbooks_token_url: optional_url(&get, "QBO_TOKEN_URL")?,
            quickbooks_api_url: optional_url(&get, "QBO_API_URL")?,
        })
    }

    /// The deployment's Intuit app, if it has one.
    pub fn quickbooks(&self) -> Option<crate::service::QuickBooksAppConfig> {
        let app = &self.quickbooks_app;
        Some(crate::service::QuickBooksAppConfig {
            client_id: app.client_id.clone()?,
            client_secret: app.client_secret.clone()?,
            authorize_url: self
                .quickbooks_authorize_url
                .clone()
                .unwrap_or_else(|| crate::platforms::quickbooks::oauth::AUTHORIZE_URL.into()),
            token_url: self
                .quickbooks_token_url
                .clone()
                .unwrap_or_else(|| crate::platforms::quickbooks::oauth::TOKEN_URL.into()),
            redirect_uri: self.quickbooks_redirect_uri.clone(),
            environment: self.quickbooks_environment.clone(),
            api_url: self.quickbooks_api_url.clone(),
        })
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// How platform calls are made: within API Gateway's 30 s, with a few retries.
    pub fn retry(&self) -> crate::platforms::http::RetryPolicy {
        crate::platforms::http::RetryPolicy {
            attempts: self.http_attempts,
            timeout: std::time::Duration::from_secs(self.http_timeout_seconds),
            max_retry_after: std::time::Duration::from_secs(5),
            ..crate::platforms::http::RetryPolicy::default()
        }
    }
}

/// What the sync worker is configured with.
///
/// | variable | meaning | default |
/// |---|---|---|
/// | `TABLE_NAME`, `KMS_KEY_ID`, `SCHEDULE_GROUP`, `SYNC_QUEUE_URL`, `SYNC_QUEUE_ARN`, `SYNC_DLQ_ARN`, `SCHEDULER_ROLE_ARN` | as the API's (the worker repairs lagging triggers) | required |
/// | `RUN_RETENTION_DAYS` | how long runs are kept | `90` |
/// | `LEASE_SECONDS` | how long a stream's lease lasts unless renewed | `60` |
/// | `OVERLAP_SECONDS` | how far before its cursor an incremental run re-reads | `120` |
/// | `SAFETY_MARGIN_SECONDS` | how long before the invocation's deadline a run checkpoints | `20` |
/// | `TIME_BUDGET_MS` | if set, a run also checkpoints this long after it started | |
/// | `RECORD_ATTEMPTS` | failed tries of a record before it is quarantined; tries of a webhook job's record whose write fails in a way that may pass | `5` |
/// | `RECORD_RETRY_SECONDS` | wait before the first retry of such records (doubling, at most 900) | `30` |
/// | `HTTP_TIMEOUT_SECONDS` | every platform call's timeout | `30` |
/// | `HTTP_ATTEMPTS` | tries per platform call (retries on 429, 5xx, timeouts) | `5` |
/// | `THROTTLE_WAIT_SECONDS` | wait after a 429 that does not say how long | backoff; QuickBooks `60` |
/// | `QBO_CLIENT_ID`, `QBO_CLIENT_SECRET` | the deployment's own Intuit app, for QuickBooks connections without their own | |
/// | `QBO_TOKEN_URL`, `QBO_API_URL` | that app's Intuit hosts, replaced (the local simulator) | Intuit's |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerConfig {
    pub resources: AwsResources,
    pub run_retention_days: i64,
    pub lease_seconds: i64,
    pub overlap_seconds: i64,
    pub safety_margin_seconds: i64,
    pub time_budget_ms: Option<i64>,
    pub record_attempts: i64,
    pub record_retry_seconds: i64,
    pub http_timeout_seconds: i64,
    pub http_attempts: i64,
    pub throttle_wait_seconds: Option<i64>,
    pub quickbooks_app: QuickBooksApp,
}

/// The deployment's own Intuit app (template parameters), if it has one.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct QuickBooksApp {
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    /// Intuit's hosts replaced (`QBO_TOKEN_URL`, `QBO_API_URL`): the local simulator.
    pub token_url: Option<String>,
    pub api_url: Option<String>,
}

impl std::fmt::Debug for QuickBooksApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuickBooksApp")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl QuickBooksApp {
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        let value = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        Self {
            client_id: value("QBO_CLIENT_ID"),
            client_secret: value("QBO_CLIENT_SECRET"),
            token_url: value("QBO_TOKEN_URL"),
            api_url: value("QBO_API_URL"),
        }
    }

    /// As secrets a QuickBooks connector falls back to.
    pub fn secrets(&self) -> crate::domain::Secrets {
        let mut out = crate::domain::Secrets::new();
        if let (Some(id), Some(secret)) = (&self.client_id, &self.client_secret) {
            out.insert("client_id".into(), crate::domain::Secret::new(id.clone()));
            out.insert(
                "client_secret".into(),
                crate::domain::Secret::new(secret.clone()),
            );
            for (key, value) in [("token_url", &self.token_url), ("api_url", &self.api_url)] {
                if let Some(v) = value {
                    out.insert(key.into(), crate::domain::Secret::new(v.clone()));
                }
            }
        }
        out
    }
}

/// How long runs are kept unless `RUN_RETENTION_DAYS` says otherwise.
pub const DEFAULT_RUN_RETENTION_DAYS: i64 = 90;

impl WorkerConfig {
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Ok(Self {
            resources: AwsResources::from_lookup(&get)?,
            run_retention_days: number(&get, "RUN_RETENTION_DAYS", DEFAULT_RUN_RETENTION_DAYS)?,
            lease_seconds: number(&get, "LEASE_SECONDS", 60)?,
            overlap_seconds: number(&get, "OVERLAP_SECONDS", 120)?,
            safety_margin_seconds: number(&get, "SAFETY_MARGIN_SECONDS", 20)?,
            time_budget_ms: match get("TIME_BUDGET_MS").filter(|v| !v.is_empty()) {
                None => None,
                Some(_) => Some(number(&get, "TIME_BUDGET_MS", 1)?),
            },
            record_attempts: number(&get, "RECORD_ATTEMPTS", 5)?,
            record_retry_seconds: number(&get, "RECORD_RETRY_SECONDS", 30)?,
            http_timeout_seconds: number(&get, "HTTP_TIMEOUT_SECONDS", 30)?,
            http_attempts: number(&get, "HTTP_ATTEMPTS", 5)?,
            throttle_wait_seconds: match get("THROTTLE_WAIT_SECONDS").filter(|v| !v.is_empty()) {
                None => None,
                Some(_) => Some(number(&get, "THROTTLE_WAIT_SECONDS", 60)?),
            },
            quickbooks_app: QuickBooksApp::from_lookup(&get),
        })
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// The worker's tunables.
    pub fn settings(&self) -> crate::service::sync::WorkerSettings {
        crate::service::sync::WorkerSettings {
            lease_ttl: chrono::Duration::seconds(self.lease_seconds),
            safety_margin: chrono::Duration::seconds(self.safety_margin_seconds),
            time_budget: self.time_budget_ms.map(chrono::Duration::milliseconds),
            record_attempts: u32::try_from(self.record_attempts.max(1)).unwrap_or(5),
            record_retry: chrono::Duration::seconds(self.record_retry_seconds),
            engine: crate::service::sync::EngineSettings {
                overlap: chrono::Duration::seconds(self.overlap_seconds),
                quarantine_after: u32::try_from(self.record_attempts.max(1)).unwrap_or(5),
            },
        }
    }

    /// How connectors call platforms.
    pub fn retry(&self) -> crate::platforms::http::RetryPolicy {
        crate::platforms::http::RetryPolicy {
            attempts: u32::try_from(self.http_attempts).unwrap_or(5),
            timeout: std::time::Duration::from_secs(
                u64::try_from(self.http_timeout_seconds).unwrap_or(30),
            ),
            throttle_wait: self
                .throttle_wait_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map(std::time::Duration::from_secs),
            ..crate::platforms::http::RetryPolicy::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn api_settings_default_to_edmonton_and_tenant_id() {
        let s = ApiSettings::from_lookup(lookup(&[])).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.default_timezone.name(), "America/Edmonton");
        assert_eq!(s.tenant_claim, "tenant_id");
    }

    #[test]
    fn the_default_zone_can_be_overridden_and_is_checked() {
        let s = ApiSettings::from_lookup(lookup(&[("DEFAULT_TIMEZONE", "Europe/Paris")]));
        assert_eq!(s.map(|s| s.default_timezone.name()), Ok("Europe/Paris"));
        assert!(ApiSettings::from_lookup(lookup(&[("DEFAULT_TIMEZONE", "Nowhere")])).is_err());
        assert!(ApiSettings::from_lookup(lookup(&[("MAX_BODY_BYTES", "-1")])).is_err());
    }

    #[test]
    fn missing_resources_are_named() {
        let err = AwsResources::from_lookup(lookup(&[("TABLE_NAME", "t")])).unwrap_err();
        assert!(err.to_string().contains("SCHEDULE_GROUP"), "{err}");
    }
}

/// What the sweeper function is configured with.
///
/// | variable | meaning | default |
/// |---|---|---|
/// | `TABLE_NAME`, `SCHEDULE_GROUP`, `SYNC_QUEUE_URL`, `SYNC_QUEUE_ARN`, `SYNC_DLQ_ARN`, `SCHEDULER_ROLE_ARN` | as the API's (it queues runs and repairs triggers) | required |
/// | `RUN_RETENTION_DAYS` | how long the runs it records are kept | `90` |
/// | `STALE_AFTER_SECONDS` | an open run unwritten this long is looked at (longer than the sync queue's visibility timeout) | `2700` |
/// | `STREAM_QUIET_SECONDS` | ... and settled only if its stream was not worked on for this long | `300` |
/// | `FIRE_GRACE_SECONDS` | a fire time is judged missed only this long after it | `600` |
/// | `CATCH_UP_SPREAD_SECONDS` | catch-up runs start within this long (at most 900) | `300` |
/// | `METRICS_NAMESPACE` | the CloudWatch namespace of its metrics | `SyncService` |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweeperConfig {
    /// The resources it uses (its key opens alert destinations).
    pub resources: AwsResources,
    pub run_retention_days: i64,
    pub stale_after_seconds: i64,
    pub stream_quiet_seconds: i64,
    pub fire_grace_seconds: i64,
    pub catch_up_spread_seconds: i64,
    pub metrics_namespace: String,
    /// The deployment's SNS alert topic (`ALERT_TOPIC_ARN`); without it an `sns`
    /// destination's notices fail and are recorded so.
    pub alert_topic_arn: Option<String>,
    /// What links in alert notices start with (`PUBLIC_BASE_URL`: the API's URL).
    pub public_base_url: String,
    /// See [`ApiSettings::alert_local_urls`].
    pub alert_local_urls: bool,
    /// A resolution is told once the condition has stayed clear this many minutes; one back
    /// sooner continues the same alert (`ALERT_FLAP_MINUTES`, default 30; 0 tells it at once).
    pub alert_flap_minutes: i64,
}

/// Whether alert destinations may name internal hosts over `http` (the local stack).
fn alert_local_urls(get: &impl Fn(&str) -> Option<String>) -> bool {
    get("ALERT_LOCAL_URLS").is_some_and(|v| v.trim() == "true")
}

impl SweeperConfig {
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Ok(Self {
            resources: AwsResources::from_lookup(&get)?,
            run_retention_days: number(&get, "RUN_RETENTION_DAYS", DEFAULT_RUN_RETENTION_DAYS)?,
            stale_after_seconds: number(&get, "STALE_AFTER_SECONDS", 2700)?,
            stream_quiet_seconds: number(&get, "STREAM_QUIET_SECONDS", 300)?,
            fire_grace_seconds: number(&get, "FIRE_GRACE_SECONDS", 600)?,
            catch_up_spread_seconds: number(&get, "CATCH_UP_SPREAD_SECONDS", 300)?,
            metrics_namespace: metrics_namespace(&get),
            alert_topic_arn: get("ALERT_TOPIC_ARN").filter(|v| !v.trim().is_empty()),
            public_base_url: get("PUBLIC_BASE_URL").unwrap_or_default(),
            alert_local_urls: alert_local_urls(&get),
            alert_flap_minutes: non_negative(&get, "ALERT_FLAP_MINUTES", 30)?,
        })
    }

    pub fn settings(&self) -> crate::service::SweeperSettings {
        crate::service::SweeperSettings {
            stale_after: chrono::Duration::seconds(self.stale_after_seconds),
            quiet: chrono::Duration::seconds(self.stream_quiet_seconds),
            grace: chrono::Duration::seconds(self.fire_grace_seconds),
            spread: chrono::Duration::seconds(self.catch_up_spread_seconds.min(900)),
            ..crate::service::SweeperSettings::default()
        }
    }

    /// How alert notices are sent.
    pub fn delivery(&self) -> crate::service::DeliverySettings {
        crate::service::DeliverySettings {
            flap: chrono::Duration::minutes(self.alert_flap_minutes.max(0)),
            api_base: self.public_base_url.clone(),
            allow_internal: self.alert_local_urls,
            ..crate::service::DeliverySettings::default()
        }
    }
}
