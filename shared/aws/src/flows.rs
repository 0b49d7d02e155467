//! Flows in DynamoDB (the one table): `pk = TENANT#<tenant>`, `sk = FLOW#<id>`, so a
//! tenant's flows are one strongly consistent query; and on the tenant index's keys
//! `gsi1pk = SOURCE#<source connection>`, `gsi1sk = FLOW#<id>`, so the worker finds the
//! flows from a connection through the index (eventually consistent: a flow created or
//! changed a moment ago may take that moment to reach the worker).
//!
//! A flow is written in one transaction with a condition check on each of its connections
//! (there, the tenant's, not being deleted), as schedules are: no flow outlives a
//! connection.

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;

use crate::connections::{connection_key, TENANT_INDEX};
use crate::dynamodb::{get_s, get_time, parsed, s, tenant_pk, time, Item, Records};
use crate::sdk::describe;
use sync_core::domain::{ConnectionId, EntityType, Flow, FlowId, TenantId};
use sync_core::ports::{FlowSource, FlowStore, StoreError};

#[derive(Clone, Debug)]
pub struct DynamoFlows {
    client: Client,
    table: String,
}

impl DynamoFlows {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    fn records(&self) -> Records<'_> {
        Records {
            client: &self.client,
            table: &self.table,
        }
    }
}

fn flow_key(tenant: &TenantId, id: FlowId) -> Item {
    Item::from([
        ("pk".to_string(), s(tenant_pk(tenant))),
        ("sk".to_string(), s(format!("FLOW#{id}"))),
    ])
}

fn corrupt(field: &str) -> StoreError {
    StoreError::Unavailable(format!("stored flow has a bad or missing '{field}'"))
}

fn to_item(f: &Flow) -> Item {
    let mut item = flow_key(&f.tenant_id, f.id);
    item.insert(
        "gsi1pk".into(),
        s(format!("SOURCE#{}", f.source_connection_id)),
    );
    item.insert("gsi1sk".into(), s(format!("FLOW#{}", f.id)));
    item.insert("kind".into(), s("flow"));
    item.insert("id".into(), s(f.id.to_string()));
    item.insert("tenant_id".into(), s(f.tenant_id.as_str()));
    item.insert(
        "source_connection_id".into(),
        s(f.source_connection_id.to_string()),
    );
    item.insert(
        "target_connection_id".into(),
        s(f.target_connection_id.to_string()),
    );
    item.insert(
        "entities".into(),
        AttributeValue::L(f.entities.iter().map(|e| s(e.as_str())).collect()),
    );
    item.insert("conflict_policy".into(), s(f.conflict_policy.as_str()));
    if let Some(prefix) = &f.doc_number_prefix {
        item.insert("doc_number_prefix".into(), s(prefix.as_str()));
    }
    item.insert("enabled".into(), AttributeValue::Bool(f.enabled));
    item.insert("created_at".into(), time(f.created_at));
    item.insert("updated_at".into(), time(f.updated_at));
    item.insert("version".into(), AttributeValue::N(f.version.to_string()));
    item
}

