//! Records that keep failing: what the worker keeps of each, per stream, so a record that
//! always fails neither holds the stream back nor disappears from view.
//!
//! A record that fails is counted (its attempts); while it is below the bound the stream's
//! cursor waits before it, so the next run reads it again. At the bound it is
//! **quarantined**: the cursor moves past it, and it is tried again by id on later runs with
//! a growing wait, leaving the quarantine as soon as a try succeeds (after a fix at the
//! source, say). Users see every kept failure through `GET /api/sync/failures`.

use chrono::{DateTime, Duration, Utc};

use super::{ConnectionId, EntityType, FlowId, RunId, TenantId};

/// The first wait before a quarantined record is tried again; it doubles with each try.
pub const QUARANTINE_FIRST_WAIT_MINUTES: i64 = 15;
/// The longest wait between two tries of a quarantined record.
pub const QUARANTINE_LONGEST_WAIT_HOURS: i64 = 24;

/// One source record that failed, as kept for its stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedRecord {
    pub tenant_id: TenantId,
    /// The source connection and entity: the stream.
    pub connection_id: ConnectionId,
    pub entity_type: EntityType,
    /// The source's id of the record.
    pub record_id: String,
    /// The flow whose write failed; none when the record could not be read.
    pub flow_id: Option<FlowId>,
    /// The last failure's error.
    pub error: String,
    /// Its code (see `RecordFailure::error_code`); empty for one kept before codes were.
    pub error_code: String,
    /// Failed tries in a row.
    pub attempts: u32,
    pub first_failed_at: DateTime<Utc>,
    pub last_failed_at: DateTime<Utc>,
    /// The run that failed it last.
    pub run_id: RunId,
    /// Since when it is quarantined (the cursor no longer waits for it); none below the bound.
    pub quarantined_at: Option<DateTime<Utc>>,
    /// When a quarantined record is tried again.
    pub next_try_at: Option<DateTime<Utc>>,
}

impl FailedRecord {
    /// Whether `attempts` failed tries quarantine a record, with `bound` tries allowed.
    pub fn quarantines(attempts: u32, bound: u32) -> bool {
        attempts >= bound.max(1)
    }

    /// When a record quarantined after `attempts` tries (at least `bound`) is tried again,
    /// from `now`: the first wait, doubled for each try beyond the bound, at most a day.
    pub fn next_try(attempts: u32, bound: u32, now: DateTime<Utc>) -> DateTime<Utc> {
        let beyond = attempts.saturating_sub(bound.max(1)).min(10);
        let wait = Duration::minutes(QUARANTINE_FIRST_WAIT_MINUTES * (1i64 << beyond))
            .min(Duration::hours(QUARANTINE_LONGEST_WAIT_HOURS));
        now + wait
    }
}

/// One page of kept failures.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FailurePage {
    pub failures: Vec<FailedRecord>,
    /// Pass back as `next` for the following page; `None` on the last.
    pub next: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarantined_records_wait_longer_after_each_try_up_to_a_day() {
        let now = Utc::now();
        let waits: Vec<i64> = (5..=20)
            .map(|a| (FailedRecord::next_try(a, 5, now) - now).num_minutes())
            .collect();
        assert_eq!(&waits[..4], &[15, 30, 60, 120]);
        assert_eq!(*waits.last().unwrap_or(&0), 24 * 60);
        assert!(!FailedRecord::quarantines(4, 5));
        assert!(FailedRecord::quarantines(5, 5));
    }
}
