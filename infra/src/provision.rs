//! Creating the AWS resources the template defines, in emulated AWS (moto's CloudFormation
//! skips Scheduler resources and TTL, so the local stack creates them with the SDK).

use anyhow::{Context, Result};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use aws_sdk_sqs::types::QueueAttributeName;
use sync_aws::{describe, SdkConfig};
use sync_core::config::AwsResources;
use sync_core::ports::MAX_RECEIVES;

/// Names for one set of resources; tests use a unique suffix so they can share one moto.
#[derive(Debug, Clone)]
pub struct Names {
    pub table: String,
    pub queue: String,
    pub dlq: String,
    pub events_queue: String,
    pub events_dlq: String,
    pub group: String,
    pub alert_topic: String,
}

impl Names {
    /// The names the local stack uses.
    pub fn local() -> Self {
        Self::with_suffix("local")
    }

    pub fn with_suffix(suffix: &str) -> Self {
        Self {
            table: format!("sync-{suffix}"),
            queue: format!("sync-jobs-{suffix}"),
            dlq: format!("sync-jobs-dlq-{suffix}"),
            events_queue: format!("sync-webhook-events-{suffix}"),
            events_dlq: format!("sync-webhook-events-dlq-{suffix}"),
            group: format!("sync-{suffix}"),
            alert_topic: format!("sync-alerts-{suffix}"),
        }
    }
}

/// The role the emulated scheduler "assumes"; moto does not check it.
pub const LOCAL_SCHEDULER_ROLE: &str = "arn:aws:iam::123456789012:role/sync-scheduler-local";

/// What [`provision`] made.
#[derive(Debug, Clone)]
pub struct Provisioned {
    /// What the API function is configured with.
    pub resources: AwsResources,
    pub sync_queue_url: String,
    pub events_queue_url: String,
    pub events_queue_arn: String,
    /// The SNS topic alerts with an `sns` destination are published to.
    pub alert_topic_arn: String,
}

/// A queue's redrive policy: to `dlq_arn` after [`MAX_RECEIVES`] receives.
fn redrive_policy(dlq_arn: &str) -> String {
    serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVES.to_string()})
        .to_string()
}

/// Creates the table, the KMS key, the queues with their DLQs, the alert topic and the
/// schedule group;
/// existing ones are reused, so running it twice is harmless.
pub async fn provision(sdk: &SdkConfig, names: &Names) -> Result<Provisioned> {
    create_table(sdk, &names.table).await?;
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let (_, dlq_arn) = create_queue(&sqs, &names.dlq, None).await?;
    let redrive = redrive_policy(&dlq_arn);
    let (sync_queue_url, queue_arn) = create_queue(&sqs, &names.queue, Some(redrive)).await?;
    let (_, events_dlq_arn) = create_queue(&sqs, &names.events_dlq, None).await?;
    let redrive = redrive_policy(&events_dlq_arn);
    let (events_queue_url, events_queue_arn) =
        create_queue(&sqs, &names.events_queue, Some(redrive)).await?;
    let kms_key_id = secrets_key(sdk, &names.table).await?;
    // (Creating a topic that exists answers its ARN.)
    let alert_topic_arn = aws_sdk_sns::Client::new(sdk)
        .create_topic()
        .name(&names.alert_topic)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!(describe(&e)))
        .context("creating the alert topic")?
        .topic_arn()
        .unwrap_or_default()
        .to_string();
    let scheduler = aws_sdk_scheduler::Client::new(sdk);
    if let Err(e) = scheduler
        .create_schedule_group()
        .name(&names.group)
        .send()
        .await
    {
        if !e
            .as_service_error()
            .is_some_and(|se| se.is_conflict_exception())
        {
            return Err(anyhow::anyhow!(describe(&e))).context("creating the schedule group");
        }
    }
    Ok(Provisioned {
        resources: AwsResources {
            table_name: names.table.clone(),
            schedule_group: names.group.clone(),
            sync_queue_url: sync_queue_url.clone(),
            sync_queue_arn: queue_arn,
            sync_dlq_arn: dlq_arn,
            scheduler_role_arn: LOCAL_SCHEDULER_ROLE.to_string(),
            kms_key_id,
        },
        sync_queue_url,
        events_queue_url,
        events_queue_arn,
        alert_topic_arn,
    })
}

/// The key that seals connection secrets, found by its alias or created with it.
async fn secrets_key(sdk: &SdkConfig, table: &str) -> Result<String> {
    let kms = aws_sdk_kms::Client::new(sdk);
    let alias = format!("alias/{table}-secrets");
    if let Ok(found) = kms.describe_key().key_id(&alias).send().await {
        if let Some(meta) = found.key_metadata() {
            return Ok(meta.key_id().to_string());
        }
    }
    let key_id = kms
        .create_key()
        .description("sync service connection secrets (local)")
        .send()
        .await
        .map_err(|e| anyhow::anyhow!(describe(&e)))
        .context("creating the KMS key")?
        .key_metadata()
        .map(|m| m.key_id().to_string())
        .context("KMS key without an id")?;
    kms.create_alias()
        .alias_name(&alias)
        .target_key_id(&key_id)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!(describe(&e)))
        .context("naming the KMS key")?;
    Ok(key_id)
}

async fn create_table(sdk: &SdkConfig, table: &str) -> Result<()> {
    let ddb = aws_sdk_dynamodb::Client::new(sdk);
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
    };
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
    };
    let result = ddb
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .attribute_definitions(attr("pk")?)
        .attribute_definitions(attr("sk")?)
        .attribute_definitions(attr("gsi1pk")?)
        .attribute_definitions(attr("gsi1sk")?)
        .attribute_definitions(attr("gsi2pk")?)
        .attribute_definitions(attr("gsi2sk")?)
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(sync_aws::table::TENANT_INDEX)
                .key_schema(key("gsi1pk", KeyType::Hash)?)
                .key_schema(key("gsi1sk", KeyType::Range)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()?,
        )
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(sync_aws::table::SWEEP_INDEX)
                .key_schema(key("gsi2pk", KeyType::Hash)?)
                .key_schema(key("gsi2sk", KeyType::Range)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()?,
        )
        .send()
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.is_resource_in_use_exception()) =>
        {
            Ok(())
        }
        Err(e) => Err(anyhow::anyhow!(describe(&e))).context("creating the table"),
    }
}

/// Creates (or finds) a queue; returns its URL and ARN.
async fn create_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    redrive: Option<String>,
) -> Result<(String, String)> {
    let mut request = sqs
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::VisibilityTimeout, "960");
    if let Some(policy) = redrive {
        request = request.attributes(QueueAttributeName::RedrivePolicy, policy);
    }
    let url = request
        .send()
        .await
        .map_err(|e| anyhow::anyhow!(describe(&e)))
        .with_context(|| format!("creating queue {name}"))?
        .queue_url()
        .context("queue without a URL")?
        .to_string();
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!(describe(&e)))
        .context("reading the queue ARN")?;
    let arn = attrs
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .context("queue without an ARN")?
        .clone();
    Ok((url, arn))
}
