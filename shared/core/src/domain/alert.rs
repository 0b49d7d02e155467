//! Alerts: each condition that needs a person is one **alert issue** per (tenant, subject,
//! kind), opened once, updated (count, last error) as the condition recurs, and resolved
//! when it clears. Who hears of it (each destination of the tenant) is kept on the issue,
//! so a destination is told of an opening once and of its resolution once:
//!
//! - an issue is told as opened to a destination that has not heard it open, unless it was
//!   acknowledged;
//! - a resolution is told only to a destination that heard the opening, and only once the
//!   condition has stayed clear for the flap period: one that comes back before then
//!   continues the same episode (nobody hears it resolve and open again), so a flapping
//!   condition is one opening and, once it settles, one resolution;
//! - a delivery that fails is tried again later, with back-off, and after
//!   [`MAX_DELIVERY_ATTEMPTS`] recorded as failed on the issue.
//!
//! The issue is changed by whoever sees the condition (the worker, the sweeper) and told by
//! the sweeper, so a slow or failing destination never holds up a sync, and a failure that
//! a retry clears before the next sweep (a run whose next attempt succeeds) reaches nobody.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use super::{ConnectionId, EntityType, ScheduleId, TenantId, UnknownValue};
use crate::crypto::sha256_hex;

/// Tries of one notice to one destination before it is recorded as failed.
pub const MAX_DELIVERY_ATTEMPTS: u32 = 6;
/// The wait before the first retry of a failed delivery (doubling with each try).
pub const FIRST_RETRY: Duration = Duration::minutes(5);
/// A schedule with this many failed runs in a row has a `failing_schedule` alert.
pub const ALERT_AFTER_FAILURES: u32 = 3;
/// A change a poll finds that was made longer ago than this should have come by webhook
/// (deliveries are retried by the platforms within minutes, and coalesced for seconds).
pub const WEBHOOK_GRACE: Duration = Duration::minutes(15);
/// A `webhooks_silent` issue resolves once the stream's webhooks arrived after it was last
/// raised and no poll has raised it for this long (webhooks of some topics arriving while
/// another topic's stay silent would otherwise resolve and reopen it at every poll).
pub const WEBHOOK_QUIET: Duration = Duration::hours(24);
/// Longest error text kept on an issue.
const MAX_ERROR_CHARS: usize = 1_000;

/// What kind of condition an issue is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A stream's run ended `failed` (and no run of the stream has succeeded since).
    RunFailed,
    /// A schedule's runs failed [`ALERT_AFTER_FAILURES`] times in a row or more.
    FailingSchedule,
    /// A schedule's fire time was missed outside its catch-up window (not run).
    MissedFire,
    /// The sweeper paused a schedule after its runs kept failing.
    AutoPaused,
    /// Records of a stream failed so often that they were set aside (quarantined); it
    /// stays open while the stream has any.
    RecordsQuarantined,
    /// A platform refused a connection's credentials for good (QuickBooks' `invalid_grant`):
    /// its runs fail until someone connects it again, which resolves it.
    NeedsReauth,
    /// A poll of a stream whose connection takes webhooks wrote changes that no webhook
    /// announced (made more than [`WEBHOOK_GRACE`] before the poll): the platform's webhooks
    /// are probably broken. It resolves once the stream's webhooks arrive again and no poll
    /// raised it for [`WEBHOOK_QUIET`].
    WebhooksSilent,
}

