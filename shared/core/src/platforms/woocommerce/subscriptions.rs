//! A store's webhooks, managed through `wc/v3/webhooks`: one per topic the sync uses
//! (orders, customers and products; created, updated, deleted, restored), all delivering to
//! the connection's webhook URL and signed with its secret.
//!
//! Subscribing lists the store's webhooks (every status, 100 a page), updates the ones for
//! this URL (secret, `active`), deletes duplicates of a topic, and creates what is missing.
//! A create whose answer is lost is found by the next call's listing, not made twice.
//! WooCommerce pings a new webhook's URL (an unsigned form body); the intake answers it.

use async_trait::async_trait;
use futures::stream::{self, StreamExt, TryStreamExt};
use serde::Deserialize;
use serde_json::{json, Value};

use super::connector::{encode, WooConnector, PAGE};
use crate::platforms::fields::{read, Id, Text};
use crate::platforms::http::{unexpected, Replay};
use crate::ports::{Method, PlatformError, Subscription, SubscriptionChange, WebhookSubscriptions};

/// A webhook as WooCommerce answers it.
#[derive(Deserialize)]
struct Webhook {
    id: Id,
    topic: Text,
    #[serde(default)]
    delivery_url: Text,
    #[serde(default)]
    status: Text,
}

/// Most pages of webhooks read (10,000 webhooks; a store has a few dozen).
const MAX_WEBHOOK_PAGES: usize = 100;

/// Webhook calls made at once while subscribing.
const CALLS_IN_FLIGHT: usize = 4;

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

/// What subscribing does for one topic.
struct TopicPlan {
    fields: Value,
    /// Our webhook for the topic, if there is one.
    first: Option<String>,
    /// More of ours for the same topic: removed.
    duplicates: Vec<String>,
}

impl WooConnector {
    /// Every webhook of the store: pages up to `X-WP-TotalPages` (or a short page), and never
    /// more than [`MAX_WEBHOOK_PAGES`], so a store that ignores `page` cannot loop us.
    async fn all_webhooks(&self) -> Result<Vec<Listed>, PlatformError> {
        let mut found = Vec::new();
        for page in 1..=MAX_WEBHOOK_PAGES {
            let query = [
                ("per_page", PAGE.to_string()),
                ("page", page.to_string()),
                ("status", "all".to_string()),
            ];
            let response = self
                .caller
                .send_fresh(
                    &|| self.request(Method::Get, "webhooks", &query),
                    Replay::Safe,
                )
                .await?;
            if !response.is_success() {
                return Err(unexpected("WooCommerce", "GET webhooks", &response));
            }
            // A webhook we cannot read is not taken for none (ours would be made twice).
            let items: Vec<Webhook> = read(
                &response.json().map_err(PlatformError::Unavailable)?,
                "WooCommerce's webhooks",
            )
            .map_err(PlatformError::Unavailable)?;
            let count = items.len();
            found.extend(items.into_iter().map(|w| Listed {
                id: w.id.0,
                topic: w.topic.0,
                url: w.delivery_url.0,
            }));
            let total_pages = response
                .header("x-wp-totalpages")
                .and_then(|v| v.trim().parse::<usize>().ok());
            if count < PAGE || total_pages.is_some_and(|total| page >= total) {
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
        let w: Webhook = read(
            &response.json().map_err(PlatformError::Unavailable)?,
            "WooCommerce's webhook",
        )
        .map_err(PlatformError::Unavailable)?;
        Ok(Subscription {
            id: w.id.0,
            topic: w.topic.0,
            status: w.status.0,
            change,
        })
    }

    /// Makes one topic's webhook as planned: updates the first of ours (removing the
    /// duplicates), or creates it.
    async fn apply(&self, plan: TopicPlan) -> Result<Vec<Subscription>, PlatformError> {
        let mut done = Vec::new();
        match plan.first {
            Some(id) => {
                let path = format!("webhooks/{}", encode(&id));
                done.push(
                    self.webhook_call(
                        Method::Put,
                        &path,
                        &[],
                        Some(plan.fields),
                        SubscriptionChange::Updated,
                    )
                    .await?,
                );
                for duplicate in plan.duplicates {
                    done.push(self.delete_webhook(&duplicate).await?);
                }
            }
            None => done.push(
                self.webhook_call(
                    Method::Post,
                    "webhooks",
                    &[],
                    Some(plan.fields),
                    SubscriptionChange::Created,
                )
                .await?,
            ),
        }
        Ok(done)
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
        // One call per topic (plus one per duplicate to remove), a few at a time, in order.
        let plan: Vec<TopicPlan> = TOPICS
            .iter()
            .map(|topic| {
                let mut existing = ours.iter().filter(|w| w.topic == *topic);
                TopicPlan {
                    fields: json!({
                        "name": format!("Sync: {topic}"),
                        "topic": topic,
                        "delivery_url": url,
                        "secret": secret,
                        "status": "active",
                    }),
                    first: existing.next().map(|w| w.id.clone()),
                    duplicates: existing.map(|w| w.id.clone()).collect(),
                }
            })
            .collect();
        let per_topic: Vec<Vec<Subscription>> = stream::iter(plan)
            .map(|p| self.apply(p))
            .buffered(CALLS_IN_FLIGHT)
            .try_collect()
            .await?;
        Ok(per_topic.into_iter().flatten().collect())
    }

    async fn unsubscribe(&self, url: &str) -> Result<Vec<Subscription>, PlatformError> {
        let mut done = Vec::new();
        for w in self
            .all_webhooks()
            .await?
            .into_iter()
            .filter(|w| w.url == url)
        {
            done.push(self.delete_webhook(&w.id).await?);
        }
        Ok(done)
    }
}
