//! Alerts as use cases: raising and resolving issues (the worker and the sweeper), what the
//! API does with them (list, acknowledge, the destinations), and telling the destinations
//! (the sweeper, each sweep). The rules of who hears what are the domain's
//! ([`crate::domain::AlertIssue`]).

use chrono::{DateTime, Duration, Utc};
use std::sync::Arc;

use super::schedules::invalid;
use super::ServiceError;
use crate::clock::Clock;
use crate::crypto::{hmac_sha256_hex, random_bytes};
use crate::domain::{
    alert_id, check_destination_url, AlertDestination, AlertIssue, AlertKind, AlertStatus,
    AlertSubject, Connection, DestinationKind, DestinationSecret, Notice, Raised, Run, RunStatus,
    TenantId,
};
use crate::ports::{
    AlertDestinations, AlertIssues, AlertTopic, FailureLog, HttpClient, HttpRequest, Method,
    SecretOpener, SecretSealer, StoreError, SyncKey,
};

/// Tries of a write that met a concurrent one before it gives up.
const WRITE_TRIES: usize = 4;
/// Most destinations a tenant may have.
pub const MAX_DESTINATIONS: usize = 10;
/// Longest destination name.
const MAX_DESTINATION_NAME: usize = 100;
/// Most issues with a notice due that one sweep reads (the rest, due later, are read by
/// the next: each one told or put off moves behind them).
pub const MAX_DUE_ISSUES: usize = 500;
/// Tries of the write that records who heard what, when the table fails: one not written
/// has its notices sent again once the claim runs out.
const RECORD_TRIES: usize = 3;

/// A time as notices show it (to the second).
pub(crate) fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The encryption context of a destination's URL and secret: they open only for it.
fn context<'a>(tenant: &'a str, destination: &'a str) -> [(&'static str, &'a str); 2] {
    [("tenant_id", tenant), ("alert_destination_id", destination)]
}

/// Raising and resolving issues: what the worker and the sweeper hold (a read and, when
/// something changes, one conditional write; a write that met another is tried again).
#[derive(Clone)]
pub struct AlertRaiser {
    issues: Arc<dyn AlertIssues>,
    clock: Arc<dyn Clock>,
    /// Issues raised (opened, reopened or updated) since the count was last taken.
    raised: Arc<std::sync::atomic::AtomicU64>,
}

impl AlertRaiser {
    pub fn new(issues: Arc<dyn AlertIssues>, clock: Arc<dyn Clock>) -> Self {
        Self {
            issues,
            clock,
            raised: Default::default(),
        }
    }

    /// Issues raised since the last time this was asked (for a metrics line), cleared.
    pub fn take_raised(&self) -> u64 {
        self.raised.swap(0, std::sync::atomic::Ordering::SeqCst)
    }

    /// The condition was seen now: the issue is opened, reopened or updated.
    pub async fn raise(&self, raised: Raised<'_>) -> Result<(), StoreError> {
        self.raise_seen(raised, None).await
    }

