//! Building SDK configuration: the default chain in AWS, or a fixed local endpoint (moto)
//! with dummy credentials for the local stack and the tests.

pub use aws_config::SdkConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::config::Credentials;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

/// The environment's configuration (Lambda role, region, `AWS_ENDPOINT_URL*` overrides).
pub async fn from_env() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// Configuration for an emulated AWS at `endpoint`, needing nothing from the environment.
pub async fn local(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "local"))
        .load()
        .await
}

/// The full text of an SDK error (the default `Display` of SDK errors is only a summary).
pub fn describe<E: std::error::Error>(err: &E) -> String {
    aws_sdk_dynamodb::error::DisplayErrorContext(err).to_string()
}

/// Whether a DynamoDB write was refused by its condition expression, whichever operation it
/// was (`ConditionalCheckFailedException`; a transaction's cancellation is not this).
pub fn condition_failed<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    err.as_service_error().and_then(ProvideErrorMetadata::code)
        == Some("ConditionalCheckFailedException")
}
