//! A PostgREST-compatible layer (Supabase's Data API, `/rest/v1/<table>`) over a real
//! PostgreSQL: the subset the connector and the Python clients use.
//!
//! - `GET`: `select` (with casts), filters and logic trees, `order`, `limit`/`offset`, the
//!   `Range` header, `Content-Range` in every answer, `Prefer: count=exact` (206 for a part),
//!   and Supabase's silent cap on rows per request (`max_rows`, 1000 by default).
//! - `POST`: insert, or upsert with `Prefer: resolution=merge-duplicates|ignore-duplicates`
//!   and `on_conflict`; arrays must have uniform keys (`PGRST102`) unless `columns` names
//!   them; 201, or 200 for an upsert that inserted nothing; `return=minimal|representation`.
//! - `PATCH` and `DELETE` with filters.
//! - Keys: `apikey` must be one of the project's keys; a bearer token must be that same key.
//! - Errors as PostgREST sends them: `{code, details, hint, message}`, PostgreSQL's
//!   SQLSTATE mapped to HTTP (23505 → 409, 23502 → 400, …).
//!
//! Database Webhooks: `infra/supabase-local.sql` defines `supabase_functions.http_request`
//! (which Supabase itself provides) as a trigger that queues the payload Supabase sends and
//! notifies; the layer takes each queued request and POSTs it to the trigger's URL with its
//! headers, once, without retries (as pg_net does).

mod query;

use anyhow::Result;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

use crate::server::{json_response, with_header, Faults, Handler, Req, Resp};
pub use query::Table;
use query::{filters, ident, order_sql, select_sql, where_sql, Bad, Params};

/// The channel `supabase_functions.http_request` notifies on.
pub const WEBHOOK_CHANNEL: &str = "supabase_functions_http";

pub struct PostgRest {
    db: tokio_postgres::Client,
    schema: RwLock<HashMap<String, Table>>,
    keys: Vec<String>,
    max_rows: usize,
    faults: Faults,
}

fn error(status: StatusCode, code: &str, message: &str) -> Resp {
    json_response(
        status,
        &json!({"code": code, "details": null, "hint": null, "message": message}),
    )
}

fn bad(e: Bad) -> Resp {
    error(StatusCode::BAD_REQUEST, "PGRST100", &e.0)
}

/// A database error as PostgREST answers it.
fn db_error(e: &tokio_postgres::Error) -> Resp {
    let Some(db) = e.as_db_error() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "PGRST000", &e.to_string());
    };
    let code = db.code().code();
    let status = match code {
        "23505" | "23503" => StatusCode::CONFLICT,
        "23502" | "23514" | "22P02" | "22007" | "22008" | "22003" | "42804" | "42703" => {
            StatusCode::BAD_REQUEST
        }
        "42501" => StatusCode::FORBIDDEN,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    json_response(
        status,
        &json!({"code": code, "details": db.detail(), "hint": db.hint(), "message": db.message()}),
    )
}

/// The `Prefer` header's preferences.
struct Prefer {
    merge: bool,
    ignore: bool,
    representation: bool,
    count: bool,
}

fn prefer(req: &Req) -> Prefer {
    let text: Vec<String> = req
        .headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_ascii_lowercase())
        .collect();
    let has = |p: &str| text.iter().any(|t| t == p);
    Prefer {
        merge: has("resolution=merge-duplicates"),
        ignore: has("resolution=ignore-duplicates"),
        representation: has("return=representation"),
        count: has("count=exact"),
    }
}

impl PostgRest {
    /// A layer over the database at `url`, accepting `keys`.
    pub async fn new(url: &str, keys: Vec<String>) -> Result<Arc<Self>> {
        let db = crate::pg::connect(url).await?;
        let schema = query::load_schema(&db).await?;
        Ok(Arc::new(Self {
            db,
            schema: RwLock::new(schema),
            keys,
            max_rows: 1000,
            faults: Faults::default(),
        }))
    }

