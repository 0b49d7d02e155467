//! The queues in memory.

use async_trait::async_trait;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use super::lock;
use crate::domain::{QueuedEvent, SyncJob};
use crate::ports::{EventQueue, JobQueue, QueueError};

/// A queue that keeps what it was sent.
#[derive(Default)]
pub struct MemoryQueue {
    events: Mutex<Vec<QueuedEvent>>,
    jobs: Mutex<Vec<SyncJob>>,
    delayed: Mutex<Vec<(SyncJob, std::time::Duration)>>,
    failing: AtomicBool,
    /// Messages accepted before every further one is refused (a batch that half fails).
    accept_only: Mutex<Option<usize>>,
    calls: std::sync::atomic::AtomicUsize,
}

impl MemoryQueue {
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// Accepts `n` more messages, then refuses each one after (until set to `None`).
    pub fn accept_only(&self, n: Option<usize>) {
        *lock(&self.accept_only) = n;
    }

    pub fn events(&self) -> Vec<QueuedEvent> {
        lock(&self.events).clone()
    }

    pub fn jobs(&self) -> Vec<SyncJob> {
        lock(&self.jobs).clone()
    }

    /// Jobs sent to become visible later, with their delay.
    pub fn delayed_jobs(&self) -> Vec<(SyncJob, std::time::Duration)> {
        lock(&self.delayed).clone()
    }

    /// Takes every job sent so far (delayed ones too, as if their delay had passed).
    pub fn drain_jobs(&self) -> Vec<SyncJob> {
        let mut out: Vec<SyncJob> = std::mem::take(&mut *lock(&self.jobs));
        out.extend(
            std::mem::take(&mut *lock(&self.delayed))
                .into_iter()
                .map(|(j, _)| j),
        );
        out
    }

    /// How many calls were made (a batch is one call).
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn check(&self) -> Result<(), QueueError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(QueueError("memory queue set to fail".into()));
        }
        let mut quota = lock(&self.accept_only);
        match quota.as_mut() {
            Some(0) => Err(QueueError("memory queue refused the message".into())),
            Some(n) => {
                *n -= 1;
                Ok(())
            }
            None => Ok(()),
        }
    }
}

#[async_trait]
impl EventQueue for MemoryQueue {
    async fn send_events(&self, events: &[QueuedEvent]) -> Vec<Result<String, QueueError>> {
        let mut out = Vec::with_capacity(events.len());
        for chunk in events.chunks(crate::ports::QUEUE_BATCH) {
            self.calls.fetch_add(1, Ordering::SeqCst);
            for event in chunk {
                out.push(self.check().map(|()| {
                    let mut events = lock(&self.events);
                    events.push(event.clone());
                    format!("event-{}", events.len())
                }));
            }
        }
        out
    }
}

#[async_trait]
impl JobQueue for MemoryQueue {
    async fn send_job(&self, job: &SyncJob) -> Result<String, QueueError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        let mut jobs = lock(&self.jobs);
        jobs.push(job.clone());
        Ok(format!("job-{}", jobs.len()))
    }

    async fn send_job_later(
        &self,
        job: &SyncJob,
        delay: std::time::Duration,
    ) -> Result<String, QueueError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        let mut delayed = lock(&self.delayed);
        delayed.push((job.clone(), delay));
        Ok(format!("delayed-job-{}", delayed.len()))
    }
}
