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
    /// What the target puts before the source's order numbers in its documents, for a
    /// target that numbers them (QuickBooks' `DocNumber`): two stores' order 1001 are two
    /// documents. `None` for other targets, and for flows made before flows had one (their
    /// documents keep the plain numbers they were written with).
    pub doc_number_prefix: Option<DocPrefix>,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

impl Flow {
    pub fn carries(&self, entity: EntityType) -> bool {
        self.entities.contains(&entity)
    }

    /// Whether a run of its source's `entity` runs this flow: it is on and carries it.
    pub fn runs_for(&self, entity: EntityType) -> bool {
        self.enabled && self.carries(entity)
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
    /// `None`: derived from the source's name, where the target numbers documents.
    pub doc_number_prefix: Option<DocPrefix>,
    pub enabled: bool,
}

/// A validated partial update; `None` leaves a field as it is. The connections are fixed,
/// and so is the document-number prefix (the documents already written carry it).
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

/// A document-number prefix: up to [`DocPrefix::MAX`] letters, digits or `-` (empty: the
/// source's numbers as they are).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct DocPrefix(String);

impl DocPrefix {
    pub const MAX: usize = 10;

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The default for a source named `name`: the initials of its first words (or the start
    /// of its one word), upper case, and a `-`. "Acme Outdoor Store" gives `AOS-`, "Demo"
    /// `DEMO-`, a name with no letters or digits `S-`.
    pub fn derived(name: &str) -> DocPrefix {
        let words: Vec<String> = name
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_ascii_uppercase)
            .collect();
        let mut stem: String = match words.as_slice() {
            [] => "S".into(),
            [one] => one.chars().take(4).collect(),
            many => many
                .iter()
                .take(4)
                .filter_map(|w| w.chars().next())
                .collect(),
        };
        stem.push('-');
        DocPrefix(stem)
    }

    /// The same with a number before its `-` (`AOS2-`): a free one when the derived one is
    /// taken.
    pub fn numbered(&self, n: u32) -> DocPrefix {
        let stem = self.0.trim_end_matches('-');
        let digits = n.to_string();
        let room = Self::MAX.saturating_sub(digits.len() + 1);
        DocPrefix(format!(
            "{}{digits}-",
            stem.chars().take(room).collect::<String>()
        ))
    }

    /// Whether two flows numbering into the same books this way could give two orders the
    /// same number: the same prefix, or one the start of the other (`""` and `B-`: the
    /// first store's order `B-7` would be the second's order 7).
    pub fn collides(&self, other: &DocPrefix) -> bool {
        self.0.starts_with(&other.0) || other.0.starts_with(&self.0)
    }
}

impl fmt::Display for DocPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for DocPrefix {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() <= Self::MAX && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            Ok(DocPrefix(text.to_string()))
        } else {
            Err(format!(
                "up to {} letters, digits or -, not '{text}'",
                Self::MAX
            ))
        }
    }
}

#[cfg(test)]
mod prefix_tests {
    use super::DocPrefix;

    fn p(text: &str) -> DocPrefix {
        text.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_derived_prefix_is_the_stores_initials_or_the_start_of_its_one_word() {
        assert_eq!(DocPrefix::derived("Acme Outdoor Store").as_str(), "AOS-");
        assert_eq!(DocPrefix::derived("demo").as_str(), "DEMO-");
        assert_eq!(DocPrefix::derived("Bücher & Co.").as_str(), "BCC-");
        assert_eq!(DocPrefix::derived("  ").as_str(), "S-");
        assert_eq!(
            DocPrefix::derived("Acme Outdoor").numbered(12).as_str(),
            "AO12-"
        );
        assert!(
            DocPrefix::derived("Supercalifragilistic")
                .numbered(123456)
                .as_str()
                .len()
                <= 10
        );
    }

    #[test]
    fn prefixes_collide_when_one_starts_the_other() {
        assert!(p("A-").collides(&p("A-")));
        assert!(p("").collides(&p("B-")));
        assert!(p("A-").collides(&p("A-B-")));
        assert!(!p("A-").collides(&p("B-")));
        assert!(!p("AB-").collides(&p("AC-")));
    }

    #[test]
    fn a_prefix_is_short_and_plain() {
        assert!("ABCDEFGHIJK".parse::<DocPrefix>().is_err());
        assert!("A B".parse::<DocPrefix>().is_err());
        assert!("A/".parse::<DocPrefix>().is_err());
        assert!("".parse::<DocPrefix>().is_ok());
    }
}
