//! Run history in DynamoDB (the one table).
//!
//! - A run: `pk = TENANT#<tenant>`, `sk = RUN#<run id>` (run ids sort by time, so a tenant's
//!   runs read newest first from its partition). Its details (flows, failed records,
//!   cursors) are JSON attributes.
//! - Pointers for the filters: `pk = RUNS#<tenant>#SCHEDULE#<id>` (and `#CONNECTION#`,
//!   `#FLOW#`), `sk = <run id>`. Listing by schedule, connection or flow reads that partition
//!   and then the runs by key; no list ever scans.
//!
//! Everything expires with the retention (`expires_at`, DynamoDB's TTL), and is treated as
//! gone on read once expired (TTL deletion lags).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, PutRequest, WriteRequest};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};
use std::collections::HashMap;

use crate::sdk::{condition_failed, describe};
use crate::table::{
    batch_write, get_s, get_time, key, n, open_run_sweep_keys, parsed, run_key, run_pointer_pk, s,
    tenant_pk, time, Item, RunsBy, RUN_CANCEL_PREFIX, RUN_PREFIX,
};
use crate::DynamoRunSweep;
use sync_core::domain::{
    Conflict, Cursor, FlowRun, RecordFailure, Run, RunCounts, RunFilter, RunId, RunPage, RunStatus,
    TenantId, Trigger,
};
use sync_core::ports::{RunHistory, RunListError, RunLog, RunSweep, StoreError};

#[derive(Clone, Debug)]
pub struct DynamoRuns {
    client: Client,
    table: String,
    retention: chrono::Duration,
    /// Reads of one run, and of a request to stop it, are the sweeper's as well.
    single: DynamoRunSweep,
}

impl DynamoRuns {
    pub fn new(client: Client, table: impl Into<String>, retention: chrono::Duration) -> Self {
        let table = table.into();
        Self {
            single: DynamoRunSweep::new(client.clone(), table.clone(), retention),
            client,
            table,
            retention,
        }
    }
}

pub(crate) fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn corrupt(field: &str) -> StoreError {
    StoreError::Unavailable(format!("stored run has a bad or missing '{field}'"))
}

fn json<T: serde::Serialize>(value: &T) -> Result<AttributeValue, StoreError> {
    serde_json::to_string(value).map(s).map_err(unavailable)
}

fn from_json<T: serde::de::DeserializeOwned>(item: &Item, field: &str) -> Result<T, StoreError> {
    serde_json::from_str(get_s(item, field)?).map_err(|_| corrupt(field))
}

fn expires_at(run: &Run, retention: chrono::Duration) -> AttributeValue {
    AttributeValue::N((run.started_at + retention).timestamp().to_string())
}

/// The run's item, kept for `retention` after it started.
pub(crate) fn run_item(run: &Run, retention: chrono::Duration) -> Result<Item, StoreError> {
    let mut item = run_key(&run.tenant_id, &run.id);
    item.insert("kind".into(), s("run"));
    item.insert("id".into(), s(run.id.as_str()));
    item.insert("tenant_id".into(), s(run.tenant_id.as_str()));
    item.insert("job_id".into(), s(&run.job_id));
    item.insert("trigger".into(), json(&run.trigger)?);
    if let Some(schedule) = run.schedule_id {
        item.insert("schedule_id".into(), s(schedule.to_string()));
    }
    item.insert("connection_id".into(), s(run.connection_id.to_string()));
    item.insert("platform".into(), s(run.platform.as_str()));
    item.insert("entity_type".into(), s(run.entity_type.as_str()));
    item.insert("sync_mode".into(), s(run.sync_mode.as_str()));
    item.insert("ids_requested".into(), n(run.ids_requested as u64));
    if !run.ids.is_empty() {
        item.insert("ids".into(), json(&run.ids)?);
    }
    item.insert("status".into(), s(run.status.as_str()));
    item.insert("counts".into(), json(&run.counts)?);
    item.insert("flows".into(), json(&run.flows)?);
    item.insert("failures".into(), json(&run.failures)?);
    if !run.conflicts.is_empty() {
        item.insert("conflicts".into(), json(&run.conflicts)?);
    }
    if let Some(m) = &run.message {
        item.insert("message".into(), s(m));
    }
    if let Some(c) = &run.cursor_before {
        item.insert("cursor_before".into(), json(c)?);
    }
    if let Some(c) = &run.cursor_after {
        item.insert("cursor_after".into(), json(c)?);
    }
    item.insert("triggered_at".into(), time(run.triggered_at));
    item.insert("started_at".into(), time(run.started_at));
    if let Some(t) = run.finished_at {
        item.insert("finished_at".into(), time(t));
    }
    item.insert("updated_at".into(), time(run.updated_at));
    item.insert("continuations".into(), n(u64::from(run.continuations)));
    item.insert("attempts".into(), n(u64::from(run.attempts)));
    item.insert("reported".into(), AttributeValue::Bool(run.reported));
    if let Some(redo) = &run.redone_by {
        item.insert("redone_by".into(), s(redo.as_str()));
    }
    if let Some(window) = &run.window {
        item.insert("window".into(), json(window)?);
    }
    item.insert("expires_at".into(), expires_at(run, retention));
    if !run.status.is_final() {
        item.extend(open_run_sweep_keys(&run.tenant_id, &run.id, run.updated_at));
    }
    Ok(item)
}