    /// Starts the layer on `port` (0 for a free one), and the webhook sender; returns the
    /// project URL (the Data API is below `/rest/v1`).
    pub async fn start(
        url: &str,
        keys: Vec<String>,
        port: u16,
    ) -> Result<(String, Arc<Self>, Vec<tokio::task::JoinHandle<()>>)> {
        let layer = Self::new(url, keys).await?;
        let (base, server) = crate::server::start(port, layer.clone()).await?;
        let hooks = tokio::spawn(send_webhooks(url.to_string()));
        Ok((base, layer, vec![server, hooks]))
    }

    /// Reads the schema again (after tables were created).
    pub async fn reload(&self) -> Result<()> {
        let schema = query::load_schema(&self.db).await?;
        *self.schema.write().unwrap_or_else(|p| p.into_inner()) = schema;
        Ok(())
    }

    async fn table(&self, name: &str) -> Option<Table> {
        let found = self
            .schema
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned();
        if found.is_some() {
            return found;
        }
        // A table created since we started: PostgREST would need `NOTIFY pgrst`; we look.
        self.reload().await.ok()?;
        self.schema
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    fn authenticate(&self, req: &Req) -> Result<(), Resp> {
        let Some(key) = req.header("apikey").or_else(|| req.param("apikey")) else {
            return Err(json_response(
                StatusCode::UNAUTHORIZED,
                &json!({"message": "No API key found in request", "hint": "No `apikey` request header or url param was found."}),
            ));
        };
        if !self.keys.iter().any(|k| k == key) {
            return Err(json_response(
                StatusCode::UNAUTHORIZED,
                &json!({"message": "Invalid API key", "hint": "Double check your Supabase `anon` or `service_role` API key."}),
            ));
        }
        if let Some(auth) = req.header("authorization") {
            let token = auth
                .split_once(' ')
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, t)| t.trim());
            if token != Some(key) {
                return Err(error(
                    StatusCode::UNAUTHORIZED,
                    "PGRST301",
                    "a bearer token must be the apikey itself or a JWT",
                ));
            }
        }
        Ok(())
    }

    async fn route(&self, req: Req) -> Resp {
        if let Err(r) = self.authenticate(&req) {
            return r;
        }
        let Some(name) = req
            .path
            .strip_prefix("/rest/v1/")
            .filter(|n| !n.contains('/'))
        else {
            return error(StatusCode::NOT_FOUND, "PGRST125", "no such path");
        };
        let Some(table) = self.table(name).await else {
            return error(
                StatusCode::NOT_FOUND,
                "PGRST205",
                &format!("Could not find the table 'public.{name}' in the schema cache"),
            );
        };
        let result = match req.method {
            Method::GET => self.get(&table, &req).await,
            Method::POST => self.post(&table, &req).await,
            Method::PATCH => self.patch(&table, &req).await,
            Method::DELETE => self.delete(&table, &req).await,
            _ => Ok(error(
                StatusCode::METHOD_NOT_ALLOWED,
                "PGRST117",
                "unsupported method",
            )),
        };
        result.unwrap_or_else(|r| r)
    }

    /// `limit`/`offset` from the query and the `Range` header, capped at `max_rows`.
    fn window(&self, req: &Req) -> Result<(usize, usize), Resp> {
        let number = |v: &str, what: &str| {
            v.parse::<usize>()
                .map_err(|_| bad(Bad(format!("{what} must be a number"))))
        };
        let mut offset = match req.param("offset") {
            Some(v) => number(v, "offset")?,
            None => 0,
        };
        let mut limit = match req.param("limit") {
            Some(v) => number(v, "limit")?,
            None => usize::MAX,
        };
        if let Some(range) = req.header("range") {
            let (a, b) = range.split_once('-').unwrap_or((range, ""));
            let invalid = || {
                error(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "PGRST103",
                    "Requested range not satisfiable",
                )
            };
            let first: usize = a.trim().parse().map_err(|_| invalid())?;
            offset = offset.max(first);
            if !b.trim().is_empty() {
                let last: usize = b.trim().parse().map_err(|_| invalid())?;
                if last < first {
                    return Err(invalid());
                }
                limit = limit.min(last - first + 1);
            }
        }
        Ok((offset, limit.min(self.max_rows)))
    }

    async fn get(&self, table: &Table, req: &Req) -> Result<Resp, Resp> {
        let mut params = Params::default();
        let columns = select_sql(table, req.param("select")).map_err(bad)?;
        let filters = filters(&req.query).map_err(bad)?;
        let condition = where_sql(table, &filters, &mut params).map_err(bad)?;
        let order = order_sql(table, req.param("order")).map_err(bad)?;
        let (offset, limit) = self.window(req)?;
        let sql = format!(
            "SELECT coalesce(json_agg(_r), '[]'::json)::text FROM (SELECT {columns} FROM public.{t} WHERE {condition}{order} LIMIT {limit} OFFSET {offset}) _r",
            t = ident(&table.name)
        );
        let values: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
            .values
            .iter()
            .map(|v| v as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        let row = self
            .db
            .query_one(&sql, &values)
            .await
            .map_err(|e| db_error(&e))?;
        let text: String = row.get(0);
        let count = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.as_array().map(Vec::len))
            .unwrap_or(0);
        let total = if prefer(req).count {
            let sql = format!(
                "SELECT count(*) FROM public.{} WHERE {condition}",
                ident(&table.name)
            );
            let row = self
                .db
                .query_one(&sql, &values)
                .await
                .map_err(|e| db_error(&e))?;
            Some(row.get::<_, i64>(0))
        } else {
            None
        };
        let range = if count == 0 {
            format!("*/{}", total.map_or("*".into(), |t| t.to_string()))
        } else {
            format!(
                "{}-{}/{}",
                offset,
                offset + count - 1,
                total.map_or("*".into(), |t| t.to_string())
            )
        };
        let partial = total.is_some_and(|t| (count as i64) < t);
        let status = if partial {
            StatusCode::PARTIAL_CONTENT
        } else {
            StatusCode::OK
        };
        let mut r = hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from(text)));
        *r.status_mut() = status;
        r = with_header(r, "content-type", "application/json; charset=utf-8");
        Ok(with_header(r, "content-range", &range))
    }

    fn body_rows(&self, req: &Req) -> Result<Vec<serde_json::Map<String, Value>>, Resp> {
        let content_type = req.header("content-type").unwrap_or_default();
        if !content_type.starts_with("application/json") {
            return Err(error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "PGRST107",
                "send rows as application/json",
            ));
        }
        let body = req
            .json()
            .map_err(|e| error(StatusCode::BAD_REQUEST, "PGRST102", &e))?;
        let rows = match body {
            Value::Object(o) => vec![o],
            Value::Array(items) => items
                .into_iter()
                .map(|v| match v {
                    Value::Object(o) => Ok(o),
                    _ => Err(error(
                        StatusCode::BAD_REQUEST,
                        "PGRST102",
                        "rows must be JSON objects",
                    )),
                })
                .collect::<Result<_, _>>()?,
            _ => {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    "PGRST102",
                    "the body must be an object or an array",
                ))
            }
        };
        Ok(rows)
    }

    async fn post(&self, table: &Table, req: &Req) -> Result<Resp, Resp> {
        let rows = self.body_rows(req)?;
        if rows.is_empty() {
            return Ok(json_response(StatusCode::CREATED, &json!([])));
        }
        let columns: Vec<String> = match req.param("columns") {
            // Clients may quote the names (`columns="id","email"`), as PostgREST allows.
            Some(list) => list
                .split(',')
                .map(|c| c.trim().trim_matches('"').to_string())
                .collect(),
            None => {
                let first: Vec<&String> = rows[0].keys().collect();
                if rows.iter().any(|r| r.keys().collect::<Vec<_>>() != first) {
                    return Err(error(
                        StatusCode::BAD_REQUEST,
                        "PGRST102",
                        "All object keys must match",
                    ));
                }
                first.into_iter().cloned().collect()
            }
        };
        for c in &columns {
            if table.column_type(c).is_none() {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    "PGRST204",
                    &format!(
                        "Could not find the '{c}' column of '{}' in the schema cache",
                        table.name
                    ),
                ));
            }
        }
        let p = prefer(req);
        let conflict: Vec<String> = match req.param("on_conflict") {
            Some(list) => list.split(',').map(|c| c.trim().to_string()).collect(),
            None => table.primary_key.clone(),
        };
        let cols = columns
            .iter()
            .map(|c| ident(c))
            .collect::<Vec<_>>()
            .join(", ");
        let on_conflict = if p.merge || p.ignore {
            let target = conflict
                .iter()
                .map(|c| ident(c))
                .collect::<Vec<_>>()
                .join(", ");
            if p.ignore {
                format!(" ON CONFLICT ({target}) DO NOTHING")
            } else {
                let sets: Vec<String> = columns
                    .iter()
                    .map(|c| format!("{} = EXCLUDED.{}", ident(c), ident(c)))
                    .collect();
                format!(" ON CONFLICT ({target}) DO UPDATE SET {}", sets.join(", "))
            }
        } else {
            String::new()
        };
        let t = ident(&table.name);
        let sql = format!(
            "WITH _in AS (SELECT * FROM json_populate_recordset(NULL::public.{t}, ($1::text)::json)),
                  _w AS (INSERT INTO public.{t} AS _t ({cols}) SELECT {cols} FROM _in{on_conflict}
                         RETURNING (xmax = 0) AS _inserted, to_jsonb(_t.*) AS _row)
             SELECT count(*) FILTER (WHERE _inserted), count(*), coalesce(json_agg(_row), '[]'::json)::text FROM _w"
        );
        let payload = Value::Array(rows.into_iter().map(Value::Object).collect()).to_string();
        let row = self
            .db
            .query_one(&sql, &[&payload])
            .await
            .map_err(|e| db_error(&e))?;
        let inserted: i64 = row.get(0);
        let text: String = row.get(2);
        let status = if p.merge && inserted == 0 {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        };
        Ok(if p.representation {
            json_response(status, &serde_json::from_str(&text).unwrap_or(json!([])))
        } else {
            crate::server::empty(status)
        })
    }

    async fn patch(&self, table: &Table, req: &Req) -> Result<Resp, Resp> {
        let mut rows = self.body_rows(req)?;
        if rows.len() != 1 {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "PGRST102",
                "PATCH takes one object",
            ));
        }
        let set_row = rows.remove(0);
        let mut params = Params::default();
        params
            .values
            .push(Value::Object(set_row.clone()).to_string());
        let filters = filters(&req.query).map_err(bad)?;
        let condition = where_sql(table, &filters, &mut params).map_err(bad)?;
        let t = ident(&table.name);
        let sets: Vec<String> = set_row
            .keys()
            .map(|c| {
                if table.column_type(c).is_none() {
                    Err(error(
                        StatusCode::BAD_REQUEST,
                        "PGRST204",
                        &format!("no column '{c}'"),
                    ))
                } else {
                    Ok(format!("{} = _in.{}", ident(c), ident(c)))
                }
            })
            .collect::<Result<_, _>>()?;
        let sql = format!(
            "WITH _w AS (UPDATE public.{t} SET {} FROM (SELECT * FROM json_populate_record(NULL::public.{t}, ($1::text)::json)) _in WHERE {condition} RETURNING to_jsonb(public.{t}.*) AS _row)
             SELECT coalesce(json_agg(_row), '[]'::json)::text FROM _w",
            sets.join(", ")
        );
        self.changed_rows(&sql, &params, req).await
    }

    /// Runs a `PATCH` or `DELETE` statement that answers the changed rows as one JSON text,
    /// and answers as PostgREST does: the rows with `return=representation`, else 204.
    async fn changed_rows(&self, sql: &str, params: &Params, req: &Req) -> Result<Resp, Resp> {
        let values: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
            .values
            .iter()
            .map(|v| v as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        let row = self
            .db
            .query_one(sql, &values)
            .await
            .map_err(|e| db_error(&e))?;
        let text: String = row.get(0);
        Ok(if prefer(req).representation {
            json_response(
                StatusCode::OK,
                &serde_json::from_str(&text).unwrap_or(json!([])),
            )
        } else {
            crate::server::empty(StatusCode::NO_CONTENT)
        })
    }

    async fn delete(&self, table: &Table, req: &Req) -> Result<Resp, Resp> {
        let mut params = Params::default();
        let filters = filters(&req.query).map_err(bad)?;
        let condition = where_sql(table, &filters, &mut params).map_err(bad)?;
        let sql = format!(
            "WITH _w AS (DELETE FROM public.{t} WHERE {condition} RETURNING to_jsonb(public.{t}.*) AS _row)
             SELECT coalesce(json_agg(_row), '[]'::json)::text FROM _w",
            t = ident(&table.name)
        );
        self.changed_rows(&sql, &params, req).await
    }
}

