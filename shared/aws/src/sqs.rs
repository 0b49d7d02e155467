//! SQS queues: the webhook-events queue (intake → coalescer) and the sync queue
//! (coalescer → worker).

use async_trait::async_trait;
use aws_sdk_sqs::Client;

use crate::sdk::describe;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use futures::stream::{self, StreamExt};
use std::collections::HashMap;
use sync_core::domain::{QueuedEvent, SyncJob};
use sync_core::ports::{EventQueue, JobQueue, QueueError, QUEUE_BATCH};

/// How many SendMessageBatch calls of one send are in flight at once.
const BATCHES_IN_FLIGHT: usize = 5;

#[derive(Clone, Debug)]
pub struct SqsQueue {
    client: Client,
    url: String,
}

impl SqsQueue {
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }

    /// One SendMessageBatch call for up to ten events; one outcome per event, in order. SQS
    /// answers per entry, so some can be accepted while others are refused.
    async fn send_batch(&self, events: &[QueuedEvent]) -> Vec<Result<String, QueueError>> {
        let mut entries = Vec::with_capacity(events.len());
        for (i, event) in events.iter().enumerate() {
            let body = match serde_json::to_string(event) {
                Ok(body) => body,
                Err(e) => {
                    return events
                        .iter()
                        .map(|_| Err(QueueError(e.to_string())))
                        .collect()
                }
            };
            match SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(body)
                .build()
            {
                Ok(entry) => entries.push(entry),
                Err(e) => {
                    return events
                        .iter()
                        .map(|_| Err(QueueError(e.to_string())))
                        .collect()
                }
            }
        }
        let out = match self
            .client
            .send_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                let why = describe(&e);
                return events
                    .iter()
                    .map(|_| Err(QueueError(why.clone())))
                    .collect();
            }
        };
        let mut outcome: HashMap<&str, Result<String, QueueError>> = HashMap::new();
        for ok in out.successful() {
            outcome.insert(ok.id(), Ok(ok.message_id().to_string()));
        }
        for failed in out.failed() {
            let why = format!(
                "{}: {}",
                failed.code(),
                failed.message().unwrap_or_default()
            );
            outcome.insert(failed.id(), Err(QueueError(why)));
        }
        (0..events.len())
            .map(|i| {
                outcome.remove(i.to_string().as_str()).unwrap_or_else(|| {
                    Err(QueueError("SQS did not answer for this message".into()))
                })
            })
            .collect()
    }

    async fn send(&self, body: String, delay_seconds: Option<i32>) -> Result<String, QueueError> {
        let out = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .set_delay_seconds(delay_seconds)
            .send()
            .await
            .map_err(|e| QueueError(describe(&e)))?;
        Ok(out.message_id().unwrap_or_default().to_string())
    }
}

#[async_trait]
impl EventQueue for SqsQueue {
    async fn send_events(&self, events: &[QueuedEvent]) -> Vec<Result<String, QueueError>> {
        // Batches are independent: a few in flight at once, answers kept in order.
        let batches: Vec<_> = events
            .chunks(QUEUE_BATCH)
            .map(|chunk| self.send_batch(chunk))
            .collect();
        stream::iter(batches)
            .buffered(BATCHES_IN_FLIGHT)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .flatten()
            .collect()
    }
}

#[async_trait]
impl JobQueue for SqsQueue {
    async fn send_job(&self, job: &SyncJob) -> Result<String, QueueError> {
        let body = serde_json::to_string(job).map_err(|e| QueueError(e.to_string()))?;
        self.send(body, None).await
    }

    async fn send_job_later(
        &self,
        job: &SyncJob,
        delay: std::time::Duration,
    ) -> Result<String, QueueError> {
        let body = serde_json::to_string(job).map_err(|e| QueueError(e.to_string()))?;
        // SQS delays messages by at most 15 minutes.
        let seconds = i32::try_from(delay.as_secs().min(900)).unwrap_or(900);
        self.send(body, Some(seconds)).await
    }
}