/// The pointer items of a run: one per filter it can be found by.
pub(crate) fn run_pointers(run: &Run, retention: chrono::Duration) -> Vec<Item> {
    let tenant = &run.tenant_id;
    let mut by = vec![RunsBy::Connection(run.connection_id)];
    by.extend(run.schedule_id.map(RunsBy::Schedule));
    by.extend(run.flows.iter().map(|flow| RunsBy::Flow(flow.flow_id)));
    by.into_iter()
        .map(|by| {
            let mut item = key(run_pointer_pk(tenant, by), run.id.as_str());
            item.insert("kind".to_string(), s("run-pointer"));
            item.insert("expires_at".to_string(), expires_at(run, retention));
            item
        })
        .collect()
}

impl DynamoRuns {
    async fn batch_put(&self, items: Vec<Item>) -> Result<(), StoreError> {
        let requests: Vec<WriteRequest> = items
            .into_iter()
            .map(|item| {
                PutRequest::builder()
                    .set_item(Some(item))
                    .build()
                    .map(|put| WriteRequest::builder().put_request(put).build())
                    .map_err(unavailable)
            })
            .collect::<Result<_, _>>()?;
        batch_write(&self.client, &self.table, requests).await
    }

    async fn by_ids(
        &self,
        tenant: &TenantId,
        ids: &[RunId],
    ) -> Result<HashMap<RunId, Run>, StoreError> {
        let mut found = HashMap::new();
        if ids.is_empty() {
            return Ok(found);
        }
        let keys: Vec<Item> = ids.iter().map(|id| run_key(tenant, id)).collect();
        let mut request = Some(
            KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .build()
                .map_err(unavailable)?,
        );
        let mut rounds = 0u64;
        while let Some(keys) = request.take() {
            rounds += 1;
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, keys)
                .send()
                .await
                .map_err(|e| unavailable(describe(&e)))?;
            for item in out
                .responses()
                .and_then(|r| r.get(&self.table))
                .into_iter()
                .flatten()
            {
                let run = from_item(item)?;
                found.insert(run.id.clone(), run);
            }
            request = out
                .unprocessed_keys()
                .and_then(|u| u.get(&self.table))
                .filter(|k| !k.keys().is_empty())
                .cloned();
            if request.is_some() {
                if rounds > 10 {
                    return Err(unavailable("runs kept coming back unprocessed"));
                }
                tokio::time::sleep(std::time::Duration::from_millis(50 * rounds)).await;
            }
        }
        Ok(found)
    }
}

fn number(item: &Item, field: &str) -> Result<u64, StoreError> {
    item.get(field)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| corrupt(field))
}

