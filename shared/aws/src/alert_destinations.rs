//! Each tenant's alert destinations in DynamoDB (`alerts.rs` keeps the alert issues): `pk =
//! TENANT#<tenant>`, `sk = ALERTDEST#<id>`, the URL and secret sealed (`sealed_*`), never
//! written in clear. Added, listed and removed by the API; the sweeper lists them.

use async_trait::async_trait;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use crate::table::{
    alert_destination_key, corrupt, get_s, get_time, parsed, s, tenant_pk, time, write_failure,
    Item, Records, ALERT_DESTINATION_PREFIX,
};
use sync_core::domain::{AlertDestination, Sealed, TenantId};
use sync_core::ports::{AlertDestinations, StoreError};

#[derive(Clone, Debug)]
pub struct DynamoAlertDestinations {
    client: Client,
    table: String,
}

impl DynamoAlertDestinations {
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

fn bytes(item: &Item, field: &str) -> Result<Vec<u8>, StoreError> {
    item.get(field)
        .and_then(|v| v.as_b().ok())
        .map(|b| b.as_ref().to_vec())
        .ok_or_else(|| corrupt(field))
}

fn destination_of(item: &Item) -> Result<AlertDestination, StoreError> {
    let sealed = if item.contains_key("sealed_key") {
        Some(Sealed {
            encrypted_key: bytes(item, "sealed_key")?,
            nonce: bytes(item, "sealed_nonce")?,
            ciphertext: bytes(item, "sealed_text")?,
        })
    } else {
        None
    };
    Ok(AlertDestination {
        id: get_s(item, "id")?.to_string(),
        tenant_id: parsed(item, "tenant_id")?,
        kind: parsed(item, "destination_kind")?,
        name: get_s(item, "name")?.to_string(),
        url_host: item.get("url_host").and_then(|v| v.as_s().ok()).cloned(),
        sealed,
        created_at: get_time(item, "created_at")?,
    })
}

#[async_trait]
impl AlertDestinations for DynamoAlertDestinations {
    async fn insert(&self, d: &AlertDestination) -> Result<(), StoreError> {
        let mut item = alert_destination_key(&d.tenant_id, &d.id);
        item.insert("kind".into(), s("alert-destination"));
        item.insert("id".into(), s(d.id.clone()));
        item.insert("tenant_id".into(), s(d.tenant_id.to_string()));
        item.insert("destination_kind".into(), s(d.kind.as_str()));
        item.insert("name".into(), s(d.name.clone()));
        item.insert("created_at".into(), time(d.created_at));
        if let Some(host) = &d.url_host {
            item.insert("url_host".into(), s(host.clone()));
        }
        if let Some(sealed) = &d.sealed {
            let b = |v: &Vec<u8>| AttributeValue::B(Blob::new(v.clone()));
            item.insert("sealed_key".into(), b(&sealed.encrypted_key));
            item.insert("sealed_nonce".into(), b(&sealed.nonce));
            item.insert("sealed_text".into(), b(&sealed.ciphertext));
        }
        self.records().insert(item).await
    }

    async fn list(&self, tenant: &TenantId) -> Result<Vec<AlertDestination>, StoreError> {
        let items = self
            .records()
            .query_prefix(
                None,
                ("pk", tenant_pk(tenant)),
                ("sk", ALERT_DESTINATION_PREFIX),
            )
            .await?;
        let mut found = items
            .iter()
            .map(destination_of)
            .collect::<Result<Vec<_>, _>>()?;
        found.sort_by_key(|d| d.created_at);
        Ok(found)
    }

    async fn delete(&self, tenant: &TenantId, id: &str) -> Result<bool, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(alert_destination_key(tenant, id)))
            .condition_expression("attribute_exists(pk)")
            .send()
            .await;
        match out {
            Ok(_) => Ok(true),
            Err(e) => match write_failure(e, StoreError::Conflict) {
                StoreError::Conflict => Ok(false),
                other => Err(other),
            },
        }
    }
}
