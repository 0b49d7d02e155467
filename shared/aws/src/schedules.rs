//! Schedules in DynamoDB (the one table, keyed as [`crate::table`] says):
//! `pk = TENANT#<tenant>`, `sk = SCHEDULE#<id>`. Listing a tenant's schedules is a single
//! query on its partition, and no key of one tenant can reach another's rows. Every write
//! is conditional: creates on the key being free *and* on the schedule's connection being
//! there, the tenant's, on the same platform and not being deleted (one transaction, so a
//! schedule can never outlive its connection); updates and deletes on the version read.
//!
//! A second index (`gsi2`, keyed `SCHEDULES#<first hex digit of the id>`, so the listing is
//! spread over 16 partitions) lists every tenant's schedules for the repair sweep; requests
//! never read it.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};

use crate::sdk::describe;
use crate::table::{
    corrupt, get_s, get_time, parsed, s, schedule_key, schedule_sweep_keys, sweep_shard, tenant_pk,
    time, Item, Records, SCHEDULE_PREFIX, SWEEP_INDEX,
};
use crate::DynamoScheduleRuns;
use sync_core::domain::{
    OverlapPolicy, RunId, RunStatus, Schedule, ScheduleId, ScheduleOptions, TenantId,
    DEFAULT_AUTO_PAUSE_AFTER_FAILURES, DEFAULT_CATCH_UP_WINDOW_MINUTES,
};
use sync_core::ports::{SchedulePage, ScheduleRuns, ScheduleStore, StoreError, SWEEP_SHARDS};
use sync_core::time::ScheduleExpression;

/// Attributes of a schedule the worker keeps; a user's update never writes them.
const WORKER_FIELDS: &[&str] = &["last_run_at", "last_run_status"];
/// Attributes a user's update may clear.
const OPTIONAL_FIELDS: &[&str] = &["pause_note", "flexible_window_minutes"];

/// The DynamoDB schedule store.
#[derive(Clone, Debug)]
pub struct DynamoScheduleStore {
    client: Client,
    table: String,
    /// Reading one and noting its runs are the worker's as well.
    runs: DynamoScheduleRuns,
}

impl DynamoScheduleStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        let table = table.into();
        Self {
            runs: DynamoScheduleRuns::new(client.clone(), table.clone()),
            client,
            table,
        }
    }

    fn records(&self) -> Records<'_> {
        Records {
            client: &self.client,
            table: &self.table,
        }
    }
}

pub(crate) fn to_item(x: &Schedule) -> Item {
    let mut item = schedule_key(&x.tenant_id, x.id);
    item.extend(schedule_sweep_keys(&x.tenant_id, x.id));
    item.insert("kind".into(), s("schedule"));
    item.insert("id".into(), s(x.id.to_string()));
    item.insert("tenant_id".into(), s(x.tenant_id.as_str()));
    item.insert("credential_id".into(), s(x.credential_id.to_string()));
    item.insert("platform".into(), s(x.platform.as_str()));
    item.insert("entity_type".into(), s(x.entity_type.as_str()));
    item.insert("cron_expression".into(), s(&x.cron_expression));
    item.insert("schedule_expression".into(), s(x.schedule_expression()));
    item.insert("sync_mode".into(), s(x.sync_mode.as_str()));
    item.insert("timezone".into(), s(x.timezone.name()));
    item.insert("is_active".into(), AttributeValue::Bool(x.is_active));
    item.insert(
        "overlap_policy".into(),
        s(x.options.overlap_policy.as_str()),
    );
    if let Some(note) = &x.options.pause_note {
        item.insert("pause_note".into(), s(note));
    }
    if let Some(minutes) = x.options.flexible_window_minutes {
        item.insert(
            "flexible_window_minutes".into(),
            AttributeValue::N(minutes.to_string()),
        );
    }
    item.insert(
        "catch_up_window_minutes".into(),
        AttributeValue::N(x.options.catch_up_window_minutes.to_string()),
    );
    item.insert(
        "auto_pause_after_failures".into(),
        AttributeValue::N(x.options.auto_pause_after_failures.to_string()),
    );
    // (Written by a user's edit too: resuming sets it back to 0.)
    item.insert(
        "consecutive_failures".into(),
        AttributeValue::N(x.consecutive_failures.to_string()),
    );
    if let Some(t) = x.last_run_at {
        item.insert("last_run_at".into(), time(t));
    }
    if let Some(status) = x.last_run_status {
        item.insert("last_run_status".into(), s(status.as_str()));
    }
    item.insert("created_at".into(), time(x.created_at));
    item.insert("updated_at".into(), time(x.updated_at));
    item.insert("version".into(), AttributeValue::N(x.version.to_string()));
    item
}

/// A whole number attribute, or `default` on an item written before it existed.
fn number_or(item: &Item, field: &str, default: u32) -> Result<u32, StoreError> {
    match item.get(field) {
        Some(v) => v
            .as_n()
            .ok()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| corrupt(field)),
        None => Ok(default),
    }
}

