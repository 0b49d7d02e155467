//! Building SDK configuration: the default chain in AWS, or a fixed local endpoint (moto)
//! with dummy credentials for the local stack and the tests.

pub use aws_config::SdkConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::config::Credentials;

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

use crate::clock::Clock;
use crate::config::AwsResources;
use crate::service::{ConnectionService, ScheduleService, Services};
use std::sync::Arc;

/// The API's use cases over DynamoDB, EventBridge Scheduler and KMS.
pub fn services(sdk: &SdkConfig, resources: &AwsResources, clock: Arc<dyn Clock>) -> Services {
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    let connection_store = Arc::new(super::DynamoConnectionStore::new(
        dynamodb.clone(),
        resources.table_name.clone(),
    ));
    let schedules = ScheduleService::new(
        Arc::new(super::DynamoScheduleStore::new(
            dynamodb,
            resources.table_name.clone(),
        )),
        Arc::new(super::EventBridgeTrigger::new(
            aws_sdk_scheduler::Client::new(sdk),
            resources,
        )),
        connection_store.clone(),
        clock.clone(),
    );
    let connections = ConnectionService::new(
        connection_store,
        Arc::new(super::KmsSealer::new(
            aws_sdk_kms::Client::new(sdk),
            resources.kms_key_id.clone(),
        )),
        schedules.clone(),
        clock,
    );
    let events = Arc::new(super::DynamoEventStore::new(
        aws_sdk_dynamodb::Client::new(sdk),
        resources.table_name.clone(),
    ));
    Services {
        schedules,
        connections,
        events,
    }
}

/// The webhook intake over DynamoDB, KMS and SQS.
pub fn intake(
    sdk: &SdkConfig,
    config: &crate::config::IntakeConfig,
    clock: Arc<dyn Clock>,
) -> crate::service::Intake {
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    crate::service::Intake::new(
        Arc::new(super::DynamoConnectionStore::new(
            dynamodb.clone(),
            config.table_name.clone(),
        )),
        Arc::new(super::KmsSealer::new(
            aws_sdk_kms::Client::new(sdk),
            config.kms_key_id.clone(),
        )),
        Arc::new(super::DynamoEventStore::new(
            dynamodb,
            config.table_name.clone(),
        )),
        Arc::new(super::SqsQueue::new(
            aws_sdk_sqs::Client::new(sdk),
            config.webhook_queue_url.clone(),
        )),
        clock,
        config.settings(),
    )
}

/// The coalescer over SQS (jobs) and DynamoDB (event log).
pub fn coalescer(
    sdk: &SdkConfig,
    config: &crate::config::CoalescerConfig,
) -> crate::service::Coalescer {
    crate::service::Coalescer::new(
        Arc::new(super::SqsQueue::new(
            aws_sdk_sqs::Client::new(sdk),
            config.sync_queue_url.clone(),
        )),
        Arc::new(super::DynamoEventStore::new(
            aws_sdk_dynamodb::Client::new(sdk),
            config.table_name.clone(),
        )),
    )
}