impl AlertKind {
    pub const ALL: [AlertKind; 7] = [
        AlertKind::RunFailed,
        AlertKind::FailingSchedule,
        AlertKind::MissedFire,
        AlertKind::AutoPaused,
        AlertKind::RecordsQuarantined,
        AlertKind::NeedsReauth,
        AlertKind::WebhooksSilent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::RunFailed => "run_failed",
            AlertKind::FailingSchedule => "failing_schedule",
            AlertKind::MissedFire => "missed_fire",
            AlertKind::AutoPaused => "auto_paused",
            AlertKind::RecordsQuarantined => "records_quarantined",
            AlertKind::NeedsReauth => "needs_reauth",
            AlertKind::WebhooksSilent => "webhooks_silent",
        }
    }

    /// What a person should do about it.
    pub fn hint(self) -> &'static str {
        match self {
            AlertKind::RunFailed => "Open the run for its error; once the cause is fixed, retry it (POST /api/sync/runs/{id}/retry) or wait for the next run, which resolves this alert.",
            AlertKind::FailingSchedule => "The schedule's runs keep failing: check the connection's credentials and the platform, then run the schedule now (POST /api/sync/schedules/{id}/run).",
            AlertKind::MissedFire => "A fire time passed without a run and outside the catch-up window: run the schedule now if the sync is still wanted, and check that the service was running.",
            AlertKind::AutoPaused => "The schedule was paused after failing in a row: fix the cause, then resume it (PUT /api/sync/schedules/{id} with is_active true).",
            AlertKind::RecordsQuarantined => "Records kept failing and were set aside (they are tried again on their own, less often): read each one's error (GET /api/sync/failures?connection_id=...), fix the cause, then retry them (POST /api/sync/failures/retry). The alert resolves once none is left.",
            AlertKind::NeedsReauth => "The platform refused the connection's credentials: connect the company again (POST /api/connections/quickbooks/authorize for QuickBooks, or PUT /api/connections/{id} with new secrets); its runs fail until then. The alert resolves once it is connected again.",
            AlertKind::WebhooksSilent => "Changes reached us only by polling, none by webhook: check the platform's webhook settings (delivery URL, secret, whether the platform disabled them after failed deliveries) or register them again (POST /api/connections/{id}/webhooks). The alert resolves once webhooks of the stream arrive again and no poll has found an unannounced change for 24 hours.",
        }
    }
}

impl fmt::Display for AlertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for AlertKind {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AlertKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownValue {
                value: s.to_string(),
                allowed: "run_failed, failing_schedule, missed_fire, auto_paused, records_quarantined, needs_reauth, webhooks_silent",
            })
    }
}

/// What an issue is about: a stream, a schedule or a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertSubject {
    Stream(ConnectionId, EntityType),
    Schedule(ScheduleId),
    Connection(ConnectionId),
}

impl AlertSubject {
    /// The subject an issue names (`stream:<c>/<e>`, `schedule:<id>`, `connection:<id>`).
    pub fn parse(text: &str) -> Option<Self> {
        let (kind, rest) = text.split_once(':')?;
        match kind {
            "stream" => {
                let (c, e) = rest.split_once('/')?;
                Some(AlertSubject::Stream(c.parse().ok()?, e.parse().ok()?))
            }
            "schedule" => Some(AlertSubject::Schedule(rest.parse().ok()?)),
            "connection" => Some(AlertSubject::Connection(rest.parse().ok()?)),
            _ => None,
        }
    }

    /// The connection it is about, if any (a stream's or a connection's).
    pub fn connection(&self) -> Option<ConnectionId> {
        match self {
            AlertSubject::Stream(c, _) | AlertSubject::Connection(c) => Some(*c),
            AlertSubject::Schedule(_) => None,
        }
    }
}

impl fmt::Display for AlertSubject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AlertSubject::Stream(c, e) => write!(f, "stream:{c}/{e}"),
            AlertSubject::Schedule(s) => write!(f, "schedule:{s}"),
            AlertSubject::Connection(c) => write!(f, "connection:{c}"),
        }
    }
}

/// Whether an issue's condition holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    Open,
    Resolved,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Open => "open",
            AlertStatus::Resolved => "resolved",
        }
    }
}

impl std::str::FromStr for AlertStatus {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "open" => Ok(AlertStatus::Open),
            "resolved" => Ok(AlertStatus::Resolved),
            other => Err(UnknownValue {
                value: other.to_string(),
                allowed: "open, resolved",
            }),
        }
    }
}

