//! Runs: one per executed sync job, with what it did.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use super::UnknownValue;

/// Where a run is, or how it ended.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Queued,
    Running,
    /// Everything it read is in every target.
    Succeeded,
    /// Some records failed (they are listed on the run); the rest were written.
    Partial,
    /// Nothing could be done (a platform refused us, a dependency was down).
    Failed,
    /// Nothing to do: no flow, the schedule is gone or paused, the connection needs attention.
    Skipped,
}

impl RunStatus {
    pub const ALLOWED: &'static str = "queued, running, succeeded, partial, failed, skipped";

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Partial => "partial",
            RunStatus::Failed => "failed",
            RunStatus::Skipped => "skipped",
        }
    }

    /// Whether the run is over.
    pub fn is_final(self) -> bool {
        !matches!(self, RunStatus::Queued | RunStatus::Running)
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunStatus {
    type Err = UnknownValue;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(match text {
            "queued" => RunStatus::Queued,
            "running" => RunStatus::Running,
            "succeeded" => RunStatus::Succeeded,
            "partial" => RunStatus::Partial,
            "failed" => RunStatus::Failed,
            "skipped" => RunStatus::Skipped,
            _ => {
                return Err(UnknownValue {
                    value: text.to_string(),
                    allowed: Self::ALLOWED,
                })
            }
        })
    }
}
