//! QuickBooks as a source: customers (`Customer`), products (`Item`) and orders
//! (`SalesReceipt` then `Invoice`).
//!
//! - A first sync, or one whose cursor is older than CDC's 30 days, pages through the query
//!   API by `MetaData.LastUpdatedTime`, oldest first, 100 a page. Each page starts again from
//!   the last stamp read (skipping the ids already read at that stamp), so records changed
//!   while it pages are read again later rather than skipped by shifting positions. Inactive
//!   customers and items are included (they read as deleted). When every entity is read the
//!   cursor moves to when the scan began.
//! - Later syncs ask CDC for everything changed since the cursor, deletions and voids
//!   included. An answer of 1,000 objects may be cut short (Intuit's cap per answer), so the
//!   window is then read with the query API instead and the cursor moves only as far as
//!   that reading got.
//! - Records named by id (webhook jobs) are read by id; one that is gone reads as deleted.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{HashMap, HashSet};

use super::connector::{list, Body, QboConnector};
use super::mapping::{self, document_id, split_document_id, Document};
use crate::domain::{Cursor, EntityType};
use crate::platforms::fields::{read, resume_point, Id, Text};
use crate::ports::{Item, Method, Page, PlatformError, Source};
use crate::records::Record;

/// Records a page.
const PAGE: usize = 100;
/// How far back CDC reaches (Intuit: 30 days; one day kept in hand).
const CDC_DAYS: i64 = 29;
/// The most objects one CDC answer holds.
const CDC_CAP: usize = 1000;

fn entities(entity: EntityType) -> &'static [&'static str] {
    match entity {
        EntityType::Customers => &["Customer"],
        EntityType::Products => &["Item"],
        EntityType::Orders => &["SalesReceipt", "Invoice"],
    }
}

/// A time as a query literal.
fn literal(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
}

fn stamp_of(v: &Value) -> DateTime<Utc> {
    mapping::updated_at(v).unwrap_or_default()
}

/// Where a scan by queries is (the page's `resume`, our own JSON): which of the entity's
/// kinds (`phase`), when the scan began, and the position within the last stamp read.
#[derive(Serialize, Deserialize, Default, Debug, PartialEq)]
#[serde(default)]
struct Scan {
    mode: String,
    phase: usize,
    scan_start: Option<DateTime<Utc>>,
    since: Option<DateTime<Utc>>,
    /// The query's `STARTPOSITION` (from 1).
    start: Option<u64>,
    /// Ids already read at `since`.
    skip: Vec<String>,
}

/// A change data capture answer: one group per query, each the entities by kind.
#[derive(Deserialize)]
struct CdcAnswer {
    #[serde(rename = "CDCResponse")]
    cdc: Vec<CdcGroups>,
}

#[derive(Deserialize)]
struct CdcGroups {
    #[serde(rename = "QueryResponse", default)]
    groups: Vec<serde_json::Map<String, Value>>,
}

/// An entity's id alone (for a record that does not map, and for the scan's position).
#[derive(Deserialize)]
struct EntityId {
    #[serde(rename = "Id")]
    id: Id,
}

/// What an entity's id reads as; empty when it does not (its record fails either way).
fn entity_id(v: &Value) -> String {
    read::<EntityId>(v, "the entity")
        .map(|e| e.id.0)
        .unwrap_or_default()
}

/// The items a document's lines name.
#[derive(Deserialize)]
struct LineItems {
    #[serde(rename = "Line", default)]
    line: Vec<LineItem>,
}

#[derive(Deserialize)]
struct LineItem {
    #[serde(rename = "SalesItemLineDetail", default)]
    detail: mapping::wire::SalesDetail,
}

/// An item's id, name and SKU, for the lines that name it.
#[derive(Deserialize)]
struct ItemName {
    #[serde(rename = "Id")]
    id: Id,
    #[serde(rename = "Name", default)]
    name: Text,
    #[serde(rename = "Sku", default)]
    sku: Text,
}

impl QboConnector {
    /// Item names and SKUs by id, for the lines of these documents.
    async fn item_names(
        &self,
        docs: &[Value],
    ) -> Result<HashMap<String, (String, Option<String>)>, PlatformError> {
        // A document whose lines do not read names no items: its record fails, naming where.
        let ids: Vec<String> = docs
            .iter()
            .filter_map(|d| read::<LineItems>(d, "the document").ok())
            .flat_map(|d| d.line)
            .filter_map(|l| l.detail.item_ref.value.non_empty())
            .collect();
        self.found(Self::lookups("Item", "Id", &ids))
            .await?
            .iter()
            .map(|v| {
                let item: ItemName = read(v, "an item").map_err(PlatformError::Unavailable)?;
                Ok((item.id.0, (item.name.0, item.sku.non_empty())))
            })
            .collect()
    }

