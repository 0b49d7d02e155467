//! Drift repair: compares the stored schedules (one tenant's, or every tenant's) with the
//! trigger side and, when asked, fixes every difference.
//!
//! The store is the source of truth. Every fix goes through [`ScheduleService::align`],
//! which re-reads the store before it writes the trigger, so a repair that races with API
//! requests (a schedule created or deleted while the sweep runs, an index that lags) can
//! never remove a trigger whose schedule exists or create one whose schedule is gone.
//!
//! Written to be called by `syncctl repair` today and by a scheduled sweeper function later:
//! it needs only the ports, and reports what it found and did.

use std::collections::HashSet;
use std::sync::Arc;

use super::{ScheduleService, ServiceError};
use crate::domain::{ConnectionId, Schedule, ScheduleId, TenantId};
use crate::ports::{ConnectionStore, ScheduleStore, ScheduleTrigger, TriggerInventory};

/// Which schedules a repair looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    All,
    Tenant(TenantId),
}

/// One difference between the store and the trigger side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// A stored schedule has no trigger: it never fires.
    MissingTrigger {
        tenant: TenantId,
        schedule: ScheduleId,
    },
    /// A trigger differs from its stored schedule (the names of what differs).
    Mismatch {
        tenant: TenantId,
        schedule: ScheduleId,
        fields: Vec<&'static str>,
    },
    /// A trigger without a stored schedule: it fires for nothing.
    OrphanTrigger {
        name: String,
        tenant: Option<TenantId>,
    },
    /// A stored schedule whose connection no longer exists.
    OrphanSchedule {
        tenant: TenantId,
        schedule: ScheduleId,
        connection: ConnectionId,
    },
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Drift::MissingTrigger { tenant, schedule } => {
                write!(f, "missing trigger   schedule {schedule} (tenant {tenant}) has no EventBridge schedule")
            }
            Drift::Mismatch {
                tenant,
                schedule,
                fields,
            } => write!(
                f,
                "out of date       schedule {schedule} (tenant {tenant}): {} differ",
                fields.join(", ")
            ),
            Drift::OrphanTrigger { name, tenant } => write!(
                f,
                "orphaned trigger  EventBridge schedule {name} (tenant {}) has no stored schedule",
                tenant.as_ref().map_or("unknown", |t| t.as_str())
            ),
            Drift::OrphanSchedule {
                tenant,
                schedule,
                connection,
            } => write!(
                f,
                "orphaned schedule schedule {schedule} (tenant {tenant}) uses connection {connection}, which is gone"
            ),
        }
    }
}

/// What a repair found, and what it fixed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// Stored schedules looked at.
    pub schedules: usize,
    /// Triggers in the group.
    pub triggers: usize,
    pub drifts: Vec<Drift>,
    /// How many drifts were fixed (zero on a dry run).
    pub fixed: usize,
    /// Fixes that failed, with why; a later run retries them.
    pub failures: Vec<String>,
}

/// The repair use case.
#[derive(Clone)]
pub struct ScheduleRepair {
    store: Arc<dyn ScheduleStore>,
    inventory: Arc<dyn TriggerInventory>,
    trigger: Arc<dyn ScheduleTrigger>,
    connections: Arc<dyn ConnectionStore>,
    schedules: ScheduleService,
}

impl ScheduleRepair {
    pub fn new(
        store: Arc<dyn ScheduleStore>,
        inventory: Arc<dyn TriggerInventory>,
        trigger: Arc<dyn ScheduleTrigger>,
        connections: Arc<dyn ConnectionStore>,
        schedules: ScheduleService,
    ) -> Self {
        Self {
            store,
            inventory,
            trigger,
            connections,
            schedules,
        }
    }

    /// Compares, and with `apply` fixes. A dry run changes nothing. Reads every schedule
    /// and every trigger: an operator's repair; the sweeper goes in slices
    /// ([`ScheduleRepair::check`], [`ScheduleRepair::orphans`]).
    pub async fn run(&self, scope: &Scope, apply: bool) -> Result<RepairReport, ServiceError> {
        let unavailable = |e: crate::ports::TriggerError| ServiceError::Unavailable(e.to_string());
        let everything = self.store.list_all().await?;
        let stored: Vec<_> = match scope {
            Scope::All => everything.clone(),
            // Strongly consistent for the tenant; the index listing may lag behind it.
            Scope::Tenant(t) => self.store.list(t).await?,
        };
        let known: HashSet<String> = everything
            .iter()
            .chain(stored.iter())
            .map(|s| s.id.to_string())
            .collect();
        let mut names: Vec<String> = self.inventory.names().await.map_err(unavailable)?;
        names.sort();
        let mut report = RepairReport {
            schedules: stored.len(),
            triggers: names.len(),
            ..RepairReport::default()
        };
        let (drifts, failures) = self.check(&stored).await;
        if let Some(first) = failures.into_iter().next() {
            return Err(ServiceError::Unavailable(first));
        }
        report.drifts = drifts;
        report
            .drifts
            .extend(self.orphans(&names, &known, scope, true).await?);
        if apply {
            self.apply(&mut report).await;
        }
        Ok(report)
    }