pub(crate) fn from_item(item: &Item) -> Result<Run, StoreError> {
    let optional_time = |field: &str| match item.get(field) {
        Some(_) => get_time(item, field).map(Some),
        None => Ok(None),
    };
    let optional_cursor = |field: &str| -> Result<Option<Cursor>, StoreError> {
        match item.get(field) {
            Some(_) => from_json(item, field).map(Some),
            None => Ok(None),
        }
    };
    let started_at = get_time(item, "started_at")?;
    let trigger = from_json::<Trigger>(item, "trigger")?;
    let reported = match item.get("reported") {
        Some(v) => *v.as_bool().map_err(|_| corrupt("reported"))?,
        // Recorded before runs said so: judged by its kind.
        None => trigger.may_carry_reported(),
    };
    Ok(Run {
        id: parsed(item, "id")?,
        tenant_id: TenantId::parse(get_s(item, "tenant_id")?).map_err(|_| corrupt("tenant_id"))?,
        job_id: get_s(item, "job_id")?.to_string(),
        trigger,
        schedule_id: match item.get("schedule_id") {
            Some(_) => Some(parsed(item, "schedule_id")?),
            None => None,
        },
        connection_id: parsed(item, "connection_id")?,
        platform: parsed(item, "platform")?,
        entity_type: parsed(item, "entity_type")?,
        sync_mode: parsed(item, "sync_mode")?,
        ids_requested: usize::try_from(number(item, "ids_requested")?).unwrap_or(usize::MAX),
        ids: match item.get("ids") {
            Some(_) => from_json(item, "ids")?,
            None => Vec::new(),
        },
        status: parsed(item, "status")?,
        counts: from_json::<RunCounts>(item, "counts")?,
        flows: from_json::<Vec<FlowRun>>(item, "flows")?,
        failures: from_json::<Vec<RecordFailure>>(item, "failures")?,
        conflicts: match item.get("conflicts") {
            Some(_) => from_json::<Vec<Conflict>>(item, "conflicts")?,
            None => Vec::new(),
        },
        message: item.get("message").and_then(|v| v.as_s().ok()).cloned(),
        cursor_before: optional_cursor("cursor_before")?,
        cursor_after: optional_cursor("cursor_after")?,
        triggered_at: get_time(item, "triggered_at")?,
        started_at,
        finished_at: optional_time("finished_at")?,
        updated_at: optional_time("updated_at")?.unwrap_or(started_at),
        continuations: u32::try_from(number(item, "continuations")?).unwrap_or(u32::MAX),
        attempts: u32::try_from(number(item, "attempts")?).unwrap_or(u32::MAX),
        window: match item.get("window") {
            Some(_) => Some(from_json(item, "window")?),
            None => None,
        },
        redone_by: match item.get("redone_by") {
            Some(_) => Some(parsed(item, "redone_by")?),
            None => None,
        },
        reported,
    })
}

fn expired(item: &Item, now: DateTime<Utc>) -> bool {
    item.get("expires_at")
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .is_some_and(|t| t < now.timestamp())
}

#[async_trait]
impl RunLog for DynamoRuns {
    async fn get(&self, tenant: &TenantId, id: &RunId) -> Result<Option<Run>, StoreError> {
        // (One run read as the sweeper reads it: consistently, by key.)
        RunSweep::get(&self.single, tenant, id).await
    }

    async fn save(&self, run: &Run) -> Result<(), StoreError> {
        let mut items = vec![run_item(run, self.retention)?];
        items.extend(run_pointers(run, self.retention));
        self.batch_put(items).await
    }

    async fn save_if_unchanged(
        &self,
        run: &Run,
        seen: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(run_item(run, self.retention)?));
        let put = match seen {
            Some(seen) => put
                .condition_expression("updated_at = :seen OR attribute_not_exists(updated_at)")
                .expression_attribute_values(":seen", time(seen)),
            None => put.condition_expression("attribute_not_exists(pk)"),
        };
        match put.send().await {
            Ok(_) => {}
            Err(e) if condition_failed(&e) => return Ok(false),
            Err(e) => return Err(unavailable(describe(&e))),
        }
        // (Its pointers name it by key and time: writing them again changes nothing.)
        self.batch_put(run_pointers(run, self.retention)).await?;
        Ok(true)
    }

    async fn replace_queued(&self, run: &Run) -> Result<bool, StoreError> {
        // Its pointers were written when it was queued, and a queued run has no flows yet.
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(run_item(run, self.retention)?))
            .condition_expression("#status = :queued")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":queued", s(RunStatus::Queued.as_str()))
            .send()
            .await;
        match put {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(unavailable(describe(&e))),
        }
    }

    async fn request_cancel(
        &self,
        tenant: &TenantId,
        id: &RunId,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut item = cancel_key(tenant, id);
        item.insert("kind".into(), s("run-cancel"));
        item.insert("requested_at".into(), time(at));
        item.insert(
            "expires_at".into(),
            AttributeValue::N((at + self.retention).timestamp().to_string()),
        );
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match put {
            Ok(_) => Ok(()),
            // Asked before: the first request stands.
            Err(e) if condition_failed(&e) => Ok(()),
            Err(e) => Err(unavailable(describe(&e))),
        }
    }

    async fn cancel_requested(
        &self,
        tenant: &TenantId,
        id: &RunId,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        RunSweep::cancel_requested(&self.single, tenant, id).await
    }
}

