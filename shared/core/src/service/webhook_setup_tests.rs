//! Registering webhooks at a platform, against in-memory fakes.

use super::*;
use crate::clock::FixedClock;
use crate::domain::Platform;
use crate::fixtures::{new_connection, tenant};
use crate::memory::{MemoryConnectors, MemoryPlatform};
use crate::ports::WebhookSubscriptions;
use crate::service::Services;

const BASE: &str = "https://api.example.com";

struct World {
    services: Services,
    setup: WebhookSetup,
    store: Arc<MemoryPlatform>,
    connection: Connection,
}

/// A WooCommerce connection created without a webhook secret, its store in memory.
async fn world() -> World {
    let clock: Arc<dyn Clock> = Arc::new(FixedClock::new(
        chrono::DateTime::from_timestamp(1_795_521_600, 0).unwrap_or_default(),
    ));
    let (services, mem) = Services::in_memory(clock.clone());
    let mut new = new_connection(Platform::WooCommerce);
    new.secrets
        .remove(Platform::WooCommerce.spec().webhook_secret);
    let connection = services
        .connections
        .create(&tenant(), new)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let store = Arc::new(MemoryPlatform::new(clock.clone(), 100));
    let connectors = Arc::new(MemoryConnectors::default());
    connectors.attach(connection.id, store.clone());
    let setup = WebhookSetup::new(
        mem.connections.clone(),
        mem.sealer.clone(),
        connectors,
        clock,
    );
    World {
        services,
        setup,
        store,
        connection,
    }
}

async fn stored_secret(w: &World) -> Option<String> {
    let now = w
        .services
        .connections
        .get(&tenant(), w.connection.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let secrets = w
        .services
        .connections
        .open_secrets(&now)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    secrets
        .get("webhook_secret")
        .map(|s| s.expose().to_string())
}

#[tokio::test]
async fn registering_stores_a_fresh_secret_sealed_and_subscribes_the_platform_with_it() {
    let w = world().await;
    assert_eq!(stored_secret(&w).await, None);
    let done = w
        .setup
        .register(&tenant(), w.connection.id, BASE)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let secret = stored_secret(&w).await.unwrap_or_default();
    assert_eq!(secret.len(), 48);
    assert!(done.connection.webhooks_enabled);
    let url = format!("{BASE}/webhooks/woocommerce/{}", w.connection.id);
    assert_eq!(done.webhook_url, url);
    let held = w.store.subscriptions();
    assert_eq!(held.len(), 3);
    assert!(held.iter().all(|(_, _, u, s)| *u == url && *s == secret));
    assert!(done
        .subscriptions
        .iter()
        .all(|s| s.change == crate::ports::SubscriptionChange::Created));
}

#[tokio::test]
async fn registering_twice_keeps_the_secret_and_doubles_nothing() {
    let w = world().await;
    let first = w.setup.register(&tenant(), w.connection.id, BASE).await;
    let secret = stored_secret(&w).await;
    let second = w
        .setup
        .register(&tenant(), w.connection.id, BASE)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(first.is_ok());
    assert_eq!(stored_secret(&w).await, secret);
    assert_eq!(w.store.subscriptions().len(), 3);
    assert!(second
        .subscriptions
        .iter()
        .all(|s| s.change == crate::ports::SubscriptionChange::Updated));
    // Nothing changed, so the connection was not rewritten either.
    assert_eq!(
        second.connection.version,
        first.map(|r| r.connection.version).unwrap_or(0)
    );
}

#[tokio::test]
async fn unregistering_removes_only_this_connections_subscriptions() {
    let w = world().await;
    let _ = w.setup.register(&tenant(), w.connection.id, BASE).await;
    let _ = w
        .store
        .subscribe("https://elsewhere.example.com/hook", "other")
        .await;
    let removed = w
        .setup
        .unregister(&tenant(), w.connection.id, BASE)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(removed.subscriptions.len(), 3);
    let left = w.store.subscriptions();
    assert_eq!(left.len(), 3);
    assert!(left.iter().all(|(_, _, u, _)| u.contains("elsewhere")));
}

#[tokio::test]
async fn another_tenants_connection_is_not_found_and_a_platform_without_the_api_is_a_field_error() {
    let w = world().await;
    let stranger = TenantId::parse("globex").unwrap_or_else(|e| panic!("{e}"));
    let refused = w.setup.register(&stranger, w.connection.id, BASE).await;
    assert!(matches!(refused, Err(ServiceError::NotFound("connection"))));
    w.store.set_webhook_api(false);
    let refused = w.setup.register(&tenant(), w.connection.id, BASE).await;
    assert!(
        matches!(&refused, Err(ServiceError::Invalid { field, .. }) if field == "platform"),
        "{refused:?}"
    );
    assert_eq!(stored_secret(&w).await, None);
}

#[tokio::test]
async fn refused_credentials_are_the_clients_to_fix_and_a_retry_uses_the_same_secret() {
    let w = world().await;
    w.store.set_rejecting(true);
    let refused = w.setup.register(&tenant(), w.connection.id, BASE).await;
    assert!(
        matches!(refused, Err(ServiceError::Platform(_))),
        "{refused:?}"
    );
    // The secret was stored before the platform was called: a platform that took it but
    // whose answer was lost still signs with a secret we know.
    let kept = stored_secret(&w).await;
    assert!(kept.is_some());
    w.store.set_rejecting(false);
    let done = w.setup.register(&tenant(), w.connection.id, BASE).await;
    assert!(done.is_ok());
    assert_eq!(stored_secret(&w).await, kept);
    assert!(w
        .store
        .subscriptions()
        .iter()
        .all(|(_, _, _, s)| Some(s) == kept.as_ref()));
}