    /// How each of `stored` differs from its trigger (one read of the trigger each), or
    /// whether its connection is gone; and the schedules that could not be looked at, with
    /// why (the others are looked at all the same).
    pub async fn check(&self, stored: &[Schedule]) -> (Vec<Drift>, Vec<String>) {
        let mut drifts = Vec::new();
        let mut failures = Vec::new();
        let mut alive: std::collections::HashMap<ConnectionId, bool> = Default::default();
        for s in stored {
            let connection_alive = match alive.get(&s.credential_id) {
                Some(known) => *known,
                None => match self.connections.get(s.credential_id).await {
                    Ok(found) => {
                        let ok = found.is_some_and(|c| c.tenant_id == s.tenant_id);
                        alive.insert(s.credential_id, ok);
                        ok
                    }
                    Err(e) => {
                        failures.push(format!("schedule {}'s connection not read: {e}", s.id));
                        continue;
                    }
                },
            };
            if !connection_alive {
                drifts.push(Drift::OrphanSchedule {
                    tenant: s.tenant_id.clone(),
                    schedule: s.id,
                    connection: s.credential_id,
                });
                continue;
            }
            let state = match self.inventory.get(&s.id.to_string()).await {
                Ok(state) => state,
                Err(e) => {
                    failures.push(format!("schedule {}'s trigger not read: {e}", s.id));
                    continue;
                }
            };
            match state {
                None => drifts.push(Drift::MissingTrigger {
                    tenant: s.tenant_id.clone(),
                    schedule: s.id,
                }),
                Some(state) => {
                    let want = s.trigger_definition();
                    let have = &state.definition;
                    let mut fields = Vec::new();
                    if have.expression != want.expression {
                        fields.push("expression");
                    }
                    if have.timezone != want.timezone {
                        fields.push("timezone");
                    }
                    if have.enabled != want.enabled {
                        fields.push("state");
                    }
                    if have.input != want.input {
                        fields.push("job");
                    }
                    if have.flexible_window_minutes != want.flexible_window_minutes {
                        fields.push("flexible_window");
                    }
                    if !state.target_current {
                        fields.push("target");
                    }
                    if !fields.is_empty() {
                        drifts.push(Drift::Mismatch {
                            tenant: s.tenant_id.clone(),
                            schedule: s.id,
                            fields,
                        });
                    }
                }
            }
        }
        (drifts, failures)
    }

    /// Which of the triggers `names` fire for no stored schedule. A name in `known` was
    /// seen stored; any other is read, and its schedule looked for (consistently) under
    /// the tenant its job names, so neither a lagging index nor a schedule outside the
    /// slice `known` came from makes a live trigger an orphan. Unless `known` is `complete`
    /// (every stored schedule's id), a trigger named like a schedule whose job names no
    /// tenant is left alone: its schedule cannot be looked for, and may be there.
    pub async fn orphans(
        &self,
        names: &[String],
        known: &HashSet<String>,
        scope: &Scope,
        complete: bool,
    ) -> Result<Vec<Drift>, ServiceError> {
        let unavailable = |e: crate::ports::TriggerError| ServiceError::Unavailable(e.to_string());
        let mut drifts = Vec::new();
        for name in names.iter().filter(|n| !known.contains(*n)) {
            let Some(state) = self.inventory.get(name).await.map_err(unavailable)? else {
                continue; // removed since it was listed
            };
            let tenant = serde_json::from_str::<serde_json::Value>(&state.definition.input)
                .ok()
                .and_then(|v| v.get("tenant_id")?.as_str().map(str::to_string))
                .and_then(|t| TenantId::parse(&t).ok());
            if let Scope::Tenant(t) = scope {
                if tenant.as_ref() != Some(t) {
                    continue;
                }
            }
            let kept = match (&tenant, name.parse::<ScheduleId>()) {
                (Some(tenant), Ok(id)) => self.store.get(tenant, id).await?.is_some(),
                (None, Ok(_)) if !complete => {
                    tracing::warn!(trigger = %name, "trigger whose job names no tenant left alone; `syncctl repair` decides");
                    true
                }
                _ => false,
            };
            if kept {
                continue;
            }
            drifts.push(Drift::OrphanTrigger {
                name: name.clone(),
                tenant,
            });
        }
        Ok(drifts)
    }

    /// A page of the triggers' names (see [`TriggerInventory::names_page`]).
    pub async fn triggers(
        &self,
        prefix: &str,
        token: Option<&str>,
        limit: usize,
    ) -> Result<crate::ports::NamesPage, ServiceError> {
        self.inventory
            .names_page(prefix, token, limit)
            .await
            .map_err(|e| ServiceError::Unavailable(e.to_string()))
    }

    /// Fixes each of the report's drifts, counting those fixed and noting those not.
    pub async fn apply(&self, report: &mut RepairReport) {
        for drift in report.drifts.clone() {
            match self.fix(&drift).await {
                Ok(()) => report.fixed += 1,
                Err(e) => report.failures.push(format!("{drift}: {e}")),
            }
        }
    }

    async fn fix(&self, drift: &Drift) -> Result<(), ServiceError> {
        match drift {
            Drift::MissingTrigger { tenant, schedule }
            | Drift::Mismatch {
                tenant, schedule, ..
            } => self.schedules.align(tenant, *schedule).await,
            Drift::OrphanTrigger { name, tenant } => {
                match (tenant, name.parse::<ScheduleId>()) {
                    // `align` re-reads the store: if the schedule appeared meanwhile (a
                    // create in flight, a lagging index) its trigger is kept and updated.
                    (Some(tenant), Ok(id)) => self.schedules.align(tenant, id).await,
                    // Not a trigger of ours by its name or job: nothing in the store can
                    // claim it.
                    _ => self
                        .trigger
                        .remove(name)
                        .await
                        .map_err(|e| ServiceError::Unavailable(e.to_string())),
                }
            }
            Drift::OrphanSchedule {
                tenant, schedule, ..
            } => {
                if let Some(s) = self.store.get(tenant, *schedule).await? {
                    self.store.delete(tenant, *schedule, s.version).await?;
                }
                self.schedules.align(tenant, *schedule).await
            }
        }
    }
}

#[cfg(test)]
#[path = "repair_tests.rs"]
mod tests;
