//! A sync schedule: which connection and entity to sync, how, and when.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use super::{ConnectionId, Platform, ScheduleId, TenantId};
use crate::time::{ScheduleExpression, Zone};

/// A value outside an enumeration, with the values that are allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{value}' is not one of {allowed}")]
pub struct UnknownValue {
    pub value: String,
    pub allowed: &'static str,
}

macro_rules! text_enum {
    ($name:ident, $allowed:literal, { $($variant:ident => $text:literal),+ $(,)? }) => {
        #[derive(
            Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize,
        )]
        #[serde(rename_all = "lowercase")]
        pub enum $name { $($variant),+ }

        impl $name {
            /// Every value, in order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                match text {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownValue { value: text.to_string(), allowed: $allowed }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(EntityType, "orders, customers, products", {
    Orders => "orders",
    Customers => "customers",
    Products => "products",
});

text_enum!(SyncMode, "full, incremental", {
    Full => "full",
    Incremental => "incremental",
});

text_enum!(OverlapPolicy, "skip, buffer_one", {
    Skip => "skip",
    BufferOne => "buffer_one",
});

/// Most minutes of EventBridge Scheduler's flexible time window.
pub const MAX_FLEXIBLE_WINDOW_MINUTES: u32 = 1440;
/// Failed runs in a row after which a schedule is paused, unless it says otherwise.
pub const DEFAULT_AUTO_PAUSE_AFTER_FAILURES: u32 = 10;
/// The most a schedule may allow.
pub const MAX_AUTO_PAUSE_AFTER_FAILURES: u32 = 1000;
/// The shortest catch-up window but none: the sweeper finds a missed fire time 10 to 15
/// minutes after it.
pub const MIN_CATCH_UP_WINDOW_MINUTES: u32 = 15;
/// The longest catch-up window: a day.
pub const MAX_CATCH_UP_WINDOW_MINUTES: u32 = 1440;
/// Longest note a paused schedule keeps.
pub const MAX_PAUSE_NOTE_CHARS: usize = 500;

/// How a schedule behaves beyond when it fires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleOptions {
    /// What a fire does while the stream's previous run is still working: `buffer_one`
    /// keeps it as the stream's one follow-up (merged with others waiting); `skip` records
    /// it skipped.
    pub overlap_policy: OverlapPolicy,
    /// Why it is paused, as whoever paused it said (cleared when it is resumed).
    pub pause_note: Option<String>,
    /// EventBridge Scheduler may fire up to this many minutes after each fire time, so that
    /// many schedules at one time (every tenant's midnight) are spread out; `None`: exactly.
    pub flexible_window_minutes: Option<u32>,
    /// A fire time that passed without a run (EventBridge or the worker was down) is run
    /// late, once, if the sweeper finds it within this many minutes of it; 0: never.
    pub catch_up_window_minutes: u32,
    /// After this many failed runs in a row the sweeper pauses the schedule, saying why;
    /// 0: never.
    pub auto_pause_after_failures: u32,
}

/// A schedule's catch-up window unless it says otherwise: an hour.
pub const DEFAULT_CATCH_UP_WINDOW_MINUTES: u32 = 60;

impl Default for ScheduleOptions {
    fn default() -> Self {
        Self {
            overlap_policy: OverlapPolicy::BufferOne,
            pause_note: None,
            flexible_window_minutes: None,
            catch_up_window_minutes: DEFAULT_CATCH_UP_WINDOW_MINUTES,
            auto_pause_after_failures: DEFAULT_AUTO_PAUSE_AFTER_FAILURES,
        }
    }
}

/// A stored schedule.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    pub id: ScheduleId,
    pub tenant_id: TenantId,
    pub credential_id: ConnectionId,
    pub platform: Platform,
    pub entity_type: EntityType,
    /// The expression as the user wrote it.
    pub cron_expression: String,
    /// The parsed expression; its canonical EventBridge text is what EventBridge runs.
    pub expression: ScheduleExpression,
    pub sync_mode: SyncMode,
    pub timezone: Zone,
    pub is_active: bool,
    pub options: ScheduleOptions,
    pub last_run_at: Option<DateTime<Utc>>,
    /// How the last run for this schedule ended (kept by the worker, never by a user edit).
    pub last_run_status: Option<super::RunStatus>,
    /// Its runs that failed in a row, up to the last (each run counted once, however many
    /// times it was tried); a succeeded or partial run, or resuming the schedule, sets it back
    /// to 0.
    pub consecutive_failures: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Bumped on every write; writes are conditional on it, so two concurrent updates
    /// cannot silently overwrite each other.
    pub version: u64,
}

impl Schedule {
    /// The canonical EventBridge expression.
    pub fn schedule_expression(&self) -> String {
        self.expression.to_eventbridge()
    }

    /// The next time EventBridge will fire this schedule after `now`; `None` while paused or
    /// when it never fires again. Rate schedules count from the last write to EventBridge,
    /// which is `updated_at`.
    pub fn next_run_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if !self.is_active {
            return None;
        }
        self.expression
            .next_after(self.timezone, self.updated_at, now)
    }
}

/// What the trigger side must hold for a schedule: its canonical expression, zone, state and
/// the job it sends. Built in one place, so the trigger adapter, the repair's comparison and
/// the in-memory fake cannot disagree on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TriggerDefinition {
    pub expression: String,
    pub timezone: String,
    pub enabled: bool,
    pub input: String,
    /// The flexible time window's maximum, in minutes; `None`: off.
    pub flexible_window_minutes: Option<u32>,
}

impl Schedule {
    pub fn trigger_definition(&self) -> TriggerDefinition {
        TriggerDefinition {
            expression: self.schedule_expression(),
            timezone: self.timezone.name().to_string(),
            enabled: self.is_active,
            input: super::SyncJob::scheduled_input(self),
            flexible_window_minutes: self.options.flexible_window_minutes,
        }
    }
}

/// A validated request to create a schedule.
#[derive(Clone, Debug)]
pub struct NewSchedule {
    pub credential_id: ConnectionId,
    pub platform: Platform,
    pub entity_type: EntityType,
    pub cron_expression: String,
    pub expression: ScheduleExpression,
    pub sync_mode: SyncMode,
    pub timezone: Zone,
    pub is_active: bool,
    pub options: ScheduleOptions,
}

/// A validated partial update; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct SchedulePatch {
    pub cron_expression: Option<(String, ScheduleExpression)>,
    pub sync_mode: Option<SyncMode>,
    pub timezone: Option<Zone>,
    pub is_active: Option<bool>,
    pub overlap_policy: Option<OverlapPolicy>,
    /// `Some(None)` clears it.
    pub pause_note: Option<Option<String>>,
    /// `Some(None)` turns the window off.
    pub flexible_window_minutes: Option<Option<u32>>,
    pub catch_up_window_minutes: Option<u32>,
    pub auto_pause_after_failures: Option<u32>,
}

impl SchedulePatch {
    pub fn is_empty(&self) -> bool {
        self.cron_expression.is_none()
            && self.sync_mode.is_none()
            && self.timezone.is_none()
            && self.is_active.is_none()
            && self.overlap_policy.is_none()
            && self.pause_note.is_none()
            && self.flexible_window_minutes.is_none()
            && self.catch_up_window_minutes.is_none()
            && self.auto_pause_after_failures.is_none()
    }
}
