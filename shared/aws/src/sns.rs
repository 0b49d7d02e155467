//! The deployment's alert topic on SNS: one message per notice, the tenant as a message
//! attribute (so a subscription's filter policy can take one tenant's alerts).

use async_trait::async_trait;
use aws_sdk_sns::types::MessageAttributeValue;
use aws_sdk_sns::Client;

use crate::sdk::describe;
use sync_core::domain::TenantId;
use sync_core::ports::AlertTopic;

#[derive(Clone, Debug)]
pub struct SnsAlertTopic {
    client: Client,
    topic_arn: String,
}

impl SnsAlertTopic {
    pub fn new(client: Client, topic_arn: impl Into<String>) -> Self {
        Self {
            client,
            topic_arn: topic_arn.into(),
        }
    }
}

#[async_trait]
impl AlertTopic for SnsAlertTopic {
    async fn publish(
        &self,
        tenant: &TenantId,
        subject: &str,
        message: &str,
        dedup: &str,
    ) -> Result<(), String> {
        let attribute = |value: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| e.to_string())
        };
        // (SNS subjects are ASCII without line breaks, under 100 characters.)
        let subject: String = subject
            .chars()
            .map(|c| {
                if c.is_ascii() && !c.is_ascii_control() {
                    c
                } else {
                    ' '
                }
            })
            .take(99)
            .collect();
        self.client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(subject)
            .message(message)
            .message_attributes("tenant_id", attribute(tenant.as_str())?)
            .message_attributes("notice_id", attribute(dedup)?)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                // (The detail names the account and topic: logged, not kept on the tenant's
                // alert.)
                tracing::warn!(error = %describe(&e), "alert not published to the topic");
                let code = e
                    .as_service_error()
                    .and_then(|s| s.meta().code())
                    .unwrap_or("unreachable");
                format!("the alert topic refused the notice ({code})")
            })
    }
}
