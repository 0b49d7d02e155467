//! Connections in DynamoDB (the one table, keyed as [`crate::table`] says).
//!
//! A connection is keyed by its id (`pk = CONNECTION#<id>`, `sk = CONNECTION`) because a
//! webhook names only the connection. A global secondary index (`gsi1`, keyed
//! `TENANT#<tenant>` / `CONNECTION#<created>#<id>`) lists a tenant's connections; like every
//! GSI it is eventually consistent, so a connection may take a moment to appear in the list
//! (reads by id are strongly consistent). Secrets are stored only sealed, as binary.

use async_trait::async_trait;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use std::collections::BTreeMap;

use crate::table::{
    connection_key, connection_route_keys, connection_tenant_sk, get_s, get_time, parsed, s,
    tenant_pk, time, Item, Records, CONNECTION_PREFIX, TENANT_INDEX,
};
use crate::DynamoConnectionReader;
use sync_core::domain::{Connection, ConnectionId, Sealed, TenantId};
use sync_core::ports::{ConnectionReader, ConnectionStore, StoreError};

#[derive(Clone, Debug)]
pub struct DynamoConnectionStore {
    client: Client,
    table: String,
    /// Reading (by id, by route) is the worker's and the intake's as well.
    reader: DynamoConnectionReader,
}

impl DynamoConnectionStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        let table = table.into();
        Self {
            reader: DynamoConnectionReader::new(client.clone(), table.clone()),
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
    StoreError::Unavailable(format!("stored connection has a bad or missing '{field}'"))
}

fn bytes(item: &Item, field: &str) -> Result<Vec<u8>, StoreError> {
    item.get(field)
        .and_then(|v| v.as_b().ok())
        .map(|b| b.as_ref().to_vec())
        .ok_or_else(|| corrupt(field))
}

fn to_item(c: &Connection) -> Item {
    let mut item = connection_key(c.id);
    item.insert("gsi1pk".into(), s(tenant_pk(&c.tenant_id)));
    item.insert("gsi1sk".into(), s(connection_tenant_sk(c.created_at, c.id)));
    item.insert("kind".into(), s("connection"));
    item.insert("id".into(), s(c.id.to_string()));
    item.insert("tenant_id".into(), s(c.tenant_id.as_str()));
    item.insert("platform".into(), s(c.platform.as_str()));
    item.insert("display_name".into(), s(&c.display_name));
    item.insert(
        "config".into(),
        s(serde_json::Value::Object(c.config.clone()).to_string()),
    );
    item.insert(
        "secrets_key".into(),
        AttributeValue::B(Blob::new(c.sealed_secrets.encrypted_key.clone())),
    );
    item.insert(
        "secrets_nonce".into(),
        AttributeValue::B(Blob::new(c.sealed_secrets.nonce.clone())),
    );
    item.insert(
        "secrets_ct".into(),
        AttributeValue::B(Blob::new(c.sealed_secrets.ciphertext.clone())),
    );
    item.insert(
        "secret_hints".into(),
        AttributeValue::M(
            c.secret_hints
                .iter()
                .map(|(k, v)| (k.clone(), s(v)))
                .collect(),
        ),
    );
    item.insert(
        "webhooks_enabled".into(),
        AttributeValue::Bool(c.webhooks_enabled),
    );
    if let Some(t) = c.deleting_since {
        item.insert("deleting_since".into(), time(t));
    }
    if let Some(reason) = &c.needs_reauth {
        item.insert("needs_reauth".into(), s(reason));
    }
    // Deliveries to the deployment's app-wide webhook URL find it by its route.
    if let Some(route) = c.platform.module().route(c) {
        item.extend(connection_route_keys(&route, c.id));
    }
    item.insert("created_at".into(), time(c.created_at));
    item.insert("updated_at".into(), time(c.updated_at));
    item.insert("version".into(), AttributeValue::N(c.version.to_string()));
    item
}

pub(crate) fn from_item(item: &Item) -> Result<Connection, StoreError> {
    let config = match serde_json::from_str(get_s(item, "config")?) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => return Err(corrupt("config")),
    };
    let hints: BTreeMap<String, String> = item
        .get("secret_hints")
        .and_then(|v| v.as_m().ok())
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_s().ok().map(|s| (k.clone(), s.clone())))
                .collect()
        })
        .unwrap_or_default();
    Ok(Connection {
        id: parsed(item, "id")?,
        tenant_id: TenantId::parse(get_s(item, "tenant_id")?).map_err(|_| corrupt("tenant_id"))?,
        platform: parsed(item, "platform")?,
        display_name: get_s(item, "display_name")?.to_string(),
        config,
        sealed_secrets: Sealed {
            encrypted_key: bytes(item, "secrets_key")?,
            nonce: bytes(item, "secrets_nonce")?,
            ciphertext: bytes(item, "secrets_ct")?,
        },
        secret_hints: hints,
        webhooks_enabled: *item
            .get("webhooks_enabled")
            .and_then(|v| v.as_bool().ok())
            .ok_or_else(|| corrupt("webhooks_enabled"))?,
        deleting_since: match item.get("deleting_since") {
            Some(_) => Some(get_time(item, "deleting_since")?),
            None => None,
        },
        needs_reauth: item
            .get("needs_reauth")
            .and_then(|v| v.as_s().ok())
            .cloned(),
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
impl ConnectionReader for DynamoConnectionStore {
    async fn get(&self, id: ConnectionId) -> Result<Option<Connection>, StoreError> {
        self.reader.get(id).await
    }

    async fn routed(&self, route: &str) -> Result<Vec<Connection>, StoreError> {
        self.reader.routed(route).await
    }
}

#[async_trait]
impl ConnectionStore for DynamoConnectionStore {
    async fn insert(&self, connection: &Connection) -> Result<(), StoreError> {
        self.records().insert(to_item(connection)).await
    }

    async fn list(&self, tenant: &TenantId) -> Result<Vec<Connection>, StoreError> {
        let items = self
            .records()
            .query_prefix(
                Some(TENANT_INDEX),
                ("gsi1pk", tenant_pk(tenant)),
                ("gsi1sk", CONNECTION_PREFIX),
            )
            .await?;
        let mut all = items.iter().map(from_item).collect::<Result<Vec<_>, _>>()?;
        all.sort_by_key(|c| (c.created_at, c.id.to_string()));
        Ok(all)
    }

    async fn replace(
        &self,
        connection: &Connection,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        self.records()
            .replace(to_item(connection), expected_version)
            .await
    }
}
