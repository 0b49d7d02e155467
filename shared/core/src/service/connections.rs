//! Connection use cases: create, read, update (rename, reconfigure, rotate secrets, switch
//! webhooks), delete (refused while schedules use the connection, unless cascading), and
//! opening the secrets for the one caller that needs them.

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::{Map, Value};
use std::sync::Arc;

use super::schedules::{invalid, write_error};
use super::{ScheduleService, ServiceError};
use crate::clock::Clock;
use crate::domain::{
    Connection, ConnectionId, ConnectionPatch, NewConnection, Platform, Sealed, Secret, Secrets,
    TenantId,
};
use crate::ports::{
    ConnectionRemoval, ConnectionStore, FlowStore, SealError, SecretOpener, SecretSealer,
};

/// Longest display name, secret value and URL we accept.
const MAX_NAME: usize = 200;
const MAX_SECRET: usize = 4096;

/// Connection use cases.
#[derive(Clone)]
pub struct ConnectionService {
    store: Arc<dyn ConnectionStore>,
    /// Removing one: the API's alone.
    removal: Arc<dyn ConnectionRemoval>,
    sealer: Arc<dyn SecretSealer>,
    schedules: ScheduleService,
    flows: Arc<dyn FlowStore>,
    clock: Arc<dyn Clock>,
}

impl From<SealError> for ServiceError {
    fn from(e: SealError) -> Self {
        ServiceError::Unavailable(e.to_string())
    }
}

/// The encryption context of a connection's secrets: they open only for this record.
fn context<'a>(tenant: &'a str, connection: &'a str) -> [(&'static str, &'a str); 2] {
    [("tenant_id", tenant), ("connection_id", connection)]
}

