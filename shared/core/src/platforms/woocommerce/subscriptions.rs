//! A store's webhooks, managed through `wc/v3/webhooks`: one per topic the sync uses
//! (orders, customers and products; created, updated, deleted, restored), all delivering to
//! the connection's webhook URL and signed with its secret.
//!
//! Subscribing lists the store's webhooks (every status, 100 a page), updates the ones for
//! this URL (secret, `active`), deletes duplicates of a topic, and creates what is missing.
//! A create whose answer is lost is found by the next call's listing, not made twice.
//! WooCommerce pings a new webhook's URL (an unsigned form body); the intake answers it.

use async_trait::async_trait;
use serde_json::{json, Value};

use super::connector::{encode, WooConnector, PAGE};
use crate::platforms::http::{unexpected, Replay};
use crate::platforms::id_text;
use crate::ports::{
    Method, PlatformError, Subscription, SubscriptionChange, WebhookSubscriptions,
};

/// The topics the sync subscribes to.
pub const TOPICS: [&str; 12] = [
    "order.created",
    "order.updated",
    "order.deleted",
    "order.restored",
    "customer.created",
    "customer.updated",
    "customer.deleted",
    "customer.restored",
    "product.created",
    "product.updated",
    "product.deleted",
    "product.restored",
];

/// A webhook as listed.
struct Listed {
    id: String,
    topic: String,
    url: String,
}

impl WooConnector {
    /// Every webhook of the store.
    async fn all_webhooks(&self) -> Result<Vec<Listed>, PlatformError> {
        let mut found = Vec::new();
        for page in 1.. {
            let query = [
                ("per_page", PAGE.to_string()),
                ("page", page.to_string()),
                ("status", "all".to_string()),
            ];
            let response = self
                .caller
                .send_fresh(&|| self.request(Method::Get, "webhooks", &query), Replay::Safe)
                .await?;
            if !response.is_success() {
                return Err(unexpected("WooCommerce", "GET webhooks", &response));
            }
            let items = match response.json().map_err(PlatformError::Unavailable)? {
                Value::Array(items) => items,
                _ => {
                    return Err(PlatformError::Unavailable(
                        "WooCommerce answered GET webhooks with something other than a list".into(),
                    ))
                }
            };
            let count = items.len();
            found.extend(items.iter().filter_map(|w| {
                Some(Listed {
                    id: id_text(w.get("id"))?,
                    topic: w["topic"].as_str()?.to_string(),
                    url: w["delivery_url"].as_str()?.to_string(),
                })
            }));
            if count < PAGE {
                break;
            }
        }
        Ok(found)
    }

    /// Sends one webhook call; the subscription it answers with.
    async fn webhook_call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Value>,
        change: SubscriptionChange,
    ) -> Result<Subscription, PlatformError> {
        let replay = if method == Method::Post && path == "webhooks" {
            Replay::Unsafe
        } else {
            Replay::Safe
        };
        let build = || {
            let request = self.request(method, path, query);
            match &body {
                Some(b) => request.json(b),
                None => request,
            }
        };
        let response = self.caller.send_fresh(&build, replay).await?;
        if !response.is_success() {
            let what = format!("{} {path}", method.as_str());
            return Err(match response.status {
                400 | 401 | 403 | 404 | 413 => PlatformError::Rejected(format!(
                    "WooCommerce answered {} to {what}: {}",
                    response.status,
                    response.snippet()
                )),
                _ => unexpected("WooCommerce", &what, &response),
            });
        }
        let v = response.json().map_err(PlatformError::Unavailable)?;
        Ok(Subscription {
            id: id_text(v.get("id")).unwrap_or_default(),
            topic: v["topic"].as_str().unwrap_or_default().to_string(),
            status: v["status"].as_str().unwrap_or_default().to_string(),
            change,
        })
    }

    async fn delete_webhook(&self, id: &str) -> Result<Subscription, PlatformError> {
        let path = format!("webhooks/{}", encode(id));
        self.webhook_call(
            Method::Delete,
            &path,
            &[("force", "true".to_string())],
            None,
            SubscriptionChange::Removed,
        )
        .await
    }
}

#[async_trait]
impl WebhookSubscriptions for WooConnector {
    async fn subscribe(&self, url: &str, secret: &str) -> Result<Vec<Subscription>, PlatformError> {
        let ours: Vec<Listed> = self
            .all_webhooks()
            .await?
            .into_iter()
            .filter(|w| w.url == url)
            .collect();
        let mut done = Vec::new();
        for topic in TOPICS {
            let mut existing = ours.iter().filter(|w| w.topic == topic);
            let fields = json!({
                "name": format!("Sync: {topic}"),
                "topic": topic,
                "delivery_url": url,
                "secret": secret,
                "status": "active",
            });
            match existing.next() {
                Some(first) => {
                    let path = format!("webhooks/{}", encode(&first.id));
                    done.push(
                        self.webhook_call(Method::Put, &path, &[], Some(fields), SubscriptionChange::Updated)
                            .await?,
                    );
                    for duplicate in existing {
                        done.push(self.delete_webhook(&duplicate.id).await?);
                    }
                }
                None => done.push(
                    self.webhook_call(Method::Post, "webhooks", &[], Some(fields), SubscriptionChange::Created)
                        .await?,
                ),
            }
        }
        Ok(done)
    }

    async fn unsubscribe(&self, url: &str) -> Result<Vec<Subscription>, PlatformError> {
        let mut done = Vec::new();
        for w in self.all_webhooks().await?.into_iter().filter(|w| w.url == url) {
            done.push(self.delete_webhook(&w.id).await?);
        }
        Ok(done)
    }
}