/// What one destination has heard of an issue, or is still to hear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hearing {
    /// The last state it was told of (or, when `failed`, the last it was to be told of).
    pub heard: Option<AlertStatus>,
    pub at: Option<DateTime<Utc>>,
    /// The notice whose tries are counted (`attempts`, `retry_at`): a notice of the other
    /// state starts its own count.
    #[serde(default)]
    pub trying: Option<AlertStatus>,
    /// Tries of the notice it is still to hear; 0 when none is pending.
    #[serde(default)]
    pub attempts: u32,
    /// Not before this is it tried again.
    #[serde(default)]
    pub retry_at: Option<DateTime<Utc>>,
    /// Why the last try failed.
    #[serde(default)]
    pub last_error: Option<String>,
    /// The notice was given up on after [`MAX_DELIVERY_ATTEMPTS`].
    #[serde(default)]
    pub failed: bool,
}

/// One alert issue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertIssue {
    pub id: String,
    pub tenant_id: TenantId,
    pub kind: AlertKind,
    /// `stream:<connection>/<entity>` or `schedule:<id>`.
    pub subject: String,
    pub status: AlertStatus,
    /// When this episode opened (a condition back before its resolution was told continues
    /// the episode; one back later starts a new one).
    pub opened_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When it was resolved (none while it is open).
    pub resolved_at: Option<DateTime<Utc>>,
    /// Times the condition was seen in this episode.
    pub count: u64,
    /// When the condition was last seen (`updated_at` also moves with an acknowledgement
    /// and each notice told).
    #[serde(default)]
    pub seen_at: Option<DateTime<Utc>>,
    pub first_error: String,
    pub last_error: String,
    /// The API path of what it is about (the run, or the schedule).
    pub link: Option<String>,
    /// Acknowledged by a person: nobody else is told of this episode's opening (those that
    /// heard it still hear it resolved); a reopening clears it.
    pub acked_at: Option<DateTime<Utc>>,
    pub acked_by: Option<String>,
    /// Per destination id.
    #[serde(default)]
    pub hearings: BTreeMap<String, Hearing>,
    /// When the sweeper should next look at it to tell someone; `None` when nothing is due.
    pub due_at: Option<DateTime<Utc>>,
    /// Bumped by every write (optimistic concurrency).
    pub version: u64,
}

/// The issue id of a (tenant, subject, kind): stable, so raising is idempotent.
pub fn alert_id(tenant: &TenantId, subject: &AlertSubject, kind: AlertKind) -> String {
    let digest = sha256_hex(format!("{tenant}\n{subject}\n{kind}").as_bytes());
    format!("al_{}", &digest[..20])
}

fn clip(text: &str) -> String {
    text.chars().take(MAX_ERROR_CHARS).collect()
}

/// A condition seen now.
#[derive(Debug, Clone)]
pub struct Raised<'a> {
    pub tenant: &'a TenantId,
    pub subject: AlertSubject,
    pub kind: AlertKind,
    pub error: &'a str,
    pub link: Option<String>,
}

impl AlertIssue {
    /// The issue after its condition was seen at `now`: opened (or reopened), or updated;
    /// `None` when nothing changes (the same error seen again while open changes only the
    /// count, which is a change).
    pub fn raise(existing: Option<&AlertIssue>, raised: &Raised<'_>, now: DateTime<Utc>) -> Self {
        match existing {
            Some(open) if open.status == AlertStatus::Open || open.resolution_owed() => {
                let mut issue = open.clone();
                if issue.status == AlertStatus::Resolved {
                    // Back before anyone heard it resolve: the same episode goes on.
                    issue.status = AlertStatus::Open;
                    issue.resolved_at = None;
                    issue.due_at = Some(now);
                }
                issue.count += 1;
                issue.last_error = clip(raised.error);
                issue.updated_at = now;
                issue.seen_at = Some(now);
                if raised.link.is_some() {
                    issue.link = raised.link.clone();
                }
                issue
            }
            _ => {
                let mut issue = AlertIssue {
                    id: alert_id(raised.tenant, &raised.subject, raised.kind),
                    tenant_id: raised.tenant.clone(),
                    kind: raised.kind,
                    subject: raised.subject.to_string(),
                    status: AlertStatus::Open,
                    opened_at: now,
                    updated_at: now,
                    resolved_at: None,
                    count: 1,
                    seen_at: Some(now),
                    first_error: clip(raised.error),
                    last_error: clip(raised.error),
                    link: raised.link.clone(),
                    acked_at: None,
                    acked_by: None,
                    hearings: BTreeMap::new(),
                    due_at: Some(now),
                    version: 0,
                };
                if let Some(old) = existing {
                    // A new episode: who heard what is kept (its resolution told, or not),
                    // but for notices given up on: those destinations heard nothing of the
                    // last episode and are told of this one.
                    issue.hearings = old.hearings.clone();
                    issue.hearings.retain(|_, h| !h.failed);
                    issue.version = old.version;
                }
                issue
            }
        }
    }

