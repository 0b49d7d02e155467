//! Connection use cases against in-memory fakes.

use super::*;
use crate::clock::FixedClock;
use crate::domain::{EntityType, NewSchedule, SyncMode};
use crate::memory::{MemoryConnectionStore, MemoryScheduleStore, MemorySealer, MemoryTrigger};
use crate::ports::ConnectionReader;
use crate::time::ScheduleExpression;
use serde_json::json;

struct World {
    connections: ConnectionService,
    schedules: ScheduleService,
    store: Arc<MemoryConnectionStore>,
    trigger: Arc<MemoryTrigger>,
    tenant: TenantId,
}

fn world() -> World {
    let store = Arc::new(MemoryConnectionStore::default());
    let trigger = Arc::new(MemoryTrigger::default());
    let clock = Arc::new(FixedClock::new(
        DateTime::parse_from_rfc3339("2026-11-24T12:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default(),
    ));
    let schedule_store = Arc::new(MemoryScheduleStore::checking(store.clone()));
    let schedules = ScheduleService::new(
        schedule_store.clone(),
        trigger.clone(),
        store.clone(),
        clock.clone(),
    )
    .creating(schedule_store);
    let connections = ConnectionService::new(
        store.clone(),
        store.clone(),
        Arc::new(MemorySealer::default()),
        schedules.clone(),
        Arc::new(crate::memory::MemoryFlows::new(store.clone())),
        clock,
    );
    World {
        connections,
        schedules,
        store,
        trigger,
        tenant: TenantId::parse("acme").unwrap_or_else(|e| panic!("{e}")),
    }
}

fn secrets(pairs: &[(&str, &str)]) -> Secrets {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Secret::new(*v)))
        .collect()
}

fn config(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

fn woo() -> NewConnection {
    NewConnection {
        platform: Platform::WooCommerce,
        display_name: " Main store ".into(),
        config: config(json!({"base_url": "https://shop.example.com"})),
        secrets: secrets(&[
            (
                "consumer_key",
                "ck_0123456789abcdef0123456789abcdef01234567",
            ),
            (
                "consumer_secret",
                "cs_0123456789abcdef0123456789abcdef0123abcd",
            ),
            ("webhook_secret", "whsec-0123456789abcdefWXYZ"),
        ]),
        webhooks_enabled: None,
    }
}

fn field_of<T: std::fmt::Debug>(r: Result<T, ServiceError>) -> String {
    match r {
        Err(ServiceError::Invalid { field, .. }) => field,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[tokio::test]
async fn secrets_are_stored_sealed_and_only_hinted() {
    let w = world();
    let c = w
        .connections
        .create(&w.tenant, woo())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.display_name, "Main store");
    assert!(
        c.webhooks_enabled,
        "a webhook secret turns webhooks on by default"
    );
    assert_eq!(
        c.secret_hints.get("consumer_secret").map(String::as_str),
        Some("…abcd")
    );
    assert_eq!(
        c.secret_hints.get("webhook_secret").map(String::as_str),
        Some("…WXYZ")
    );
    let dump = format!("{c:?}");
    assert!(
        !dump.contains("cs_0123456789abcdef"),
        "plaintext in the record: {dump}"
    );
    let opened = w
        .connections
        .open_secrets(&c)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        opened.get("consumer_secret").map(Secret::expose),
        Some("cs_0123456789abcdef0123456789abcdef0123abcd")
    );
}

#[tokio::test]
async fn sealed_secrets_moved_to_another_connection_do_not_open() {
    let w = world();
    let a = w
        .connections
        .create(&w.tenant, woo())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut b = w
        .connections
        .create(&w.tenant, woo())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    b.sealed_secrets = a.sealed_secrets.clone();
    assert!(w.connections.open_secrets(&b).await.is_err());
}

#[tokio::test]
async fn a_connection_created_under_a_known_id_opens_its_secrets_and_the_id_cannot_be_taken_twice()
{
    let w = world();
    let id = ConnectionId::new_random();
    let c = w
        .connections
        .create_with_id(&w.tenant, id, woo())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.id, id);
    let open = w
        .connections
        .open_secrets(&c)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        open.get("webhook_secret").map(|s| s.expose()),
        Some("whsec-0123456789abcdefWXYZ")
    );
    let again = w.connections.create_with_id(&w.tenant, id, woo()).await;
    assert!(matches!(again, Err(ServiceError::Conflict(_))), "{again:?}");
    let mut bad = woo();
    bad.config.remove("base_url");
    let other = ConnectionId::new_random();
    assert!(w
        .connections
        .create_with_id(&w.tenant, other, bad)
        .await
        .is_err());
    assert!(w.store.get(other).await.ok().flatten().is_none());
}

