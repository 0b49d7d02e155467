//! Coalescing: a batch of queued webhook events becomes one incremental sync job per
//! (connection, entity type), carrying the affected ids. The batch is what the SQS event
//! source gathers within its batching window, so a burst of webhooks for one store's
//! orders costs one sync, not hundreds.

use futures::stream::{self, StreamExt};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::domain::{
    ConnectionId, EntityType, Platform, QueuedEvent, SyncJob, SyncMode, TenantId, Trigger,
};
use crate::ports::{EventJobs, JobQueue, SyncKey, WebhookArrivals};

/// More ids than this and the job carries none: the worker then runs a plain incremental
/// sync from its cursor, which covers them all, instead of a message near SQS's size limit.
pub use crate::domain::MAX_JOB_IDS as MAX_IDS_PER_JOB;

/// How many events' claims are marked at once.
const MARK_CONCURRENCY: usize = 16;

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
    log: Arc<dyn EventJobs>,
    arrivals: Arc<dyn WebhookArrivals>,
}

type Group = (ConnectionId, EntityType);

/// Whose the group is (the same for every event of a connection).
type Owner = (TenantId, Platform);

impl Coalescer {
    pub fn new(
        jobs: Arc<dyn JobQueue>,
        log: Arc<dyn EventJobs>,
        arrivals: Arc<dyn WebhookArrivals>,
    ) -> Self {
        Self {
            jobs,
            log,
            arrivals,
        }
    }