    /// The records of entities of one QuickBooks kind.
    async fn records(&self, name: &str, found: &[Value]) -> Result<Vec<Item>, PlatformError> {
        let names = match Document::parse(name) {
            Some(_) => self.item_names(found).await?,
            None => HashMap::new(),
        };
        let lookup = |id: &str| names.get(id).cloned();
        Ok(found
            .iter()
            .filter(|v| name != "Item" || !mapping::is_charge_item(v))
            .map(|v| {
                let mapped: Result<Record, String> = match (name, Document::parse(name)) {
                    (_, Some(kind)) => mapping::order(kind, v, &lookup),
                    ("Customer", _) => mapping::customer(v),
                    _ => mapping::product(v),
                };
                match mapped {
                    Ok(r) => Item::Record(r),
                    Err(error) => Item::Bad {
                        id: match Document::parse(name) {
                            Some(kind) => document_id(kind, &entity_id(v)),
                            None => entity_id(v),
                        },
                        error,
                    },
                }
            })
            .collect())
    }

    async fn cdc_page(
        &self,
        entity: EntityType,
        since: DateTime<Utc>,
    ) -> Result<Option<Page>, PlatformError> {
        let kinds = entities(entity);
        let answer = self
            .call(
                Method::Get,
                "cdc",
                &[
                    ("entities", kinds.join(",")),
                    ("changedSince", literal(since)),
                ],
                Body::None,
            )
            .await?
            .map_err(|f| PlatformError::Unavailable(f.text()))?;
        // An answer without its groups is not "nothing changed".
        let answer: CdcAnswer =
            read(&answer, "the CDC answer").map_err(PlatformError::Unavailable)?;
        let groups = answer
            .cdc
            .into_iter()
            .next()
            .map(|g| g.groups)
            .unwrap_or_default();
        let mut by_kind: Vec<(&str, Vec<Value>)> = kinds.iter().map(|k| (*k, Vec::new())).collect();
        for group in &groups {
            for (kind, found) in by_kind.iter_mut() {
                found.extend(list(group, kind)?);
            }
        }
        let total: usize = by_kind.iter().map(|(_, f)| f.len()).sum();
        if total >= CDC_CAP {
            tracing::info!(realm = %self.realm, %entity, "CDC answer may be cut short; reading the window with queries");
            return Ok(None);
        }
        let mut items = Vec::new();
        let mut newest: Option<DateTime<Utc>> = None;
        for (kind, found) in &by_kind {
            for v in found {
                let t = stamp_of(v);
                newest = Some(newest.map_or(t, |n| n.max(t)));
            }
            items.extend(self.records(kind, found).await?);
        }
        Ok(Some(Page {
            items,
            checkpoint: newest.map(Cursor::at),
            resume: None,
        }))
    }

    async fn query_page(
        &self,
        entity: EntityType,
        after: Option<&Cursor>,
        scan: Scan,
    ) -> Result<Page, PlatformError> {
        let kinds = entities(entity);
        let phase = scan.phase;
        let Some(kind) = kinds.get(phase).copied() else {
            return Ok(Page::default());
        };
        let scan_start = scan.scan_start.unwrap_or_else(|| self.clock.now());
        let since = scan.since.or(after.map(|c| c.stamp));
        let start = scan.start.unwrap_or(1);
        let skip: HashSet<String> = scan.skip.into_iter().collect();
        let mut conditions = Vec::new();
        if let Some(t) = since {
            conditions.push(format!("MetaData.LastUpdatedTime >= '{}'", literal(t)));
        }
        if matches!(kind, "Customer" | "Item") {
            conditions.push("Active IN (true, false)".to_string());
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        };
        let statement = format!(
            "SELECT * FROM {kind}{filter} ORDERBY MetaData.LastUpdatedTime STARTPOSITION {start} MAXRESULTS {PAGE}"
        );
        let found = self.query(kind, &statement).await?;
        let full = found.len() >= PAGE;
        let fresh: Vec<Value> = found
            .iter()
            .filter(|v| !(since == Some(stamp_of(v)) && skip.contains(&entity_id(v))))
            .cloned()
            .collect();
        let items = self.records(kind, &fresh).await?;
        let resume = if full {
            let last = found.last().map(stamp_of).unwrap_or_default();
            let mut at_last: Vec<String> = found
                .iter()
                .filter(|v| stamp_of(v) == last)
                .map(entity_id)
                .filter(|id| !id.is_empty())
                .collect();
            let same_stamp = since == Some(last);
            if same_stamp {
                at_last.extend(skip.iter().cloned());
            }
            Some(Scan {
                mode: "query".into(),
                phase,
                scan_start: Some(scan_start),
                since: Some(last),
                skip: at_last,
                // A whole page at one stamp: page on by position within it.
                start: Some(if same_stamp { start + PAGE as u64 } else { 1 }),
            })
        } else if phase + 1 < kinds.len() {
            Some(Scan {
                mode: "query".into(),
                phase: phase + 1,
                scan_start: Some(scan_start),
                ..Scan::default()
            })
        } else {
            None
        };
        Ok(Page {
            items,
            checkpoint: resume
                .is_none()
                .then(|| Cursor::at(scan_start - Duration::seconds(1))),
            resume: resume.map(|scan| serde_json::to_value(scan).unwrap_or_default()),
        })
    }
}

