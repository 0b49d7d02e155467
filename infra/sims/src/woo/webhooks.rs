//! The store's webhooks as `WC_Webhook` keeps and delivers them: topics, a ping on creation,
//! deliveries queued and coalesced per (webhook, resource) the way Action Scheduler does,
//! payloads built at send time, signed over the exact bytes sent, a webhook disabled after
//! more than five failures in a row, no retries.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet, VecDeque};

use super::php;
use super::store::{gmt_text, Kind};

#[derive(Clone, Debug)]
pub struct Webhook {
    pub id: u64,
    pub name: String,
    pub status: String,
    pub topic: String,
    pub delivery_url: String,
    pub secret: String,
    pub failure_count: u32,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
}

impl Webhook {
    pub fn resource(&self) -> &str {
        self.topic.split('.').next().unwrap_or_default()
    }

    pub fn event(&self) -> &str {
        self.topic.split('.').nth(1).unwrap_or_default()
    }

    pub fn render(&self, home: &str, with_secret: bool) -> Value {
        let hooks: Vec<String> = match self.topic.as_str() {
            "order.created" => vec!["woocommerce_new_order".into()],
            "order.updated" => vec![
                "woocommerce_update_order".into(),
                "woocommerce_order_refunded".into(),
            ],
            "order.deleted" => vec!["wp_trash_post".into(), "woocommerce_trash_order".into()],
            t => vec![format!("woocommerce_{}", t.replace('.', "_"))],
        };
        let mut v = json!({
            "id": self.id, "name": self.name, "status": self.status, "topic": self.topic,
            "resource": self.resource(), "event": self.event(), "hooks": hooks,
            "delivery_url": self.delivery_url,
            "date_created": gmt_text(self.created), "date_created_gmt": gmt_text(self.created),
            "date_modified": gmt_text(self.modified), "date_modified_gmt": gmt_text(self.modified),
            "_links": {"self": [{"href": format!("{home}/wp-json/wc/v3/webhooks/{}", self.id)}],
                       "collection": [{"href": format!("{home}/wp-json/wc/v3/webhooks")}]},
        });
        if with_secret {
            v["secret"] = json!(self.secret);
        }
        v
    }
}

/// `wc_is_webhook_valid_topic`.
pub fn valid_topic(topic: &str) -> bool {
    if topic.starts_with("action.woocommerce_") || topic.starts_with("action.wc_") {
        return true;
    }
    match topic.split_once('.') {
        Some((resource, event)) => {
            matches!(resource, "coupon" | "customer" | "order" | "product")
                && matches!(event, "created" | "updated" | "deleted" | "restored")
        }
        None => false,
    }
}

/// A delivery waiting to be sent.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Pending {
    pub webhook: u64,
    pub kind: Kind,
    pub resource: u64,
}

/// A delivery made, as the admin route lists it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Delivered {
    pub webhook_id: u64,
    pub topic: String,
    pub resource_id: u64,
    pub delivery_url: String,
    /// The HTTP status, 0 when the request failed.
    pub status: u16,
    pub ok: bool,
    pub at: String,
    /// The `X-WC-Webhook-Signature` it carried.
    pub signature: String,
}

/// Webhooks and their queue.
#[derive(Default)]
pub struct Webhooks {
    pub hooks: BTreeMap<u64, Webhook>,
    next_id: u64,
    queue: VecDeque<Pending>,
    queued: HashSet<Pending>,
    pub log: VecDeque<Delivered>,
}

/// Deliveries kept for the admin route.
const LOG_SIZE: usize = 2_000;

impl Webhooks {
    pub fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Queues `event` on `kind`'s record `id` for every active webhook with that topic;
    /// one already waiting for the same (webhook, record) is not queued twice.
    pub fn fire(&mut self, kind: Kind, event: &str, id: u64) {
        let topic = format!("{}.{event}", kind.resource());
        let hooks: Vec<u64> = self
            .hooks
            .values()
            .filter(|h| h.status == "active" && h.topic == topic)
            .map(|h| h.id)
            .collect();
        for webhook in hooks {
            let pending = Pending {
                webhook,
                kind,
                resource: id,
            };
            if self.queued.insert(pending.clone()) {
                self.queue.push_back(pending);
            }
        }
    }

    pub fn take(&mut self) -> Vec<Pending> {
        self.queued.clear();
        self.queue.drain(..).collect()
    }

    pub fn waiting(&self) -> usize {
        self.queue.len()
    }

    /// Records a delivery's result: a success resets the failure count; a failure when more
    /// than five came before disables the webhook.
    pub fn settle(&mut self, delivered: Delivered) {
        if let Some(h) = self.hooks.get_mut(&delivered.webhook_id) {
            if delivered.ok {
                h.failure_count = 0;
            } else if h.failure_count > 5 {
                h.status = "disabled".into();
            } else {
                h.failure_count += 1;
            }
        }
        self.log.push_back(delivered);
        while self.log.len() > LOG_SIZE {
            self.log.pop_front();
        }
    }

    pub fn clear(&mut self) {
        *self = Self::default();
    }
}

/// The signature WooCommerce sends: base64 HMAC-SHA256 of the body, keyed with the secret
/// entity-decoded.
pub fn signature(secret: &str, body: &[u8]) -> String {
    php::hmac_base64(php::specialchars_decode(secret).as_bytes(), body)
}

/// `wp_hash($webhook_id . strtotime('now'))`: the same for two deliveries of one webhook in
/// one second.
pub fn delivery_id(webhook: u64, now: DateTime<Utc>) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{webhook}{}", now.timestamp()).as_bytes());
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(id: u64, topic: &str) -> Webhook {
        Webhook {
            id,
            name: String::new(),
            status: "active".into(),
            topic: topic.into(),
            delivery_url: "http://127.0.0.1:1/".into(),
            secret: "s".into(),
            failure_count: 0,
            created: Utc::now(),
            modified: Utc::now(),
        }
    }

    #[test]
    fn rapid_changes_to_one_record_coalesce_into_one_delivery() {
        let mut w = Webhooks::default();
        w.hooks.insert(1, hook(1, "product.updated"));
        w.hooks.insert(2, hook(2, "product.deleted"));
        for _ in 0..5 {
            w.fire(Kind::Products, "updated", 7);
        }
        w.fire(Kind::Products, "updated", 8);
        w.fire(Kind::Orders, "updated", 7);
        assert_eq!(w.take().len(), 2);
        w.fire(Kind::Products, "updated", 7);
        assert_eq!(w.waiting(), 1);
    }

    #[test]
    fn the_seventh_failure_in_a_row_disables_and_a_success_resets() {
        let mut w = Webhooks::default();
        w.hooks.insert(1, hook(1, "order.updated"));
        let result = |ok| Delivered {
            webhook_id: 1,
            topic: "order.updated".into(),
            resource_id: 1,
            delivery_url: String::new(),
            status: if ok { 200 } else { 500 },
            ok,
            at: String::new(),
            signature: String::new(),
        };
        for _ in 0..6 {
            w.settle(result(false));
        }
        assert_eq!(w.hooks[&1].status, "active");
        w.settle(result(true));
        assert_eq!(w.hooks[&1].failure_count, 0);
        for _ in 0..7 {
            w.settle(result(false));
        }
        assert_eq!(w.hooks[&1].status, "disabled");
    }

    #[test]
    fn topics_are_checked_like_woocommerce() {
        assert!(valid_topic("order.updated") && valid_topic("action.woocommerce_x"));
        assert!(
            !valid_topic("order.exploded") && !valid_topic("invoice.created") && !valid_topic("x")
        );
    }
}