/// Where a request to stop a run is kept: beside the run, under its own key.
pub(crate) fn cancel_key(tenant: &TenantId, id: &RunId) -> Item {
    key(tenant_pk(tenant), format!("{RUN_CANCEL_PREFIX}{id}"))
}

#[async_trait]
impl RunHistory for DynamoRuns {
    async fn get(&self, tenant: &TenantId, id: &RunId) -> Result<Option<Run>, StoreError> {
        RunLog::get(self, tenant, id).await
    }

    async fn list(
        &self,
        tenant: &TenantId,
        filter: &RunFilter,
        limit: usize,
        next: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<RunPage, RunListError> {
        let after = match next {
            None => None,
            Some(text) => Some(text.parse::<RunId>().map_err(|_| RunListError::BadCursor)?),
        };
        // The narrowest partition the filter allows.
        let by = if let Some(schedule) = filter.schedule_id {
            Some(RunsBy::Schedule(schedule))
        } else if let Some(flow) = filter.flow_id {
            Some(RunsBy::Flow(flow))
        } else {
            filter.connection_id.map(RunsBy::Connection)
        };
        let pointers = by.map(|by| run_pointer_pk(tenant, by));
        let (pk, prefix, start_sk) = match &pointers {
            Some(pk) => (
                pk.clone(),
                String::new(),
                after.as_ref().map(|a| a.to_string()),
            ),
            None => (
                tenant_pk(tenant),
                RUN_PREFIX.to_string(),
                after.as_ref().map(|a| format!("{RUN_PREFIX}{a}")),
            ),
        };
        // One more than a page tells whether there is more; where the key condition
        // includes the cursor's own row (`BETWEEN`), one more again, since it is dropped.
        let includes_start = start_sk.is_some() && !prefix.is_empty();
        let wanted = limit + 1 + usize::from(includes_start);
        let mut request = self
            .client
            .query()
            .table_name(&self.table)
            .expression_attribute_values(":pk", s(pk.clone()))
            .scan_index_forward(false)
            .limit(i32::try_from(wanted).unwrap_or(102));
        request = match (&start_sk, prefix.is_empty()) {
            (Some(sk), true) => request
                .key_condition_expression("pk = :pk AND sk < :start")
                .expression_attribute_values(":start", s(sk.clone())),
            (Some(sk), false) => request
                .key_condition_expression("pk = :pk AND sk BETWEEN :prefix AND :start")
                .expression_attribute_values(":prefix", s(prefix.clone()))
                .expression_attribute_values(":start", s(format!("{sk}\u{0}"))),
            (None, true) => request.key_condition_expression("pk = :pk"),
            (None, false) => request
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":prefix", s(prefix.clone())),
        };
        let out = request
            .send()
            .await
            .map_err(|e| StoreError::Unavailable(describe(&e)))?;
        let mut items: Vec<Item> = out.items().to_vec();
        // `BETWEEN` includes the start key itself: drop it.
        if let Some(sk) = &start_sk {
            items.retain(|i| i.get("sk").and_then(|v| v.as_s().ok()) != Some(sk));
        }
        let more = items.len() > limit;
        items.truncate(limit);
        let last = items
            .last()
            .and_then(|i| i.get("sk")?.as_s().ok().cloned())
            .map(|sk| sk.trim_start_matches("RUN#").to_string());
        let runs: Vec<Run> = if pointers.is_some() {
            let ids: Vec<RunId> = items
                .iter()
                .filter(|i| !expired(i, now))
                .filter_map(|i| i.get("sk")?.as_s().ok()?.parse().ok())
                .collect();
            let mut found = self.by_ids(tenant, &ids).await?;
            ids.iter().filter_map(|id| found.remove(id)).collect()
        } else {
            items
                .iter()
                .filter(|i| !expired(i, now))
                .map(from_item)
                .collect::<Result<_, _>>()?
        };
        Ok(RunPage {
            runs: runs.into_iter().filter(|r| filter.matches(r)).collect(),
            next: if more { last } else { None },
        })
    }
}