    /// The issue resolved at `now`; `None` when it is not open.
    pub fn resolve(&self, now: DateTime<Utc>) -> Option<Self> {
        (self.status == AlertStatus::Open).then(|| {
            let mut issue = self.clone();
            issue.status = AlertStatus::Resolved;
            issue.resolved_at = Some(now);
            issue.updated_at = now;
            issue.due_at = Some(now);
            issue
        })
    }

    /// What `destination` should be told now, if anything (see the module's rules), given
    /// the flap suppression period.
    pub fn notice_for(
        &self,
        destination: &str,
        now: DateTime<Utc>,
        flap: Duration,
    ) -> Option<AlertStatus> {
        let wanted = self.pending_for(destination)?;
        if wanted == AlertStatus::Resolved && now < self.settled_at(flap) {
            return None;
        }
        match self.retry_at(destination, wanted) {
            Some(at) if at > now => None,
            _ => Some(wanted),
        }
    }

    /// What `destination` is still to hear, whenever it is due: the opening, unless it
    /// heard it (or it was given up on) or the issue was acknowledged; the resolution, only
    /// when it heard the opening (one given up on leaves it nothing to resolve).
    fn pending_for(&self, destination: &str) -> Option<AlertStatus> {
        let hearing = self.hearings.get(destination);
        let heard = hearing.and_then(|h| h.heard);
        let failed = hearing.is_some_and(|h| h.failed);
        match self.status {
            AlertStatus::Open if heard == Some(AlertStatus::Open) || self.acked_at.is_some() => {
                None
            }
            AlertStatus::Open => Some(AlertStatus::Open),
            AlertStatus::Resolved if heard == Some(AlertStatus::Open) && !failed => {
                Some(AlertStatus::Resolved)
            }
            AlertStatus::Resolved => None,
        }
    }

    /// When the notice of `state` to `destination` may be tried again, after a failed try
    /// of that same notice.
    fn retry_at(&self, destination: &str, state: AlertStatus) -> Option<DateTime<Utc>> {
        self.hearings
            .get(destination)
            .filter(|h| h.trying == Some(state))
            .and_then(|h| h.retry_at)
    }

    /// When a resolved issue's resolution may be told: once it has stayed clear for the
    /// flap period.
    fn settled_at(&self, flap: Duration) -> DateTime<Utc> {
        self.resolved_at.unwrap_or(self.updated_at) + flap
    }

    /// Whether a destination heard this episode open and is still to hear it resolve, and
    /// none has heard it resolve yet: only then can a return continue the episode (one told
    /// of the resolution must hear of a return as a new opening, with a new notice id).
    fn resolution_owed(&self) -> bool {
        let told_resolved = self.hearings.values().any(|h| {
            h.heard == Some(AlertStatus::Resolved)
                && !h.failed
                && h.at.is_some_and(|at| at >= self.opened_at)
        });
        !told_resolved
            && self
                .hearings
                .values()
                .any(|h| h.heard == Some(AlertStatus::Open) && !h.failed)
    }

