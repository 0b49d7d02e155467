//! Emulates the SQS event source that feeds the coalescer in AWS: it gathers what is on the
//! webhook-events queue for a batching window, hands the batch to the same coalescer the
//! Lambda runs, and deletes the messages that were handled (failed ones stay, and come back
//! after their visibility timeout, as with `ReportBatchItemFailures`).

use anyhow::Result;
use std::time::Duration;

use sync_aws::{describe, SdkConfig};
use sync_core::service::{CoalesceReport, Coalescer, Incoming};

pub struct EventPump {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    coalescer: Coalescer,
}

impl EventPump {
    pub fn new(sdk: &SdkConfig, queue_url: impl Into<String>, coalescer: Coalescer) -> Self {
        Self {
            sqs: aws_sdk_sqs::Client::new(sdk),
            queue_url: queue_url.into(),
            coalescer,
        }
    }

    /// Takes everything on the queue now as one batch and coalesces it.
    pub async fn pump_once(&self) -> Result<CoalesceReport> {
        let mut batch = Vec::new();
        let mut receipts = Vec::new();
        loop {
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .visibility_timeout(60)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!(describe(&e)))?;
            if out.messages().is_empty() {
                break;
            }
            for m in out.messages() {
                let id = m.message_id().unwrap_or_default().to_string();
                receipts.push((
                    id.clone(),
                    m.receipt_handle().unwrap_or_default().to_string(),
                ));
                batch.push(Incoming {
                    message_id: id,
                    body: m.body().unwrap_or_default().to_string(),
                });
            }
        }
        if batch.is_empty() {
            return Ok(CoalesceReport::default());
        }
        let report = self.coalescer.run(batch).await;
        for (id, receipt) in receipts {
            if !report.failed.contains(&id) {
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(receipt)
                    .send()
                    .await
                    .map_err(|e| anyhow::anyhow!(describe(&e)))?;
            }
        }
        Ok(report)
    }

    /// Pumps every `window`, forever.
    pub async fn run(self, window: Duration) {
        loop {
            tokio::time::sleep(window).await;
            match self.pump_once().await {
                Ok(r) if !r.jobs.is_empty() => {
                    tracing::info!(jobs = r.jobs.len(), "webhook events coalesced")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "coalescing pass failed"),
            }
        }
    }
}