#[async_trait]
impl Source for QboConnector {
    async fn changes(
        &self,
        entity: EntityType,
        after: Option<&Cursor>,
        resume: Option<&Value>,
    ) -> Result<Page, PlatformError> {
        if let Some(state) = resume {
            let scan: Scan = resume_point(state)?;
            return self.query_page(entity, after, scan).await;
        }
        if let Some(c) = after.filter(|c| c.stamp > self.clock.now() - Duration::days(CDC_DAYS)) {
            if let Some(page) = self
                .cdc_page(entity, c.stamp - Duration::seconds(1))
                .await?
            {
                return Ok(page);
            }
        }
        self.query_page(entity, after, Scan::default()).await
    }

    async fn fetch(&self, entity: EntityType, ids: &[String]) -> Result<Vec<Item>, PlatformError> {
        let mut wanted: Vec<(&str, String, String)> = Vec::new();
        // QuickBooks ids are numbers; an order's record id names its document kind too.
        let numeric =
            |t: &str| !t.is_empty() && t.len() <= 20 && t.bytes().all(|b| b.is_ascii_digit());
        for id in ids {
            let named = match entity {
                EntityType::Orders => split_document_id(id).map(|(k, own)| (k.entity(), own)),
                EntityType::Customers => Some(("Customer", id.as_str())),
                EntityType::Products => Some(("Item", id.as_str())),
            };
            if let Some((kind, own)) = named.filter(|(_, own)| numeric(own)) {
                wanted.push((kind, own.to_string(), id.clone()));
            }
        }
        let mut found: HashMap<String, Item> = HashMap::new();
        for kind in entities(entity) {
            let own: Vec<String> = wanted
                .iter()
                .filter(|(k, _, _)| k == kind)
                .map(|(_, id, _)| id.clone())
                .collect();
            let values = self.found(Self::lookups(kind, "Id", &own)).await?;
            for item in self.records(kind, &values).await? {
                found.insert(item.id().to_string(), item);
            }
        }
        let asked: std::collections::HashSet<&str> =
            wanted.iter().map(|(_, _, id)| id.as_str()).collect();
        Ok(ids
            .iter()
            .map(|id| {
                if !asked.contains(id.as_str()) {
                    // Not an id of this entity (an order's names its document kind): never
                    // read as a deletion.
                    return Item::Bad {
                        id: id.clone(),
                        error: format!(
                            "'{}' is not a QuickBooks id of {entity}",
                            crate::logtext::clip(id)
                        ),
                    };
                }
                found.remove(id).unwrap_or_else(|| {
                    Item::Record(Record {
                        id: id.clone(),
                        modified_at: self.clock.now(),
                        body: None,
                        unknown: Vec::new(),
                    })
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_resume_point_reads_as_earlier_versions_wrote_it_and_one_that_does_not_read_is_refused() {
        let earlier = json!({
            "mode": "query", "phase": 1, "scan_start": "2026-11-24T18:05:09+00:00",
            "since": "2026-11-24T18:05:09.5+00:00", "skip": ["3", "7"], "start": 101,
        });
        let scan: Scan = read(&earlier, "resume").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((scan.phase, scan.start), (1, Some(101)));
        assert_eq!(scan.skip, ["3", "7"]);
        assert_eq!(
            scan.since.map(|t| t.timestamp_millis()),
            Some(1_795_543_509_500)
        );
        let again = serde_json::to_value(&scan).unwrap_or_default();
        assert_eq!(read::<Scan>(&again, "resume"), Ok(scan));
        assert!(read::<Scan>(&json!({"phase": "one"}), "resume").is_err());
        // The next kind's first page names no position.
        let next: Scan =
            read(&json!({"mode": "query", "phase": 1}), "resume").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((next.since, next.start), (None, None));
    }
}
