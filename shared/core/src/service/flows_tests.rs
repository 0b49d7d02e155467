//! Flow use cases against in-memory fakes.

use super::*;
use crate::clock::FixedClock;
use crate::domain::{ConflictPolicy, Platform, SyncMode};
use crate::memory::{connection_fixture, MemoryWorld};
use crate::service::Services;

struct World {
    services: Services,
    mem: MemoryWorld,
    tenant: TenantId,
    woo: Connection,
    supabase: Connection,
    books: Connection,
}

fn world() -> World {
    let clock = Arc::new(FixedClock::new(
        DateTime::from_timestamp(1_795_521_600, 0).unwrap_or_default(),
    ));
    let (services, mem) = Services::in_memory(clock);
    let tenant = TenantId::parse("acme").unwrap_or_else(|e| panic!("{e}"));
    let woo = connection_fixture(&tenant, Platform::WooCommerce);
    let supabase = connection_fixture(&tenant, Platform::Supabase);
    let books = connection_fixture(&tenant, Platform::QuickBooks);
    for c in [&woo, &supabase, &books] {
        mem.connections.seed(c.clone());
    }
    World {
        services,
        mem,
        tenant,
        woo,
        supabase,
        books,
    }
}

fn new_flow(from: &Connection, to: &Connection, entities: &[EntityType]) -> NewFlow {
    NewFlow {
        source_connection_id: from.id,
        target_connection_id: to.id,
        entities: entities.to_vec(),
        conflict_policy: ConflictPolicy::SourceWins,
        doc_number_prefix: None,
        enabled: true,
    }
}