    pub async fn run(&self, batch: Vec<Incoming>) -> CoalesceReport {
        let mut report = CoalesceReport::default();
        let mut groups: BTreeMap<Group, (Owner, Vec<(String, QueuedEvent)>)> = BTreeMap::new();
        for message in batch {
            match serde_json::from_str::<QueuedEvent>(&message.body) {
                Ok(event) => {
                    let owner = (event.tenant_id.clone(), event.platform);
                    groups
                        .entry((event.connection_id, event.entity_type))
                        .or_insert_with(|| (owner, Vec::new()))
                        .1
                        .push((message.message_id, event));
                }
                Err(e) => {
                    tracing::error!(message_id = %message.message_id, error = %e, "not a queued webhook event; dropped");
                    report.malformed += 1;
                }
            }
        }
        for ((connection, entity), ((tenant, platform), events)) in groups {
            let job_id = uuid::Uuid::new_v4().to_string();
            let events = self.marked(events, &job_id).await;
            if events.is_empty() {
                continue;
            }
            let ids: BTreeSet<&str> = events.iter().map(|(_, e)| e.entity_id.as_str()).collect();
            let latest = events
                .iter()
                .map(|(_, e)| e.received_at)
                .max()
                .unwrap_or_default();
            let job = SyncJob {
                job_id,
                tenant_id: tenant,
                connection_id: connection,
                platform,
                entity_type: entity,
                sync_mode: SyncMode::Incremental,
                trigger: Trigger::Webhook,
                triggered_at: latest,
                ids: if ids.len() <= MAX_IDS_PER_JOB {
                    ids.into_iter().map(str::to_string).collect()
                } else {
                    Vec::new()
                },
                resume: None,
                attempt: 0,
                stands_for: Vec::new(),
                window: None,
                reported: Some(true),
            };
            match self.jobs.send_job(&job).await {
                Ok(_) => {
                    // Bookkeeping once the job is queued: a poll that finds a change made
                    // after it that no webhook brought takes the stream's webhooks to be
                    // silent.
                    let key = SyncKey { connection, entity };
                    if self.arrivals.arrived(key, latest).await.is_err() {
                        if let Err(e) = self.arrivals.arrived(key, latest).await {
                            tracing::warn!(error = %e, "arrival of the stream's webhooks not noted");
                        }
                    }
                    tracing::info!(job_id = %job.job_id, events = events.len(), ids = job.ids.len(), "sync job queued");
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

    /// Marks each event's claim with the job about to carry it, a bounded number at a time,
    /// and keeps the events still theirs to carry. An event whose claim a redelivery took
    /// over is dropped: the redelivery's own message carries it. One that cannot be marked
    /// is carried all the same (a second job for the same records is idempotent; a lost
    /// event is not).
    async fn marked(
        &self,
        events: Vec<(String, QueuedEvent)>,
        job_id: &str,
    ) -> Vec<(String, QueuedEvent)> {
        let marks: Vec<_> = events
            .iter()
            .map(|(_, event)| self.log.set_job(event, job_id))
            .collect();
        let marks: Vec<_> = stream::iter(marks)
            .buffered(MARK_CONCURRENCY)
            .collect()
            .await;
        events
            .into_iter()
            .zip(marks)
            .filter_map(|((message_id, event), mark)| match mark {
                Ok(true) => Some((message_id, event)),
                Ok(false) => {
                    tracing::info!(message_id = %message_id, entity_id = %event.entity_id, "event's claim taken over by a redelivery; its message carries it");
                    None
                }
                Err(e) => {
                    tracing::warn!(message_id = %message_id, error = %e, "event not marked with its job; carried all the same");
                    Some((message_id, event))
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{MemoryEventStore, MemoryQueue};

    fn event(connection: ConnectionId, entity: EntityType, id: &str) -> String {
        serde_json::to_string(&QueuedEvent {
            tenant_id: TenantId::parse("acme").unwrap_or_else(|e| panic!("{e}")),
            connection_id: connection,
            platform: Platform::WooCommerce,
            entity_type: entity,
            entity_id: id.into(),
            event_type: "order.updated".into(),
            key_hash: format!("h-{id}"),
            log_key: format!("k-{id}"),
            received_at: chrono::DateTime::from_timestamp(1_795_521_600, 0).unwrap_or_default(),
        })
        .unwrap_or_default()
    }

    /// The batch of messages, each event's claim held in `store` as the intake left it.
    fn batch(store: &MemoryEventStore, bodies: Vec<String>) -> Vec<Incoming> {
        for event in bodies
            .iter()
            .filter_map(|b| serde_json::from_str::<QueuedEvent>(b).ok())
        {
            store.hold(&event);
        }
        bodies
            .into_iter()
            .enumerate()
            .map(|(i, body)| Incoming {
                message_id: format!("m{i}"),
                body,
            })
            .collect()
    }

    /// A coalescer with in-memory claims and queue.
    fn parts() -> (Arc<MemoryEventStore>, Arc<MemoryQueue>, Coalescer) {
        let store = Arc::new(MemoryEventStore::default());
        let queue = Arc::new(MemoryQueue::default());
        let c = Coalescer::new(
            queue.clone(),
            store.clone(),
            Arc::new(crate::memory::MemorySyncLeases::default()),
        );
        (store, queue, c)
    }

    #[tokio::test]
    async fn a_burst_for_one_connection_and_entity_is_one_job_with_every_id() {
        let (store, queue, c) = parts();
        let a = ConnectionId::new_random();
        let b = ConnectionId::new_random();
        let mut bodies: Vec<String> = (0..50)
            .map(|i| event(a, EntityType::Orders, &format!("{}", i % 20)))
            .collect();
        bodies.push(event(a, EntityType::Customers, "7"));
        bodies.push(event(b, EntityType::Orders, "1"));
        bodies.push("not json".into());
        let report = c.run(batch(&store, bodies)).await;
        assert_eq!(report.jobs.len(), 3);
        assert_eq!(report.malformed, 1);
        assert!(report.failed.is_empty());
        let orders = queue
            .jobs()
            .into_iter()
            .find(|j| j.connection_id == a && j.entity_type == EntityType::Orders)
            .unwrap_or_else(|| panic!("no orders job"));
        assert_eq!(orders.ids.len(), 20, "ids are deduplicated");
        assert_eq!(orders.trigger, Trigger::Webhook);
        assert_eq!(orders.sync_mode, SyncMode::Incremental);
    }

    #[tokio::test]
    async fn a_queued_job_notes_on_its_stream_when_its_webhooks_arrived_and_a_refused_one_does_not()
    {
        use crate::ports::StreamWatch;
        let store = Arc::new(MemoryEventStore::default());
        let queue = Arc::new(MemoryQueue::default());
        let streams = Arc::new(crate::memory::MemorySyncLeases::default());
        let c = Coalescer::new(queue.clone(), store.clone(), streams.clone());
        let a = ConnectionId::new_random();
        let key = |entity| SyncKey {
            connection: a,
            entity,
        };
        let arrived = chrono::DateTime::from_timestamp(1_795_521_600, 0).unwrap_or_default();
        let seen = |entity| {
            let streams = streams.clone();
            async move {
                let state = streams.state(key(entity), arrived).await;
                state
                    .map(|s| s.webhook_at)
                    .unwrap_or_else(|e| panic!("{e}"))
            }
        };
        queue.set_failing(true);
        c.run(batch(&store, vec![event(a, EntityType::Orders, "1")]))
            .await;
        assert_eq!(
            seen(EntityType::Orders).await,
            None,
            "not queued: not noted"
        );
        queue.set_failing(false);
        c.run(batch(&store, vec![event(a, EntityType::Orders, "1")]))
            .await;
        assert_eq!(seen(EntityType::Orders).await, Some(arrived));
        assert_eq!(seen(EntityType::Customers).await, None);
    }

    #[tokio::test]
    async fn a_note_of_arrival_that_fails_changes_nothing_of_what_is_queued_or_handed_back() {
        let store = Arc::new(MemoryEventStore::default());
        let queue = Arc::new(MemoryQueue::default());
        let streams = Arc::new(crate::memory::MemorySyncLeases::default());
        streams.set_failing(true);
        let c = Coalescer::new(queue.clone(), store.clone(), streams);
        let a = ConnectionId::new_random();
        let report = c
            .run(batch(
                &store,
                vec![
                    event(a, EntityType::Orders, "1"),
                    event(a, EntityType::Orders, "2"),
                ],
            ))
            .await;
        assert_eq!(report.jobs.len(), 1);
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        assert_eq!(queue.jobs().len(), 1);
    }

    #[tokio::test]
    async fn a_job_that_cannot_be_queued_hands_its_messages_back() {
        let (store, queue, c) = parts();
        queue.set_failing(true);
        let a = ConnectionId::new_random();
        let report = c
            .run(batch(
                &store,
                vec![
                    event(a, EntityType::Orders, "1"),
                    event(a, EntityType::Orders, "2"),
                ],
            ))
            .await;
        assert_eq!(report.failed, ["m0", "m1"]);
        assert!(report.jobs.is_empty());
    }

    #[tokio::test]
    async fn too_many_ids_make_a_plain_incremental_job() {
        let (store, _, c) = parts();
        let a = ConnectionId::new_random();
        let bodies = (0..=MAX_IDS_PER_JOB)
            .map(|i| event(a, EntityType::Products, &i.to_string()))
            .collect();
        let report = c.run(batch(&store, bodies)).await;
        assert_eq!(report.jobs.len(), 1);
        assert!(report.jobs[0].ids.is_empty());
    }

    #[tokio::test]
    async fn of_two_messages_of_one_event_the_first_marked_carries_it_and_the_other_is_acknowledged(
    ) {
        let (store, queue, c) = parts();
        let a = ConnectionId::new_random();
        let first = batch(&store, vec![event(a, EntityType::Orders, "1")]);
        let report = c.run(first).await;
        assert_eq!(report.jobs.len(), 1);
        // A redelivery that took the claim over before the mark queued its own message (another
        // token): acknowledged, no job.
        let successor = event(a, EntityType::Orders, "1").replace("k-1", "k-1#successor");
        let report = c
            .run(vec![Incoming {
                message_id: "m9".into(),
                body: successor,
            }])
            .await;
        assert_eq!(
            report,
            CoalesceReport::default(),
            "the second message made a job"
        );
        // SQS delivering the first message again makes its job again (the sync is idempotent).
        let again = c
            .run(vec![Incoming {
                message_id: "m0".into(),
                body: event(a, EntityType::Orders, "1"),
            }])
            .await;
        assert_eq!(again.jobs.len(), 1);
        assert_eq!(queue.jobs().len(), 2);
        // A message whose claim is gone (past its window) is carried.
        let gone = c
            .run(vec![Incoming {
                message_id: "m7".into(),
                body: event(a, EntityType::Orders, "2"),
            }])
            .await;
        assert_eq!(gone.jobs.len(), 1);
    }

    #[tokio::test]
    async fn events_whose_claims_cannot_be_marked_are_carried_all_the_same() {
        let (store, _, c) = parts();
        let a = ConnectionId::new_random();
        let messages = batch(&store, vec![event(a, EntityType::Orders, "1")]);
        store.set_failing(true);
        let report = c.run(messages).await;
        assert_eq!(report.jobs.len(), 1);
        assert_eq!(report.jobs[0].ids, ["1"]);
    }
}
