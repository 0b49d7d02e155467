//! The coalescer Lambda, fed by the webhook-events queue with a batching window: each batch
//! becomes one sync job per (connection, entity type). Messages whose job could not be
//! queued are reported as batch item failures, so SQS retries only those.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent};

use std::time::Duration;
use sync_aws::metrics::Metric;
use sync_aws::SdkConfig;
use sync_core::config::{CoalescerConfig, ConfigError};
use sync_core::service::{CoalesceReport, Coalescer, Incoming};

/// Events handed over at once by the queue's event source (the template's `BatchSize`).
pub const BATCH_SIZE: usize = 1000;
/// The function's timeout (the template's `Timeout`); the events queue's visibility timeout
/// is six times it.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// What the handler needs, built once per cold start.
pub struct App {
    pub coalescer: Coalescer,
    /// Where the batches' metrics go (`METRICS_NAMESPACE`).
    pub metrics_namespace: String,
}

/// The function's wiring from its environment (`get` reads one variable): what its `main`
/// builds in Lambda, and what the local stack builds on loopback.
pub fn from_lookup(
    sdk: &SdkConfig,
    get: impl Fn(&str) -> Option<String>,
) -> Result<App, ConfigError> {
    let metrics_namespace = sync_core::config::metrics_namespace(&get);
    Ok(App {
        coalescer: sync_aws::wiring::coalescer(sdk, &CoalescerConfig::from_lookup(get)?),
        metrics_namespace,
    })
}

/// What a batch came to, as one metrics log line (CloudWatch's embedded metric format;
/// dimension `Function=WebhookCoalescer`): events in, jobs queued, events handed back to
/// the queue (their job was not queued) and messages dropped as not events.
pub fn metrics(
    namespace: &str,
    events: usize,
    report: &CoalesceReport,
    at: chrono::DateTime<chrono::Utc>,
) -> String {
    sync_aws::metrics::emf(
        namespace,
        &[("Function", "WebhookCoalescer")],
        &[
            Metric::count("WebhookEventsCoalesced", events as u64),
            Metric::count("SyncJobsQueued", report.jobs.len() as u64),
            Metric::count("WebhookEventsHandedBack", report.failed.len() as u64),
            Metric::count("WebhookMessagesMalformed", report.malformed as u64),
        ],
        at,
    )
}

pub async fn handle(app: &App, event: LambdaEvent<SqsEvent>) -> Result<SqsBatchResponse, Error> {
    let batch: Vec<Incoming> = event
        .payload
        .records
        .into_iter()
        .map(|m| Incoming {
            message_id: m.message_id.unwrap_or_default(),
            body: m.body.unwrap_or_default(),
        })
        .collect();
    let events = batch.len();
    let report = app.coalescer.run(batch).await;
    println!(
        "{}",
        metrics(&app.metrics_namespace, events, &report, chrono::Utc::now())
    );
    let mut response = SqsBatchResponse::default();
    for id in report.failed {
        response.add_failure(id);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use sync_core::memory::{MemoryEventStore, MemoryQueue};

    fn app(coalescer: Coalescer) -> App {
        App {
            coalescer,
            metrics_namespace: "SyncService".into(),
        }
    }

    /// The event log with the claims of the batch's events, as the intake left them.
    fn holding(batch: &SqsEvent) -> Arc<MemoryEventStore> {
        let store = Arc::new(MemoryEventStore::default());
        for body in batch.records.iter().filter_map(|m| m.body.as_deref()) {
            if let Ok(event) = serde_json::from_str(body) {
                store.hold(&event);
            }
        }
        store
    }

    fn sqs_event(bodies: &[&str]) -> SqsEvent {
        let records: Vec<_> = bodies
            .iter()
            .enumerate()
            .map(|(i, b)| serde_json::json!({"messageId": format!("m{i}"), "body": b}))
            .collect();
        serde_json::from_value(serde_json::json!({ "Records": records })).unwrap_or_default()
    }

    #[tokio::test]
    async fn failed_jobs_are_reported_per_message() {
        let body = format!(
            r#"{{"tenant_id":"t","connection_id":"{}","platform":"woocommerce","entity_type":"orders","entity_id":"1","event_type":"order.updated","key_hash":"h","log_key":"k","received_at":"2026-11-24T12:00:00Z"}}"#,
            sync_core::domain::ConnectionId::new_random()
        );
        let batch = sqs_event(&[&body, "garbage"]);
        let queue = Arc::new(MemoryQueue::default());
        queue.set_failing(true);
        let coalescer = app(Coalescer::new(
            queue,
            holding(&batch),
            Arc::new(sync_core::memory::MemorySyncLeases::default()),
        ));
        let event = LambdaEvent::new(batch, lambda_runtime::Context::default());
        let response = handle(&coalescer, event).await.unwrap_or_default();
        let failed: Vec<_> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        // The malformed message is dropped (it would fail forever), not retried.
        assert_eq!(failed, ["m0"]);
    }

    fn sample_batch() -> LambdaEvent<SqsEvent> {
        let text = sync_core::fixtures::event_file("webhook-coalescer-events.json")
            .unwrap_or_else(|e| panic!("{e}"));
        let event: SqsEvent = serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{e}"));
        LambdaEvent::new(event, lambda_runtime::Context::default())
    }

    #[tokio::test]
    async fn the_sample_batch_becomes_one_job_with_both_orders_and_nothing_to_retry() {
        let queue = Arc::new(MemoryQueue::default());
        let coalescer = app(Coalescer::new(
            queue.clone(),
            holding(&sample_batch().payload),
            Arc::new(sync_core::memory::MemorySyncLeases::default()),
        ));
        let response = handle(&coalescer, sample_batch()).await.unwrap_or_default();
        assert!(response.batch_item_failures.is_empty());
        let jobs = queue.jobs();
        assert_eq!(jobs.len(), 1, "{jobs:?}");
        assert_eq!(jobs[0].ids, ["1042", "1043"]);
        assert_eq!(jobs[0].tenant_id.as_str(), "acme");
    }

    #[tokio::test]
    async fn when_the_sync_queue_refuses_the_sample_batch_its_two_events_are_handed_back() {
        let queue = Arc::new(MemoryQueue::default());
        queue.set_failing(true);
        let coalescer = app(Coalescer::new(
            queue,
            holding(&sample_batch().payload),
            Arc::new(sync_core::memory::MemorySyncLeases::default()),
        ));
        let response = handle(&coalescer, sample_batch()).await.unwrap_or_default();
        let failed: Vec<_> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(
            failed,
            [
                "7c3e2d1a-0001-4b5c-8d9e-000000000001",
                "7c3e2d1a-0002-4b5c-8d9e-000000000002"
            ]
        );
    }

    #[test]
    fn a_batch_is_one_metrics_line_of_events_in_jobs_out_and_events_handed_back() {
        let report = CoalesceReport {
            jobs: Vec::new(),
            failed: vec!["m0".into(), "m1".into()],
            malformed: 1,
        };
        let line: serde_json::Value =
            serde_json::from_str(&metrics("SyncService/test", 3, &report, chrono::Utc::now()))
                .unwrap_or_default();
        assert_eq!(line["Function"], "WebhookCoalescer");
        assert_eq!(line["WebhookEventsCoalesced"], 3.0);
        assert_eq!(line["SyncJobsQueued"], 0.0);
        assert_eq!(line["WebhookEventsHandedBack"], 2.0);
        assert_eq!(line["WebhookMessagesMalformed"], 1.0);
    }
}