fn field(r: Result<Flow, ServiceError>) -> String {
    match r {
        Err(ServiceError::Invalid { field, .. }) => field,
        other => panic!("expected a field error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_new_flow_is_stored_and_backfilled_with_a_full_sync_per_entity() {
    let w = world();
    let flow = w
        .services
        .flows
        .create(
            &w.tenant,
            new_flow(
                &w.woo,
                &w.supabase,
                &[EntityType::Products, EntityType::Orders],
            ),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(flow.entities, [EntityType::Orders, EntityType::Products]);
    let jobs = w.mem.queue.jobs();
    assert_eq!(jobs.len(), 2);
    assert!(jobs
        .iter()
        .all(|j| j.sync_mode == SyncMode::Full && j.connection_id == w.woo.id));
    assert_eq!(
        w.services.flows.get(&w.tenant, flow.id).await,
        Ok(flow.clone())
    );
}

#[tokio::test]
async fn pairs_and_entities_the_registry_does_not_support_are_refused_on_their_field() {
    let w = world();
    let flows = &w.services.flows;
    // Supabase → WooCommerce orders: WooCommerce cannot be written orders.
    assert_eq!(
        field(
            flows
                .create(
                    &w.tenant,
                    new_flow(&w.supabase, &w.woo, &[EntityType::Orders])
                )
                .await
        ),
        "entities"
    );
    // QuickBooks → WooCommerce orders: still no writing orders to WooCommerce.
    assert_eq!(
        field(
            flows
                .create(&w.tenant, new_flow(&w.books, &w.woo, &[EntityType::Orders]))
                .await
        ),
        "entities"
    );
    assert_eq!(
        field(
            flows
                .create(&w.tenant, new_flow(&w.woo, &w.woo, &[EntityType::Products]))
                .await
        ),
        "target_connection_id"
    );
    assert_eq!(
        field(
            flows
                .create(&w.tenant, new_flow(&w.woo, &w.supabase, &[]))
                .await
        ),
        "entities"
    );
    // Another tenant's connection is not found.
    let other = TenantId::parse("globex").unwrap_or_else(|e| panic!("{e}"));
    let theirs = connection_fixture(&other, Platform::Supabase);
    w.mem.connections.seed(theirs.clone());
    assert_eq!(
        field(
            flows
                .create(
                    &w.tenant,
                    new_flow(&w.woo, &theirs, &[EntityType::Products])
                )
                .await
        ),
        "target_connection_id"
    );
    assert!(flows
        .list(&w.tenant)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .is_empty());
    assert!(w.mem.queue.jobs().is_empty());
}

#[tokio::test]
async fn a_second_flow_carrying_the_same_entity_between_the_same_connections_is_a_conflict() {
    let w = world();
    let flows = &w.services.flows;
    flows
        .create(
            &w.tenant,
            new_flow(&w.woo, &w.supabase, &[EntityType::Products]),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let again = flows
        .create(
            &w.tenant,
            new_flow(
                &w.woo,
                &w.supabase,
                &[EntityType::Products, EntityType::Orders],
            ),
        )
        .await;
    assert!(matches!(again, Err(ServiceError::Conflict(_))), "{again:?}");
    // The other direction is a different flow.
    flows
        .create(
            &w.tenant,
            new_flow(&w.supabase, &w.woo, &[EntityType::Products]),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn an_update_backfills_only_what_the_flow_newly_carries() {
    let w = world();
    let flows = &w.services.flows;
    let flow = flows
        .create(
            &w.tenant,
            new_flow(&w.woo, &w.supabase, &[EntityType::Products]),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let before = w.mem.queue.jobs().len();
    let patch = FlowPatch {
        entities: Some(vec![EntityType::Products, EntityType::Customers]),
        conflict_policy: Some(ConflictPolicy::NewestWins),
        ..FlowPatch::default()
    };
    let updated = flows
        .update(&w.tenant, flow.id, patch)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(updated.version, 2);
    assert_eq!(updated.conflict_policy, ConflictPolicy::NewestWins);
    let jobs = w.mem.queue.jobs();
    assert_eq!(jobs.len(), before + 1);
    assert_eq!(jobs[before].entity_type, EntityType::Customers);
    // Switching it off queues nothing; switching it back on backfills everything.
    let off = FlowPatch {
        enabled: Some(false),
        ..FlowPatch::default()
    };
    flows
        .update(&w.tenant, flow.id, off)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(w.mem.queue.jobs().len(), before + 1);
    let on = FlowPatch {
        enabled: Some(true),
        ..FlowPatch::default()
    };
    flows
        .update(&w.tenant, flow.id, on)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(w.mem.queue.jobs().len(), before + 3);
}

#[tokio::test]
async fn a_connection_used_by_a_flow_is_deleted_only_with_cascade_which_deletes_the_flow() {
    let w = world();
    let flow = w
        .services
        .flows
        .create(
            &w.tenant,
            new_flow(&w.woo, &w.supabase, &[EntityType::Products]),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let refused = w
        .services
        .connections
        .delete(&w.tenant, w.supabase.id, false)
        .await;
    assert!(
        matches!(refused, Err(ServiceError::Conflict(_))),
        "{refused:?}"
    );
    w.services
        .connections
        .delete(&w.tenant, w.supabase.id, true)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        w.services.flows.get(&w.tenant, flow.id).await,
        Err(ServiceError::NotFound("flow"))
    );
}

#[tokio::test]
async fn flows_of_two_stores_into_one_company_number_their_documents_apart() {
    let w = world();
    let mut second = connection_fixture(&w.tenant, Platform::WooCommerce);
    second.display_name = w.woo.display_name.clone();
    w.mem.connections.seed(second.clone());
    let create = |from: &Connection, prefix: Option<&str>| {
        let mut new = new_flow(from, &w.books, &[EntityType::Orders]);
        new.doc_number_prefix = prefix.map(|p| p.parse().unwrap_or_else(|e| panic!("{e}")));
        w.services.flows.create(&w.tenant, new)
    };
    // The first store's prefix is derived from its name...
    let first = create(&w.woo, None).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        first.doc_number_prefix.as_ref().map(DocPrefix::as_str),
        Some("WTC-")
    );
    // ...and a second store of the same name gets a numbered one, not the same.
    let other = create(&second, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        other.doc_number_prefix.as_ref().map(DocPrefix::as_str),
        Some("WTC2-")
    );
    // A prefix that could give two orders the same number is refused, naming the flow.
    w.services
        .flows
        .delete(&w.tenant, other.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for clash in ["WTC-", "", "WTC-B-"] {
        match create(&second, Some(clash)).await {
            Err(ServiceError::Invalid { field, message }) => {
                assert_eq!(field, "doc_number_prefix");
                assert!(message.contains(&first.id.to_string()), "{message}");
                assert!(message.contains("choose a doc_number_prefix"), "{message}");
            }
            other => panic!("{clash}: expected a refusal, got {other:?}"),
        }
    }
    create(&second, Some("EU-"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // A flow into a platform that does not number documents has none, and takes none.
    let to_project = w
        .services
        .flows
        .create(
            &w.tenant,
            new_flow(&w.woo, &w.supabase, &[EntityType::Orders]),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(to_project.doc_number_prefix, None);
    let mut asked = new_flow(&second, &w.supabase, &[EntityType::Orders]);
    asked.doc_number_prefix = Some(DocPrefix::derived("x"));
    assert_eq!(
        field(w.services.flows.create(&w.tenant, asked).await),
        "doc_number_prefix"
    );
}

#[tokio::test]
async fn newest_wins_is_not_offered_into_a_platform_that_reads_records_back_in_its_own_shape() {
    let w = world();
    let mut new = new_flow(&w.woo, &w.books, &[EntityType::Customers]);
    new.conflict_policy = ConflictPolicy::NewestWins;
    assert_eq!(
        field(w.services.flows.create(&w.tenant, new).await),
        "conflict_policy"
    );
    let flow = w
        .services
        .flows
        .create(
            &w.tenant,
            new_flow(&w.woo, &w.books, &[EntityType::Customers]),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let patch = FlowPatch {
        conflict_policy: Some(ConflictPolicy::NewestWins),
        ..FlowPatch::default()
    };
    assert_eq!(
        field(w.services.flows.update(&w.tenant, flow.id, patch).await),
        "conflict_policy"
    );
}

#[tokio::test]
async fn a_company_numbered_by_its_old_setting_blocks_a_clashing_prefix_and_says_which_flow() {
    let w = world();
    // A flow made before flows had a prefix: it numbers with the company's old setting.
    let mut books = w.books.clone();
    books
        .config
        .insert("doc_number_prefix".into(), serde_json::json!("W"));
    w.mem.connections.seed(books.clone());
    let legacy = w
        .services
        .flows
        .create(&w.tenant, new_flow(&w.woo, &books, &[EntityType::Orders]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut stored = legacy.clone();
    stored.doc_number_prefix = None;
    w.mem.flows.seed(stored);
    // Every prefix derived from "woocommerce test connection" starts with W.
    let mut second = connection_fixture(&w.tenant, Platform::WooCommerce);
    second.display_name = w.woo.display_name.clone();
    w.mem.connections.seed(second.clone());
    match w
        .services
        .flows
        .create(&w.tenant, new_flow(&second, &books, &[EntityType::Orders]))
        .await
    {
        Err(ServiceError::Invalid { field, message }) => {
            assert_eq!(field, "doc_number_prefix");
            assert!(message.contains(&legacy.id.to_string()), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}