    /// The issue as a new episode from `now` (its count and first error start again, and an
    /// acknowledgement is cleared), keeping who heard what.
    pub fn new_episode(&self, now: DateTime<Utc>) -> Self {
        let mut issue = self.clone();
        issue.opened_at = now;
        issue.updated_at = now;
        issue.count = 1;
        issue.first_error = issue.last_error.clone();
        issue.acked_at = None;
        issue.acked_by = None;
        issue.hearings.retain(|_, h| !h.failed);
        issue.due_at = Some(now);
        issue
    }

    /// Records that `destination` was told `state` at `now`.
    pub fn heard(&mut self, destination: &str, state: AlertStatus, now: DateTime<Utc>) {
        self.hearings.insert(
            destination.to_string(),
            Hearing {
                heard: Some(state),
                at: Some(now),
                trying: None,
                attempts: 0,
                retry_at: None,
                last_error: None,
                failed: false,
            },
        );
    }

    /// Records a failed try to tell `destination` `state`: tried again after a back-off, or
    /// given up on (and kept as failed) after [`MAX_DELIVERY_ATTEMPTS`].
    pub fn not_heard(
        &mut self,
        destination: &str,
        state: AlertStatus,
        error: &str,
        now: DateTime<Utc>,
    ) {
        let entry = self
            .hearings
            .entry(destination.to_string())
            .or_insert(Hearing {
                heard: None,
                at: None,
                trying: None,
                attempts: 0,
                retry_at: None,
                last_error: None,
                failed: false,
            });
        if entry.trying != Some(state) {
            entry.trying = Some(state);
            entry.attempts = 0;
            entry.retry_at = None;
        }
        entry.attempts += 1;
        entry.last_error = Some(clip(error));
        if entry.attempts >= MAX_DELIVERY_ATTEMPTS {
            entry.heard = Some(state);
            entry.at = Some(now);
            entry.trying = None;
            entry.attempts = 0;
            entry.retry_at = None;
            entry.failed = true;
        } else {
            let wait = FIRST_RETRY * 2_i32.pow(entry.attempts.saturating_sub(1).min(10));
            entry.retry_at = Some(now + wait);
        }
    }

    /// When the sweeper should look at it again for `destinations`; `None` when nobody is
    /// to be told anything more.
    pub fn next_due(
        &self,
        destinations: &[String],
        now: DateTime<Utc>,
        flap: Duration,
    ) -> Option<DateTime<Utc>> {
        destinations
            .iter()
            .filter_map(|d| {
                let wanted = self.pending_for(d)?;
                let retry = self.retry_at(d, wanted).unwrap_or(now);
                let quiet = match wanted {
                    AlertStatus::Open => now,
                    AlertStatus::Resolved => self.settled_at(flap),
                };
                Some(retry.max(quiet).max(now))
            })
            .min()
    }
}

/// Where a tenant's alerts go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DestinationKind {
    /// The deployment's SNS alert topic (in the template), with the tenant as a message
    /// attribute for subscription filters.
    Sns,
    /// A Slack-compatible incoming-webhook URL (sealed: it is a credential).
    Slack,
    /// A generic webhook, each notice signed with HMAC-SHA256 under a secret of its own.
    Webhook,
}

impl DestinationKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            DestinationKind::Sns => "sns",
            DestinationKind::Slack => "slack",
            DestinationKind::Webhook => "webhook",
        }
    }
}

impl std::str::FromStr for DestinationKind {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sns" => Ok(DestinationKind::Sns),
            "slack" => Ok(DestinationKind::Slack),
            "webhook" => Ok(DestinationKind::Webhook),
            other => Err(UnknownValue {
                value: other.to_string(),
                allowed: "sns, slack, webhook",
            }),
        }
    }
}

/// A tenant's alert destination as stored: its URL and signing secret sealed together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertDestination {
    pub id: String,
    pub tenant_id: TenantId,
    pub kind: DestinationKind,
    pub name: String,
    /// The URL's scheme and host, for display (the rest can be a credential).
    pub url_host: Option<String>,
    /// `{"url": .., "secret": ..}`, sealed with the tenant and destination as context.
    pub sealed: Option<super::Sealed>,
    pub created_at: DateTime<Utc>,
}