fn from_item(item: &Item) -> Result<Flow, StoreError> {
    let entities = item
        .get("entities")
        .and_then(|v| v.as_l().ok())
        .ok_or_else(|| corrupt("entities"))?
        .iter()
        .map(|v| {
            v.as_s()
                .ok()
                .and_then(|e| e.parse::<EntityType>().ok())
                .ok_or_else(|| corrupt("entities"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Flow {
        id: parsed(item, "id")?,
        tenant_id: TenantId::parse(get_s(item, "tenant_id")?).map_err(|_| corrupt("tenant_id"))?,
        source_connection_id: parsed(item, "source_connection_id")?,
        target_connection_id: parsed(item, "target_connection_id")?,
        entities,
        conflict_policy: parsed(item, "conflict_policy")?,
        doc_number_prefix: match item.get("doc_number_prefix") {
            Some(_) => Some(parsed(item, "doc_number_prefix")?),
            None => None,
        },
        enabled: *item
            .get("enabled")
            .and_then(|v| v.as_bool().ok())
            .ok_or_else(|| corrupt("enabled"))?,
        created_at: get_time(item, "created_at")?,
        updated_at: get_time(item, "updated_at")?,
        version: item
            .get("version")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| corrupt("version"))?,
    })
}

/// The condition that a connection is there, the tenant's, and not being deleted.
fn live_connection(
    table: &str,
    id: ConnectionId,
    tenant: &TenantId,
) -> Result<TransactWriteItem, StoreError> {
    let check = ConditionCheck::builder()
        .table_name(table)
        .set_key(Some(connection_key(id)))
        .condition_expression(
            "attribute_exists(pk) AND tenant_id = :tenant AND attribute_not_exists(deleting_since)",
        )
        .expression_attribute_values(":tenant", s(tenant.as_str()))
        .build()
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    Ok(TransactWriteItem::builder().condition_check(check).build())
}

/// Which condition cancelled the insert: a connection check (the first two) or the key.
fn cancelled_by(e: &TransactWriteItemsError) -> Option<StoreError> {
    let TransactWriteItemsError::TransactionCanceledException(cancel) = e else {
        return None;
    };
    let failed = |i: usize| {
        cancel
            .cancellation_reasons()
            .get(i)
            .and_then(|r| r.code())
            .is_some_and(|code| code == "ConditionalCheckFailed")
    };
    if failed(0) || failed(1) {
        Some(StoreError::ReferenceGone)
    } else if failed(2) {
        Some(StoreError::AlreadyExists)
    } else {
        None
    }
}

#[async_trait]
impl FlowStore for DynamoFlows {
    async fn insert(&self, flow: &Flow) -> Result<(), StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(to_item(flow)))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        self.client
            .transact_write_items()
            .transact_items(live_connection(
                &self.table,
                flow.source_connection_id,
                &flow.tenant_id,
            )?)
            .transact_items(live_connection(
                &self.table,
                flow.target_connection_id,
                &flow.tenant_id,
            )?)
            .transact_items(TransactWriteItem::builder().put(put).build())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| match e.as_service_error().and_then(cancelled_by) {
                Some(reason) => reason,
                None => StoreError::Unavailable(describe(&e)),
            })
    }

    async fn get(&self, tenant: &TenantId, id: FlowId) -> Result<Option<Flow>, StoreError> {
        self.records()
            .get(flow_key(tenant, id))
            .await?
            .as_ref()
            .map(from_item)
            .transpose()
    }

    async fn list(&self, tenant: &TenantId) -> Result<Vec<Flow>, StoreError> {
        let items = self
            .records()
            .query_prefix(None, ("pk", tenant_pk(tenant)), ("sk", "FLOW#"))
            .await?;
        let mut flows = items.iter().map(from_item).collect::<Result<Vec<_>, _>>()?;
        flows.sort_by_key(|f| (f.created_at, f.id));
        Ok(flows)
    }

    async fn replace(&self, flow: &Flow, expected_version: u64) -> Result<(), StoreError> {
        self.records()
            .replace(to_item(flow), expected_version)
            .await
    }

    async fn delete(
        &self,
        tenant: &TenantId,
        id: FlowId,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        self.records()
            .delete(flow_key(tenant, id), expected_version)
            .await
    }
}

#[async_trait]
impl FlowSource for DynamoFlows {
    async fn flows_from(&self, connection: ConnectionId) -> Result<Vec<Flow>, StoreError> {
        let items = self
            .records()
            .query_prefix(
                Some(TENANT_INDEX),
                ("gsi1pk", format!("SOURCE#{connection}")),
                ("gsi1sk", "FLOW#"),
            )
            .await?;
        let mut flows = items.iter().map(from_item).collect::<Result<Vec<_>, _>>()?;
        flows.sort_by_key(|f| (f.created_at, f.id));
        Ok(flows)
    }
}
