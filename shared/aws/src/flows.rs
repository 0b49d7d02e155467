//! Flows in DynamoDB (the one table): `pk = TENANT#<tenant>`, `sk = FLOW#<id>`, so a
//! tenant's flows are one strongly consistent query; and on the tenant index's keys
//! `gsi1pk = SOURCE#<source connection>`, `gsi1sk = FLOW#<id>`, so the worker finds the
//! flows from a connection through the index (eventually consistent: a flow created or
//! changed a moment ago may take that moment to reach the worker; that look-up is
//! `flow_source.rs`'s).
//!
//! A flow is written in one transaction with a condition check on each of its connections
//! (there, the tenant's, not being deleted), as schedules are: no flow outlives a
//! connection.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use crate::table::{
    flow_key, flow_source_keys, get_s, get_time, insert_beside, parsed, s, tenant_pk, time, Item,
    Records, FLOW_PREFIX,
};
use crate::DynamoFlowSource;
use sync_core::domain::{ConnectionId, EntityType, Flow, FlowId, TenantId};
use sync_core::ports::{FlowSource, FlowStore, StoreError};

#[derive(Clone, Debug)]
pub struct DynamoFlows {
    client: Client,
    table: String,
    /// Finding the flows from a connection is the worker's as well.
    source: DynamoFlowSource,
}

impl DynamoFlows {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        let table = table.into();
        Self {
            source: DynamoFlowSource::new(client.clone(), table.clone()),
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

fn corrupt(field: &str) -> StoreError {
    StoreError::Unavailable(format!("stored flow has a bad or missing '{field}'"))
}

fn to_item(f: &Flow) -> Item {
    let mut item = flow_key(&f.tenant_id, f.id);
    item.extend(flow_source_keys(f.source_connection_id, f.id));
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

pub(crate) fn from_item(item: &Item) -> Result<Flow, StoreError> {
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

#[async_trait]
impl FlowStore for DynamoFlows {
    async fn insert(&self, flow: &Flow) -> Result<(), StoreError> {
        insert_beside(
            &self.client,
            &self.table,
            &flow.tenant_id,
            &[
                (flow.source_connection_id, None),
                (flow.target_connection_id, None),
            ],
            to_item(flow),
        )
        .await
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
            .query_prefix(None, ("pk", tenant_pk(tenant)), ("sk", FLOW_PREFIX))
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
        self.source.flows_from(connection).await
    }
}
