//! The Supabase connector: a project's tables through its Data API (PostgREST, `/rest/v1`),
//! with the service key (`apikey`, and the same value as a bearer token, which Supabase
//! accepts for JWT-style and for `sb_secret_` keys alike).
//!
//! Reading is keyset paging on (`updated_at`, id), never offset (rows change while paged):
//! each page asks for rows after the last one read. Supabase caps rows per request silently
//! (its "Max rows" setting), so a short page does not mean the end: paging stops at an empty
//! page. Records named by id are read with `id=in.(…)`; a row that is gone (a hard delete)
//! reads as deleted.
//!
//! Writing is a bulk upsert on the row id (`on_conflict`, `Prefer: resolution=
//! merge-duplicates`), 500 rows a request, every row with the same columns (PostgREST
//! refuses mixed key sets). A record the index does not link yet is first matched by SKU or
//! email; if none matches, its row id is derived from where it came from (a UUID v5 of the
//! source connection and id), so a retry after a lost response writes the same row again
//! rather than a second one. If a chunk is refused (a constraint), its rows are written one
//! by one so that only the bad one fails. Deletions set `deleted_at`.

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::mapping;
use crate::clock::Clock;
use crate::domain::{Connection, Cursor, EntityType};
use crate::platforms::http::{unexpected, Caller, Replay};
use crate::platforms::woocommerce::connector::encode;
use crate::ports::{
    Connector, HttpRequest, HttpResponse, Item, Method, Page, PlatformError, RecordError, Source,
    Target, Write, WriteOutcome,
};
use crate::records::{Body, Record};

/// Rows per read and per upsert.
pub const PAGE: usize = 500;
/// Ids per `in.(…)` filter (the URL stays well under proxies' limits).
const IDS_PER_FILTER: usize = 100;

/// The namespace of the row ids derived from a record's origin.
const ROW_ID_NAMESPACE: uuid::Uuid = uuid::Uuid::from_bytes([
    0x5e, 0x1c, 0x0a, 0x7d, 0x3b, 0x24, 0x4f, 0x61, 0x9a, 0x0e, 0x71, 0xc2, 0x4d, 0x88, 0x19, 0xb3,
]);

pub struct SupabaseConnector {
    caller: Caller,
    /// `https://<ref>.supabase.co/rest/v1`
    rest: String,
    key: String,
    connection: Connection,
    clock: Arc<dyn Clock>,
}

