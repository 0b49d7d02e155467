//! Flow use cases: create, read, list, update, delete.
//!
//! A flow's connections must be two different connections of the tenant, and every entity
//! it carries must be one its source's platform can be read for and its target's platform
//! written for (the registry's capabilities). A new flow — or an entity added to one, or a
//! flow switched back on — is backfilled: a full sync of its source for each such entity is
//! queued, so the target gets what the source already holds, not only what changes next.

use chrono::{DateTime, SubsecRound, Utc};
use std::sync::Arc;

use super::schedules::invalid;
use super::ServiceError;
use crate::clock::Clock;
use crate::domain::{
    ConflictPolicy, Connection, ConnectionId, DocPrefix, EntityType, Flow, FlowId, FlowPatch,
    NewFlow, SyncJob, SyncMode, TenantId, Trigger, Unusable,
};
use crate::ports::{ConnectionStore, FlowStore, JobQueue, StoreError};

/// Flow use cases.
#[derive(Clone)]
pub struct FlowService {
    flows: Arc<dyn FlowStore>,
    connections: Arc<dyn ConnectionStore>,
    jobs: Arc<dyn JobQueue>,
    clock: Arc<dyn Clock>,
}

impl FlowService {
    pub fn new(
        flows: Arc<dyn FlowStore>,
        connections: Arc<dyn ConnectionStore>,
        jobs: Arc<dyn JobQueue>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            flows,
            connections,
            jobs,
            clock,
        }
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now().trunc_subsecs(3)
    }

    /// The tenant's connection named in `field`, if it can take part in a flow.
    async fn connection(
        &self,
        tenant: &TenantId,
        id: ConnectionId,
        field: &str,
    ) -> Result<Connection, ServiceError> {
        match Connection::of_tenant(self.connections.get(id).await?, tenant) {
            Ok(c) => Ok(c),
            Err(Unusable::Deleting(_)) => Err(invalid(
                field,
                "that connection is being deleted; flows cannot be added to it",
            )),
            Err(Unusable::Missing) => Err(invalid(
                field,
                "no connection with that id; create one with POST /api/connections",
            )),
        }
    }

    /// Each entity must be readable at the source's platform and writable at the target's.
    fn check_entities(
        source: &Connection,
        target: &Connection,
        entities: &[EntityType],
    ) -> Result<Vec<EntityType>, ServiceError> {
        if entities.is_empty() {
            return Err(invalid(
                "entities",
                "entities must name at least one of orders, customers, products",
            ));
        }
        let mut distinct: Vec<EntityType> = entities.to_vec();
        distinct.sort();
        distinct.dedup();
        for entity in &distinct {
            let reads = source
                .platform
                .module()
                .capabilities(*entity)
                .read
                .is_some();
            let writes = target
                .platform
                .module()
                .capabilities(*entity)
                .write
                .is_some();
            if !reads || !writes {
                let why = if !reads {
                    format!("{} cannot be the source of {entity}", source.platform)
                } else {
                    format!("{} cannot be the target of {entity}", target.platform)
                };
                return Err(invalid(
                    "entities",
                    format!(
                        "{} → {} cannot carry {entity}: {why}",
                        source.platform, target.platform
                    ),
                ));
            }
        }
        Ok(distinct)
    }

    /// `newest_wins` tells an edit of a copy from our own write by reading the copy back:
    /// a target that reads records back in a shape of its own cannot offer it.
    fn check_policy(target: &Connection, policy: ConflictPolicy) -> Result<(), ServiceError> {
        if policy == ConflictPolicy::NewestWins && !target.platform.module().reads_back_as_written()
        {
            return Err(invalid(
                "conflict_policy",
                format!(
                    "{} reads its records back in a shape of its own (numbered documents, its own statuses), so an edit there cannot be told from our write: newest_wins is not offered into it; use source_wins",
                    target.platform
                ),
            ));
        }
        Ok(())
    }

    /// The document-number prefix of a flow from `source` into `target` (none unless the
    /// target numbers orders): the one asked for, or one derived from the source's name
    /// (numbered until free). One that could give an order of another flow into the same
    /// target the same number is refused, saying which flow and what to do.
    fn numbering(
        source: &Connection,
        target: &Connection,
        asked: Option<DocPrefix>,
        flows: &[Flow],
    ) -> Result<Option<DocPrefix>, ServiceError> {
        if !target.platform.module().numbers_orders() {
            return match asked {
                Some(_) => Err(invalid(
                    "doc_number_prefix",
                    format!(
                        "{} does not number documents: only a flow into QuickBooks takes a doc_number_prefix",
                        target.platform
                    ),
                )),
                None => Ok(None),
            };
        }
        // Flows made before flows had a prefix number with the company's old setting.
        let legacy: DocPrefix = target
            .config_str("doc_number_prefix")
            .and_then(|p| p.parse().ok())
            .unwrap_or_default();
        let taken: Vec<(&Flow, DocPrefix)> = flows
            .iter()
            .filter(|f| f.target_connection_id == target.id)
            .map(|f| (f, f.doc_number_prefix.clone().unwrap_or(legacy.clone())))
            .collect();
        let clash = |p: &DocPrefix| {
            taken
                .iter()
                .find(|(_, t)| t.collides(p))
                .map(|(f, t)| (*f, t))
        };
        match asked {
            Some(prefix) => match clash(&prefix) {
                None => Ok(Some(prefix)),
                Some((flow, theirs)) => Err(invalid(
                    "doc_number_prefix",
                    format!(
                        "flow {} already numbers its documents in this company with '{theirs}', so '{prefix}' could give two orders the same DocNumber; choose a doc_number_prefix that neither starts nor is the start of '{theirs}' (up to {} letters, digits or -)",
                        flow.id,
                        DocPrefix::MAX
                    ),
                )),
            },
            None => {
                let derived = DocPrefix::derived(&source.display_name);
                let free = (1..=taken.len() as u32 + 1)
                    .map(|n| if n == 1 { derived.clone() } else { derived.numbered(n) })
                    .find(|p| clash(p).is_none());
                match (free, clash(&derived)) {
                    (Some(p), _) => Ok(Some(p)),
                    (None, Some((flow, theirs))) => Err(invalid(
                        "doc_number_prefix",
                        format!(
                            "flow {} numbers its documents in this company with '{theirs}', which every prefix derived from this source's name ('{derived}') would clash with; give this flow a doc_number_prefix that neither starts nor is the start of '{theirs}'",
                            flow.id
                        ),
                    )),
                    (None, None) => Err(invalid(
                        "doc_number_prefix",
                        "no free document-number prefix could be derived from the source's name; give one",
                    )),
                }
            }
        }
    }

    pub async fn create(&self, tenant: &TenantId, new: NewFlow) -> Result<Flow, ServiceError> {
        if new.source_connection_id == new.target_connection_id {
            return Err(invalid(
                "target_connection_id",
                "a flow needs two different connections",
            ));
        }
        let source = self
            .connection(tenant, new.source_connection_id, "source_connection_id")
            .await?;
        let target = self
            .connection(tenant, new.target_connection_id, "target_connection_id")
            .await?;
        let entities = Self::check_entities(&source, &target, &new.entities)?;
        Self::check_policy(&target, new.conflict_policy)?;
        let existing = self.flows.list(tenant).await?;
        let doc_number_prefix =
            Self::numbering(&source, &target, new.doc_number_prefix, &existing)?;
        for existing in existing {
            if existing.source_connection_id == source.id
                && existing.target_connection_id == target.id
            {
                if let Some(e) = entities.iter().find(|e| existing.carries(**e)) {
                    return Err(ServiceError::Conflict(format!(
                        "flow {} already carries {e} from this source to this target; update it instead",
                        existing.id
                    )));
                }
            }
        }
        let now = self.now();
        let flow = Flow {
            id: FlowId::new_random(),
            tenant_id: tenant.clone(),
            source_connection_id: source.id,
            target_connection_id: target.id,
            entities,
            conflict_policy: new.conflict_policy,
            doc_number_prefix,
            enabled: new.enabled,
            created_at: now,
            updated_at: now,
            version: 1,
        };
        match self.flows.insert(&flow).await {
            Ok(()) => {}
            Err(StoreError::ReferenceGone) => {
                return Err(invalid(
                    "source_connection_id",
                    "a connection of this flow was deleted meanwhile",
                ))
            }
            Err(e) => return Err(e.into()),
        }
        if flow.enabled {
            self.backfill(&flow, &source, &flow.entities).await;
        }
        Ok(flow)
    }

    pub async fn get(&self, tenant: &TenantId, id: FlowId) -> Result<Flow, ServiceError> {
        self.flows
            .get(tenant, id)
            .await?
            .ok_or(ServiceError::NotFound("flow"))
    }

    pub async fn list(&self, tenant: &TenantId) -> Result<Vec<Flow>, ServiceError> {
        Ok(self.flows.list(tenant).await?)
    }

    pub async fn update(
        &self,
        tenant: &TenantId,
        id: FlowId,
        patch: FlowPatch,
    ) -> Result<Flow, ServiceError> {
        let current = self.get(tenant, id).await?;
        let mut next = current.clone();
        let source = self
            .connection(tenant, current.source_connection_id, "source_connection_id")
            .await?;
        if let Some(entities) = &patch.entities {
            let target = self
                .connection(tenant, current.target_connection_id, "target_connection_id")
                .await?;
            next.entities = Self::check_entities(&source, &target, entities)?;
        }
        if let Some(policy) = patch.conflict_policy {
            let target = self
                .connection(tenant, current.target_connection_id, "target_connection_id")
                .await?;
            Self::check_policy(&target, policy)?;
            next.conflict_policy = policy;
        }
        if let Some(enabled) = patch.enabled {
            next.enabled = enabled;
        }
        next.updated_at = self.now();
        next.version = current.version + 1;
        self.flows
            .replace(&next, current.version)
            .await
            .map_err(|e| match e {
                StoreError::Conflict => ServiceError::Conflict(
                    "the flow was changed by another request; fetch it and try again".into(),
                ),
                other => other.into(),
            })?;
        // What the flow newly carries: every entity if it was just switched on, else the
        // entities just added.
        let fresh: Vec<EntityType> = if next.enabled && !current.enabled {
            next.entities.clone()
        } else if next.enabled {
            next.entities
                .iter()
                .copied()
                .filter(|e| !current.carries(*e))
                .collect()
        } else {
            Vec::new()
        };
        self.backfill(&next, &source, &fresh).await;
        Ok(next)
    }

    pub async fn delete(&self, tenant: &TenantId, id: FlowId) -> Result<(), ServiceError> {
        let current = self.get(tenant, id).await?;
        self.flows
            .delete(tenant, id, current.version)
            .await
            .map_err(|e| match e {
                StoreError::Conflict => ServiceError::Conflict(
                    "the flow was changed by another request; fetch it and try again".into(),
                ),
                other => other.into(),
            })
    }

    /// Queues a full sync of the source for each entity. The flow is stored either way; a
    /// backfill that could not be queued is logged, and the next full or scheduled run of
    /// the source covers it.
    async fn backfill(&self, flow: &Flow, source: &Connection, entities: &[EntityType]) {
        for entity in entities {
            let job = SyncJob {
                job_id: uuid::Uuid::new_v4().to_string(),
                tenant_id: flow.tenant_id.clone(),
                connection_id: source.id,
                platform: source.platform,
                entity_type: *entity,
                sync_mode: SyncMode::Full,
                trigger: Trigger::Manual,
                triggered_at: self.clock.now(),
                ids: Vec::new(),
                resume: None,
                attempt: 0,
                stands_for: Vec::new(),
                window: None,
                reported: Some(false),
            };
            if let Err(e) = self.jobs.send_job(&job).await {
                tracing::warn!(flow_id = %flow.id, entity = %entity, error = %e, "backfill not queued");
            }
        }
    }
}

#[cfg(test)]
#[path = "flows_tests.rs"]
mod tests;