pub(crate) fn from_item(item: &Item) -> Result<Schedule, StoreError> {
    Ok(Schedule {
        id: parsed(item, "id")?,
        tenant_id: TenantId::parse(get_s(item, "tenant_id")?).map_err(|_| corrupt("tenant_id"))?,
        credential_id: parsed(item, "credential_id")?,
        platform: parsed(item, "platform")?,
        entity_type: parsed(item, "entity_type")?,
        cron_expression: get_s(item, "cron_expression")?.to_string(),
        expression: ScheduleExpression::parse(get_s(item, "schedule_expression")?)
            .map_err(|_| corrupt("schedule_expression"))?,
        sync_mode: parsed(item, "sync_mode")?,
        timezone: parsed(item, "timezone")?,
        is_active: *item
            .get("is_active")
            .and_then(|v| v.as_bool().ok())
            .ok_or_else(|| corrupt("is_active"))?,
        // (Schedules stored before these options existed have their defaults.)
        options: ScheduleOptions {
            overlap_policy: match item.get("overlap_policy") {
                Some(_) => parsed(item, "overlap_policy")?,
                None => OverlapPolicy::BufferOne,
            },
            pause_note: item.get("pause_note").and_then(|v| v.as_s().ok()).cloned(),
            flexible_window_minutes: match item.get("flexible_window_minutes") {
                Some(v) => Some(
                    v.as_n()
                        .ok()
                        .and_then(|n| n.parse().ok())
                        .ok_or_else(|| corrupt("flexible_window_minutes"))?,
                ),
                None => None,
            },
            catch_up_window_minutes: number_or(
                item,
                "catch_up_window_minutes",
                DEFAULT_CATCH_UP_WINDOW_MINUTES,
            )?,
            auto_pause_after_failures: number_or(
                item,
                "auto_pause_after_failures",
                DEFAULT_AUTO_PAUSE_AFTER_FAILURES,
            )?,
        },
        consecutive_failures: number_or(item, "consecutive_failures", 0)?,
        last_run_at: match item.get("last_run_at") {
            Some(_) => Some(get_time(item, "last_run_at")?),
            None => None,
        },
        last_run_status: match item.get("last_run_status") {
            Some(_) => Some(parsed(item, "last_run_status")?),
            None => None,
        },
        created_at: get_time(item, "created_at")?,
        updated_at: get_time(item, "updated_at")?,
        version: item
            .get("version")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| corrupt("version"))?,
    })
}

#[async_trait]
impl ScheduleRuns for DynamoScheduleStore {
    async fn get(&self, tenant: &TenantId, id: ScheduleId) -> Result<Option<Schedule>, StoreError> {
        self.runs.get(tenant, id).await
    }

    async fn record_run(
        &self,
        tenant: &TenantId,
        id: ScheduleId,
        at: DateTime<Utc>,
        status: RunStatus,
        run: &RunId,
    ) -> Result<(), StoreError> {
        self.runs.record_run(tenant, id, at, status, run).await
    }
}

#[async_trait]
impl ScheduleStore for DynamoScheduleStore {
    async fn list(&self, tenant: &TenantId) -> Result<Vec<Schedule>, StoreError> {
        let items = self
            .records()
            .query_prefix(None, ("pk", tenant_pk(tenant)), ("sk", SCHEDULE_PREFIX))
            .await?;
        let mut schedules = items.iter().map(from_item).collect::<Result<Vec<_>, _>>()?;
        schedules.sort_by_key(|x| (x.created_at, x.id.to_string()));
        Ok(schedules)
    }

    async fn list_all(&self) -> Result<Vec<Schedule>, StoreError> {
        let mut schedules = Vec::new();
        for shard in 0..SWEEP_SHARDS {
            let items = self
                .records()
                .query_prefix(
                    Some(SWEEP_INDEX),
                    ("gsi2pk", sweep_shard(shard)),
                    ("gsi2sk", SCHEDULE_PREFIX),
                )
                .await?;
            for item in &items {
                schedules.push(from_item(item)?);
            }
        }
        schedules.sort_by_key(|x| (x.created_at, x.id.to_string()));
        Ok(schedules)
    }

    async fn page(
        &self,
        shard: u8,
        after: Option<&str>,
        limit: usize,
    ) -> Result<SchedulePage, StoreError> {
        if shard >= SWEEP_SHARDS {
            return Err(StoreError::Unavailable(format!(
                "there is no sweep shard {shard}"
            )));
        }
        // (Every item of a `SCHEDULES#` partition is a schedule: its sort keys all begin
        // with `SCHEDULE#`, which sorts before each of them.)
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(SWEEP_INDEX)
            .key_condition_expression("gsi2pk = :pk AND gsi2sk > :after")
            .expression_attribute_values(":pk", s(sweep_shard(shard)))
            .expression_attribute_values(":after", s(after.unwrap_or(SCHEDULE_PREFIX)))
            .limit(i32::try_from(limit.clamp(1, 1_000)).unwrap_or(1_000))
            .send()
            .await
            .map_err(|e| StoreError::Unavailable(describe(&e)))?;
        let mut schedules = Vec::new();
        for item in out.items() {
            // (One that does not read is reported, and passed: it cannot stop the walk.)
            match from_item(item) {
                Ok(schedule) => schedules.push(schedule),
                Err(e) => tracing::warn!(error = %e, "schedule not readable; passed over"),
            }
        }
        let more = out.last_evaluated_key().is_some_and(|k| !k.is_empty());
        let next = match out.items().last() {
            Some(last) if more => Some(get_s(last, "gsi2sk")?.to_string()),
            _ => None,
        };
        Ok(SchedulePage { schedules, next })
    }

    async fn replace(&self, schedule: &Schedule, expected_version: u64) -> Result<(), StoreError> {
        let mut fields = to_item(schedule);
        for key in ["pk", "sk"].iter().chain(WORKER_FIELDS) {
            fields.remove(*key);
        }
        // Options a user cleared are removed, not left as they were.
        let removed: Vec<&str> = OPTIONAL_FIELDS
            .iter()
            .copied()
            .filter(|f| !fields.contains_key(*f))
            .collect();
        self.records()
            .update_fields(
                schedule_key(&schedule.tenant_id, schedule.id),
                fields,
                &removed,
                expected_version,
            )
            .await
    }

    async fn delete(
        &self,
        tenant: &TenantId,
        id: ScheduleId,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        self.records()
            .delete(schedule_key(tenant, id), expected_version)
            .await
    }
}
