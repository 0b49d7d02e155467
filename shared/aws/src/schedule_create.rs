//! Creating a schedule's item (`schedules.rs` keeps the schedules): one transaction with a
//! check that its connection is there, the tenant's, on the schedule's platform and not
//! being deleted, so a schedule never outlives its connection. The API's alone.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;

use crate::schedules::to_item;
use crate::table::insert_beside;
use sync_core::domain::Schedule;
use sync_core::ports::{ScheduleCreate, StoreError};

#[derive(Clone, Debug)]
pub struct DynamoScheduleCreate {
    client: Client,
    table: String,
}

impl DynamoScheduleCreate {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

#[async_trait]
impl ScheduleCreate for DynamoScheduleCreate {
    async fn insert(&self, schedule: &Schedule) -> Result<(), StoreError> {
        insert_beside(
            &self.client,
            &self.table,
            &schedule.tenant_id,
            &[(schedule.credential_id, Some(schedule.platform))],
            to_item(schedule),
        )
        .await
    }
}