/// What a destination's sealed part holds.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestinationSecret {
    pub url: String,
    #[serde(default)]
    pub secret: Option<String>,
}

impl fmt::Debug for DestinationSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DestinationSecret(..)")
    }
}

/// Why a destination URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UrlRefused(pub String);

/// Whether an address is one a notification must never reach in AWS: loopback, private,
/// link-local (the instance metadata service among them), unspecified, multicast, shared
/// (carrier-grade NAT), documentation or unique-local.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || o[0] >= 240
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let embedded = |hi: u16, lo: u16| {
                let [a, b] = hi.to_be_bytes();
                let [c, d] = lo.to_be_bytes();
                is_internal(IpAddr::V4(std::net::Ipv4Addr::new(a, b, c, d)))
            };
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            // An IPv4 address carried in IPv6 (compatible `::a.b.c.d`, NAT64 `64:ff9b::/96`,
            // 6to4 `2002::/16`) is as internal as the address it carries.
            if s[..6] == [0; 6] && !v6.is_loopback() && !v6.is_unspecified() {
                return embedded(s[6], s[7]);
            }
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                return embedded(s[6], s[7]);
            }
            if s[0] == 0x2002 && embedded(s[1], s[2]) {
                return true;
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] & 0xffc0) == 0xfec0
                || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1)
                || (s[0] == 0x100 && s[1..4] == [0, 0, 0])
                || s[0] == 0x2001 && s[1] == 0x0db8
        }
    }
}

/// Checks a destination URL: `https` with a host, no credentials in it, and (unless
/// `allow_internal`, which only the local stack sets) no host that names an internal
/// address or `localhost`. The host is read strictly, so that no HTTP client reads another
/// host in it: a domain name of ASCII letters, digits, `-` and `.` (an international name
/// in its `xn--` form), a dotted-decimal IPv4 address or a bracketed IPv6 one; a host whose
/// last label is a number (`127.1`, `0x7f.1`, `2130706433`) must be a plain dotted-decimal
/// address, and `\`, `%` and `@` are refused in it. Names are checked again when a notice is
/// sent, by the resolver the sender uses, since a name can point anywhere later. Answers
/// the scheme and host.
pub fn check_destination_url(text: &str, allow_internal: bool) -> Result<String, UrlRefused> {
    let refuse = |why: &str| Err(UrlRefused(format!("url {why}")));
    if text.len() > 2_048 {
        return refuse("is longer than 2048 characters");
    }
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return refuse("must not contain spaces or control characters");
    }
    if text.contains('\\') {
        return refuse("must not contain a backslash");
    }
    let (scheme, rest) = match text.split_once("://") {
        Some((s, r)) => (s.to_ascii_lowercase(), r),
        None => return refuse("must be an absolute https URL"),
    };
    if scheme != "https" && !(allow_internal && scheme == "http") {
        return refuse("must use https");
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return refuse("must not carry credentials before the host");
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        match v6.split_once(']') {
            Some((h, after)) => (h.to_string(), after.strip_prefix(':')),
            None => return refuse("has a malformed IPv6 host"),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_ascii_lowercase(), Some(p)),
            None => (authority.to_ascii_lowercase(), None),
        }
    };
    if let Some(port) = port {
        if !port.bytes().all(|b| b.is_ascii_digit()) || port.parse::<u16>().is_err() {
            return refuse("has a malformed port");
        }
    }
    let ip = if authority.starts_with('[') {
        match host.parse::<std::net::Ipv6Addr>() {
            Ok(v6) => IpAddr::V6(v6),
            Err(_) => return refuse("has a malformed IPv6 host"),
        }
    } else {
        let name = host.strip_suffix('.').unwrap_or(&host);
        if name.is_empty() {
            return refuse("has no host");
        }
        let valid = |label: &str| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        };
        if !name.split('.').all(valid) {
            return refuse(
                "must name its host with ASCII letters, digits, '-' and '.' (an international name in its xn-- form)",
            );
        }
        let last = name.rsplit('.').next().unwrap_or_default();
        let numeric = last.bytes().all(|b| b.is_ascii_digit()) || last.starts_with("0x");
        if !numeric {
            if !allow_internal {
                if name == "localhost"
                    || name.ends_with(".localhost")
                    || name.ends_with(".internal")
                {
                    return refuse("must not name a local host");
                }
                if !name.contains('.') {
                    return refuse("must name a host by its full domain name");
                }
            }
            return Ok(format!("{scheme}://{authority}"));
        }
        match name.parse::<std::net::Ipv4Addr>() {
            Ok(v4) => IpAddr::V4(v4),
            Err(_) => return refuse("must name an IPv4 host as four decimal numbers (a.b.c.d)"),
        }
    };
    if !allow_internal && is_internal(ip) {
        return refuse("must not name a private, loopback or link-local address");
    }
    Ok(format!("{scheme}://{authority}"))
}