impl ConnectionService {
    pub fn new(
        store: Arc<dyn ConnectionStore>,
        removal: Arc<dyn ConnectionRemoval>,
        sealer: Arc<dyn SecretSealer>,
        schedules: ScheduleService,
        flows: Arc<dyn FlowStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            removal,
            sealer,
            schedules,
            flows,
            clock,
        }
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now().trunc_subsecs(3)
    }

    pub async fn create(
        &self,
        tenant: &TenantId,
        new: NewConnection,
    ) -> Result<Connection, ServiceError> {
        self.create_with_id(tenant, ConnectionId::new_random(), new)
            .await
    }

    /// Creates a connection under an id already known outside: one whose webhook URLs and
    /// signed deliveries carry it (the samples in `events/`, seeded by the local stack).
    /// Checked as [`Self::create`] checks; refused with a conflict if the id is taken. For
    /// operators' tools, never for a request's id: the conflict would tell a caller that an
    /// id exists in another tenant.
    pub async fn create_with_id(
        &self,
        tenant: &TenantId,
        id: ConnectionId,
        new: NewConnection,
    ) -> Result<Connection, ServiceError> {
        create_connection(
            self.store.as_ref(),
            self.sealer.as_ref(),
            tenant,
            id,
            new,
            Map::new(),
            self.now(),
        )
        .await
        .map_err(|e| match e {
            ServiceError::Conflict(_) => {
                ServiceError::Conflict(format!("a connection with the id {id} already exists"))
            }
            other => other,
        })
    }

    /// The tenant's connection; another tenant's is simply not found.
    pub async fn get(
        &self,
        tenant: &TenantId,
        id: ConnectionId,
    ) -> Result<Connection, ServiceError> {
        match self.store.get(id).await? {
            Some(c) if &c.tenant_id == tenant => Ok(c),
            _ => Err(ServiceError::NotFound("connection")),
        }
    }

    pub async fn list(&self, tenant: &TenantId) -> Result<Vec<Connection>, ServiceError> {
        Ok(self.store.list(tenant).await?)
    }

    pub async fn update(
        &self,
        tenant: &TenantId,
        id: ConnectionId,
        patch: ConnectionPatch,
    ) -> Result<Connection, ServiceError> {
        let current = self.get(tenant, id).await?;
        update_connection(
            self.store.as_ref(),
            self.sealer.as_ref(),
            &current,
            patch,
            Map::new(),
            self.now(),
        )
        .await
    }

    /// Deletes the connection. While schedules or flows use it this is a conflict, unless
    /// `cascade`, which deletes those schedules (and their EventBridge schedules) and flows
    /// first.
    ///
    /// The connection is marked as being deleted before its schedules are listed: from the
    /// mark on, the store refuses new schedules for it (the check is part of the schedule's
    /// own write), so the list is complete and no schedule can outlive the connection. A
    /// delete cut short leaves the mark; deleting again finishes the job.
    pub async fn delete(
        &self,
        tenant: &TenantId,
        id: ConnectionId,
        cascade: bool,
    ) -> Result<(), ServiceError> {
        let found = self.get(tenant, id).await?;
        let marked_here = !found.is_deleting();
        let current = if marked_here {
            let mut marked = found.clone();
            marked.deleting_since = Some(self.now());
            marked.version = found.version + 1;
            self.store
                .replace(&marked, found.version)
                .await
                .map_err(write_error("connection"))?;
            marked
        } else {
            found
        };
        let dependents: Vec<_> = self
            .schedules
            .list(tenant)
            .await?
            .into_iter()
            .filter(|s| s.credential_id == id)
            .collect();
        let flows: Vec<_> = self
            .flows
            .list(tenant)
            .await?
            .into_iter()
            .filter(|f| f.uses(id))
            .collect();
        if (!dependents.is_empty() || !flows.is_empty()) && !cascade {
            if marked_here {
                let mut unmarked = current.clone();
                unmarked.deleting_since = None;
                unmarked.version = current.version + 1;
                if let Err(e) = self.store.replace(&unmarked, current.version).await {
                    tracing::warn!(connection_id = %id, error = %e, "could not lift the delete mark; deleting again finishes the delete");
                }
            }
            return Err(ServiceError::Conflict(format!(
                "{} schedule(s) and {} flow(s) use this connection; delete them first, or delete with ?cascade=true to delete them too",
                dependents.len(),
                flows.len()
            )));
        }
        for schedule in dependents {
            self.delete_schedule(tenant, schedule.id).await?;
        }
        for flow in flows {
            match self.flows.delete(tenant, flow.id, flow.version).await {
                // Changed meanwhile (its connections cannot change): delete what is there.
                Err(crate::ports::StoreError::Conflict) => {
                    if let Some(now) = self.flows.get(tenant, flow.id).await? {
                        self.flows.delete(tenant, now.id, now.version).await?;
                    }
                }
                other => other?,
            }
        }
        self.removal
            .delete(id, current.version)
            .await
            .map_err(write_error("connection"))?;
        Ok(())
    }

    /// One schedule of a cascade. A concurrent update of that schedule makes its conditional
    /// delete lose; it is read again and retried, a few times. (A concurrent update can also
    /// bring the trigger back after `retire` removed it; the retry removes it again.)
    async fn delete_schedule(
        &self,
        tenant: &TenantId,
        id: crate::domain::ScheduleId,
    ) -> Result<(), ServiceError> {
        let mut attempts = 0;
        loop {
            match self.schedules.retire(tenant, id).await {
                Ok(()) | Err(ServiceError::NotFound(_)) => return Ok(()),
                Err(ServiceError::Conflict(_)) if attempts < 5 => attempts += 1,
                Err(e) => return Err(e),
            }
        }
    }

    /// The connection's secrets in the clear, for a signature check or a platform call.
    pub async fn open_secrets(&self, connection: &Connection) -> Result<Secrets, ServiceError> {
        open_secrets(self.sealer.as_ref(), connection).await
    }
}