impl Handler for PostgRest {
    fn faults(&self) -> &Faults {
        &self.faults
    }

    fn handle(&self, req: Req) -> Pin<Box<dyn Future<Output = Resp> + Send + '_>> {
        Box::pin(self.route(req))
    }
}

/// Listens for `supabase_functions.http_request` notifications and delivers each request
/// once (the queue row is taken as it is read).
async fn send_webhooks(url: String) {
    use futures_util::StreamExt;
    let (client, mut connection) = match tokio_postgres::connect(&url, tokio_postgres::NoTls).await
    {
        Ok(pair) => pair,
        Err(e) => {
            tracing::warn!(error = %e, "webhook listener could not connect");
            return;
        }
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let pump = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let tokio_postgres::AsyncMessage::Notification(_) = message {
                let _ = tx.send(());
            }
        }
    });
    if let Err(e) = client
        .batch_execute(&format!("LISTEN {WEBHOOK_CHANNEL}"))
        .await
    {
        tracing::warn!(error = %e, "could not listen for webhooks");
        return;
    }
    let http = reqwest::Client::new();
    // Whatever is queued, then again at each notification.
    loop {
        let taken = client
            .query(
                "DELETE FROM supabase_functions.pending_requests WHERE id IN
                   (SELECT id FROM supabase_functions.pending_requests ORDER BY id LIMIT 500)
                 RETURNING id, request::text",
                &[],
            )
            .await;
        match taken {
            Ok(rows) => {
                let mut rows: Vec<(i64, String)> =
                    rows.iter().map(|r| (r.get(0), r.get(1))).collect();
                rows.sort();
                let more = rows.len() == 500;
                for (_, request) in rows {
                    let http = http.clone();
                    tokio::spawn(async move { deliver(&http, &request).await });
                }
                if more {
                    continue;
                }
            }
            // No queue table: nothing uses database webhooks in this database.
            Err(e) => tracing::debug!(error = %e, "no database webhook queue"),
        }
        if rx.recv().await.is_none() {
            break;
        }
        while rx.try_recv().is_ok() {}
    }
    pump.abort();
}

async fn deliver(http: &reqwest::Client, notification: &str) {
    let Ok(n) = serde_json::from_str::<Value>(notification) else {
        return;
    };
    let url = n["url"].as_str().unwrap_or_default();
    let timeout = n["timeout_ms"]
        .as_str()
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(5000);
    let mut request = http
        .post(url)
        .timeout(std::time::Duration::from_millis(timeout))
        .body(n["payload"].to_string());
    if let Some(headers) = n["headers"].as_object() {
        for (k, v) in headers {
            request = request.header(k, v.as_str().unwrap_or_default());
        }
    }
    match request.send().await {
        Ok(r) => tracing::debug!(
            url,
            status = r.status().as_u16(),
            "database webhook delivered"
        ),
        Err(e) => {
            tracing::info!(url, error = %e, "database webhook not delivered (pg_net does not retry)")
        }
    }
}
