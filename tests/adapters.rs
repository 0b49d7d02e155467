//! The DynamoDB and EventBridge Scheduler adapters against moto over HTTP, alone and under
//! the schedule service, including what is left behind when the second write fails.

use std::sync::Arc;

use aws_sdk_scheduler::types::{FlexibleTimeWindowMode, ScheduleState};
use integration_tests::{clock, fresh_aws, Aws};
use serde_json::Value;
use sync_aws::scheduler::{RETRY_MAX_ATTEMPTS, RETRY_MAX_EVENT_AGE_SECONDS};
use sync_aws::wiring::services;
use sync_aws::{DynamoScheduleStore, EventBridgeTrigger};
use sync_core::domain::{
    ConnectionId, EntityType, NewSchedule, Platform, Schedule, ScheduleId, SchedulePatch, SyncMode,
    TenantId,
};
use sync_core::ports::{
    ScheduleCreate, ScheduleRuns, ScheduleStore, ScheduleTrigger, StoreError, TriggerAligner,
    TriggerWrite,
};
use sync_core::service::ServiceError;
use sync_core::time::ScheduleExpression;

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap_or_else(|e| panic!("{e}"))
}

fn at(text: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A schedule of `tenant_name` on a QuickBooks connection of that tenant, created in `aws`
/// (the store refuses schedules whose connection does not exist).
async fn schedule(aws: &Aws, tenant_name: &str, expr: &str, created: &str) -> Schedule {
    let connection = aws.connection(tenant_name, Platform::QuickBooks).await;
    Schedule {
        id: ScheduleId::new_random(),
        tenant_id: tenant(tenant_name),
        credential_id: connection,
        platform: Platform::QuickBooks,
        entity_type: EntityType::Customers,
        cron_expression: expr.to_string(),
        expression: ScheduleExpression::parse(expr).unwrap_or_else(|e| panic!("{e}")),
        sync_mode: SyncMode::Full,
        timezone: "Australia/Lord_Howe"
            .parse()
            .unwrap_or_else(|e| panic!("{e}")),
        is_active: true,
        options: Default::default(),
        last_run_at: Some(at("2026-11-01T10:00:00.123Z")),
        last_run_status: Some(sync_core::domain::RunStatus::Partial),
        consecutive_failures: 3,
        created_at: at(created),
        updated_at: at(created),
        version: 1,
    }
}

/// What creates schedules (the API's alone), over the stack's table.
fn creator(aws: &Aws) -> sync_aws::DynamoScheduleCreate {
    sync_aws::DynamoScheduleCreate::new(aws.dynamodb(), aws.resources.table_name.clone())
}

fn store(aws: &Aws) -> DynamoScheduleStore {
    DynamoScheduleStore::new(aws.dynamodb(), aws.resources.table_name.clone())
}

fn trigger(aws: &Aws) -> EventBridgeTrigger {
    EventBridgeTrigger::new(aws.scheduler(), &aws.resources)
}

async fn eventbridge(
    aws: &Aws,
    id: ScheduleId,
) -> Option<aws_sdk_scheduler::operation::get_schedule::GetScheduleOutput> {
    aws.scheduler()
        .get_schedule()
        .name(id.to_string())
        .group_name(&aws.resources.schedule_group)
        .send()
        .await
        .ok()
}

#[tokio::test]
async fn the_store_round_trips_every_field() {
    let aws = fresh_aws().await;
    let store = store(&aws);
    let s = schedule(
        &aws,
        "acme",
        "cron(0 10 ? * 6L 2027-2029)",
        "2026-11-24T12:00:00.250Z",
    )
    .await;
    creator(&aws)
        .insert(&s)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let got = store
        .get(&s.tenant_id, s.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got, Some(s));
}

#[tokio::test]
async fn an_insert_over_an_existing_id_is_refused() {
    let aws = fresh_aws().await;
    let store = store(&aws);
    let s = schedule(&aws, "acme", "@daily", "2026-11-24T12:00:00Z").await;
    creator(&aws)
        .insert(&s)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut again = s.clone();
    again.cron_expression = "@hourly".into();
    assert_eq!(
        creator(&aws).insert(&again).await,
        Err(StoreError::AlreadyExists)
    );
    let kept = store.get(&s.tenant_id, s.id).await.ok().flatten();
    assert_eq!(kept.map(|k| k.cron_expression), Some("@daily".to_string()));
}

#[tokio::test]
async fn a_stale_version_can_neither_replace_nor_delete() {
    let aws = fresh_aws().await;
    let store = store(&aws);
    let s = schedule(&aws, "acme", "@daily", "2026-11-24T12:00:00Z").await;
    creator(&aws)
        .insert(&s)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut first = s.clone();
    first.version = 2;
    first.sync_mode = SyncMode::Incremental;
    store
        .replace(&first, 1)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // A second writer that also read version 1 loses, and changes nothing.
    let mut second = s.clone();
    second.version = 2;
    second.is_active = false;
    assert_eq!(store.replace(&second, 1).await, Err(StoreError::Conflict));
    assert_eq!(
        store.delete(&s.tenant_id, s.id, 1).await,
        Err(StoreError::Conflict)
    );
    let stored = store.get(&s.tenant_id, s.id).await.ok().flatten();
    assert_eq!(stored, Some(first));
    // Replacing something that is gone is a conflict too, and does not create it.
    let ghost = schedule(&aws, "acme", "@daily", "2026-11-24T12:00:00Z").await;
    assert_eq!(store.replace(&ghost, 1).await, Err(StoreError::Conflict));
    assert_eq!(store.get(&ghost.tenant_id, ghost.id).await, Ok(None));
}

#[tokio::test]
async fn a_tenant_lists_only_its_own_schedules_oldest_first() {
    let aws = fresh_aws().await;
    let store = store(&aws);
    let newer = schedule(&aws, "acme", "@daily", "2026-11-24T12:00:02Z").await;
    let older = schedule(&aws, "acme", "@hourly", "2026-11-24T12:00:01Z").await;
    let other = schedule(&aws, "globex", "@daily", "2026-11-24T12:00:00Z").await;
    for s in [&newer, &older, &other] {
        creator(&aws)
            .insert(s)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let listed = store
        .list(&tenant("acme"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(listed, vec![older, newer]);
    assert_eq!(store.get(&tenant("acme"), other.id).await, Ok(None));
}

#[tokio::test]
async fn the_eventbridge_schedule_carries_the_whole_definition() {
    let aws = fresh_aws().await;
    let s = schedule(&aws, "acme", "0 9 * * 1-5", "2026-11-24T12:00:00Z").await;
    trigger(&aws)
        .create(&s)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let got = eventbridge(&aws, s.id)
        .await
        .unwrap_or_else(|| panic!("schedule missing"));
    assert_eq!(got.schedule_expression(), Some("cron(0 9 ? * MON-FRI *)"));
    assert_eq!(
        got.schedule_expression_timezone(),
        Some("Australia/Lord_Howe")
    );
    assert_eq!(got.state(), Some(&ScheduleState::Enabled));
    assert_eq!(
        got.flexible_time_window().map(|w| w.mode()),
        Some(&FlexibleTimeWindowMode::Off)
    );
    let target = got.target().unwrap_or_else(|| panic!("no target"));
    assert_eq!(target.arn(), aws.resources.sync_queue_arn);
    assert_eq!(target.role_arn(), aws.resources.scheduler_role_arn);
    assert_eq!(
        target.dead_letter_config().and_then(|d| d.arn()),
        Some(aws.resources.sync_dlq_arn.as_str())
    );
    let retry = target
        .retry_policy()
        .unwrap_or_else(|| panic!("no retry policy"));
    assert_eq!(
        retry.maximum_event_age_in_seconds(),
        Some(RETRY_MAX_EVENT_AGE_SECONDS)
    );
    assert_eq!(retry.maximum_retry_attempts(), Some(RETRY_MAX_ATTEMPTS));
    let input: Value = serde_json::from_str(target.input().unwrap_or("null")).unwrap_or_default();
    assert_eq!(input["trigger"]["schedule_id"], s.id.to_string());
    assert_eq!(input["trigger"]["schedule_version"], 1);
    assert_eq!(input["tenant_id"], "acme");
    assert_eq!(input["connection_id"], s.credential_id.to_string());
    assert_eq!(input["platform"], "quickbooks");
    assert_eq!(input["entity_type"], "customers");
    assert_eq!(input["sync_mode"], "full");
    assert_eq!(input["trigger"]["kind"], "schedule");
    assert_eq!(input["triggered_at"], "<aws.scheduler.scheduled-time>");
    assert_eq!(input["job_id"], "<aws.scheduler.execution-id>");
}

#[tokio::test]
async fn an_update_rewrites_every_field_and_follows_is_active() {
    let aws = fresh_aws().await;
    let t = trigger(&aws);
    let mut s = schedule(&aws, "acme", "@daily", "2026-11-24T12:00:00Z").await;
    t.create(&s).await.unwrap_or_else(|e| panic!("{e}"));
    s.is_active = false;
    s.expression = ScheduleExpression::parse("rate(5 minutes)").unwrap_or_else(|e| panic!("{e}"));
    s.version = 2;
    assert_eq!(
        t.update(&s).await.unwrap_or_else(|e| panic!("{e}")),
        TriggerWrite::Applied
    );
    let got = eventbridge(&aws, s.id)
        .await
        .unwrap_or_else(|| panic!("schedule missing"));
    assert_eq!(got.state(), Some(&ScheduleState::Disabled));
    assert_eq!(got.schedule_expression(), Some("rate(5 minutes)"));
    // Nothing the update did not mention went missing.
    assert_eq!(
        got.schedule_expression_timezone(),
        Some("Australia/Lord_Howe")
    );
    let target = got.target().unwrap_or_else(|| panic!("no target"));
    assert!(target
        .input()
        .is_some_and(|i| i.contains("<aws.scheduler.scheduled-time>")));
    assert!(target.dead_letter_config().is_some());
    assert!(target.retry_policy().is_some());
    assert_eq!(
        got.flexible_time_window().map(|w| w.mode()),
        Some(&FlexibleTimeWindowMode::Off)
    );
}

#[tokio::test]
async fn a_flexible_window_and_the_other_options_reach_eventbridge_and_the_table_and_read_back() {
    use sync_core::domain::{OverlapPolicy, ScheduleOptions};
    use sync_core::ports::TriggerInventory;
    let aws = fresh_aws().await;
    let t = trigger(&aws);
    let mut s = schedule(&aws, "acme", "@daily", "2026-11-24T12:00:00Z").await;
    s.is_active = false;
    s.options = ScheduleOptions {
        overlap_policy: OverlapPolicy::Skip,
        pause_note: Some("closing the books for November".into()),
        flexible_window_minutes: Some(15),
        catch_up_window_minutes: 15,
        auto_pause_after_failures: 3,
    };
    t.create(&s).await.unwrap_or_else(|e| panic!("{e}"));
    let got = eventbridge(&aws, s.id)
        .await
        .unwrap_or_else(|| panic!("schedule missing"));
    let window = got.flexible_time_window();
    assert_eq!(
        window.map(|w| w.mode()),
        Some(&FlexibleTimeWindowMode::Flexible)
    );
    assert_eq!(window.and_then(|w| w.maximum_window_in_minutes()), Some(15));
    // Read back as the repair compares it: the same definition as the schedule's.
    let state = sync_aws::EventBridgeInventory::new(aws.scheduler(), &aws.resources)
        .get(&s.id.to_string())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no trigger"));
    assert_eq!(state.definition, s.trigger_definition());
    // And the table keeps the options.
    let store = DynamoScheduleStore::new(aws.dynamodb(), aws.resources.table_name.clone());
    creator(&aws)
        .insert(&s)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let stored = store
        .get(&s.tenant_id, s.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("not stored"));
    assert_eq!(stored.options, s.options);
    // Cleared by an update (resumed, window off): gone from the table too.
    let mut cleared = s.clone();
    cleared.is_active = true;
    cleared.options.pause_note = None;
    cleared.options.flexible_window_minutes = None;
    cleared.options.catch_up_window_minutes = 0;
    cleared.version = s.version + 1;
    store
        .replace(&cleared, s.version)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let stored = store
        .get(&s.tenant_id, s.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("not stored"));
    assert_eq!(stored.options, cleared.options);
}

#[tokio::test]
async fn remove_is_idempotent_and_update_never_creates() {
    let aws = fresh_aws().await;
    let t = trigger(&aws);
    let s = schedule(&aws, "acme", "@daily", "2026-11-24T12:00:00Z").await;
    // An update of a schedule that is not there reports it and creates nothing.
    assert_eq!(
        t.update(&s).await.unwrap_or_else(|e| panic!("{e}")),
        TriggerWrite::Missing
    );
    assert!(eventbridge(&aws, s.id).await.is_none());
    t.create(&s).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(eventbridge(&aws, s.id).await.is_some());
    let name = s.id.to_string();
    t.remove(&name).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(eventbridge(&aws, s.id).await.is_none());
    t.remove(&name)
        .await
        .unwrap_or_else(|e| panic!("second remove: {e}"));
    // A retried create of the same schedule is not an error.
    t.create(&s).await.unwrap_or_else(|e| panic!("{e}"));
    t.create(&s)
        .await
        .unwrap_or_else(|e| panic!("retried create: {e}"));
}

fn new_schedule(credential_id: ConnectionId) -> NewSchedule {
    NewSchedule {
        credential_id,
        platform: Platform::Supabase,
        entity_type: EntityType::Products,
        cron_expression: "*/10 * * * *".into(),
        expression: ScheduleExpression::parse("*/10 * * * *").unwrap_or_else(|e| panic!("{e}")),
        sync_mode: SyncMode::Incremental,
        timezone: "America/Edmonton".parse().unwrap_or_else(|e| panic!("{e}")),
        is_active: true,
        options: Default::default(),
    }
}

#[tokio::test]
async fn when_eventbridge_fails_on_create_the_table_keeps_nothing() {
    let aws = fresh_aws().await;
    let broken = services(
        &aws.sdk,
        &aws.with_broken_scheduler(),
        clock("2026-11-24T12:00:00Z"),
    )
    .schedules;
    let conn = aws.connection("acme", Platform::Supabase).await;
    let before = aws.item_count().await;
    let result = broken.create(&tenant("acme"), new_schedule(conn)).await;
    assert!(
        matches!(result, Err(ServiceError::Unavailable(_))),
        "{result:?}"
    );
    assert_eq!(
        aws.item_count().await,
        before,
        "only the connection may remain"
    );
}

#[tokio::test]
async fn when_eventbridge_fails_on_update_or_delete_the_table_is_restored() {
    let aws = fresh_aws().await;
    let good = services(&aws.sdk, &aws.resources, clock("2026-11-24T12:00:00Z")).schedules;
    let broken = aws
        .service_with_unreachable_scheduler(clock("2026-11-24T12:05:00Z"))
        .await;
    let acme = tenant("acme");
    let conn = aws.connection("acme", Platform::Supabase).await;
    let before = aws.item_count().await;
    let s = good
        .create(&acme, new_schedule(conn))
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let patch = SchedulePatch {
        is_active: Some(false),
        sync_mode: Some(SyncMode::Full),
        ..SchedulePatch::default()
    };
    let result = broken.update(&acme, s.id, patch).await;
    assert!(
        matches!(result, Err(ServiceError::Unavailable(_))),
        "{result:?}"
    );
    let stored = good
        .get(&acme, s.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(stored.is_active);
    assert_eq!(stored.sync_mode, SyncMode::Incremental);
    let on_eventbridge = eventbridge(&aws, s.id)
        .await
        .unwrap_or_else(|| panic!("missing"));
    assert_eq!(on_eventbridge.state(), Some(&ScheduleState::Enabled));

    let result = broken.delete(&acme, s.id).await;
    assert!(
        matches!(result, Err(ServiceError::Unavailable(_))),
        "{result:?}"
    );
    assert!(
        good.get(&acme, s.id).await.is_ok(),
        "the schedule must be put back"
    );
    assert!(eventbridge(&aws, s.id).await.is_some());

    // And with EventBridge healthy the same calls go through on the restored record.
    good.delete(&acme, s.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(aws.item_count().await, before);
    assert!(eventbridge(&aws, s.id).await.is_none());
}

#[tokio::test]
async fn concurrent_updates_of_one_schedule_never_both_apply() {
    let aws = fresh_aws().await;
    let service =
        Arc::new(services(&aws.sdk, &aws.resources, clock("2026-11-24T12:00:00Z")).schedules);
    let acme = tenant("acme");
    let conn = aws.connection("acme", Platform::Supabase).await;
    let s = service
        .create(&acme, new_schedule(conn))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut handles = Vec::new();
    for i in 0..8 {
        let service = service.clone();
        let acme = acme.clone();
        handles.push(tokio::spawn(async move {
            let expr = format!("{i} * * * *");
            let patch = SchedulePatch {
                cron_expression: Some((
                    expr.clone(),
                    ScheduleExpression::parse(&expr).unwrap_or_else(|e| panic!("{e}")),
                )),
                ..SchedulePatch::default()
            };
            service.update(&acme, s.id, patch).await
        }));
    }
    let mut applied = 0;
    for h in handles {
        match h.await.unwrap_or_else(|e| panic!("{e}")) {
            Ok(_) => applied += 1,
            Err(ServiceError::Conflict(_)) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(applied >= 1);
    let stored = service
        .get(&acme, s.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Every applied update bumped the version exactly once: none was lost or doubled.
    assert_eq!(stored.version, 1 + applied);
    let on_eventbridge = eventbridge(&aws, s.id)
        .await
        .unwrap_or_else(|| panic!("missing"));
    assert_eq!(
        on_eventbridge.schedule_expression(),
        Some(stored.schedule_expression().as_str())
    );
}

/// The run log over the stack's table, keeping runs 90 days.
fn dynamo_runs(aws: &Aws) -> sync_aws::DynamoRuns {
    sync_aws::DynamoRuns::new(
        aws.dynamodb(),
        aws.resources.table_name.clone(),
        chrono::Duration::days(90),
    )
}

/// Every run id of `filter`'s list, following `next` to the end with pages of `limit`, and
/// saving a new run after each page (newer than every run listed so far).
async fn follow_run_pages(
    runs: &sync_aws::DynamoRuns,
    tenant: &TenantId,
    filter: &sync_core::domain::RunFilter,
    limit: usize,
    connection: ConnectionId,
) -> (Vec<String>, usize) {
    use sync_core::ports::{RunHistory, RunLog};
    let (mut seen, mut pages, mut next) = (Vec::new(), 0, None::<String>);
    loop {
        let page = runs
            .list(tenant, filter, limit, next.as_deref(), chrono::Utc::now())
            .await
            .unwrap_or_else(|e| panic!("page {pages}: {e}"));
        pages += 1;
        seen.extend(page.runs.iter().map(|r| r.id.to_string()));
        let added = sync_core::fixtures::run(
            tenant,
            connection,
            &format!("added-{}", uuid::Uuid::new_v4()),
            chrono::Utc::now(),
        );
        runs.save(&added).await.unwrap_or_else(|e| panic!("{e}"));
        match page.next {
            Some(n) => next = Some(n),
            None => return (seen, pages),
        }
        assert!(pages < 50, "the list never ends: {seen:?}");
    }
}

#[tokio::test]
async fn the_run_list_follows_next_to_its_last_run_while_runs_are_added() {
    use sync_core::domain::RunFilter;
    use sync_core::ports::RunLog;
    let aws = fresh_aws().await;
    let runs = dynamo_runs(&aws);
    let acme = tenant("acme");
    let connection = ConnectionId::new_random();
    let start = chrono::Utc::now() - chrono::Duration::hours(1);
    for i in 0..17 {
        let run = sync_core::fixtures::run(
            &acme,
            connection,
            &format!("job-{i}"),
            start + chrono::Duration::seconds(i),
        );
        runs.save(&run).await.unwrap_or_else(|e| panic!("{e}"));
    }
    // Another tenant's runs never show.
    let other = sync_core::fixtures::run(&tenant("other"), connection, "theirs", start);
    runs.save(&other).await.unwrap_or_else(|e| panic!("{e}"));
    for (filter, limit) in [
        (RunFilter::default(), 5),
        (RunFilter::default(), 1),
        (
            RunFilter {
                connection_id: Some(connection),
                ..RunFilter::default()
            },
            5,
        ),
    ] {
        // What is there when the listing starts, newest first; runs saved while paging are
        // newer than the pages already read, so they are not part of this listing.
        let (everything, _) = follow_run_pages(&runs, &acme, &filter, 100, connection).await;
        let (seen, pages) = follow_run_pages(&runs, &acme, &filter, limit, connection).await;
        let expected: Vec<String> = everything.clone();
        // The run saved after the full listing is newer than all of it: it leads this one.
        assert_eq!(seen[1..], expected[..], "{filter:?} limit {limit}");
        assert!(pages > 3, "{filter:?}: {pages} pages");
        assert!(!seen.contains(&other.id.to_string()));
    }
}

#[tokio::test]
async fn a_run_is_taken_up_only_as_it_was_read_and_keeps_the_run_that_redoes_it() {
    use chrono::SubsecRound;
    use sync_core::domain::{RunId, RunStatus};
    use sync_core::ports::RunLog;
    let aws = fresh_aws().await;
    let runs = dynamo_runs(&aws);
    let acme = tenant("acme");
    let now = chrono::Utc::now().trunc_subsecs(3);
    let mut run = sync_core::fixtures::run(&acme, ConnectionId::new_random(), "job", now);
    let save = |run: sync_core::domain::Run, seen: Option<chrono::DateTime<chrono::Utc>>| {
        let runs = &runs;
        async move {
            runs.save_if_unchanged(&run, seen)
                .await
                .unwrap_or_else(|e| panic!("{e}"))
        }
    };
    // A new run: written only while there is none.
    assert!(save(run.clone(), None).await);
    assert!(!save(run.clone(), None).await);
    // Then only over the run as last written.
    let read = RunLog::get(&runs, &acme, &run.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("the run was not stored"));
    let seen = read.updated_at;
    assert_eq!(seen, run.updated_at);
    run.status = RunStatus::Failed;
    run.redone_by = Some(RunId::for_job(now, "redo"));
    run.updated_at = seen + chrono::Duration::seconds(5);
    assert!(!save(run.clone(), Some(seen - chrono::Duration::seconds(1))).await);
    assert!(save(run.clone(), Some(seen)).await);
    assert!(!save(run.clone(), Some(seen)).await, "written since");
    let stored = RunLog::get(&runs, &acme, &run.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stored, Some(run.clone()));
    // Whether its ids are a platform's is kept; a run written before runs said so is
    // taken to carry them if its kind could.
    run.reported = true;
    runs.save(&run).await.unwrap_or_else(|e| panic!("{e}"));
    let reported = |runs: &sync_aws::DynamoRuns, id: sync_core::domain::RunId| {
        let (runs, acme) = (runs.clone(), acme.clone());
        async move {
            RunLog::get(&runs, &acme, &id)
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .map(|r| r.reported)
        }
    };
    assert_eq!(reported(&runs, run.id.clone()).await, Some(true));
    for (trigger, taken_to) in [
        (sync_core::domain::Trigger::Manual, false),
        (sync_core::domain::Trigger::Webhook, true),
        (sync_core::domain::Trigger::Retry, true),
    ] {
        run.trigger = trigger;
        runs.save(&run).await.unwrap_or_else(|e| panic!("{e}"));
        aws.dynamodb()
            .update_item()
            .table_name(&aws.resources.table_name)
            .key(
                "pk",
                aws_sdk_dynamodb::types::AttributeValue::S("TENANT#acme".into()),
            )
            .key(
                "sk",
                aws_sdk_dynamodb::types::AttributeValue::S(format!("RUN#{}", run.id)),
            )
            .update_expression("REMOVE reported")
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(reported(&runs, run.id.clone()).await, Some(taken_to));
    }
}

#[tokio::test]
async fn a_cancel_request_is_kept_apart_from_the_run_and_only_a_queued_run_is_replaced() {
    use chrono::SubsecRound;
    use sync_core::domain::RunStatus;
    use sync_core::ports::RunLog;
    let aws = fresh_aws().await;
    let runs = dynamo_runs(&aws);
    let acme = tenant("acme");
    let now = chrono::Utc::now();
    let mut run = sync_core::fixtures::run(&acme, ConnectionId::new_random(), "job", now);
    run.status = RunStatus::Queued;
    runs.save(&run).await.unwrap_or_else(|e| panic!("{e}"));
    let asked = |t: &TenantId| {
        let (runs, id) = (&runs, run.id.clone());
        let t = t.clone();
        async move {
            runs.cancel_requested(&t, &id)
                .await
                .unwrap_or_else(|e| panic!("{e}"))
        }
    };
    assert_eq!(asked(&acme).await, None);
    // Asked twice: the first time stands; the run's own writes never touch it.
    let first = now.trunc_subsecs(3);
    runs.request_cancel(&acme, &run.id, first)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    runs.request_cancel(&acme, &run.id, first + chrono::Duration::minutes(1))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut running = run.clone();
    running.status = RunStatus::Running;
    runs.save(&running).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(asked(&acme).await, Some(first));
    assert_eq!(asked(&tenant("other")).await, None);
    // Replaced only while queued: not while running, and then once queued.
    let mut cancelled = run.clone();
    cancelled.status = RunStatus::Cancelled;
    for (stored_as, replaced, after) in [
        (RunStatus::Running, false, RunStatus::Running),
        (RunStatus::Queued, true, RunStatus::Cancelled),
    ] {
        run.status = stored_as;
        runs.save(&run).await.unwrap_or_else(|e| panic!("{e}"));
        let done = runs.replace_queued(&cancelled).await;
        assert_eq!(done.ok(), Some(replaced), "{stored_as}");
        let stored = RunLog::get(&runs, &acme, &run.id)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(stored.map(|r| r.status), Some(after));
    }
    // The request is no run in the tenant's list.
    let listed = sync_core::ports::RunHistory::list(
        &runs,
        &acme,
        &sync_core::domain::RunFilter::default(),
        10,
        None,
        chrono::Utc::now(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(listed.runs.len(), 1);
}

#[tokio::test]
async fn the_failure_list_follows_next_to_its_last_record_while_failures_are_kept() {
    use sync_core::domain::{EntityType, FailedRecord, RunId};
    use sync_core::ports::{FailureList, FailureLog, SyncKey};
    let aws = fresh_aws().await;
    let store = sync_aws::DynamoFailures::new(aws.dynamodb(), aws.resources.table_name.clone());
    let connection = ConnectionId::new_random();
    let now = chrono::Utc::now();
    let failure = |id: String| FailedRecord {
        tenant_id: tenant("acme"),
        connection_id: connection,
        entity_type: EntityType::Products,
        record_id: id,
        flow_id: None,
        error: "a product needs a SKU".into(),
        error_code: "quickbooks_6000".into(),
        attempts: 5,
        first_failed_at: now,
        last_failed_at: now,
        run_id: RunId::for_job(now, "job"),
        quarantined_at: Some(now),
        next_try_at: Some(now),
    };
    let ids: Vec<String> = (10..27).map(|i| format!("p-{i}")).collect();
    let all: Vec<FailedRecord> = ids.iter().cloned().map(failure).collect();
    store.keep(&all).await.unwrap_or_else(|e| panic!("{e}"));
    let (mut seen, mut next, mut pages) = (Vec::new(), None::<String>, 0);
    loop {
        let page = store
            .list(connection, Some(EntityType::Products), 5, next.as_deref())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        pages += 1;
        seen.extend(page.failures.iter().map(|f| f.record_id.clone()));
        // A record failing meanwhile, sorting before every one listed so far.
        store
            .keep(&[failure(format!("a-{pages}"))])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        match page.next {
            Some(n) => next = Some(n),
            None => break,
        }
        assert!(pages < 20, "never ends: {seen:?}");
    }
    assert_eq!(seen, ids);
    assert_eq!(pages, 4);
    let listed = store
        .list(connection, None, 1, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        listed.failures.first().map(|f| f.error_code.as_str()),
        Some("quickbooks_6000"),
        "the code kept with the failure"
    );
    // Due ones are found, forgotten ones are gone.
    let key = SyncKey {
        connection,
        entity: EntityType::Products,
    };
    let due = store
        .due(key, now, 100)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(due.len(), ids.len() + 4);
    store
        .forget(key, &ids)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let left = store
        .list(connection, None, 100, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(left.failures.len(), 4);
}

#[tokio::test]
async fn a_cursor_set_by_hand_waits_for_no_holder_and_fences_one_whose_lease_ran_out() {
    use chrono::SubsecRound;
    use sync_core::domain::{Cursor, EntityType};
    use sync_core::ports::{CursorSet, Lease, StateError, StreamCursors, SyncKey, SyncLeases};
    let aws = fresh_aws().await;
    let state = sync_aws::DynamoSyncState::new(aws.dynamodb(), aws.resources.table_name.clone());
    let key = SyncKey {
        connection: ConnectionId::new_random(),
        entity: EntityType::Orders,
    };
    let now = chrono::Utc::now().trunc_subsecs(3);
    let ttl = chrono::Duration::seconds(30);
    let first = Cursor::at(now - chrono::Duration::days(2));
    // A stream never run: set, nothing before.
    let set = state.set_cursor(key, &first, "ops", now).await;
    assert_eq!(set.ok(), Some(CursorSet::Set { previous: None }));
    // Held by a run: refused.
    let held = state.acquire(key, "worker", now, ttl).await;
    assert!(
        matches!(held, Ok(Lease::Acquired(ref held)) if held.cursor.as_ref() == Some(&first)),
        "{held:?}"
    );
    let second = Cursor::at(now - chrono::Duration::days(1));
    let busy = state.set_cursor(key, &second, "ops", now).await;
    assert_eq!(busy.ok(), Some(CursorSet::Busy));
    // Its lease runs out while it works: the cursor is set, and the worker can no longer
    // move it.
    let later = now + chrono::Duration::seconds(31);
    let set = state.set_cursor(key, &second, "ops", later).await;
    assert_eq!(
        set.ok(),
        Some(CursorSet::Set {
            previous: Some(first)
        })
    );
    let moved = state.save_cursor(key, "worker", &Cursor::at(later)).await;
    assert!(matches!(moved, Err(StateError::LeaseLost)), "{moved:?}");
    // The next run takes the stream up from the cursor set.
    let next = state
        .acquire(key, "next", later + chrono::Duration::milliseconds(5), ttl)
        .await;
    assert!(
        matches!(next, Ok(Lease::Acquired(ref held)) if held.cursor.as_ref() == Some(&second)),
        "{next:?}"
    );
}

#[tokio::test]
async fn an_index_write_under_an_older_lease_is_refused_once_the_new_holder_wrote_the_entry() {
    use sync_core::domain::EntityType;
    use sync_core::ports::{Lease, RecordIndex, RecordUpdate, StateError, SyncKey, SyncLeases};
    use sync_core::records::Fingerprint;
    let aws = fresh_aws().await;
    let state = sync_aws::DynamoSyncState::new(aws.dynamodb(), aws.resources.table_name.clone());
    let key = SyncKey {
        connection: ConnectionId::new_random(),
        entity: EntityType::Products,
    };
    let now = chrono::Utc::now();
    let ttl = chrono::Duration::seconds(1);
    let epoch = |lease| match lease {
        Ok(Lease::Acquired(held)) => held.epoch,
        other => panic!("{other:?}"),
    };
    // A worker takes the lease; it runs out while the worker works, and another takes it.
    let old = epoch(state.acquire(key, "old", now, ttl).await);
    let new = epoch(
        state
            .acquire(key, "new", now + chrono::Duration::seconds(2), ttl)
            .await,
    );
    assert!(new > old, "{old} then {new}");
    let update = |price: &str, epoch: u64| RecordUpdate {
        connection: key.connection,
        entity: key.entity,
        id: "101".into(),
        fingerprint: Fingerprint([("price".to_string(), price.to_string())].into()),
        written: false,
        link: None,
        agreed: None,
        failures: None,
        fence: Some((key.connection, epoch)),
        swept: None,
    };
    // The new holder writes the entry; the old worker's late write of it is refused.
    state
        .update(&[update("new-price", new)])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        state.update(&[update("stale-price", old)]).await,
        Err(StateError::LeaseLost)
    );
    let stored = state
        .get(key.connection, key.entity, &["101".to_string()])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stored["101"].fingerprint.0["price"], "new-price");
    // An entry the new holder has not written yet still takes the old worker's write (the
    // new holder reads the page again from the cursor, and writes after it).
    let mut other = update("old-price", old);
    other.id = "102".into();
    state
        .update(&[other])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn the_index_lists_a_streams_entries_in_id_order_page_by_page_with_their_sweep_mark() {
    use sync_core::ports::{RecordIndex, RecordUpdate};
    use sync_core::records::Fingerprint;
    let aws = fresh_aws().await;
    let state = sync_aws::DynamoSyncState::new(aws.dynamodb(), aws.resources.table_name.clone());
    let (connection, other) = (ConnectionId::new_random(), ConnectionId::new_random());
    let entry = |connection, id: &str, swept: Option<&str>| RecordUpdate {
        connection,
        entity: EntityType::Customers,
        id: id.into(),
        fingerprint: Fingerprint([("email".to_string(), id.to_string())].into()),
        written: false,
        link: None,
        agreed: None,
        failures: None,
        fence: None,
        swept: swept.map(str::to_string),
    };
    let ids = ["c1", "c2", "c3", "c4", "c5"];
    let mut updates: Vec<RecordUpdate> = ids
        .iter()
        .map(|id| entry(connection, id, (*id != "c3").then_some("run-1")))
        .collect();
    // Another connection's entries and another entity's are not the stream's.
    updates.push(entry(other, "c0", None));
    let mut products = entry(connection, "p1", None);
    products.entity = EntityType::Products;
    updates.push(products);
    state
        .update(&updates)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (mut seen, mut after) = (Vec::new(), None::<String>);
    loop {
        let (page, next) = state
            .list(connection, EntityType::Customers, after.as_deref(), 2)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(page.len() <= 2);
        seen.extend(page);
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    let listed: Vec<&str> = seen.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(listed, ids);
    let unswept: Vec<&str> = seen
        .iter()
        .filter(|(_, s)| s.swept.as_deref() != Some("run-1"))
        .map(|(id, _)| id.as_str())
        .collect();
    assert_eq!(unswept, ["c3"]);
}

#[tokio::test]
async fn the_sweepers_view_of_runs_finds_only_stale_open_ones_and_ends_one_only_if_untouched() {
    use chrono::{Duration, SubsecRound};
    use sync_core::domain::{RunStatus, ScheduleId, Trigger};
    use sync_core::ports::{RunLog, RunSweep};
    let aws = fresh_aws().await;
    let runs = dynamo_runs(&aws);
    let sweep = sync_aws::DynamoRunSweep::new(
        aws.dynamodb(),
        aws.resources.table_name.clone(),
        chrono::Duration::days(90),
    );
    let acme = tenant("acme");
    let connection = ConnectionId::new_random();
    let now = chrono::Utc::now().trunc_subsecs(3);
    let open = |job: &str, status: RunStatus, written: chrono::DateTime<chrono::Utc>| {
        let mut run = sync_core::fixtures::run(&acme, connection, job, written);
        run.status = status;
        run.finished_at = None;
        run.updated_at = written;
        run
    };
    let stale_running = open("a", RunStatus::Running, now - Duration::hours(2));
    let stale_queued = open("b", RunStatus::Queued, now - Duration::hours(1));
    let fresh = open("c", RunStatus::Running, now - Duration::minutes(1));
    let mut done = open("d", RunStatus::Running, now - Duration::hours(3));
    for run in [&stale_running, &stale_queued, &fresh, &done] {
        runs.save(run).await.unwrap_or_else(|e| panic!("{e}"));
    }
    // A run that ends leaves the index.
    done.status = RunStatus::Succeeded;
    runs.save(&done).await.unwrap_or_else(|e| panic!("{e}"));
    let found = sweep
        .stale(now - Duration::minutes(30), 10)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let ids: Vec<_> = found.iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids, [stale_running.id.clone(), stale_queued.id.clone()]);
    assert_eq!(found[0], stale_running, "read back whole");
    let one = sweep.stale(now - Duration::minutes(30), 1).await;
    assert_eq!(one.map(|r| r.len()).ok(), Some(1));
    // Ended only while as read: a worker's write since wins.
    let mut ended = stale_running.clone();
    ended.status = RunStatus::Failed;
    ended.updated_at = now;
    let mut taken = stale_running.clone();
    taken.updated_at = now - Duration::seconds(1);
    runs.save(&taken).await.unwrap_or_else(|e| panic!("{e}"));
    let refused = sweep
        .replace_if_untouched(&ended, stale_running.updated_at)
        .await;
    assert_eq!(refused.ok(), Some(false));
    let applied = sweep.replace_if_untouched(&ended, taken.updated_at).await;
    assert_eq!(applied.ok(), Some(true));
    let stored = RunLog::get(&runs, &acme, &ended.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stored.map(|r| r.status), Some(RunStatus::Failed));
    let left = sweep
        .stale(now - Duration::minutes(30), 10)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(left.len(), 1, "{left:?}");
    // Created once; found by its schedule from the millisecond it was triggered.
    let schedule = ScheduleId::new_random();
    let fire = now - Duration::minutes(20);
    let mut catch_up = open("catch-up", RunStatus::Queued, fire);
    catch_up.trigger = Trigger::CatchUp {
        schedule_id: schedule,
    };
    catch_up.schedule_id = Some(schedule);
    assert_eq!(sweep.create(&catch_up).await.ok(), Some(true));
    assert_eq!(sweep.create(&catch_up).await.ok(), Some(false));
    for (since, ran) in [
        (fire - Duration::minutes(1), true),
        (fire, true),
        (fire + Duration::milliseconds(1), false),
    ] {
        let got = sweep.ran_since(&acme, schedule, since).await;
        assert_eq!(got.ok(), Some(ran), "since {since}");
    }
    let other = sweep.ran_since(&tenant("other"), schedule, fire).await;
    assert_eq!(other.ok(), Some(false));
}

#[tokio::test]
async fn when_a_streams_webhooks_arrived_only_moves_forward_and_is_read_with_its_lease_and_state() {
    use chrono::SubsecRound;
    use sync_core::domain::EntityType;
    use sync_core::ports::{Lease, StreamWatch, SyncKey, SyncLeases, WebhookArrivals};
    let aws = fresh_aws().await;
    let table = aws.resources.table_name.clone();
    let state = sync_aws::DynamoSyncState::new(aws.dynamodb(), table.clone());
    let watch = sync_aws::DynamoStreamWatch::new(aws.dynamodb(), table.clone());
    let arrivals = sync_aws::DynamoWebhookArrivals::new(aws.dynamodb(), table);
    let key = SyncKey {
        connection: ConnectionId::new_random(),
        entity: EntityType::Orders,
    };
    let now = chrono::Utc::now().trunc_subsecs(3);
    let noted = |at| {
        let watch = &watch;
        async move {
            let got = watch.state(key, at).await.unwrap_or_else(|e| panic!("{e}"));
            got.webhook_at
        }
    };
    assert_eq!(noted(now).await, None, "none arrived yet");
    let later = now + chrono::Duration::seconds(30);
    for at in [later, now] {
        let arrived = arrivals.arrived(key, at).await;
        assert!(arrived.is_ok(), "{arrived:?}");
    }
    assert_eq!(
        noted(now).await,
        Some(later),
        "an older arrival moves nothing"
    );
    // The stream's item holds nothing else yet: its lease is free, and it reads it back.
    let held = state
        .acquire(key, "worker", later, chrono::Duration::seconds(30))
        .await;
    assert!(
        matches!(held, Ok(Lease::Acquired(ref held)) if held.webhook_at == Some(later) && held.cursor.is_none()),
        "{held:?}"
    );
    let arrived = arrivals
        .arrived(key, later + chrono::Duration::seconds(1))
        .await;
    assert!(arrived.is_ok(), "{arrived:?}");
    let watched = watch.state(key, later).await;
    assert!(
        matches!(watched, Ok(ref w) if w.busy && w.webhook_at == Some(later + chrono::Duration::seconds(1))),
        "an arrival leaves the lease as it is: {watched:?}"
    );
}

#[tokio::test]
async fn the_sweepers_stream_watch_and_status_read_what_the_table_holds() {
    use chrono::SubsecRound;
    use sync_core::domain::EntityType;
    use sync_core::ports::{StreamWatch, SweepCounts, SweepLog, SweepStatus, SyncKey, SyncLeases};
    let aws = fresh_aws().await;
    let state = sync_aws::DynamoSyncState::new(aws.dynamodb(), aws.resources.table_name.clone());
    let watch = sync_aws::DynamoStreamWatch::new(aws.dynamodb(), aws.resources.table_name.clone());
    let key = SyncKey {
        connection: ConnectionId::new_random(),
        entity: EntityType::Orders,
    };
    let now = chrono::Utc::now().trunc_subsecs(3);
    let seen = |at| {
        let watch = &watch;
        async move {
            let got = watch.state(key, at).await.unwrap_or_else(|e| panic!("{e}"));
            (got.busy, got.lease_until, got.pending)
        }
    };
    assert_eq!(seen(now).await, (false, None, false), "never run");
    let ttl = chrono::Duration::seconds(30);
    state
        .acquire(key, "worker", now, ttl)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(seen(now).await, (true, Some(now + ttl), false));
    let later = now + chrono::Duration::seconds(31);
    assert_eq!(
        seen(later).await,
        (false, Some(now + ttl), false),
        "expired"
    );
    state
        .release(key, "worker")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        seen(now).await,
        (false, Some(now + ttl), false),
        "released, and when it last ran is kept"
    );
    state
        .acquire(key, "holder", now, ttl)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let parked = sync_core::fixtures::job(&tenant("acme"), key.connection, now);
    state
        .park(key, &parked)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        seen(now).await,
        (true, Some(now + ttl), true),
        "a follow-up kept"
    );
    // As a person sees the stream: held, a follow-up waiting; then its cursor set by hand.
    use sync_core::ports::StreamCursors;
    let view = state.view(key, now).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(view.running && view.follow_up_kept, "{view:?}");
    assert_eq!(view.lease_until, Some(now + ttl));
    let after = now + ttl + chrono::Duration::seconds(1);
    let cursor = sync_core::domain::Cursor::at(now - chrono::Duration::days(3));
    state
        .set_cursor(key, &cursor, "ops@acme", after)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let view = state
        .view(key, after)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(view.cursor, Some(cursor));
    assert_eq!(view.cursor_set_by.as_deref(), Some("ops@acme"));
    assert_eq!(view.cursor_set_at, Some(after));
    assert!(!view.running && view.follow_up_kept, "{view:?}");
    let log = sync_aws::DynamoSweepLog::new(aws.dynamodb(), aws.resources.table_name.clone());
    assert_eq!(log.last().await.ok(), Some(None));
    let status = SweepStatus {
        last_sweep_at: now,
        checked_until: now - chrono::Duration::minutes(10),
        pass: Some(sync_core::ports::SweepPass {
            from: now - chrono::Duration::minutes(10),
            until: now - chrono::Duration::minutes(5),
            shard: 7,
            after: Some("SCHEDULE#acme#7".into()),
            started_at: now,
            failed_tries: 2,
        }),
        triggers_at: Some(sync_core::ports::TriggerWalk {
            prefix: 11,
            token: Some("token".into()),
        }),
        last: SweepCounts {
            abandoned: 1,
            caught_up: 2,
            missed: 3,
            repairs: 4,
            paused: 5,
            schedules: 6,
            triggers: 7,
        },
        totals: SweepCounts {
            abandoned: 10,
            caught_up: 20,
            missed: 30,
            repairs: 40,
            paused: 50,
            schedules: 60,
            triggers: 70,
        },
        errors: vec!["schedules not read".into()],
    };
    log.record(&status).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(log.last().await.ok(), Some(Some(status)));
}

#[tokio::test]
async fn a_schedules_failures_in_a_row_count_each_run_once_and_start_again_on_success_or_an_edit() {
    use sync_core::domain::{RunId, RunStatus};
    let aws = fresh_aws().await;
    let store = store(&aws);
    let mut s = schedule(&aws, "acme", "@daily", "2026-11-24T12:00:00Z").await;
    s.consecutive_failures = 0;
    creator(&aws)
        .insert(&s)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let now = at("2026-11-25T12:00:00Z");
    let first = RunId::for_job(now, "first");
    let second = RunId::for_job(now + chrono::Duration::minutes(1), "second");
    let count = || async {
        store
            .get(&s.tenant_id, s.id)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .map(|x| (x.consecutive_failures, x.last_run_status))
    };
    // One run failing on three tries is one failure; a later run's is a second; the first
    // failing again after it (its retry) is not a third.
    for run in [&first, &first, &first, &second, &first] {
        store
            .record_run(&s.tenant_id, s.id, now, RunStatus::Failed, run)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(count().await, Some((2, Some(RunStatus::Failed))));
    // A skipped or cancelled run leaves the count; a partial one sets it back.
    store
        .record_run(&s.tenant_id, s.id, now, RunStatus::Skipped, &first)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(count().await, Some((2, Some(RunStatus::Skipped))));
    store
        .record_run(&s.tenant_id, s.id, now, RunStatus::Partial, &first)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(count().await, Some((0, Some(RunStatus::Partial))));
    // Failing again, then resumed by a person (the service sets the count back): a fresh
    // start.
    let third = RunId::for_job(now + chrono::Duration::minutes(2), "third");
    store
        .record_run(&s.tenant_id, s.id, now, RunStatus::Failed, &third)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(count().await.map(|c| c.0), Some(1));
    let mut edited = store
        .get(&s.tenant_id, s.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("gone"));
    edited.consecutive_failures = 0;
    edited.version += 1;
    store
        .replace(&edited, edited.version - 1)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        count().await,
        Some((0, Some(RunStatus::Failed))),
        "the last run is kept"
    );
    // A schedule deleted meanwhile stays deleted.
    store
        .delete(&s.tenant_id, s.id, edited.version)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    store
        .record_run(
            &s.tenant_id,
            s.id,
            now,
            RunStatus::Failed,
            &RunId::for_job(now, "late"),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(count().await, None);
}

#[tokio::test]
async fn alert_issues_are_found_open_and_due_through_their_indexes_and_written_only_at_the_version_read(
) {
    use chrono::{Duration, SubsecRound};
    use sync_core::domain::{AlertIssue, AlertKind, AlertStatus, AlertSubject, Raised};
    use sync_core::ports::AlertIssues;
    let aws = fresh_aws().await;
    let alerts = sync_aws::DynamoAlerts::new(aws.dynamodb(), aws.resources.table_name.clone());
    let now = chrono::Utc::now().trunc_subsecs(3);
    let (acme, globex) = (tenant("acme"), tenant("globex"));
    let issue = |tenant: &TenantId, due: Option<chrono::DateTime<chrono::Utc>>, open: bool| {
        let raised = Raised {
            tenant,
            subject: AlertSubject::Stream(ConnectionId::new_random(), EntityType::Orders),
            kind: AlertKind::RunFailed,
            error: "boom",
            link: None,
        };
        let mut issue = AlertIssue::raise(None, &raised, now - Duration::hours(1));
        issue.due_at = due;
        if !open {
            issue.status = AlertStatus::Resolved;
        }
        issue.version = 1;
        issue
    };
    let due_long_ago = issue(&acme, Some(now - Duration::minutes(50)), true);
    let due_now = issue(&globex, Some(now), false);
    let due_later = issue(&acme, Some(now + Duration::minutes(5)), true);
    let told = issue(&globex, None, true);
    let done = issue(&acme, None, false);
    for i in [&due_long_ago, &due_now, &due_later, &told, &done] {
        alerts.put(i, None).await.unwrap_or_else(|e| panic!("{e}"));
    }
    let ids = |found: Vec<AlertIssue>| found.into_iter().map(|i| i.id).collect::<Vec<_>>();
    // Due by now, earliest first, only as many as asked.
    let due = alerts.due(now, 10).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ids(due), vec![due_long_ago.id.clone(), due_now.id.clone()]);
    let first = alerts.due(now, 1).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ids(first), vec![due_long_ago.id.clone()]);
    // Open, due or not, of every tenant.
    let mut open = ids(alerts.open().await.unwrap_or_else(|e| panic!("{e}")));
    open.sort();
    let mut expected = vec![
        due_long_ago.id.clone(),
        due_later.id.clone(),
        told.id.clone(),
    ];
    expected.sort();
    assert_eq!(open, expected);
    // A write at a stale version is refused; at the one read, it moves the issue in both
    // indexes (told and resolved: it leaves them).
    let mut resolved = due_long_ago.clone();
    resolved.status = AlertStatus::Resolved;
    resolved.due_at = None;
    resolved.version = 2;
    assert_eq!(
        alerts.put(&resolved, Some(7)).await,
        Err(StoreError::Conflict)
    );
    assert_eq!(
        alerts.put(&due_long_ago, None).await,
        Err(StoreError::AlreadyExists)
    );
    alerts
        .put(&resolved, Some(1))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let due = alerts.due(now, 10).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ids(due), vec![due_now.id.clone()]);
    assert!(!ids(alerts.open().await.unwrap_or_else(|e| panic!("{e}"))).contains(&resolved.id));
    // A tenant's own list reads the table, by status.
    let acme_resolved = alerts
        .list(&acme, Some(AlertStatus::Resolved))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut found = ids(acme_resolved);
    found.sort();
    let mut expected = vec![resolved.id.clone(), done.id.clone()];
    expected.sort();
    assert_eq!(found, expected);
    assert_eq!(
        alerts.get(&globex, &resolved.id).await,
        Ok(None),
        "another tenant's issue is not found"
    );
}

#[tokio::test]
async fn the_call_quota_keeps_each_windows_budget_and_each_seat_to_one_holder_at_a_time() {
    use sync_core::ports::CallQuota;
    let aws = fresh_aws().await;
    let quota = sync_aws::DynamoCallQuota::new(aws.dynamodb(), aws.resources.table_name.clone());
    let ok = |r: Result<bool, StoreError>| r.unwrap_or_else(|e| panic!("{e}"));
    let key = "quickbooks/9130";
    // A window's budget: grants while they fit, then none; the next window is fresh.
    assert!(ok(quota.take(key, 10_000, 5, 7).await));
    assert!(!ok(quota.take(key, 10_000, 5, 7).await));
    assert!(ok(quota.take(key, 10_000, 2, 7).await));
    assert!(!ok(quota.take(key, 10_000, 1, 7).await));
    assert!(ok(quota.take(key, 20_000, 7, 7).await));
    assert!(!ok(quota.take(key, 30_000, 8, 7).await));
    // Another account's budget is its own.
    assert!(ok(quota.take("quickbooks/1", 10_000, 7, 7).await));
    // A seat: one holder until it leaves or its time is up.
    assert!(ok(quota.sit(key, 0, "a:1", 1_000, 5_000).await));
    assert!(!ok(quota.sit(key, 0, "b:1", 2_000, 6_000).await));
    // The same sitting written again (the SDK's retry of a lost answer) is still seated.
    assert!(ok(quota.sit(key, 0, "a:1", 1_000, 5_000).await));
    assert!(ok(quota.sit(key, 1, "b:1", 2_000, 6_000).await));
    // Leaving a seat another holds now leaves it with them.
    quota
        .leave(key, 1, "a:1")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!ok(quota.sit(key, 1, "c:1", 3_000, 7_000).await));
    quota
        .leave(key, 0, "a:1")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(ok(quota.sit(key, 0, "c:1", 3_000, 7_000).await));
    // Seat 1's holder is killed: its seat is free once its time is up.
    assert!(!ok(quota.sit(key, 1, "d:1", 6_000, 9_000).await));
    assert!(ok(quota.sit(key, 1, "d:1", 6_001, 9_000).await));
    // A limit smaller than the grant asked for takes nothing.
    assert!(!ok(quota.take(key, 40_000, 8, 7).await));
}

#[tokio::test]
async fn the_sweeper_walks_every_schedule_and_every_trigger_once_a_page_at_a_time() {
    use std::collections::HashSet;
    use sync_core::ports::{sweep_shard, TriggerInventory, SWEEP_SHARDS};
    let aws = fresh_aws().await;
    let store = store(&aws);
    let mut made = HashSet::new();
    // Seven in one shard (four pages of two there), some of another tenant elsewhere.
    let mut in_shard = 0;
    while in_shard < 7 || made.len() < 9 {
        let mut s = schedule(
            &aws,
            if made.len() % 2 == 0 {
                "acme"
            } else {
                "globex"
            },
            "@daily",
            "2026-11-24T12:00:00Z",
        )
        .await;
        if in_shard < 7 {
            while sweep_shard(s.id) != 10 {
                s.id = ScheduleId::new_random();
            }
            in_shard += 1;
        }
        creator(&aws)
            .insert(&s)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        trigger(&aws)
            .create(&s)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        made.insert(s.id.to_string());
    }
    let mut walked = Vec::new();
    let mut pages_of_shard_ten = 0;
    for shard in 0..SWEEP_SHARDS {
        let mut after: Option<String> = None;
        loop {
            let page = store
                .page(shard, after.as_deref(), 2)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(page.schedules.len() <= 2, "a page holds at most its limit");
            if shard == 10 {
                pages_of_shard_ten += 1;
            }
            for s in &page.schedules {
                assert_eq!(sweep_shard(s.id), shard, "each in its own shard");
                walked.push(s.id.to_string());
            }
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
    }
    assert!(
        pages_of_shard_ten >= 4,
        "the shard of seven took four pages or more"
    );
    assert_eq!(walked.len(), made.len(), "each schedule once: {walked:?}");
    assert_eq!(walked.into_iter().collect::<HashSet<_>>(), made);

    let inventory = sync_aws::EventBridgeInventory::new(aws.scheduler(), &aws.resources);
    let mut names = Vec::new();
    let mut pages_of_a = 0;
    for prefix in "0123456789abcdef".chars() {
        let mut token: Option<String> = None;
        loop {
            let page = inventory
                .names_page(&prefix.to_string(), token.as_deref(), 2)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(page.names.len() <= 2);
            assert!(page.names.iter().all(|n| n.starts_with(prefix)), "{page:?}");
            if prefix == 'a' {
                pages_of_a += 1;
            }
            names.extend(page.names);
            match page.next {
                Some(next) => token = Some(next),
                None => break,
            }
        }
    }
    assert!(pages_of_a >= 4, "seven of prefix a, two a page");
    assert_eq!(names.len(), made.len(), "each trigger once: {names:?}");
    assert_eq!(names.into_iter().collect::<HashSet<_>>(), made);
}