#[tokio::test]
async fn config_and_secrets_are_checked_against_the_platform() {
    let w = world();
    type Change = Box<dyn Fn(&mut NewConnection)>;
    let cases: Vec<(Change, &str)> = vec![
        (
            Box::new(|n| {
                n.config.remove("base_url");
            }),
            "config.base_url",
        ),
        (
            Box::new(|n| {
                n.config.insert("base_url".into(), json!("ftp://x"));
            }),
            "config.base_url",
        ),
        (
            Box::new(|n| {
                n.config.insert("realm_id".into(), json!("1"));
            }),
            "config.realm_id",
        ),
        (
            Box::new(|n| {
                n.secrets.remove("consumer_key");
            }),
            "secrets.consumer_key",
        ),
        (
            Box::new(|n| {
                n.secrets.insert("password".into(), Secret::new("x"));
            }),
            "secrets.password",
        ),
        (
            Box::new(|n| {
                n.secrets.insert("consumer_key".into(), Secret::new(""));
            }),
            "secrets.consumer_key",
        ),
        (
            Box::new(|n| {
                n.display_name = "  ".into();
            }),
            "display_name",
        ),
        (
            Box::new(|n| {
                n.secrets.remove("webhook_secret");
                n.webhooks_enabled = Some(true);
            }),
            "webhooks_enabled",
        ),
    ];
    for (change, field) in cases {
        let mut n = woo();
        change(&mut n);
        assert_eq!(field_of(w.connections.create(&w.tenant, n).await), field);
    }
    let mut qbo = woo();
    qbo.platform = Platform::QuickBooks;
    qbo.config = config(json!({"realm_id": "9130350000000001", "environment": "sandbox"}));
    qbo.secrets = secrets(&[
        ("client_id", "id"),
        ("client_secret", "s"),
        ("refresh_token", "r"),
    ]);
    let c = w
        .connections
        .create(&w.tenant, qbo)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!c.webhooks_enabled);
    assert_eq!(
        crate::platforms::quickbooks::realm_id(&c),
        Some("9130350000000001")
    );
    let mut sb = woo();
    sb.platform = Platform::Supabase;
    sb.config = config(
        json!({"project_url": "https://abc.supabase.co", "tables": {"shop_orders": "invoices"}}),
    );
    sb.secrets = secrets(&[("service_key", "sk")]);
    assert_eq!(
        field_of(w.connections.create(&w.tenant, sb).await),
        "config.tables"
    );
    assert!(w.store.len() == 1);
}

#[tokio::test]
async fn rotating_one_secret_keeps_the_others() {
    let w = world();
    let c = w
        .connections
        .create(&w.tenant, woo())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let patch = ConnectionPatch {
        secrets: secrets(&[("webhook_secret", "rotated-0123456789abcdefNEW1")]),
        config: config(json!({"base_url": "https://new.example.com"})),
        display_name: Some("Renamed".into()),
        webhooks_enabled: Some(false),
    };
    let u = w
        .connections
        .update(&w.tenant, c.id, patch)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(u.version, 2);
    assert_eq!(u.display_name, "Renamed");
    assert!(!u.webhooks_enabled);
    assert_eq!(u.config_str("base_url"), Some("https://new.example.com"));
    assert_eq!(
        u.secret_hints.get("webhook_secret").map(String::as_str),
        Some("…NEW1")
    );
    assert_ne!(u.sealed_secrets, c.sealed_secrets);
    let opened = w
        .connections
        .open_secrets(&u)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        opened.get("webhook_secret").map(Secret::expose),
        Some("rotated-0123456789abcdefNEW1")
    );
    assert!(opened.contains_key("consumer_key"));
}

#[tokio::test]
async fn another_tenants_connection_is_not_found() {
    let w = world();
    let c = w
        .connections
        .create(&w.tenant, woo())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let other = TenantId::parse("globex").unwrap_or_else(|e| panic!("{e}"));
    let nf = Err(ServiceError::NotFound("connection"));
    assert_eq!(w.connections.get(&other, c.id).await.map(|_| ()), nf);
    assert_eq!(w.connections.delete(&other, c.id, true).await, nf);
    let patch = ConnectionPatch {
        display_name: Some("x".into()),
        ..ConnectionPatch::default()
    };
    assert_eq!(
        w.connections.update(&other, c.id, patch).await.map(|_| ()),
        nf
    );
    assert!(w
        .connections
        .list(&other)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .is_empty());
}

