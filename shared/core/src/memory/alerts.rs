//! In-memory alert issues, destinations, topic and an HTTP receiver of notices.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use super::lock;
use crate::domain::{AlertDestination, AlertIssue, AlertStatus, TenantId};
use crate::ports::{
    AlertDestinations, AlertIssues, AlertTopic, HttpClient, HttpRequest, HttpResponse, StoreError,
    TransportError,
};

/// Issues and destinations, with a switch that makes every call fail as an unreachable
/// table does.
#[derive(Default)]
pub struct MemoryAlerts {
    issues: Mutex<BTreeMap<(TenantId, String), AlertIssue>>,
    destinations: Mutex<Vec<AlertDestination>>,
    pub fail: AtomicBool,
    /// The next this many puts find the issue changed by another writer (which bumped its
    /// version), as a concurrent raise or delivery does.
    pub interleave: std::sync::atomic::AtomicU32,
    /// When not 0, the put that many puts from now fails as an unreachable table does
    /// (once): `1` is the next.
    pub fail_put_in: std::sync::atomic::AtomicU32,
}

impl MemoryAlerts {
    fn check(&self) -> Result<(), StoreError> {
        if self.fail.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable("table unreachable".into()))
        } else {
            Ok(())
        }
    }

    /// Every issue, for inspection.
    pub fn all(&self) -> Vec<AlertIssue> {
        lock(&self.issues).values().cloned().collect()
    }
}

#[async_trait]
impl AlertIssues for MemoryAlerts {
    async fn get(&self, tenant: &TenantId, id: &str) -> Result<Option<AlertIssue>, StoreError> {
        self.check()?;
        Ok(lock(&self.issues)
            .get(&(tenant.clone(), id.to_string()))
            .cloned())
    }

    async fn put(&self, issue: &AlertIssue, expected: Option<u64>) -> Result<(), StoreError> {
        self.check()?;
        if self
            .fail_put_in
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            == Ok(1)
        {
            return Err(StoreError::Unavailable("table unreachable".into()));
        }
        let mut issues = lock(&self.issues);
        let key = (issue.tenant_id.clone(), issue.id.clone());
        if self
            .interleave
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            if let Some(other) = issues.get_mut(&key) {
                other.version += 1;
                other.count += 1;
            }
            return Err(StoreError::Conflict);
        }
        let stored = issues.get(&key).map(|i| i.version);
        if stored != expected {
            return Err(if expected.is_none() {
                StoreError::AlreadyExists
            } else {
                StoreError::Conflict
            });
        }
        issues.insert(key, issue.clone());
        Ok(())
    }

    async fn list(
        &self,
        tenant: &TenantId,
        status: Option<AlertStatus>,
    ) -> Result<Vec<AlertIssue>, StoreError> {
        self.check()?;
        let mut found: Vec<AlertIssue> = lock(&self.issues)
            .values()
            .filter(|i| &i.tenant_id == tenant && status.is_none_or(|s| i.status == s))
            .cloned()
            .collect();
        found.sort_by_key(|i| std::cmp::Reverse(i.updated_at));
        Ok(found)
    }

    async fn due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<AlertIssue>, StoreError> {
        self.check()?;
        let mut found: Vec<AlertIssue> = lock(&self.issues)
            .values()
            .filter(|i| i.due_at.is_some_and(|d| d <= now))
            .cloned()
            .collect();
        found.sort_by_key(|i| i.due_at);
        found.truncate(limit);
        Ok(found)
    }

    async fn open(&self) -> Result<Vec<AlertIssue>, StoreError> {
        self.check()?;
        Ok(lock(&self.issues)
            .values()
            .filter(|i| i.status == AlertStatus::Open)
            .cloned()
            .collect())
    }
}

#[async_trait]
impl AlertDestinations for MemoryAlerts {
    async fn insert(&self, destination: &AlertDestination) -> Result<(), StoreError> {
        self.check()?;
        let mut all = lock(&self.destinations);
        if all
            .iter()
            .any(|d| d.tenant_id == destination.tenant_id && d.id == destination.id)
        {
            return Err(StoreError::AlreadyExists);
        }
        all.push(destination.clone());
        Ok(())
    }

    async fn list(&self, tenant: &TenantId) -> Result<Vec<AlertDestination>, StoreError> {
        self.check()?;
        Ok(lock(&self.destinations)
            .iter()
            .filter(|d| &d.tenant_id == tenant)
            .cloned()
            .collect())
    }

    async fn delete(&self, tenant: &TenantId, id: &str) -> Result<bool, StoreError> {
        self.check()?;
        let mut destinations = lock(&self.destinations);
        let before = destinations.len();
        destinations.retain(|d| !(&d.tenant_id == tenant && d.id == id));
        Ok(destinations.len() < before)
    }
}

/// An alert topic that keeps what was published.
#[derive(Default)]
pub struct MemoryTopic {
    /// (tenant, subject, message, dedup id)
    pub published: Mutex<Vec<(String, String, String, String)>>,
}

#[async_trait]
impl AlertTopic for MemoryTopic {
    async fn publish(
        &self,
        tenant: &TenantId,
        subject: &str,
        message: &str,
        dedup: &str,
    ) -> Result<(), String> {
        lock(&self.published).push((
            tenant.to_string(),
            subject.to_string(),
            message.to_string(),
            dedup.to_string(),
        ));
        Ok(())
    }
}

/// One request as a receiver took it: URL, headers, body.
pub type Request = (String, Vec<(String, String)>, Vec<u8>);

/// A receiver of notices over HTTP: keeps each request (URL, headers, body) and answers
/// the status set for it (200 unless set), or fails to connect.
#[derive(Default)]
pub struct MemoryReceiver {
    pub received: Mutex<Vec<Request>>,
    /// The status every request is answered with; 0 means 200.
    pub status: std::sync::atomic::AtomicU16,
    /// Refuse connections, as a host that is down.
    pub down: AtomicBool,
}

impl MemoryReceiver {
    /// The bodies received at URLs starting with `prefix`, as JSON.
    pub fn bodies(&self, prefix: &str) -> Vec<serde_json::Value> {
        lock(&self.received)
            .iter()
            .filter(|(url, _, _)| url.starts_with(prefix))
            .filter_map(|(_, _, body)| serde_json::from_slice(body).ok())
            .collect()
    }
}

#[async_trait]
impl HttpClient for MemoryReceiver {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(TransportError::Connect("connection refused".into()));
        }
        lock(&self.received).push((
            request.url.clone(),
            request.headers.clone(),
            request.body.clone().unwrap_or_default(),
        ));
        let status = match self.status.load(Ordering::SeqCst) {
            0 => 200,
            s => s,
        };
        Ok(HttpResponse {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        })
    }
}