/// Checks and stores a new connection, its secrets sealed for it alone. `trusted` config
/// is set by the service itself, after the checks a user's config gets (keys users may not
/// set, such as how a QuickBooks connection was made).
pub(crate) async fn create_connection(
    store: &dyn ConnectionStore,
    sealer: &dyn SecretSealer,
    tenant: &TenantId,
    id: ConnectionId,
    mut new: NewConnection,
    trusted: Map<String, Value>,
    now: DateTime<Utc>,
) -> Result<Connection, ServiceError> {
    let display_name = check_name(&new.display_name)?;
    check_config(new.platform, &new.config, true)?;
    new.config.extend(trusted);
    check_secrets(new.platform, &new.secrets, true)?;
    let has_webhook_secret = new.secrets.contains_key(new.platform.spec().webhook_secret);
    let webhooks_enabled = new.webhooks_enabled.unwrap_or(has_webhook_secret);
    check_webhooks(new.platform, webhooks_enabled, has_webhook_secret)?;
    let connection = Connection {
        id,
        tenant_id: tenant.clone(),
        platform: new.platform,
        display_name,
        config: new.config,
        sealed_secrets: seal_secrets(sealer, tenant, id, &new.secrets).await?,
        secret_hints: hints(&new.secrets),
        webhooks_enabled,
        deleting_since: None,
        needs_reauth: None,
        created_at: now,
        updated_at: now,
        version: 1,
    };
    store.insert(&connection).await?;
    Ok(connection)
}

/// Checks and applies a patch to `current`, conditional on its version. New secrets clear
/// `needs_reauth`: they are the user's answer to a refused grant.
pub(crate) async fn update_connection(
    store: &dyn ConnectionStore,
    sealer: &dyn SecretSealer,
    current: &Connection,
    patch: ConnectionPatch,
    trusted: Map<String, Value>,
    now: DateTime<Utc>,
) -> Result<Connection, ServiceError> {
    if current.is_deleting() {
        return Err(ServiceError::Conflict(
            "this connection is being deleted; delete it again to finish".into(),
        ));
    }
    let mut next = current.clone();
    if let Some(name) = &patch.display_name {
        next.display_name = check_name(name)?;
    }
    check_config(current.platform, &patch.config, false)?;
    for key in patch.config.keys() {
        current
            .platform
            .module()
            .check_change(current, key)
            .map_err(|why| invalid(format!("config.{key}"), why))?;
    }
    for (key, value) in patch.config.into_iter().chain(trusted) {
        next.config.insert(key, value);
    }
    if !patch.secrets.is_empty() {
        check_secrets(current.platform, &patch.secrets, false)?;
        let mut secrets = open_secrets(sealer, current).await?;
        secrets.extend(patch.secrets);
        next.sealed_secrets =
            seal_secrets(sealer, &current.tenant_id, current.id, &secrets).await?;
        next.secret_hints = hints(&secrets);
        next.needs_reauth = None;
    }
    if let Some(enabled) = patch.webhooks_enabled {
        next.webhooks_enabled = enabled;
    }
    check_webhooks(
        next.platform,
        next.webhooks_enabled,
        next.has_webhook_secret(),
    )?;
    next.updated_at = now;
    next.version = current.version + 1;
    store
        .replace(&next, current.version)
        .await
        .map_err(write_error("connection"))?;
    Ok(next)
}

/// Seals a connection's secrets for that connection alone.
pub(crate) async fn seal_secrets(
    sealer: &dyn SecretSealer,
    tenant: &TenantId,
    id: ConnectionId,
    secrets: &Secrets,
) -> Result<Sealed, ServiceError> {
    let plain: Map<String, Value> = secrets
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.expose().to_string())))
        .collect();
    let bytes = serde_json::to_vec(&plain).map_err(|e| ServiceError::Unavailable(e.to_string()))?;
    let id = id.to_string();
    Ok(sealer.seal(&bytes, &context(tenant.as_str(), &id)).await?)
}

