//! Coalescing: a batch of queued webhook events becomes one incremental sync job per
//! (connection, entity type), carrying the affected ids. The batch is what the SQS event
//! source gathers within its batching window, so a burst of webhooks for one store's
//! orders costs one sync, not hundreds.

use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::domain::{ConnectionId, QueuedEvent, SyncJob};
use crate::ports::{EventLog, JobQueue};

/// More ids than this and the job carries none: the worker then runs a plain incremental
/// sync from its cursor, which covers them all, instead of a message near SQS's size limit.
pub const MAX_IDS_PER_JOB: usize = 500;

/// One message of the batch.
pub struct Incoming {
    pub message_id: String,
    pub body: String,
}

/// What a batch produced.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CoalesceReport {
    pub jobs: Vec<SyncJob>,
    /// Messages to hand back to SQS for a retry (their job could not be queued).
    pub failed: Vec<String>,
    /// Messages that can never become a job (not a queued event); dropped and logged.
    pub malformed: usize,
}

pub struct Coalescer {
    jobs: Arc<dyn JobQueue>,
    log: Arc<dyn EventLog>,
}

type Group = (String, String, String, String);

impl Coalescer {
    pub fn new(jobs: Arc<dyn JobQueue>, log: Arc<dyn EventLog>) -> Self {
        Self { jobs, log }
    }

    pub async fn run(&self, batch: Vec<Incoming>) -> CoalesceReport {
        let mut report = CoalesceReport::default();
        let mut groups: BTreeMap<Group, Vec<(String, QueuedEvent)>> = BTreeMap::new();
        for message in batch {
            match serde_json::from_str::<QueuedEvent>(&message.body) {
                Ok(event) => {
                    let key = (
                        event.tenant_id.clone(),
                        event.connection_id.clone(),
                        event.platform.clone(),
                        event.entity_type.clone(),
                    );
                    groups
                        .entry(key)
                        .or_default()
                        .push((message.message_id, event));
                }
                Err(e) => {
                    tracing::error!(message_id = %message.message_id, error = %e, "not a queued webhook event; dropped");
                    report.malformed += 1;
                }
            }
        }
        for ((tenant, connection, platform, entity), events) in groups {
            let ids: BTreeSet<&str> = events.iter().map(|(_, e)| e.entity_id.as_str()).collect();
            let latest = events
                .iter()
                .filter_map(|(_, e)| DateTime::parse_from_rfc3339(&e.received_at).ok())
                .map(|t| t.with_timezone(&Utc))
                .max()
                .unwrap_or_else(Utc::now);
            let job = SyncJob {
                schedule_id: None,
                tenant_id: tenant,
                credential_id: connection.clone(),
                platform,
                entity_type: entity,
                sync_mode: "incremental".into(),
                trigger: "webhook".into(),
                scheduled_time: latest.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                execution_id: uuid::Uuid::new_v4().to_string(),
                ids: if ids.len() <= MAX_IDS_PER_JOB {
                    ids.into_iter().map(str::to_string).collect()
                } else {
                    Vec::new()
                },
            };
            match self.jobs.send_job(&job).await {
                Ok(_) => {
                    if let Ok(connection_id) = connection.parse::<ConnectionId>() {
                        for (_, event) in &events {
                            // The log entry is bookkeeping: the job is already queued.
                            if let Err(e) = self
                                .log
                                .set_job(connection_id, &event.log_key, &job.execution_id)
                                .await
                            {
                                tracing::warn!(error = %e, "event log not updated with its job");
                            }
                        }
                    }
                    tracing::info!(job_id = %job.execution_id, events = events.len(), ids = job.ids.len(), "sync job queued");
                    report.jobs.push(job);
                }
                Err(e) => {
                    tracing::error!(error = %e, "sync job not queued; its events go back to the queue");
                    report.failed.extend(events.into_iter().map(|(id, _)| id));
                }
            }
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{MemoryEventStore, MemoryQueue};

    fn event(connection: &str, entity: &str, id: &str) -> String {
        serde_json::to_string(&QueuedEvent {
            tenant_id: "acme".into(),
            connection_id: connection.into(),
            platform: "woocommerce".into(),
            entity_type: entity.into(),
            entity_id: id.into(),
            event_type: "order.updated".into(),
            key_hash: format!("h-{id}"),
            log_key: format!("k-{id}"),
            received_at: "2026-11-24T12:00:00.000Z".into(),
        })
        .unwrap_or_default()
    }

    fn batch(bodies: Vec<String>) -> Vec<Incoming> {
        bodies
            .into_iter()
            .enumerate()
            .map(|(i, body)| Incoming {
                message_id: format!("m{i}"),
                body,
            })
            .collect()
    }

    #[tokio::test]
    async fn a_burst_for_one_connection_and_entity_is_one_job_with_every_id() {
        let queue = Arc::new(MemoryQueue::default());
        let c = Coalescer::new(queue.clone(), Arc::new(MemoryEventStore::default()));
        let a = ConnectionId::new_random().to_string();
        let b = ConnectionId::new_random().to_string();
        let mut bodies: Vec<String> = (0..50)
            .map(|i| event(&a, "orders", &format!("{}", i % 20)))
            .collect();
        bodies.push(event(&a, "customers", "7"));
        bodies.push(event(&b, "orders", "1"));
        bodies.push("not json".into());
        let report = c.run(batch(bodies)).await;
        assert_eq!(report.jobs.len(), 3);
        assert_eq!(report.malformed, 1);
        assert!(report.failed.is_empty());
        let orders = queue
            .jobs()
            .into_iter()
            .find(|j| j.credential_id == a && j.entity_type == "orders")
            .unwrap_or_else(|| panic!("no orders job"));
        assert_eq!(orders.ids.len(), 20, "ids are deduplicated");
        assert_eq!(orders.trigger, "webhook");
        assert_eq!(orders.sync_mode, "incremental");
    }

    #[tokio::test]
    async fn a_job_that_cannot_be_queued_hands_its_messages_back() {
        let queue = Arc::new(MemoryQueue::default());
        queue.set_failing(true);
        let c = Coalescer::new(queue.clone(), Arc::new(MemoryEventStore::default()));
        let a = ConnectionId::new_random().to_string();
        let report = c
            .run(batch(vec![
                event(&a, "orders", "1"),
                event(&a, "orders", "2"),
            ]))
            .await;
        assert_eq!(report.failed, ["m0", "m1"]);
        assert!(report.jobs.is_empty());
    }

    #[tokio::test]
    async fn too_many_ids_make_a_plain_incremental_job() {
        let queue = Arc::new(MemoryQueue::default());
        let c = Coalescer::new(queue.clone(), Arc::new(MemoryEventStore::default()));
        let a = ConnectionId::new_random().to_string();
        let bodies = (0..=MAX_IDS_PER_JOB)
            .map(|i| event(&a, "products", &i.to_string()))
            .collect();
        let report = c.run(batch(bodies)).await;
        assert_eq!(report.jobs.len(), 1);
        assert!(report.jobs[0].ids.is_empty());
    }
}