#[tokio::test]
async fn a_conflicting_connection_update_names_the_connection_not_a_schedule() {
    let w = world();
    let c = w
        .connections
        .create(&w.tenant, woo())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    w.store.set_conflicting(true);
    let patch = ConnectionPatch {
        display_name: Some("renamed".into()),
        ..ConnectionPatch::default()
    };
    let refused = w.connections.update(&w.tenant, c.id, patch).await;
    assert_eq!(
        refused.map(|_| ()),
        Err(ServiceError::Conflict(
            "the connection was changed by another request; fetch it and try again".into()
        ))
    );
    let deleted = w.connections.delete(&w.tenant, c.id, false).await;
    assert!(
        matches!(&deleted, Err(ServiceError::Conflict(m)) if m.contains("the connection was changed")),
        "{deleted:?}"
    );
}

#[tokio::test]
async fn a_connection_in_use_is_deleted_only_with_cascade() {
    let w = world();
    let c = w
        .connections
        .create(&w.tenant, woo())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let s = w
        .schedules
        .create(
            &w.tenant,
            NewSchedule {
                credential_id: c.id,
                platform: Platform::WooCommerce,
                entity_type: EntityType::Orders,
                cron_expression: "@hourly".into(),
                expression: ScheduleExpression::parse("@hourly").unwrap_or_else(|e| panic!("{e}")),
                sync_mode: SyncMode::Incremental,
                timezone: "UTC".parse().unwrap_or_else(|e| panic!("{e}")),
                is_active: true,
                options: Default::default(),
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let refused = w.connections.delete(&w.tenant, c.id, false).await;
    assert!(
        matches!(refused, Err(ServiceError::Conflict(_))),
        "{refused:?}"
    );
    assert_eq!(w.store.len(), 1);
    assert_eq!(w.trigger.len(), 1);
    // The refused delete lifted its mark: the connection takes schedules and edits again.
    let after = w
        .connections
        .get(&w.tenant, c.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!after.is_deleting());
    w.connections
        .delete(&w.tenant, c.id, true)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(w.store.is_empty());
    assert!(w.trigger.is_empty());
    assert_eq!(
        w.schedules.get(&w.tenant, s.id).await.map(|_| ()),
        Err(ServiceError::NotFound("schedule"))
    );
}

fn hourly(connection: ConnectionId) -> NewSchedule {
    NewSchedule {
        credential_id: connection,
        platform: Platform::WooCommerce,
        entity_type: EntityType::Orders,
        cron_expression: "@hourly".into(),
        expression: ScheduleExpression::parse("@hourly").unwrap_or_else(|e| panic!("{e}")),
        sync_mode: SyncMode::Incremental,
        timezone: "UTC".parse().unwrap_or_else(|e| panic!("{e}")),
        is_active: true,
        options: Default::default(),
    }
}

#[tokio::test]
async fn a_delete_cut_short_leaves_a_mark_that_refuses_schedules_and_edits_until_it_is_finished() {
    // GIVEN a connection with a schedule, whose cascade delete fails half-way (the trigger
    // side is down when its schedule is removed)
    let w = world();
    let c = w
        .connections
        .create(&w.tenant, woo())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    w.schedules
        .create(&w.tenant, hourly(c.id))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    w.trigger.set_failing(true);
    let cut_short = w.connections.delete(&w.tenant, c.id, true).await;
    assert!(matches!(cut_short, Err(ServiceError::Unavailable(_))));
    w.trigger.set_failing(false);
    // THEN the schedule and its trigger are both still there (nothing half-deleted), and the
    // connection is marked: new schedules and edits are refused, webhooks too
    assert_eq!(w.trigger.len(), 1);
    let marked = w
        .connections
        .get(&w.tenant, c.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(marked.is_deleting());
    let refused = w.schedules.create(&w.tenant, hourly(c.id)).await;
    assert!(
        matches!(&refused, Err(ServiceError::Invalid { field, .. }) if field == "credential_id"),
        "{refused:?}"
    );
    let edit = ConnectionPatch {
        display_name: Some("renamed".into()),
        ..ConnectionPatch::default()
    };
    assert!(matches!(
        w.connections.update(&w.tenant, c.id, edit).await,
        Err(ServiceError::Conflict(_))
    ));
    // AND deleting again finishes the job
    w.connections
        .delete(&w.tenant, c.id, true)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(w.store.is_empty());
    assert!(w.trigger.is_empty());
}

#[tokio::test]
async fn every_registered_platform_has_a_sample_connection_the_service_accepts() {
    let w = world();
    for platform in Platform::ALL {
        assert_eq!(platform.module().platform(), *platform);
        assert_eq!(platform.as_str().parse::<Platform>(), Ok(*platform));
        let c = w
            .connections
            .create(&w.tenant, crate::fixtures::new_connection(*platform))
            .await
            .unwrap_or_else(|e| panic!("{platform}: {e}"));
        assert!(
            c.webhooks_enabled,
            "{platform}: the sample has a webhook secret"
        );
        assert!(!crate::fixtures::webhook_secret(*platform).is_empty());
    }
}
