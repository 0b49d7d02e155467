//! SQS queues: the webhook-events queue (intake → coalescer) and the sync queue
//! (coalescer → worker).

use async_trait::async_trait;
use aws_sdk_sqs::Client;

use crate::sdk::describe;
use sync_core::domain::{QueuedEvent, SyncJob};
use sync_core::ports::{EventQueue, JobQueue, QueueError};

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

    async fn send(&self, body: String) -> Result<String, QueueError> {
        let out = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| QueueError(describe(&e)))?;
        Ok(out.message_id().unwrap_or_default().to_string())
    }
}

#[async_trait]
impl EventQueue for SqsQueue {
    async fn send_event(&self, event: &QueuedEvent) -> Result<String, QueueError> {
        let body = serde_json::to_string(event).map_err(|e| QueueError(e.to_string()))?;
        self.send(body).await
    }
}

#[async_trait]
impl JobQueue for SqsQueue {
    async fn send_job(&self, job: &SyncJob) -> Result<String, QueueError> {
        let body = serde_json::to_string(job).map_err(|e| QueueError(e.to_string()))?;
        self.send(body).await
    }
}