/// One notice: an issue as a destination is told of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notice {
    /// Stable for (issue, episode, state): a receiver can drop a repeat.
    pub notice_id: String,
    pub event: AlertStatus,
    pub alert_id: String,
    pub tenant_id: TenantId,
    pub kind: AlertKind,
    pub subject: String,
    pub summary: String,
    pub first_error: String,
    pub last_error: String,
    pub count: u64,
    pub opened_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub what_to_do: &'static str,
    /// The API URL of what it is about.
    pub link: Option<String>,
}

impl Notice {
    pub fn of(issue: &AlertIssue, event: AlertStatus, api_base: &str) -> Self {
        let what = match issue.kind {
            AlertKind::RunFailed => "a sync run failed",
            AlertKind::FailingSchedule => "a schedule's runs keep failing",
            AlertKind::MissedFire => "a schedule's fire time was missed",
            AlertKind::AutoPaused => "a schedule was paused after failing in a row",
            AlertKind::RecordsQuarantined => "records of a stream keep failing and are set aside",
            AlertKind::NeedsReauth => "a platform refused a connection's credentials",
            AlertKind::WebhooksSilent => "a stream's changes come by polling only, not by webhook",
        };
        let summary = match event {
            AlertStatus::Open => format!(
                "[{}] {what} ({}): seen {} time(s) since {}",
                issue.tenant_id,
                issue.subject,
                issue.count,
                issue.opened_at.format("%Y-%m-%d %H:%M UTC")
            ),
            AlertStatus::Resolved => format!(
                "[{}] resolved: {what} ({}), after {} time(s)",
                issue.tenant_id, issue.subject, issue.count
            ),
        };
        let episode = issue.opened_at.timestamp_millis();
        Notice {
            notice_id: format!("{}-{episode}-{}", issue.id, event.as_str()),
            event,
            alert_id: issue.id.clone(),
            tenant_id: issue.tenant_id.clone(),
            kind: issue.kind,
            subject: issue.subject.clone(),
            summary,
            first_error: issue.first_error.clone(),
            last_error: issue.last_error.clone(),
            count: issue.count,
            opened_at: issue.opened_at,
            resolved_at: issue.resolved_at,
            what_to_do: issue.kind.hint(),
            link: issue
                .link
                .as_ref()
                .map(|path| format!("{}{path}", api_base.trim_end_matches('/'))),
        }
    }

    /// The notice as one line of text (Slack, SNS).
    pub fn text(&self) -> String {
        let mut text = self.summary.clone();
        if self.event == AlertStatus::Open {
            text.push_str(&format!("\nLast error: {}", self.last_error));
            if self.first_error != self.last_error {
                text.push_str(&format!("\nFirst error: {}", self.first_error));
            }
            text.push_str(&format!("\nWhat to do: {}", self.what_to_do));
        }
        if let Some(link) = &self.link {
            text.push_str(&format!("\n{link}"));
        }
        text
    }
}

#[cfg(test)]
#[path = "alert_tests.rs"]
mod tests;
