//! Emulates Lambda's SQS event source mapping, which moto does not run: it polls a queue,
//! hands a batch to a function's own handler as the `SqsEvent` Lambda would send, and then
//! does what the mapping does with the answer:
//! - a message reported in `batchItemFailures` is left on the queue; it becomes visible again
//!   after the visibility timeout, and SQS's redrive policy moves it to the dead-letter queue
//!   after `maxReceiveCount` receives; a reported id that is empty or names no message of
//!   the batch fails the whole batch, as Lambda treats it;
//! - every other message of the batch is deleted;
//! - a handler that fails outright (an invocation error) leaves the whole batch.
//!
//! The handler gets a context whose deadline is the function's timeout from now, as Lambda
//! sets it, so runs that checkpoint near their deadline do so here too.

use anyhow::Result;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::types::MessageSystemAttributeName;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{json, Map, Value};
use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;

use sync_aws::{describe, SdkConfig};

/// How one function's event source mapping is configured (the template's values).
#[derive(Debug, Clone)]
pub struct Mapping {
    pub queue_url: String,
    pub queue_arn: String,
    /// Most messages handed over in one invocation.
    pub batch_size: usize,
    /// How long messages are gathered before the batch is handed over (at most).
    pub window: Duration,
    /// The function's timeout: the invocation's deadline is this far from its start.
    pub timeout: Duration,
    /// How long a received message stays invisible (the queue's visibility timeout).
    pub visibility_timeout: Duration,
}

/// What one poll did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PollReport {
    pub received: usize,
    pub deleted: usize,
    /// Messages left on the queue: reported failures, or the whole batch on an error.
    pub returned: usize,
}

pub struct SqsEventSource {
    sqs: aws_sdk_sqs::Client,
    mapping: Mapping,
}

impl SqsEventSource {
    pub fn new(sdk: &SdkConfig, mapping: Mapping) -> Self {
        Self {
            sqs: aws_sdk_sqs::Client::new(sdk),
            mapping,
        }
    }

    /// Receives up to one batch, invokes `handler` with it (if anything came), and settles
    /// the messages by its answer.
    pub async fn poll_once<H, F>(&self, handler: &H) -> Result<PollReport>
    where
        H: Fn(LambdaEvent<SqsEvent>) -> F,
        F: Future<Output = Result<SqsBatchResponse, lambda_runtime::Error>>,
    {
        let messages = self.receive_batch().await?;
        if messages.is_empty() {
            return Ok(PollReport::default());
        }
        let receipts: Vec<(String, String)> = messages
            .iter()
            .map(|m| {
                (
                    m.message_id().unwrap_or_default().to_string(),
                    m.receipt_handle().unwrap_or_default().to_string(),
                )
            })
            .collect();
        let event = self.event(&messages)?;
        let mut context = Context::default();
        context.request_id = uuid::Uuid::new_v4().to_string();
        context.deadline = deadline_millis(self.mapping.timeout);
        let mut report = PollReport {
            received: receipts.len(),
            ..PollReport::default()
        };
        let everything = || receipts.iter().map(|(id, _)| id.clone()).collect();
        let failed: HashSet<String> = match handler(LambdaEvent::new(event, context)).await {
            Ok(response) => {
                let reported: HashSet<String> = response
                    .batch_item_failures
                    .into_iter()
                    .map(|f| f.item_identifier)
                    .collect();
                // As Lambda does: a reported id that is empty or not in the batch fails the
                // whole batch (nothing is deleted).
                if reported
                    .iter()
                    .any(|id| !receipts.iter().any(|(known, _)| known == id))
                {
                    tracing::warn!("the response names a message not in the batch; the whole batch stays on the queue");
                    everything()
                } else {
                    reported
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "invocation failed; the whole batch stays on the queue");
                everything()
            }
        };
        for (id, receipt) in receipts {
            if failed.contains(&id) {
                report.returned += 1;
                continue;
            }
            self.sqs
                .delete_message()
                .queue_url(&self.mapping.queue_url)
                .receipt_handle(receipt)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!(describe(&e)))?;
            report.deleted += 1;
        }
        Ok(report)
    }

    /// Polls forever, `pause` apart when the queue was empty or could not be read.
    pub async fn run<H, F>(&self, handler: H, pause: Duration)
    where
        H: Fn(LambdaEvent<SqsEvent>) -> F,
        F: Future<Output = Result<SqsBatchResponse, lambda_runtime::Error>>,
    {
        loop {
            match self.poll_once(&handler).await {
                Ok(r) if r.received > 0 => {
                    tracing::debug!(
                        received = r.received,
                        returned = r.returned,
                        "batch handled"
                    )
                }
                Ok(_) => tokio::time::sleep(pause).await,
                Err(e) => {
                    tracing::warn!(queue = %self.mapping.queue_url, error = %e, "polling the queue failed");
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }

    /// Up to `batch_size` messages, gathered for at most the batching window.
    async fn receive_batch(&self) -> Result<Vec<aws_sdk_sqs::types::Message>> {
        let started = tokio::time::Instant::now();
        let mut batch = Vec::new();
        while batch.len() < self.mapping.batch_size {
            let want = (self.mapping.batch_size - batch.len()).min(10);
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.mapping.queue_url)
                .max_number_of_messages(i32::try_from(want).unwrap_or(10))
                .visibility_timeout(
                    i32::try_from(self.mapping.visibility_timeout.as_secs()).unwrap_or(30),
                )
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!(describe(&e)))?;
            let got = out.messages.unwrap_or_default();
            let empty = got.is_empty();
            batch.extend(got);
            if started.elapsed() >= self.mapping.window {
                break;
            }
            if empty {
                if batch.is_empty() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(batch)
    }

    /// The event Lambda sends for these messages.
    fn event(&self, messages: &[aws_sdk_sqs::types::Message]) -> Result<SqsEvent> {
        let records: Vec<Value> = messages
            .iter()
            .map(|m| {
                let attributes: Map<String, Value> = m
                    .attributes()
                    .map(|a| {
                        a.iter()
                            .map(|(k, v)| (k.as_str().to_string(), json!(v)))
                            .collect()
                    })
                    .unwrap_or_default();
                json!({
                    "messageId": m.message_id(),
                    "receiptHandle": m.receipt_handle(),
                    "body": m.body(),
                    "md5OfBody": m.md5_of_body(),
                    "attributes": attributes,
                    "messageAttributes": {},
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.mapping.queue_arn,
                    "awsRegion": "us-east-1",
                })
            })
            .collect();
        Ok(serde_json::from_value(json!({ "Records": records }))?)
    }
}

/// Milliseconds since the epoch, `timeout` from now.
fn deadline_millis(timeout: Duration) -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from((now + timeout).as_millis()).unwrap_or(u64::MAX)
}