    /// As [`Self::raise`], for a condition that held as of `seen` (earlier than now: what
    /// a poll found when it started).
    async fn raise_seen(
        &self,
        raised: Raised<'_>,
        seen: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let id = alert_id(raised.tenant, &raised.subject, raised.kind);
        self.change(raised.tenant, &id, |old| {
            let mut issue = AlertIssue::raise(old, &raised, self.clock.now());
            if seen.is_some() {
                issue.seen_at = seen;
            }
            Some(issue)
        })
        .await?;
        self.raised
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// The condition cleared: an open issue is resolved (none open, nothing happens).
    pub async fn resolve(
        &self,
        tenant: &TenantId,
        subject: AlertSubject,
        kind: AlertKind,
    ) -> Result<(), StoreError> {
        let id = alert_id(tenant, &subject, kind);
        self.change(tenant, &id, |old| old?.resolve(self.clock.now()))
            .await
    }

    /// A run ended: a failed one raises its stream's `run_failed` issue (the sweep that
    /// tells it comes minutes later, so a failure the queue's next attempt clears reaches
    /// nobody); a succeeded or partial one resolves it. Other ends change nothing.
    pub async fn run_ended(&self, run: &Run) -> Result<(), StoreError> {
        let subject = AlertSubject::Stream(run.connection_id, run.entity_type);
        match run.status {
            RunStatus::Failed => {
                let error = run.message.as_deref().unwrap_or("the run failed");
                self.raise(Raised {
                    tenant: &run.tenant_id,
                    subject,
                    kind: AlertKind::RunFailed,
                    error: &format!("run {}: {error}", run.id),
                    link: Some(format!("/api/sync/runs/{}", run.id)),
                })
                .await
            }
            RunStatus::Succeeded | RunStatus::Partial => {
                self.resolve(&run.tenant_id, subject, AlertKind::RunFailed)
                    .await
            }
            _ => Ok(()),
        }
    }

    /// A run of a stream ended: one that quarantined records raises the stream's
    /// `records_quarantined` issue; one that quarantined none, when the issue is open and
    /// the stream has no quarantined record left (they succeeded, or were retried), resolves
    /// it.
    pub async fn quarantine_after(
        &self,
        run: &Run,
        failures: &dyn FailureLog,
    ) -> Result<(), StoreError> {
        let subject = AlertSubject::Stream(run.connection_id, run.entity_type);
        let kind = AlertKind::RecordsQuarantined;
        let quarantined: Vec<_> = run.failures.iter().filter(|f| f.quarantined).collect();
        if let Some(first) = quarantined.first() {
            let error = format!(
                "run {}: {} record(s) quarantined after failing in a row, the first {}: {}",
                run.id,
                quarantined.len(),
                first.record_id,
                first.error
            );
            return self
                .raise(Raised {
                    tenant: &run.tenant_id,
                    subject,
                    kind,
                    error: &error,
                    link: Some(format!(
                        "/api/sync/failures?connection_id={}&entity_type={}",
                        run.connection_id, run.entity_type
                    )),
                })
                .await;
        }
        if !matches!(run.status, RunStatus::Succeeded | RunStatus::Partial) {
            return Ok(());
        }
        let id = alert_id(&run.tenant_id, &subject, kind);
        let Some(open) = self
            .issues
            .get(&run.tenant_id, &id)
            .await?
            .filter(|i| i.status == AlertStatus::Open)
        else {
            return Ok(());
        };
        let key = SyncKey {
            connection: run.connection_id,
            entity: run.entity_type,
        };
        let left = failures
            .due(key, DateTime::<Utc>::MAX_UTC, 1)
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        if left.is_empty() {
            // Only as read before the look: another run that quarantined a record since
            // raised it again, and it stays open.
            self.resolve_listed(&open).await?;
        }
        Ok(())
    }

    /// A connection the platform refused for good (marked `needs_reauth`): its issue is
    /// raised (the sweeper resolves it once the connection is connected again, or gone).
    pub async fn needs_reauth(&self, connection: &Connection) -> Result<(), StoreError> {
        let Some(reason) = &connection.needs_reauth else {
            return Ok(());
        };
        self.raise(Raised {
            tenant: &connection.tenant_id,
            subject: AlertSubject::Connection(connection.id),
            kind: AlertKind::NeedsReauth,
            error: &format!(
                "{} connection {} ({}): {reason}",
                connection.platform, connection.id, connection.display_name
            ),
            link: Some(format!("/api/connections/{}", connection.id)),
        })
        .await
    }

    /// A poll that wrote changes no webhook had brought (see
    /// [`crate::domain::RunCounts::unannounced`]) raises its stream's `webhooks_silent`
    /// issue (the sweeper resolves it once a webhook's job runs on the stream).
    pub async fn unannounced(&self, run: &Run) -> Result<(), StoreError> {
        if run.counts.unannounced == 0 {
            return Ok(());
        }
        let since = run
            .cursor_before
            .as_ref()
            .map_or_else(|| "the last poll".to_string(), |c| stamp(c.stamp));
        // As of when the poll started: webhooks that arrive while it runs are news.
        self.raise_seen(
            Raised {
                tenant: &run.tenant_id,
                subject: AlertSubject::Stream(run.connection_id, run.entity_type),
                kind: AlertKind::WebhooksSilent,
                error: &format!(
                    "run {} ({}) made {} write(s) of {} changed after its cursor ({since}) and after the stream's webhooks last arrived, more than {} minutes before it started, that no webhook had brought, though the connection takes webhooks",
                    run.id,
                    run.trigger.as_str(),
                    run.counts.unannounced,
                    run.entity_type,
                    crate::domain::WEBHOOK_GRACE.num_minutes()
                ),
                link: Some(format!("/api/sync/runs/{}", run.id)),
            },
            Some(run.started_at),
        )
        .await
    }

    /// Resolves an issue as it was read (the sweeper's, from its listing), unless it was
    /// written since (raised again: its condition was seen anew).
    pub async fn resolve_listed(&self, listed: &AlertIssue) -> Result<(), StoreError> {
        self.change(&listed.tenant_id, &listed.id, |old| {
            old.filter(|o| o.version == listed.version)?
                .resolve(self.clock.now())
        })
        .await
    }

    /// Resolves an issue already read (the sweeper's, from its listing), by id.
    pub async fn resolve_id(&self, tenant: &TenantId, id: &str) -> Result<(), StoreError> {
        self.change(tenant, id, |old| old?.resolve(self.clock.now()))
            .await
    }

    async fn change(
        &self,
        tenant: &TenantId,
        id: &str,
        next: impl Fn(Option<&AlertIssue>) -> Option<AlertIssue>,
    ) -> Result<(), StoreError> {
        change_issue(&*self.issues, tenant, id, next).await
    }
}

/// Reads the issue, applies `next` and writes the result if it is at the version read;
/// tried again (from the read) when another write came between.
async fn change_issue(
    issues: &dyn AlertIssues,
    tenant: &TenantId,
    id: &str,
    next: impl Fn(Option<&AlertIssue>) -> Option<AlertIssue>,
) -> Result<(), StoreError> {
    let mut last = StoreError::Conflict;
    for _ in 0..WRITE_TRIES {
        let old = issues.get(tenant, id).await?;
        let Some(mut new) = next(old.as_ref()) else {
            return Ok(());
        };
        let expected = old.as_ref().map(|o| o.version);
        new.version = expected.unwrap_or(0) + 1;
        match issues.put(&new, expected).await {
            Ok(()) => return Ok(()),
            Err(e @ (StoreError::Conflict | StoreError::AlreadyExists)) => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// A destination as the API is asked to create it.
#[derive(Debug, Clone)]
pub struct NewDestination {
    pub kind: DestinationKind,
    pub name: String,
    /// For `slack` and `webhook`.
    pub url: Option<String>,
    /// For `webhook`: the signing secret; one is made (and answered once) if none is given.
    pub secret: Option<String>,
}

/// What the API does with alerts, for one tenant at a time.
#[derive(Clone)]
pub struct AlertConsole {
    issues: Arc<dyn AlertIssues>,
    destinations: Arc<dyn AlertDestinations>,
    sealer: Arc<dyn SecretSealer>,
    clock: Arc<dyn Clock>,
    /// Whether destination URLs may be `http` and name internal hosts (the local stack).
    allow_internal: bool,
}

impl AlertConsole {
    pub fn new(
        issues: Arc<dyn AlertIssues>,
        destinations: Arc<dyn AlertDestinations>,
        sealer: Arc<dyn SecretSealer>,
        clock: Arc<dyn Clock>,
        allow_internal: bool,
    ) -> Self {
        Self {
            issues,
            destinations,
            sealer,
            clock,
            allow_internal,
        }
    }

    /// The same, allowing destination URLs of internal hosts over `http` or not.
    pub fn allowing_internal_urls(mut self, allow: bool) -> Self {
        self.allow_internal = allow;
        self
    }

    pub async fn list(
        &self,
        tenant: &TenantId,
        status: Option<AlertStatus>,
    ) -> Result<Vec<AlertIssue>, ServiceError> {
        Ok(self.issues.list(tenant, status).await?)
    }

    /// Silences an open issue: no destination that has not heard it open is told so in
    /// this episode (those that heard it still hear it resolved). 409 for one resolved.
    pub async fn ack(
        &self,
        tenant: &TenantId,
        id: &str,
        by: &str,
    ) -> Result<AlertIssue, ServiceError> {
        let now = self.clock.now();
        let mut outcome = Err(ServiceError::NotFound("alert"));
        for _ in 0..WRITE_TRIES {
            let Some(old) = self.issues.get(tenant, id).await? else {
                return Err(ServiceError::NotFound("alert"));
            };
            if old.status != AlertStatus::Open {
                return Err(ServiceError::Conflict(
                    "the alert is resolved already; there is nothing to silence".into(),
                ));
            }
            if old.acked_at.is_some() {
                return Ok(old);
            }
            let mut new = old.clone();
            new.acked_at = Some(now);
            new.acked_by = Some(by.chars().take(200).collect());
            new.updated_at = now;
            new.version = old.version + 1;
            match self.issues.put(&new, Some(old.version)).await {
                Ok(()) => return Ok(new),
                Err(StoreError::Conflict) => {
                    outcome = Err(ServiceError::Conflict(
                        "the alert kept changing; try again".into(),
                    ))
                }
                Err(e) => return Err(e.into()),
            }
        }
        outcome
    }

    pub async fn destinations(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<AlertDestination>, ServiceError> {
        Ok(self.destinations.list(tenant).await?)
    }

    /// Creates a destination; answers it and, for a webhook whose secret was made here, the
    /// secret (shown this once: it is stored sealed and never answered again).
    pub async fn add_destination(
        &self,
        tenant: &TenantId,
        new: NewDestination,
    ) -> Result<(AlertDestination, Option<String>), ServiceError> {
        let name = new.name.trim().to_string();
        if name.is_empty() || name.chars().count() > MAX_DESTINATION_NAME {
            return Err(invalid(
                "name",
                format!("name must be 1 to {MAX_DESTINATION_NAME} characters"),
            ));
        }
        // (A tenant's one `sns` destination has a fixed id: two made at once cannot both be
        // stored.)
        let id = match new.kind {
            DestinationKind::Sns => "ad_sns".to_string(),
            _ => format!("ad_{}", uuid::Uuid::new_v4().simple()),
        };
        let (url_host, secret, made) = match new.kind {
            DestinationKind::Sns => {
                if new.url.is_some() || new.secret.is_some() {
                    return Err(invalid(
                        "url",
                        "an sns destination is the deployment's alert topic: it takes no url or secret",
                    ));
                }
                (None, None, None)
            }
            DestinationKind::Slack | DestinationKind::Webhook => {
                let Some(url) = new.url.map(|u| u.trim().to_string()) else {
                    return Err(invalid("url", "url is required for this kind"));
                };
                let host = check_destination_url(&url, self.allow_internal)
                    .map_err(|e| invalid("url", e.to_string()))?;
                let (secret, made) = match (new.kind.clone(), new.secret) {
                    (DestinationKind::Webhook, Some(s)) => {
                        let s = s.trim().to_string();
                        if s.len() < 16 || s.len() > 256 {
                            return Err(invalid("secret", "secret must be 16 to 256 characters"));
                        }
                        (Some(s), None)
                    }
                    (DestinationKind::Webhook, None) => {
                        let bytes = random_bytes(32)
                            .map_err(|e| ServiceError::Unavailable(e.to_string()))?;
                        let s: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                        (Some(s.clone()), Some(s))
                    }
                    (_, Some(_)) => {
                        return Err(invalid("secret", "only a webhook destination has a secret"))
                    }
                    (_, None) => (None, None),
                };
                (Some(host), Some(DestinationSecret { url, secret }), made)
            }
        };
        let existing = self.destinations.list(tenant).await?;
        if existing.len() >= MAX_DESTINATIONS {
            return Err(ServiceError::Conflict(format!(
                "a tenant has at most {MAX_DESTINATIONS} alert destinations"
            )));
        }
        if new.kind == DestinationKind::Sns
            && existing.iter().any(|d| d.kind == DestinationKind::Sns)
        {
            return Err(ServiceError::Conflict(
                "the tenant has an sns destination already".into(),
            ));
        }
        let sealed = match secret {
            Some(secret) => {
                let bytes = serde_json::to_vec(&secret)
                    .map_err(|e| ServiceError::Unavailable(e.to_string()))?;
                Some(
                    self.sealer
                        .seal(&bytes, &context(tenant.as_str(), &id))
                        .await?,
                )
            }
            None => None,
        };
        let destination = AlertDestination {
            id,
            tenant_id: tenant.clone(),
            kind: new.kind,
            name,
            url_host,
            sealed,
            // (As stored: to the millisecond.)
            created_at: chrono::SubsecRound::trunc_subsecs(self.clock.now(), 3),
        };
        match self.destinations.insert(&destination).await {
            Ok(()) => {}
            Err(StoreError::AlreadyExists) => {
                return Err(ServiceError::Conflict(
                    "the tenant has an sns destination already".into(),
                ))
            }
            Err(e) => return Err(e.into()),
        }
        // A destination added while issues are open is told of them at the next sweep
        // (issues whose destinations had all heard have nothing due until now).
        let now = self.clock.now();
        for issue in self.issues.list(tenant, Some(AlertStatus::Open)).await? {
            change_issue(&*self.issues, tenant, &issue.id, |current| {
                let current = current?;
                if current.status != AlertStatus::Open || current.due_at.is_some_and(|d| d <= now) {
                    return None;
                }
                let mut next = current.clone();
                next.due_at = Some(now);
                Some(next)
            })
            .await?;
        }
        Ok((destination, made))
    }

    pub async fn remove_destination(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<(), ServiceError> {
        if self.destinations.delete(tenant, id).await? {
            Ok(())
        } else {
            Err(ServiceError::NotFound("alert destination"))
        }
    }
}

/// How notices are sent.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// A reopening this soon after a resolution is kept quiet (a flapping condition).
    pub flap: Duration,
    /// The API's public URL, which links in notices start with.
    pub api_base: String,
    /// Whether destination URLs may name internal hosts (the local stack).
    pub allow_internal: bool,
    /// How long one send may take.
    pub timeout: std::time::Duration,
    /// How long one round of telling may go on: no send starts after it (what is left is
    /// still due, for the next sweep), so a slow destination never runs a sweep out of time.
    pub budget: std::time::Duration,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            flap: Duration::minutes(30),
            api_base: String::new(),
            allow_internal: false,
            timeout: std::time::Duration::from_secs(10),
            budget: std::time::Duration::from_secs(45),
        }
    }
}

/// What one round of telling did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Notices that reached their destination.
    pub sent: u64,
    /// Tries that failed (tried again later, or given up on).
    pub failed: u64,
    /// Issues whose condition the caller found cleared.
    pub resolved: u64,
    pub errors: Vec<String>,
}

/// Telling each destination what it has to hear: the sweeper's, each sweep.
#[derive(Clone)]
pub struct AlertDelivery {
    pub issues: Arc<dyn AlertIssues>,
    pub destinations: Arc<dyn AlertDestinations>,
    /// Opens destinations' URLs and secrets (the API sealed them).
    pub opener: Arc<dyn SecretOpener>,
    pub http: Arc<dyn HttpClient>,
    pub topic: Option<Arc<dyn AlertTopic>>,
    pub clock: Arc<dyn Clock>,
    pub settings: DeliverySettings,
}

/// Where one notice goes, opened.
enum Recipient {
    Topic,
    Slack(String),
    Webhook(String, String),
}

impl AlertDelivery {
    /// Tells each destination of each issue due what it is to hear, and records who heard
    /// what on the issue: at most [`MAX_DUE_ISSUES`] issues, earliest due first, for at most
    /// the settings' budget.
    pub async fn deliver(&self, report: &mut DeliveryReport) {
        self.deliver_within(self.settings.budget, report).await
    }

    /// The same, within `budget` (the least of it and the settings' budget): no send starts
    /// that could not end within it.
    pub async fn deliver_within(&self, budget: std::time::Duration, report: &mut DeliveryReport) {
        let started = std::time::Instant::now();
        let budget = budget.min(self.settings.budget);
        let now = self.clock.now();
        let due = match self.issues.due(now, MAX_DUE_ISSUES).await {
            Ok(due) => due,
            Err(e) => {
                report.errors.push(format!("alerts due not read: {e}"));
                return;
            }
        };
        let mut tenants: std::collections::BTreeMap<&TenantId, Vec<&AlertIssue>> =
            Default::default();
        for issue in &due {
            tenants.entry(&issue.tenant_id).or_default().push(issue);
        }
        for (tenant, due) in tenants {
            let destinations = match self.destinations.list(tenant).await {
                Ok(d) => d,
                Err(e) => {
                    report
                        .errors
                        .push(format!("alert destinations of {tenant} not read: {e}"));
                    continue;
                }
            };
            // Each destination is opened once for all of the tenant's issues.
            let mut opened = std::collections::HashMap::new();
            for issue in due {
                // (Room for opening a destination and one send.)
                if started.elapsed() + self.settings.timeout * 2 > budget {
                    return;
                }
                if let Err(e) = self
                    .tell(
                        issue,
                        &destinations,
                        &mut opened,
                        now,
                        (started, budget),
                        report,
                    )
                    .await
                {
                    report
                        .errors
                        .push(format!("alert {} not delivered: {e}", issue.id));
                }
            }
        }
    }

    async fn tell(
        &self,
        listed: &AlertIssue,
        destinations: &[AlertDestination],
        opened: &mut std::collections::HashMap<String, Result<Recipient, String>>,
        now: DateTime<Utc>,
        (started, budget): (std::time::Instant, std::time::Duration),
        report: &mut DeliveryReport,
    ) -> Result<(), StoreError> {
        let flap = self.settings.flap;
        // (The listing is an index's: the issue as stored decides.)
        let Some(issue) = self.issues.get(&listed.tenant_id, &listed.id).await? else {
            return Ok(());
        };
        // Claim the round: the due time moves past it, so a sweep running beside this one
        // leaves the issue alone, and one after a crash here tries again.
        if issue.due_at.is_none_or(|d| d > now) {
            return Ok(());
        }
        let mut claimed = issue.clone();
        claimed.due_at = Some(now + Duration::minutes(10));
        claimed.version = issue.version + 1;
        match self.issues.put(&claimed, Some(issue.version)).await {
            Ok(()) => {}
            Err(StoreError::Conflict) => return Ok(()),
            Err(e) => return Err(e),
        }
        let mut outcomes = Vec::new();
        for destination in destinations {
            let Some(state) = issue.notice_for(&destination.id, now, flap) else {
                continue;
            };
            // (Out of time: the rest stay due, and are told by the next sweep.)
            if started.elapsed() + self.settings.timeout * 2 > budget {
                break;
            }
            if !opened.contains_key(&destination.id) {
                // (Bounded as a send is: the key service may be slow too.)
                let recipient = tokio::time::timeout(self.settings.timeout, self.open(destination))
                    .await
                    .unwrap_or_else(|_| Err("the key service did not answer in time".into()));
                opened.insert(destination.id.clone(), recipient);
            }
            let notice = Notice::of(&issue, state, &self.settings.api_base);
            let sent = match opened.get(&destination.id) {
                Some(Ok(recipient)) => self.send(recipient, &notice).await,
                Some(Err(e)) => Err(e.clone()),
                None => Err("the destination did not open".into()),
            };
            match &sent {
                Ok(()) => {
                    report.sent += 1;
                    tracing::info!(alert_id = %issue.id, tenant_id = %issue.tenant_id, destination = %destination.id, event = state.as_str(), "alert notice sent");
                }
                Err(e) => {
                    report.failed += 1;
                    tracing::warn!(alert_id = %issue.id, tenant_id = %issue.tenant_id, destination = %destination.id, error = %e, "alert notice not sent");
                }
            }
            outcomes.push((destination.id.clone(), state, sent));
        }
        // Who heard what, written over whatever came between (a raise, a resolution, a
        // destination added: the destinations are read again, and a due time set since the
        // claim is kept); a table that fails is tried again, since a notice not recorded is
        // sent again.
        let fresh = self.destinations.list(&issue.tenant_id).await;
        let ids: Vec<String> = match &fresh {
            Ok(now_listed) => now_listed.iter().map(|d| d.id.clone()).collect(),
            Err(_) => destinations.iter().map(|d| d.id.clone()).collect(),
        };
        let claimed_due = claimed.due_at;
        let mut written = Ok(());
        for _ in 0..RECORD_TRIES {
            written = change_issue(&*self.issues, &issue.tenant_id, &issue.id, |current| {
                let current = current?;
                let mut next = current.clone();
                // A resolution told while the condition came back (the same episode went
                // on): the return is a new episode, so those told it resolved hear it open
                // again under a new notice id.
                let told_resolved = outcomes
                    .iter()
                    .any(|(_, state, sent)| *state == AlertStatus::Resolved && sent.is_ok());
                if told_resolved
                    && current.status == AlertStatus::Open
                    && current.opened_at == issue.opened_at
                {
                    next = current.new_episode(now);
                }
                for (destination, state, sent) in &outcomes {
                    match sent {
                        Ok(()) => next.heard(destination, *state, now),
                        Err(e) => next.not_heard(destination, *state, e, now),
                    }
                }
                if fresh.is_ok() {
                    next.hearings.retain(|d, _| ids.contains(d));
                }
                next.due_at = next.next_due(&ids, now, flap);
                if fresh.is_err() {
                    // (Who else may be there is unknown: looked at again next sweep.)
                    next.due_at = Some(now);
                }
                if current.due_at != claimed_due {
                    next.due_at = match (next.due_at, current.due_at) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                }
                Some(next)
            })
            .await;
            if !matches!(written, Err(StoreError::Unavailable(_))) {
                break;
            }
        }
        written
    }

    async fn send(&self, recipient: &Recipient, notice: &Notice) -> Result<(), String> {
        let text = notice.text();
        let request = match recipient {
            Recipient::Topic => {
                let Some(topic) = &self.topic else {
                    return Err("this deployment has no alert topic".into());
                };
                let subject: String = notice.summary.chars().take(100).collect();
                let published =
                    topic.publish(&notice.tenant_id, &subject, &text, &notice.notice_id);
                return tokio::time::timeout(self.settings.timeout, published)
                    .await
                    .unwrap_or_else(|_| Err("the alert topic did not answer in time".into()));
            }
            Recipient::Slack(url) => {
                check_destination_url(url, self.settings.allow_internal)
                    .map_err(|e| e.to_string())?;
                HttpRequest::new(Method::Post, url.clone())
                    .json(&serde_json::json!({ "text": text }))
            }
            Recipient::Webhook(url, secret) => {
                check_destination_url(url, self.settings.allow_internal)
                    .map_err(|e| e.to_string())?;
                let body = serde_json::to_string(notice).map_err(|e| e.to_string())?;
                let t = self.clock.now().timestamp();
                let signature =
                    hmac_sha256_hex(secret.as_bytes(), format!("{t}.{body}").as_bytes());
                let mut request = HttpRequest::new(Method::Post, url.clone())
                    .header("content-type", "application/json")
                    .header("x-sync-notice-id", notice.notice_id.clone())
                    .header("x-sync-signature", format!("t={t},v1={signature}"));
                request.body = Some(body.into_bytes());
                request
            }
        };
        let mut request = request;
        request.timeout = self.settings.timeout;
        let response = self.http.send(request).await.map_err(|e| e.to_string())?;
        if (200..300).contains(&response.status) {
            Ok(())
        } else {
            Err(format!("the destination answered {}", response.status))
        }
    }

    async fn open(&self, destination: &AlertDestination) -> Result<Recipient, String> {
        if destination.kind == DestinationKind::Sns {
            return Ok(Recipient::Topic);
        }
        let Some(sealed) = &destination.sealed else {
            return Err("the destination has no url".into());
        };
        let bytes = self
            .opener
            .open(
                sealed,
                &context(destination.tenant_id.as_str(), &destination.id),
            )
            .await
            .map_err(|e| {
                // (The detail may name the key: logged, not kept on the tenant's alert.)
                tracing::warn!(destination = %destination.id, error = %e, "alert destination not opened");
                "the destination's URL could not be opened (the key refused)".to_string()
            })?;
        let secret: DestinationSecret = serde_json::from_slice(&bytes)
            .map_err(|_| "the destination does not open".to_string())?;
        match (&destination.kind, secret.secret) {
            (DestinationKind::Webhook, Some(key)) => Ok(Recipient::Webhook(secret.url, key)),
            (DestinationKind::Webhook, None) => Err("the webhook destination has no secret".into()),
            _ => Ok(Recipient::Slack(secret.url)),
        }
    }
}

#[cfg(test)]
#[path = "alerts_tests.rs"]
mod tests;
