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
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            default_timezone: DEFAULT_ZONE.parse().unwrap_or(Zone::UTC),
            tenant_claim: "tenant_id".to_string(),
            max_body_bytes: 64 * 1024,
            public_base_url: None,
        }
    }
}

impl AwsResources {
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let required = |name: &str| {
            get(name)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| ConfigError(format!("{name} is not set")))
        };
        Ok(Self {
            table_name: required("TABLE_NAME")?,
            schedule_group: required("SCHEDULE_GROUP")?,
            sync_queue_arn: required("SYNC_QUEUE_ARN")?,
            sync_dlq_arn: required("SYNC_DLQ_ARN")?,
            scheduler_role_arn: required("SCHEDULER_ROLE_ARN")?,
            kms_key_id: required("KMS_KEY_ID")?,
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
        if let Some(bytes) = get("MAX_BODY_BYTES").filter(|v| !v.is_empty()) {
            settings.max_body_bytes = bytes.parse().ok().filter(|b| *b > 0).ok_or_else(|| {
                ConfigError(format!(
                    "MAX_BODY_BYTES: '{bytes}' is not a positive number"
                ))
            })?;
        }
        settings.public_base_url = get("PUBLIC_BASE_URL").filter(|v| !v.is_empty());
        Ok(settings)
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
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
        let s = ApiSettings::from_lookup(lookup(&[])).unwrap_or_default();
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
