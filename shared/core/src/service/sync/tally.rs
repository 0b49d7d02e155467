//! What the worker's runs came to, counted in the process until the function reads and
//! clears the count (once per invocation, for its metrics).

use std::sync::Mutex;

use crate::domain::{Run, RunStatus};

/// Counts of runs ended and of their records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunCounts {
    pub succeeded: u64,
    pub partial: u64,
    /// Failed for good (alerted): not retryable, or on the job's last receive.
    pub failed: u64,
    /// Failed and handed back to the queue to be tried again.
    pub retried: u64,
    pub skipped: u64,
    pub cancelled: u64,
    pub records_read: u64,
    pub records_written: u64,
    pub records_failed: u64,
    /// Records this run set aside after they failed in a row.
    pub records_quarantined: u64,
    /// Alert issues the runs raised (opened, reopened or updated).
    pub alerts_raised: u64,
}

/// The count, shared by the worker's runs.
#[derive(Debug, Default)]
pub struct RunTally(Mutex<RunCounts>);

impl RunTally {
    /// Counts a run that ended as it is; `final_failure` is false for one that will be
    /// tried again (a failure that may pass, a lost lease).
    pub fn ended(&self, run: &Run, final_failure: bool) {
        let mut c = match self.0.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        match run.status {
            RunStatus::Succeeded => c.succeeded += 1,
            RunStatus::Partial => c.partial += 1,
            RunStatus::Failed if final_failure => c.failed += 1,
            RunStatus::Failed => c.retried += 1,
            RunStatus::Skipped => c.skipped += 1,
            RunStatus::Cancelled => c.cancelled += 1,
            RunStatus::Queued | RunStatus::Running => {}
        }
        if !final_failure {
            // (Its records are counted when it ends for good: a run tried again keeps its
            // counts.)
            return;
        }
        c.records_read += run.counts.read;
        c.records_written += run.counts.written;
        c.records_failed += run.counts.failed;
        c.records_quarantined += run.failures.iter().filter(|f| f.quarantined).count() as u64;
    }

    /// The count so far, cleared.
    pub fn take(&self) -> RunCounts {
        let mut c = match self.0.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        std::mem::take(&mut *c)
    }
}
