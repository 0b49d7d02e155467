//! A flow: records of some entities move from a source connection to a target connection.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use super::{ConnectionId, EntityType, FlowId, TenantId, UnknownValue};

/// Which side wins when both changed a record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictPolicy {
    /// The source's version is written, whatever the target holds.
    #[default]
    SourceWins,
    /// The source's version is written only if it was modified after the target's.
    NewestWins,
}

impl ConflictPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            ConflictPolicy::SourceWins => "source_wins",
            ConflictPolicy::NewestWins => "newest_wins",
        }
    }
}

impl fmt::Display for ConflictPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ConflictPolicy {
    type Err = UnknownValue;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "source_wins" => Ok(ConflictPolicy::SourceWins),
            "newest_wins" => Ok(ConflictPolicy::NewestWins),
            _ => Err(UnknownValue {
                value: text.to_string(),
                allowed: "source_wins, newest_wins",
            }),
        }
    }
}

/// A stored flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flow {
    pub id: FlowId,
    pub tenant_id: TenantId,
    pub source_connection_id: ConnectionId,
    pub target_connection_id: ConnectionId,
    /// Distinct, in a stable order.
    pub entities: Vec<EntityType>,
    pub conflict_policy: ConflictPolicy,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

impl Flow {
    pub fn carries(&self, entity: EntityType) -> bool {
        self.entities.contains(&entity)
    }

    /// Whether `connection` is either end of the flow.
    pub fn uses(&self, connection: ConnectionId) -> bool {
        self.source_connection_id == connection || self.target_connection_id == connection
    }
}

/// A validated request to create a flow.
#[derive(Clone, Debug)]
pub struct NewFlow {
    pub source_connection_id: ConnectionId,
    pub target_connection_id: ConnectionId,
    pub entities: Vec<EntityType>,
    pub conflict_policy: ConflictPolicy,
    pub enabled: bool,
}

/// A validated partial update; `None` leaves a field as it is. The connections are fixed.
#[derive(Clone, Debug, Default)]
pub struct FlowPatch {
    pub entities: Option<Vec<EntityType>>,
    pub conflict_policy: Option<ConflictPolicy>,
    pub enabled: Option<bool>,
}

impl FlowPatch {
    pub fn is_empty(&self) -> bool {
        self.entities.is_none() && self.conflict_policy.is_none() && self.enabled.is_none()
    }
}
