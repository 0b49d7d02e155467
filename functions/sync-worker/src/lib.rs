//! The sync worker Lambda, fed by the sync queue. Each message is a [`SyncJob`]; the batch's
//! jobs run side by side (different streams do not wait for each other), each through
//! [`SyncWorker`], until the invocation's deadline less a safety margin, where runs
//! checkpoint and continue in new messages.
//!
//! The answer is a partial batch response: a job that should be tried again (a platform or
//! a dependency was down) is reported as a failure, so the queue redelivers only that one,
//! and after a few receives moves it to the dead-letter queue. A message that is not a job
//! is dropped with a log line (it would fail forever).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};
use lambda_runtime::{Context, Error, LambdaEvent};

use sync_aws::metrics::Metric;
use sync_core::domain::SyncJob;
use sync_core::service::sync::{JobOutcome, RunTallyCounts, SyncWorker};
use tracing::Instrument;

/// Jobs of one batch run at once.
const JOBS_IN_PARALLEL: usize = 4;

/// Jobs handed over at once by the sync queue's event source (the template's `BatchSize`).
pub const BATCH_SIZE: usize = 5;
/// The function's timeout (the template's `Timeout`); the sync queue's visibility timeout
/// is six times it.
pub const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// What the handler needs, built once per cold start.
pub struct App {
    pub worker: SyncWorker,
    /// Where the runs' metrics go (`METRICS_NAMESPACE`).
    pub metrics_namespace: String,
}

impl App {
    /// The function's wiring from its environment (`get` reads one variable) and the
    /// platforms' HTTP client: what its `main` builds in Lambda, and what the local stack
    /// builds on loopback.
    pub fn from_lookup(
        sdk: &sync_aws::SdkConfig,
        get: impl Fn(&str) -> Option<String>,
        http: std::sync::Arc<dyn sync_core::ports::HttpClient>,
    ) -> Result<Self, sync_core::config::ConfigError> {
        let metrics_namespace = sync_core::config::metrics_namespace(&get);
        let config = sync_core::config::WorkerConfig::from_lookup(get)?;
        let clock = std::sync::Arc::new(sync_core::clock::SystemClock);
        Ok(Self {
            worker: sync_aws::wiring::worker(sdk, &config, http, clock),
            metrics_namespace,
        })
    }
}

/// When the invocation ends: Lambda's deadline, or (outside Lambda) fifteen minutes away.
pub fn deadline(context: &Context) -> DateTime<Utc> {
    i64::try_from(context.deadline)
        .ok()
        .filter(|ms| *ms > 0)
        .and_then(DateTime::from_timestamp_millis)
        .unwrap_or_else(|| Utc::now() + chrono::Duration::minutes(15))
}

pub async fn handle(app: &App, event: LambdaEvent<SqsEvent>) -> Result<SqsBatchResponse, Error> {
    let deadline = deadline(&event.context);
    let jobs: Vec<_> = event
        .payload
        .records
        .into_iter()
        .map(|m| {
            let id = m.message_id.unwrap_or_default();
            let job = serde_json::from_str::<SyncJob>(m.body.as_deref().unwrap_or_default());
            // Which delivery this is: a failure is alerted only on the queue's last.
            let receive = m
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|n| n.parse::<u32>().ok())
                .unwrap_or(1);
            (id, job, receive)
        })
        .collect();
    let outcomes: Vec<(String, JobOutcome)> =
        stream::iter(jobs.into_iter().map(|(id, job, receive)| async move {
            match job {
                Ok(job) => {
                    // Every line logged for the job names it, its tenant and stream.
                    let span = tracing::info_span!(
                        "job",
                        message_id = %id,
                        job_id = %job.job_id,
                        tenant_id = %job.tenant_id,
                        connection_id = %job.connection_id,
                        entity = %job.entity_type,
                        schedule_id = tracing::field::Empty,
                    );
                    if let Some(schedule) = job.trigger.schedule_id() {
                        span.record("schedule_id", tracing::field::display(schedule));
                    }
                    let outcome = app
                        .worker
                        .handle_delivery(job, deadline, receive)
                        .instrument(span)
                        .await;
                    (id, outcome)
                }
                Err(e) => {
                    tracing::error!(message_id = %id, error = %e, "not a sync job; dropped");
                    (id, JobOutcome::Done)
                }
            }
        }))
        .buffer_unordered(JOBS_IN_PARALLEL)
        .collect()
        .await;
    println!(
        "{}",
        metrics(
            &app.metrics_namespace,
            &app.worker.take_counts(),
            Utc::now()
        )
    );
    let mut response = SqsBatchResponse::default();
    for (id, outcome) in outcomes {
        if let JobOutcome::Retry(why) = outcome {
            tracing::warn!(message_id = %id, reason = %why, "job handed back to the queue");
            response.add_failure(id);
        }
    }
    Ok(response)
}

/// What the batch's runs came to, as one metrics log line (CloudWatch's embedded metric
/// format; dimension `Function=SyncWorker`): runs by how they ended, their records, and
/// the alert issues they raised.
/// A run's records are counted when it ends (all its parts together).
pub fn metrics(namespace: &str, c: &RunTallyCounts, at: DateTime<Utc>) -> String {
    sync_aws::metrics::emf(
        namespace,
        &[("Function", "SyncWorker")],
        &[
            Metric::count("RunsSucceeded", c.succeeded),
            Metric::count("RunsPartial", c.partial),
            Metric::count("RunsFailed", c.failed),
            Metric::count("RunsRetried", c.retried),
            Metric::count("RunsSkipped", c.skipped),
            Metric::count("RunsCancelled", c.cancelled),
            Metric::count("RecordsRead", c.records_read),
            Metric::count("RecordsWritten", c.records_written),
            Metric::count("RecordsFailed", c.records_failed),
            Metric::count("RecordsQuarantined", c.records_quarantined),
            Metric::count("AlertsRaised", c.alerts_raised),
        ],
        at,
    )
}

#[cfg(test)]
mod tests;