/// A value in a PostgREST logic tree or `in` list, double-quoted (so commas, dots and
/// parentheses in it are data).
fn quoted(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn in_list(values: &[String]) -> String {
    format!(
        "in.({})",
        values
            .iter()
            .map(|v| quoted(v))
            .collect::<Vec<_>>()
            .join(",")
    )
}

impl SupabaseConnector {
    pub fn new(
        caller: Caller,
        connection: &Connection,
        service_key: &str,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, PlatformError> {
        let project = connection
            .config_str("project_url")
            .ok_or_else(|| PlatformError::Rejected("the connection has no project_url".into()))?;
        Ok(Self {
            caller,
            rest: format!("{}/rest/v1", project.trim_end_matches('/')),
            key: service_key.to_string(),
            connection: connection.clone(),
            clock,
        })
    }

    fn table(&self, entity: EntityType) -> String {
        super::entity_table(&self.connection, entity)
    }

    fn id_column(&self) -> &str {
        super::id_column(&self.connection)
    }

    fn updated_at_column(&self) -> &str {
        super::updated_at_column(&self.connection)
    }

    fn request(&self, method: Method, table: &str, query: &[(&str, String)]) -> HttpRequest {
        let query: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        let url = if query.is_empty() {
            format!("{}/{table}", self.rest)
        } else {
            format!("{}/{table}?{}", self.rest, query.join("&"))
        };
        HttpRequest::new(method, url)
            .header("apikey", self.key.clone())
            .header("authorization", format!("Bearer {}", self.key))
            .header("accept", "application/json")
    }

    async fn rows(
        &self,
        table: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<Value>, PlatformError> {
        let response = self
            .caller
            .send(self.request(Method::Get, table, query), Replay::Safe)
            .await?;
        if !response.is_success() {
            return Err(unexpected("Supabase", &format!("GET {table}"), &response));
        }
        match response.json() {
            Ok(Value::Array(rows)) => Ok(rows),
            Ok(_) => Err(PlatformError::Unavailable(format!(
                "Supabase answered GET {table} with something other than rows"
            ))),
            Err(e) => Err(PlatformError::Unavailable(format!("GET {table}: {e}"))),
        }
    }

    fn read(&self, entity: EntityType, row: &Value) -> Item {
        match mapping::record(entity, row, self.id_column(), self.updated_at_column()) {
            Ok(r) => Item::Record(r),
            Err(error) => Item::Bad {
                id: crate::platforms::id_text(row.get(self.id_column())).unwrap_or_default(),
                error,
            },
        }
    }

    /// The rows with these ids, by id.
    async fn by_ids(
        &self,
        entity: EntityType,
        ids: &[String],
        select: &str,
    ) -> Result<HashMap<String, Value>, PlatformError> {
        let table = self.table(entity);
        let mut found = HashMap::new();
        for chunk in ids.chunks(IDS_PER_FILTER) {
            let query = vec![
                ("select", select.to_string()),
                (self.id_column(), in_list(chunk)),
            ];
            for row in self.rows(&table, &query).await? {
                if let Some(id) = crate::platforms::id_text(row.get(self.id_column())) {
                    found.insert(id, row);
                }
            }
        }
        Ok(found)
    }

    /// Existing rows matching unlinked records by SKU or email: natural key → row id.
    async fn matches(
        &self,
        entity: EntityType,
        keys: &[String],
    ) -> Result<HashMap<String, String>, PlatformError> {
        let table = self.table(entity);
        let idc = self.id_column().to_string();
        let mut found = HashMap::new();
        for chunk in keys.chunks(IDS_PER_FILTER) {
            let (column, query) = match entity {
                EntityType::Products => (
                    "sku",
                    vec![("select", format!("{idc},sku")), ("sku", in_list(chunk))],
                ),
                EntityType::Customers => {
                    // Emails match whatever their case: `ilike` without wildcards.
                    let alternatives: Vec<String> = chunk
                        .iter()
                        .map(|e| {
                            let literal = e
                                .replace('\\', "\\\\")
                                .replace('%', "\\%")
                                .replace('_', "\\_");
                            format!("email.ilike.{}", quoted(&literal))
                        })
                        .collect();
                    (
                        "email",
                        vec![
                            ("select", format!("{idc},email")),
                            ("or", format!("({})", alternatives.join(","))),
                        ],
                    )
                }
                EntityType::Orders => return Ok(found),
            };
            for row in self.rows(&table, &query).await? {
                let raw = row[column].as_str().unwrap_or_default();
                // Keyed as `Body::natural_key` keys them: SKUs as they are, emails lower-cased.
                let key = match column {
                    "sku" => raw.to_string(),
                    _ => raw.trim().to_ascii_lowercase(),
                };
                if let Some(id) = crate::platforms::id_text(row.get(&idc)) {
                    found.entry(key).or_insert(id);
                }
            }
        }
        Ok(found)
    }

    /// One upsert request.
    async fn upsert(&self, table: &str, rows: &[Value]) -> Result<HttpResponse, PlatformError> {
        let query = vec![("on_conflict", self.id_column().to_string())];
        let request = self
            .request(Method::Post, table, &query)
            .header("prefer", "resolution=merge-duplicates,return=minimal")
            .json(&Value::Array(rows.to_vec()));
        self.caller.send(request, Replay::Safe).await
    }
}

/// A PostgREST error body.
#[derive(serde::Deserialize)]
struct PostgrestError {
    #[serde(default)]
    code: crate::platforms::fields::Text,
    message: crate::platforms::fields::Text,
}

/// The record's failure a PostgREST error body gives: coded by PostgreSQL's or PostgREST's
/// code (`supabase_23505`), or by the status when the body is not one (its start is shown).
fn refusal(response: &HttpResponse) -> WriteOutcome {
    let error = response
        .json()
        .and_then(|v| crate::platforms::fields::read::<PostgrestError>(&v, "the error"));
    let (code, message) = match error {
        Ok(e) if !e.code.as_str().is_empty() => (
            format!("supabase_{}", e.code.as_str()),
            format!(
                "Supabase refused it ({} {}): {}",
                response.status,
                e.code.as_str(),
                e.message.as_str()
            ),
        ),
        Ok(e) => (
            format!("http_{}", response.status),
            format!(
                "Supabase refused it ({}): {}",
                response.status,
                e.message.as_str()
            ),
        ),
        Err(_) => (
            format!("http_{}", response.status),
            format!(
                "Supabase refused it ({}): {}",
                response.status,
                response.snippet()
            ),
        ),
    };
    WriteOutcome::Failed(RecordError::new(code, message))
}

#[async_trait]
impl Source for SupabaseConnector {
    async fn changes(
        &self,
        entity: EntityType,
        after: Option<&Cursor>,
        _resume: Option<&Value>,
    ) -> Result<Page, PlatformError> {
        let (idc, upd) = (self.id_column(), self.updated_at_column());
        let mut query = vec![
            ("select", mapping::select(entity, idc, upd)),
            ("order", format!("{upd}.asc,{idc}.asc")),
            ("limit", PAGE.to_string()),
        ];
        match after {
            None => {}
            Some(c) if c.id.is_empty() => query.push((upd, format!("gte.{}", stamp(c.stamp)))),
            Some(c) => query.push((
                "or",
                format!(
                    "({upd}.gt.{t},and({upd}.eq.{t},{idc}.gt.{id}))",
                    t = quoted(&stamp(c.stamp)),
                    id = quoted(&c.id)
                ),
            )),
        }
        let rows = self.rows(&self.table(entity), &query).await?;
        let checkpoint = rows.last().and_then(|row| {
            let id = crate::platforms::id_text(row.get(idc))?;
            let t = DateTime::parse_from_rfc3339(row[upd].as_str()?).ok()?;
            Some(Cursor {
                stamp: t.with_timezone(&Utc),
                id,
            })
        });
        Ok(Page {
            resume: (!rows.is_empty()).then(|| json!({})),
            items: rows.iter().map(|row| self.read(entity, row)).collect(),
            checkpoint,
        })
    }

    async fn fetch(&self, entity: EntityType, ids: &[String]) -> Result<Vec<Item>, PlatformError> {
        let select = mapping::select(entity, self.id_column(), self.updated_at_column());
        let found = self.by_ids(entity, ids, &select).await?;
        let now = self.clock.now();
        Ok(ids
            .iter()
            .map(|id| match found.get(id) {
                Some(row) => self.read(entity, row),
                None => Item::Record(Record {
                    id: id.clone(),
                    modified_at: now,
                    body: None,
                    unknown: Vec::new(),
                }),
            })
            .collect())
    }
}

#[async_trait]
impl Target for SupabaseConnector {
    async fn write(
        &self,
        entity: EntityType,
        writes: &[Write],
    ) -> Result<Vec<WriteOutcome>, PlatformError> {
        let table = self.table(entity);
        let idc = self.id_column().to_string();
        let mut out = vec![WriteOutcome::Skipped; writes.len()];

        // Deletions: `deleted_at` on the rows we know.
        let deleted: Vec<(usize, String)> = writes
            .iter()
            .enumerate()
            .filter(|(_, w)| w.record.is_deleted())
            .filter_map(|(i, w)| Some((i, w.target_id.clone()?)))
            .collect();
        for chunk in deleted.chunks(IDS_PER_FILTER) {
            let ids: Vec<String> = chunk.iter().map(|(_, id)| id.clone()).collect();
            let request = self
                .request(Method::Patch, &table, &[(idc.as_str(), in_list(&ids))])
                .header("prefer", "return=minimal")
                .json(&json!({ "deleted_at": stamp(self.clock.now()) }));
            let response = self.caller.send(request, Replay::Safe).await?;
            if matches!(response.status, 401 | 403) {
                return Err(unexpected("Supabase", &format!("PATCH {table}"), &response));
            }
            for (i, id) in chunk {
                out[*i] = if response.is_success() {
                    WriteOutcome::Written {
                        target_id: id.clone(),
                    }
                } else {
                    refusal(&response)
                };
            }
        }

        // Live records: one row each, under its linked, matched or derived id.
        let unlinked: Vec<String> = writes
            .iter()
            .filter(|w| w.target_id.is_none())
            .filter_map(|w| w.record.body.as_ref()?.natural_key())
            .collect();
        let matched = if unlinked.is_empty() {
            HashMap::new()
        } else {
            self.matches(entity, &unlinked).await?
        };
        let mut rows: Vec<(usize, String, Value)> = Vec::new();
        for (i, w) in writes.iter().enumerate() {
            let Some(body) = &w.record.body else { continue };
            if matches!(body, Body::Order(_)) != (entity == EntityType::Orders) {
                out[i] = WriteOutcome::refused("the record is not of this table's entity".into());
                continue;
            }
            let id = w
                .target_id
                .clone()
                .or_else(|| body.natural_key().and_then(|k| matched.get(&k).cloned()))
                .unwrap_or_else(|| {
                    uuid::Uuid::new_v5(&ROW_ID_NAMESPACE, w.origin.key().as_bytes()).to_string()
                });
            let row = Value::Object(mapping::row(body, &idc, &id, &w.origin, &w.fields));
            rows.push((i, id, row));
        }
        // PostgREST upserts rows with the same columns together: rows that carry different
        // fields (a record without a value for some) go in statements of their own.
        let mut by_columns: BTreeMap<Vec<String>, Vec<(usize, String, Value)>> = BTreeMap::new();
        for (i, id, row) in rows {
            let columns = row
                .as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default();
            by_columns.entry(columns).or_default().push((i, id, row));
        }
        for chunk in by_columns.values().flat_map(|rows| rows.chunks(PAGE)) {
            let values: Vec<Value> = chunk.iter().map(|(_, _, r)| r.clone()).collect();
            let response = self.upsert(&table, &values).await?;
            if matches!(response.status, 401 | 403) {
                return Err(unexpected("Supabase", &format!("POST {table}"), &response));
            }
            if response.is_success() {
                for (i, id, _) in chunk {
                    out[*i] = WriteOutcome::Written {
                        target_id: id.clone(),
                    };
                }
                continue;
            }
            // One bad row fails the whole statement: find it, row by row.
            for (i, id, row) in chunk {
                let single = self.upsert(&table, std::slice::from_ref(row)).await?;
                out[*i] = if single.is_success() {
                    WriteOutcome::Written {
                        target_id: id.clone(),
                    }
                } else {
                    refusal(&single)
                };
            }
        }
        Ok(out)
    }
}

impl Connector for SupabaseConnector {
    fn source(&self) -> Option<&dyn Source> {
        Some(self)
    }

    fn target(&self) -> Option<&dyn Target> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_in_filters_are_quoted_as_data() {
        assert_eq!(
            in_list(&["a,b".into(), "c\"d".into()]),
            r#"in.("a,b","c\"d")"#
        );
        assert_eq!(
            stamp(DateTime::from_timestamp(1_795_521_600, 123_456_000).unwrap_or_default()),
            "2026-11-24T12:00:00.123456Z"
        );
    }

    #[test]
    fn a_refused_row_is_coded_by_postgrests_code_or_else_by_the_status() {
        let answer = |status: u16, body: &str| HttpResponse {
            status,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        };
        let coded = |o: WriteOutcome| match o {
            WriteOutcome::Failed(e) => (e.code, e.message),
            other => panic!("not a refusal: {other:?}"),
        };
        let (code, message) = coded(refusal(&answer(
            409,
            r#"{"code":"23505","message":"duplicate key value violates unique constraint"}"#,
        )));
        assert_eq!(code, "supabase_23505");
        assert!(message.contains("duplicate key"), "{message}");
        let (code, message) = coded(refusal(&answer(400, "<html>bad gateway</html>")));
        assert_eq!(code, "http_400");
        assert!(message.contains("bad gateway"), "{message}");
    }
}