/// Opens a connection's sealed secrets (shared with the webhook intake, which has no
/// connection service).
pub async fn open_secrets(
    sealer: &dyn SecretOpener,
    connection: &Connection,
) -> Result<Secrets, ServiceError> {
    let id = connection.id.to_string();
    let bytes = sealer
        .open(
            &connection.sealed_secrets,
            &context(connection.tenant_id.as_str(), &id),
        )
        .await?;
    let map: Map<String, Value> = serde_json::from_slice(&bytes)
        .map_err(|_| ServiceError::Unavailable("sealed secrets are not a JSON object".into()))?;
    Ok(map
        .into_iter()
        .filter_map(|(k, v)| v.as_str().map(|s| (k, Secret::new(s))))
        .collect())
}

pub(crate) fn hints(secrets: &Secrets) -> std::collections::BTreeMap<String, String> {
    secrets.iter().map(|(k, v)| (k.clone(), v.hint())).collect()
}

fn check_name(name: &str) -> Result<String, ServiceError> {
    let trimmed = name.trim();
    if trimmed.is_empty() || trimmed.chars().count() > MAX_NAME {
        return Err(invalid(
            "display_name",
            format!("display_name must be 1 to {MAX_NAME} characters"),
        ));
    }
    Ok(trimmed.to_string())
}

fn check_webhooks(platform: Platform, enabled: bool, has_secret: bool) -> Result<(), ServiceError> {
    if enabled && !has_secret {
        return Err(invalid(
            "webhooks_enabled",
            format!(
                "webhooks need secrets.{} to verify deliveries; add it, or leave webhooks disabled",
                platform.spec().webhook_secret
            ),
        ));
    }
    Ok(())
}

/// Checks config keys against the platform's spec and each value against the platform's
/// rules; with `complete`, the required keys must all be there.
fn check_config(
    platform: Platform,
    config: &Map<String, Value>,
    complete: bool,
) -> Result<(), ServiceError> {
    let spec = platform.spec();
    for (key, value) in config {
        let field = format!("config.{key}");
        if !spec.config_required.contains(&key.as_str())
            && !spec.config_optional.contains(&key.as_str())
        {
            let mut known: Vec<&str> = spec.config_required.to_vec();
            known.extend(spec.config_optional);
            return Err(invalid(
                field,
                format!("not a {platform} setting; expected: {}", known.join(", ")),
            ));
        }
        if let Err(expected) = platform.module().check_config(key, value) {
            return Err(invalid(field, format!("{key} must be {expected}")));
        }
    }
    if complete {
        if let Some(missing) = spec
            .config_required
            .iter()
            .find(|k| !config.contains_key(**k))
        {
            return Err(invalid(
                format!("config.{missing}"),
                format!("config.{missing} is required for {platform}"),
            ));
        }
    }
    Ok(())
}

fn check_secrets(
    platform: Platform,
    secrets: &Secrets,
    complete: bool,
) -> Result<(), ServiceError> {
    let spec = platform.spec();
    for (name, value) in secrets {
        let field = format!("secrets.{name}");
        if !spec.secrets_required.contains(&name.as_str())
            && !spec.secrets_optional.contains(&name.as_str())
        {
            let mut known: Vec<&str> = spec.secrets_required.to_vec();
            known.extend(spec.secrets_optional);
            return Err(invalid(
                field,
                format!("not a {platform} secret; expected: {}", known.join(", ")),
            ));
        }
        let len = value.expose().chars().count();
        if len == 0 || len > MAX_SECRET || value.expose().trim() != value.expose() {
            return Err(invalid(
                field,
                format!("{name} must be 1 to {MAX_SECRET} characters without leading or trailing spaces"),
            ));
        }
    }
    if complete {
        if let Some(missing) = spec
            .secrets_required
            .iter()
            .find(|k| !secrets.contains_key(**k))
        {
            return Err(invalid(
                format!("secrets.{missing}"),
                format!("secrets.{missing} is required for {platform}"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "connections_tests.rs"]
mod tests;
