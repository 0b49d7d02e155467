//! The local stack's own promises: it fires emulated EventBridge schedules as EventBridge
//! would, and `syncctl` behaves as documented.

use chrono::{DateTime, Duration, Utc};
use infra::firer::LocalScheduler;
use integration_tests::{clock, fresh_aws, syncctl, Aws};
use serde_json::Value;
use sync_aws::wiring::services;
use sync_core::domain::{ConnectionId, EntityType, NewSchedule, Platform, SyncMode, TenantId};
use sync_core::time::ScheduleExpression;

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn new_schedule(credential_id: ConnectionId, expr: &str, active: bool) -> NewSchedule {
    NewSchedule {
        credential_id,
        platform: Platform::WooCommerce,
        entity_type: EntityType::Orders,
        cron_expression: expr.to_string(),
        expression: ScheduleExpression::parse(expr).unwrap_or_else(|e| panic!("{e}")),
        sync_mode: SyncMode::Incremental,
        timezone: "America/Edmonton".parse().unwrap_or_else(|e| panic!("{e}")),
        is_active: active,
        options: Default::default(),
    }
}

async fn received(aws: &Aws) -> Vec<Value> {
    let sqs = aws.sqs();
    let url = sqs
        .get_queue_url()
        .queue_name(&aws.names.queue)
        .send()
        .await
        .ok()
        .and_then(|o| o.queue_url().map(str::to_string))
        .unwrap_or_else(|| panic!("queue missing"));
    let mut bodies = Vec::new();
    loop {
        let out = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        if out.messages().is_empty() {
            break;
        }
        for m in out.messages() {
            bodies.push(serde_json::from_str(m.body().unwrap_or("null")).unwrap_or_default());
        }
    }
    bodies
}

#[tokio::test]
async fn due_schedules_reach_the_queue_with_their_scheduled_times() {
    let aws = fresh_aws().await;
    let service = services(&aws.sdk, &aws.resources, clock("2026-11-01T06:00:00Z")).schedules;
    let tenant = TenantId::parse("acme").unwrap_or_else(|e| panic!("{e}"));
    let conn = aws.connection("acme", Platform::WooCommerce).await;
    // Every 30 minutes in Edmonton across the 2026-11-01 fall-back, plus a paused one.
    let active = service
        .create(&tenant, new_schedule(conn, "*/30 * * * *", true))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    service
        .create(&tenant, new_schedule(conn, "* * * * *", false))
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let firer = LocalScheduler::new(&aws.sdk, aws.resources.schedule_group.clone());
    let fired = firer
        .fire_due(at("2026-11-01T06:45:00Z"), at("2026-11-01T09:30:00Z"))
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let times: Vec<_> = fired.iter().map(|f| f.at).collect();
    // 01:00 and 01:30 MST (the second pass) do not fire again.
    assert_eq!(
        times,
        [
            at("2026-11-01T07:00:00Z"),
            at("2026-11-01T07:30:00Z"),
            at("2026-11-01T09:00:00Z"),
            at("2026-11-01T09:30:00Z")
        ]
    );
    let jobs = received(&aws).await;
    assert_eq!(jobs.len(), 4);
    // What lands on the queue is a typed job once EventBridge has filled in its placeholders.
    let typed: Vec<sync_core::domain::SyncJob> = jobs
        .iter()
        .map(|j| serde_json::from_value(j.clone()).unwrap_or_else(|e| panic!("{e}: {j}")))
        .collect();
    let mut scheduled: Vec<_> = jobs
        .iter()
        .map(|j| j["triggered_at"].as_str().unwrap_or_default().to_string())
        .collect();
    scheduled.sort();
    assert_eq!(
        scheduled,
        [
            "2026-11-01T07:00:00Z",
            "2026-11-01T07:30:00Z",
            "2026-11-01T09:00:00Z",
            "2026-11-01T09:30:00Z"
        ]
    );
    let mut ids: Vec<_> = typed.iter().map(|j| j.job_id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4, "execution ids must be unique");
    for job in &typed {
        assert_eq!(
            job.trigger,
            sync_core::domain::Trigger::Schedule {
                schedule_id: active.id,
                schedule_version: 1
            }
        );
    }
    for job in &jobs {
        assert!(
            !job.to_string().contains("<aws.scheduler"),
            "placeholder left in {job}"
        );
    }
}

#[tokio::test]
async fn an_empty_window_fires_nothing() {
    let aws = fresh_aws().await;
    let service = services(&aws.sdk, &aws.resources, clock("2026-11-01T06:00:00Z")).schedules;
    let tenant = TenantId::parse("acme").unwrap_or_else(|e| panic!("{e}"));
    let conn = aws.connection("acme", Platform::WooCommerce).await;
    service
        .create(&tenant, new_schedule(conn, "0 9 * * *", true))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let firer = LocalScheduler::new(&aws.sdk, aws.resources.schedule_group.clone());
    let start = at("2026-11-01T17:00:00Z");
    let fired = firer
        .fire_due(start, start + Duration::hours(2))
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(fired.is_empty(), "{fired:?}");
    assert!(received(&aws).await.is_empty());
}

#[tokio::test]
async fn syncctl_preview_prints_one_utc_time_per_line() {
    let (code, out, err) = syncctl(&[
        "preview",
        "--expr",
        "30 2 * * *",
        "--tz",
        "America/Edmonton",
        "--after",
        "2026-03-07T00:00:00Z",
        "--count",
        "3",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "2026-03-07T09:30:00Z\n2026-03-09T08:30:00Z\n2026-03-10T08:30:00Z\n"
    );
    assert!(err.is_empty());
}

#[tokio::test]
async fn syncctl_preview_refuses_bad_input_with_exit_code_2() {
    for args in [
        vec!["preview", "--expr", "0 9 1 * 1", "--tz", "UTC"],
        vec!["preview", "--expr", "not cron", "--tz", "UTC"],
        vec!["preview", "--expr", "@daily", "--tz", "Nowhere/Land"],
        vec!["preview", "--expr", "@daily", "--after", "tomorrow"],
        vec!["preview", "--expr", "@daily", "--count", "0"],
        vec!["preview", "--expr", "@daily", "--tz", "america/edmonton"],
        vec!["preview", "--expr", "0 12 30 2 *", "--tz", "UTC"],
        vec!["preview", "--expr", "cron(0 12 31 2 ? *)", "--tz", "UTC"],
        vec!["preview", "--expr", "cron(0 0 31W 2 ? *)", "--tz", "UTC"],
        vec!["preview", "--expr", "cron(0 0 29 2 ? 2100)", "--tz", "UTC"],
        vec!["preview", "--expr", "cron(0 0 ? * ? *)", "--tz", "UTC"],
        vec!["preview"],
    ] {
        let (code, out, err) = syncctl(&args).await;
        assert_eq!(code, 2, "{args:?}");
        assert!(out.is_empty(), "{args:?}: {out}");
        assert!(!err.trim().is_empty(), "{args:?}");
    }
}

#[tokio::test]
async fn syncctl_dev_token_is_accepted_by_the_local_authorizer() {
    let (code, out, _) = syncctl(&["dev-token", "--tenant", "acme"]).await;
    assert_eq!(code, 0);
    let claims = infra::jwt::LocalJwt::from_env()
        .verify(out.trim(), Utc::now().timestamp())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        claims.get("tenant_id").and_then(|v| v.as_str()),
        Some("acme")
    );
    let (code, _, _) = syncctl(&["dev-token", "--tenant", "has space"]).await;
    assert_eq!(code, 2);
}

#[tokio::test]
async fn syncctl_repair_reports_drift_on_a_dry_run_and_fixes_it_with_apply() {
    use integration_tests::schedule_invariant_violations;
    // GIVEN three schedules, then drift made behind the service's back: one EventBridge
    // schedule deleted, one rewritten to another expression, and a stray one added
    let aws = fresh_aws().await;
    let acme = TenantId::parse("acme").unwrap_or_else(|e| panic!("{e}"));
    let connection = aws.connection("acme", Platform::WooCommerce).await;
    let service = sync_aws::wiring::services(
        &aws.sdk,
        &aws.resources,
        integration_tests::clock("2026-11-24T12:00:00Z"),
    )
    .schedules;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let s = service
            .create(
                &acme,
                NewSchedule {
                    credential_id: connection,
                    platform: Platform::WooCommerce,
                    entity_type: EntityType::Orders,
                    cron_expression: "@daily".into(),
                    expression: ScheduleExpression::parse("@daily")
                        .unwrap_or_else(|e| panic!("{e}")),
                    sync_mode: SyncMode::Incremental,
                    timezone: "UTC".parse().unwrap_or_else(|e| panic!("{e}")),
                    is_active: true,
                    options: Default::default(),
                },
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        ids.push(s.id.to_string());
    }
    let scheduler = aws.scheduler();
    let group = aws.resources.schedule_group.clone();
    scheduler
        .delete_schedule()
        .name(&ids[0])
        .group_name(&group)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let existing = scheduler
        .get_schedule()
        .name(&ids[1])
        .group_name(&group)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let target = existing
        .target()
        .cloned()
        .unwrap_or_else(|| panic!("no target"));
    let window = existing
        .flexible_time_window()
        .cloned()
        .unwrap_or_else(|| panic!("no window"));
    scheduler
        .update_schedule()
        .name(&ids[1])
        .group_name(&group)
        .schedule_expression("rate(1 minute)")
        .state(aws_sdk_scheduler::types::ScheduleState::Enabled)
        .flexible_time_window(window.clone())
        .target(target.clone())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let stray = uuid::Uuid::new_v4().to_string();
    scheduler
        .create_schedule()
        .name(&stray)
        .group_name(&group)
        .schedule_expression("rate(5 minutes)")
        .flexible_time_window(window)
        .target(target)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let before = schedule_invariant_violations(&aws).await;
    assert_eq!(before.len(), 2, "{before:#?}");

    let endpoint = integration_tests::moto().endpoint();
    let args = |apply: bool| {
        let mut a = vec![
            "repair".to_string(),
            "--aws-endpoint".into(),
            endpoint.clone(),
            "--table".into(),
            aws.resources.table_name.clone(),
            "--group".into(),
            group.clone(),
            "--queue-arn".into(),
            aws.resources.sync_queue_arn.clone(),
            "--dlq-arn".into(),
            aws.resources.sync_dlq_arn.clone(),
            "--role-arn".into(),
            aws.resources.scheduler_role_arn.clone(),
        ];
        if apply {
            a.push("--apply".into());
        }
        a
    };
    // WHEN a dry run looks
    let dry: Vec<String> = args(false);
    let (code, out, err) = syncctl(&dry.iter().map(String::as_str).collect::<Vec<_>>()).await;
    // THEN it names each difference and changes nothing
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("missing trigger   schedule {}", ids[0])),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "schedule {} (tenant acme): expression differ",
            ids[1]
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("EventBridge schedule {stray}")),
        "{out}"
    );
    assert!(out.contains("3 difference(s); nothing changed"), "{out}");
    assert_eq!(schedule_invariant_violations(&aws).await.len(), 2);
    // WHEN it applies
    let apply: Vec<String> = args(true);
    let (code, out, err) = syncctl(&apply.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("fixed 3 of 3"), "{out}");
    // THEN everything is in step, and another look finds nothing
    let violations = schedule_invariant_violations(&aws).await;
    assert!(violations.is_empty(), "{violations:#?}");
    let (_, out, _) = syncctl(&dry.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert!(out.contains("in step: nothing to repair"), "{out}");
}

#[tokio::test]
async fn the_demo_syncs_the_store_through_quickbooks_into_postgresql_and_a_store_change_arrives_by_webhook_without_bouncing_back(
) {
    let aws = integration_tests::fresh_aws().await;
    let stack = infra::local::LocalStack::start(&infra::local::LocalOptions {
        listen: "127.0.0.1:0".into(),
        aws_endpoint: Some(integration_tests::moto().endpoint()),
        moto_port: None,
        tick: std::time::Duration::from_secs(1),
        names: aws.names.clone(),
        coalesce_window: std::time::Duration::from_secs(1),
        function_env: Vec::new(),
        demo: true,
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
    let demo = stack.demo.as_ref().unwrap_or_else(|| panic!("no demo"));
    let db = platform_sims::pg::connect(&demo.database_url)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let count = |table: &'static str| {
        let db = &db;
        async move {
            db.query_one(&format!("select count(*) from public.{table}"), &[])
                .await
                .map(|r| r.get::<_, i64>(0))
                .unwrap_or(-1)
        }
    };
    // The store's orders reach PostgreSQL through QuickBooks: each one that keeps a document.
    let orders = demo
        .store
        .all(platform_sims::woo::Kind::Orders)
        .iter()
        .filter(|o| !matches!(o["status"].as_str(), Some("cancelled" | "failed")))
        .count() as i64;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while count("orders").await < orders && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert_eq!(
        count("orders").await,
        orders,
        "the backfill reached PostgreSQL"
    );
    // Once the project's own backfill into the store has run (the demo's flows go both
    // ways), a product changed in the store's admin reaches PostgreSQL by webhook.
    let token = integration_tests::token(infra::demo::TENANT);
    let runs = || async {
        let page: serde_json::Value = reqwest::Client::new()
            .get(format!("{}/api/sync/runs?limit=100", stack.api_url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .json()
            .await
            .unwrap_or_default();
        page["runs"].as_array().cloned().unwrap_or_default()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !runs().await.iter().any(|r| {
        r["platform"] == "supabase" && r["entity_type"] == "products" && r["status"] == "succeeded"
    }) && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    let product = demo.store.all(platform_sims::woo::Kind::Products)[0].clone();
    let id = product["id"].to_string();
    let response = reqwest::Client::new()
        .put(format!("{}/__admin/wc/v3/products/{id}", demo.store_url))
        .json(&serde_json::json!({"name": "Renamed by the demo test"}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(response.status().is_success());
    let name = || async {
        db.query_one(
            "select name from public.products where source_id = $1",
            &[&id],
        )
        .await
        .map(|r| r.get::<_, String>(0))
        .unwrap_or_default()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while name().await != "Renamed by the demo test" && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    assert_eq!(name().await, "Renamed by the demo test");
    // The store's webhook for it became a webhook job that read that product.
    let mut webhook_runs = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while webhook_runs.is_empty() && std::time::Instant::now() < deadline {
        webhook_runs = runs()
            .await
            .into_iter()
            .filter(|r| {
                r["trigger"] == "webhook"
                    && r["entity_type"] == "products"
                    && r["ids_requested"].as_u64() == Some(1)
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert!(!webhook_runs.is_empty(), "no webhook run for the change");
    // The project's webhook for our own write comes back, and is recognised as our echo:
    // nothing is written to the store.
    let products_before = demo.store.all(platform_sims::woo::Kind::Products);
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    assert_eq!(
        demo.store.all(platform_sims::woo::Kind::Products),
        products_before,
        "the change bounced back to the store"
    );
}

#[tokio::test]
async fn the_local_sqs_event_source_settles_a_batch_as_lambda_does() {
    use aws_lambda_events::event::sqs::SqsBatchResponse;
    let aws = integration_tests::fresh_aws().await;
    let (url, source) = sync_queue_source(&aws, 10);
    for body in ["a", "b"] {
        aws.sqs()
            .send_message()
            .queue_url(&url)
            .message_body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let failing = |ids: Vec<String>| {
        move |_event: lambda_runtime::LambdaEvent<aws_lambda_events::event::sqs::SqsEvent>| {
            let ids = ids.clone();
            async move {
                let mut response = SqsBatchResponse::default();
                for id in ids {
                    response.add_failure(id);
                }
                Ok::<_, lambda_runtime::Error>(response)
            }
        }
    };
    // A failure naming no message of the batch fails the whole batch.
    let report = source
        .poll_once(&failing(vec!["not-in-this-batch".into()]))
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(
        (report.received, report.deleted, report.returned),
        (2, 0, 2)
    );
    // An invocation error too.
    let report = source
        .poll_once(&|_event| async { Err::<SqsBatchResponse, _>("crashed".into()) })
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(
        (report.received, report.deleted, report.returned),
        (2, 0, 2)
    );
    // A reported failure stays; the rest is deleted.
    let report = source
        .poll_once(&|event: lambda_runtime::LambdaEvent<
            aws_lambda_events::event::sqs::SqsEvent,
        >| {
            let id = event.payload.records[0]
                .message_id
                .clone()
                .unwrap_or_default();
            let mut response = SqsBatchResponse::default();
            response.add_failure(id);
            async move { Ok::<_, lambda_runtime::Error>(response) }
        })
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(
        (report.received, report.deleted, report.returned),
        (2, 1, 1)
    );
    let report = source
        .poll_once(&failing(Vec::new()))
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!((report.received, report.deleted), (1, 1));
}

#[tokio::test]
async fn a_job_handed_back_on_every_receive_goes_to_the_dead_letter_queue_after_five() {
    use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
    let aws = integration_tests::fresh_aws().await;
    let (url, source) = sync_queue_source(&aws, 5);
    aws.sqs()
        .send_message()
        .queue_url(&url)
        .message_body("a job that always fails")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let fail_all = |event: lambda_runtime::LambdaEvent<SqsEvent>| {
        let mut response = SqsBatchResponse::default();
        for m in event.payload.records {
            response.add_failure(m.message_id.unwrap_or_default());
        }
        async move { Ok::<_, lambda_runtime::Error>(response) }
    };
    let mut received = 0;
    for _ in 0..8 {
        received += source
            .poll_once(&fail_all)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"))
            .received;
    }
    assert_eq!(
        received, 5,
        "handed to the function once per receive, five times"
    );
    let dlq = aws
        .sqs()
        .get_queue_url()
        .queue_name(&aws.names.dlq)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .queue_url
        .unwrap_or_default();
    let dead = aws
        .sqs()
        .receive_message()
        .queue_url(&dlq)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let bodies: Vec<&str> = dead.messages().iter().filter_map(|m| m.body()).collect();
    assert_eq!(bodies, ["a job that always fails"]);
}

/// The sync queue's URL, and an event source over it handing over `batch_size` messages,
/// whose handed-back messages are visible again at once (for the next poll).
fn sync_queue_source(
    aws: &integration_tests::Aws,
    batch_size: usize,
) -> (String, infra::event_source::SqsEventSource) {
    let url = aws.provisioned.sync_queue_url.clone();
    let source = infra::event_source::SqsEventSource::new(
        &aws.sdk,
        infra::event_source::Mapping {
            queue_url: url.clone(),
            queue_arn: aws.resources.sync_queue_arn.clone(),
            batch_size,
            window: std::time::Duration::ZERO,
            timeout: std::time::Duration::from_secs(30),
            visibility_timeout: std::time::Duration::ZERO,
        },
    );
    (url, source)
}

#[tokio::test]
async fn the_sweeper_catches_a_missed_fire_time_up_once_counts_those_outside_the_window_and_repairs_a_trigger(
) {
    let api = integration_tests::api_with(vec![
        ("FIRE_GRACE_SECONDS".into(), "1".into()),
        ("CATCH_UP_SPREAD_SECONDS".into(), "1".into()),
    ])
    .await;
    let aws = &api.aws;
    let tenant = TenantId::parse("acme").unwrap_or_else(|e| panic!("{e}"));
    let connection = aws.connection("acme", Platform::WooCommerce).await;
    // Two schedules every ten minutes, written three hours ago; no fire time since has had
    // a run (EventBridge or the worker was down). One catches up within the hour, the
    // other never.
    let written = Utc::now() - Duration::hours(3);
    let services = services(
        &aws.sdk,
        &aws.resources,
        std::sync::Arc::new(sync_core::clock::FixedClock::new(written)),
    );
    let caught = services
        .schedules
        .create(&tenant, new_schedule(connection, "*/10 * * * *", true))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut never = new_schedule(connection, "*/10 * * * *", true);
    never.options.catch_up_window_minutes = 0;
    let never = services
        .schedules
        .create(&tenant, never)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let first = api
        .stack
        .sweep_once()
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(first["errors"], serde_json::json!([]), "{first}");
    assert_eq!(first["counts"]["caught_up"], 1, "{first}");
    let missed = first["missed"].as_array().cloned().unwrap_or_default();
    let of = |id: &str| missed.iter().filter(|m| m["schedule_id"] == id).count();
    assert!(of(&caught.id.to_string()) >= 17, "{first}");
    assert_eq!(
        first["counts"]["missed"],
        of(&never.id.to_string()),
        "only the schedule without a window counts as missed: {first}"
    );
    let catch_up: Vec<&Value> = missed
        .iter()
        .filter(|m| m["catch_up_run_id"].is_string())
        .collect();
    assert_eq!(catch_up.len(), 1, "{first}");
    assert_eq!(catch_up[0]["schedule_id"], caught.id.to_string());
    let run_id = catch_up[0]["catch_up_run_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // The run is recorded queued at once, and its job arrives within the spread.
    let path = format!("/api/sync/runs/{run_id}");
    let (_, queued) = api
        .send(reqwest::Method::GET, &path, Some("acme"), None)
        .await;
    assert_eq!(queued["status"], "queued", "{queued}");
    assert_eq!(queued["trigger"], "catch_up", "{queued}");
    assert_eq!(queued["schedule_id"], caught.id.to_string(), "{queued}");
    // Fire times missed outside the window are alerted, one issue per schedule: all of the
    // windowless schedule's, and all but the last (caught up) of the other's.
    let (_, alerts) = api
        .send(
            reqwest::Method::GET,
            "/api/alerts?status=open",
            Some("acme"),
            None,
        )
        .await;
    let missed_of = |id: &str| -> Vec<u64> {
        alerts["alerts"]
            .as_array()
            .map(|all| {
                all.iter()
                    .filter(|a| {
                        a["kind"] == "missed_fire" && a["subject"] == format!("schedule:{id}")
                    })
                    .map(|a| {
                        let text = a["last_error"].as_str().unwrap_or_default();
                        text.split(' ')
                            .next()
                            .and_then(|n| n.parse().ok())
                            .unwrap_or(0)
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let (never_missed, caught_missed) = (
        missed_of(&never.id.to_string()),
        missed_of(&caught.id.to_string()),
    );
    assert_eq!(never_missed.len(), 1, "{alerts}");
    assert_eq!(caught_missed.len(), 1, "{alerts}");
    assert!(never_missed[0] >= 17, "{alerts}");
    assert_eq!(caught_missed[0] + 1, never_missed[0], "{alerts}");
    // The next sweep queues nothing more (nor counts the same fire times again).
    let second = api
        .stack
        .sweep_once()
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(second["counts"]["caught_up"], 0, "{second}");
    assert_eq!(second["counts"]["missed"], 0, "{second}");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    api.stack
        .work_until_idle(10)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let (_, ran) = api
        .send(reqwest::Method::GET, &path, Some("acme"), None)
        .await;
    assert_ne!(
        ran["status"], "queued",
        "the worker took the catch-up up: {ran}"
    );
    assert_eq!(ran["trigger"], "catch_up", "{ran}");
    // EventBridge's own delivery of that fire turns up after all: the same run, not another.
    let fire = at(catch_up[0]["fire_time"].as_str().unwrap_or_default());
    let firer = LocalScheduler::new(&aws.sdk, aws.resources.schedule_group.clone());
    let fired = firer
        .fire_due(fire - Duration::seconds(1), fire)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(
        fired.iter().any(|f| f.schedule == caught.id.to_string()),
        "{fired:?}"
    );
    api.stack
        .work_until_idle(10)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let runs_path = format!("/api/sync/runs?schedule_id={}&limit=100", caught.id);
    let (_, listed) = api
        .send(reqwest::Method::GET, &runs_path, Some("acme"), None)
        .await;
    let of_fire: Vec<&Value> = listed["runs"]
        .as_array()
        .map(|runs| {
            runs.iter()
                .filter(|r| at(r["triggered_at"].as_str().unwrap_or_default()) == fire)
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(of_fire.len(), 1, "{listed}");
    assert_eq!(of_fire[0]["id"], run_id.as_str());
    // An EventBridge schedule deleted behind our back is put back by the next sweep.
    aws.scheduler()
        .delete_schedule()
        .group_name(&aws.resources.schedule_group)
        .name(caught.id.to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let third = api
        .stack
        .sweep_once()
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(third["counts"]["repairs"], 1, "{third}");
    assert!(api
        .eventbridge_state(&caught.id.to_string())
        .await
        .is_some());
    // One changed behind our back (another expression, disabled) is put back as stored.
    let scheduler = aws.scheduler();
    let group = aws.resources.schedule_group.clone();
    let read = |name: String| {
        let (scheduler, group) = (scheduler.clone(), group.clone());
        async move {
            scheduler
                .get_schedule()
                .name(name)
                .group_name(group)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{e}"))
        }
    };
    let existing = read(never.id.to_string()).await;
    scheduler
        .update_schedule()
        .name(never.id.to_string())
        .group_name(&group)
        .schedule_expression("rate(1 minute)")
        .state(aws_sdk_scheduler::types::ScheduleState::Disabled)
        .set_flexible_time_window(existing.flexible_time_window().cloned())
        .set_target(existing.target().cloned())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let fourth = api
        .stack
        .sweep_once()
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(fourth["counts"]["repairs"], 1, "{fourth}");
    let repaired = read(never.id.to_string()).await;
    assert_eq!(
        repaired.schedule_expression(),
        existing.schedule_expression()
    );
    assert_eq!(repaired.state(), existing.state());
}

/// A minute in which many schedules of many tenants fire at once (the midnight of
/// `docs/scale.md`): EventBridge's deliveries of that minute go to the sync queue as the
/// firer sends them, and the worker's own handler drains the queue. Every fire is one run of
/// its own schedule, and none is left open. `LOAD_SCHEDULES` and `LOAD_TENANTS` size it
/// (`./infra/bench.sh load` runs 2,000); `LOAD_REPORT` names a file for the figures. The
/// stores have no flows, so each run ends `skipped` once planned: what is measured is the
/// path from a fire to a settled run (lease, run ledger, the fire's identity), not a sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_firing_in_the_same_minute_each_make_one_run_and_none_is_left_open() {
    use futures::StreamExt;
    use std::collections::HashMap;
    let env = integration_tests::env_size;
    let schedules = env("LOAD_SCHEDULES", 60);
    let tenants = env("LOAD_TENANTS", 6).max(1);
    let api = integration_tests::api().await;
    let aws = &api.aws;
    let names: Vec<String> = (0..tenants).map(|i| format!("load{i:04}")).collect();
    let mut connections = Vec::new();
    for name in &names {
        connections.push(aws.connection(name, Platform::WooCommerce).await);
    }
    let services = services(
        &aws.sdk,
        &aws.resources,
        std::sync::Arc::new(sync_core::clock::SystemClock),
    );
    let started = std::time::Instant::now();
    let made: Vec<(String, String)> = futures::stream::iter(0..schedules)
        .map(|i| {
            let (services, names, connections) = (&services, &names, &connections);
            async move {
                let t = i % names.len();
                let tenant = TenantId::parse(&names[t]).unwrap_or_else(|e| panic!("{e}"));
                let made = services
                    .schedules
                    .create(&tenant, new_schedule(connections[t], "* * * * *", true))
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                (names[t].clone(), made.id.to_string())
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let creating = started.elapsed().as_secs_f64();
    // The next whole minute: every schedule fires at it.
    let minute = chrono::DurationRound::duration_trunc(
        Utc::now() + Duration::minutes(1),
        Duration::minutes(1),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let started = std::time::Instant::now();
    let firer = LocalScheduler::new(&aws.sdk, aws.resources.schedule_group.clone());
    let fired = firer
        .fire_due(minute - Duration::seconds(1), minute)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let firing = started.elapsed().as_secs_f64();
    assert_eq!(fired.len(), schedules, "every schedule fires once");
    // Drained until no run is open (a follow-up kept on a busy stream is woken when the
    // stream is released).
    let started = std::time::Instant::now();
    let mut batches = 0;
    let runs = loop {
        batches += api
            .stack
            .work_until_idle(usize::MAX)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        let mut runs: Vec<(String, Value)> = Vec::new();
        for name in &names {
            let mut next: Option<String> = None;
            loop {
                let path = match &next {
                    Some(n) => format!("/api/sync/runs?limit=100&next={n}"),
                    None => "/api/sync/runs?limit=100".to_string(),
                };
                let (status, page) = api
                    .send(reqwest::Method::GET, &path, Some(name), None)
                    .await;
                assert_eq!(status, reqwest::StatusCode::OK, "{page}");
                for run in page["runs"].as_array().cloned().unwrap_or_default() {
                    runs.push((name.clone(), run));
                }
                next = page["next"].as_str().map(str::to_string);
                if next.is_none() {
                    break;
                }
            }
        }
        let open = runs
            .iter()
            .filter(|(_, r)| r["status"] == "queued" || r["status"] == "running")
            .count();
        if open == 0 {
            break runs;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1800),
            "{open} runs still open"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };
    let draining = started.elapsed().as_secs_f64();
    // One run per schedule for that minute, of that tenant, and no other run.
    let mut per_schedule: HashMap<(String, String), usize> = HashMap::new();
    let mut by_status: HashMap<String, usize> = HashMap::new();
    for (tenant, run) in &runs {
        assert_eq!(
            at(run["triggered_at"].as_str().unwrap_or_default()),
            minute,
            "{run}"
        );
        assert_eq!(run["trigger"], "schedule", "{run}");
        let schedule = run["schedule_id"].as_str().unwrap_or_default().to_string();
        *per_schedule.entry((tenant.clone(), schedule)).or_default() += 1;
        *by_status
            .entry(run["status"].as_str().unwrap_or_default().to_string())
            .or_default() += 1;
    }
    assert_eq!(runs.len(), schedules, "{by_status:?}");
    for made in &made {
        assert_eq!(per_schedule.get(made), Some(&1), "{made:?}");
    }
    // The sweeper's pass over them all: every schedule looked at once, every trigger found
    // as it should be.
    let started = std::time::Instant::now();
    let (mut sweeps, mut walked, mut listed) = (0u64, 0u64, 0u64);
    loop {
        let swept = api
            .stack
            .sweep_once()
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(swept["errors"], serde_json::json!([]), "{swept}");
        assert_eq!(swept["counts"]["repairs"], 0, "{swept}");
        sweeps += 1;
        walked += swept["counts"]["schedules"].as_u64().unwrap_or_default();
        listed += swept["counts"]["triggers"].as_u64().unwrap_or_default();
        let (status, sweeper) = api
            .send(
                reqwest::Method::GET,
                "/api/sync/sweeper",
                Some(&names[0]),
                None,
            )
            .await;
        assert_eq!(status, reqwest::StatusCode::OK, "{sweeper}");
        if sweeper["pass"].is_null() {
            break;
        }
        assert!(sweeps < 100, "the pass never ends: {sweeper}");
    }
    let sweeping = started.elapsed().as_secs_f64();
    assert_eq!(walked, schedules as u64, "each schedule once in the pass");
    if let Ok(path) = std::env::var("LOAD_REPORT") {
        let statuses: Vec<String> = {
            let mut all: Vec<_> = by_status.iter().collect();
            all.sort();
            all.iter().map(|(s, n)| format!("{n} {s}")).collect()
        };
        let report = format!(
            "| schedules | tenants (one stream each) | created in | fired in | drained in | \
             runs | worker batches | runs by status | sweeper pass |\n\
             |---|---|---|---|---|---|---|---|---|\n\
             | {schedules} | {tenants} | {creating:.1} s | {firing:.1} s ({:.0}/s) | \
             {draining:.1} s ({:.0} runs/s) | {} | {batches} | {} | \
             {sweeping:.1} s in {sweeps} sweep(s), {:.1} ms a schedule ({listed} triggers listed) |\n",
            schedules as f64 / firing.max(0.001),
            schedules as f64 / draining.max(0.001),
            runs.len(),
            statuses.join(", "),
            sweeping * 1000.0 / walked.max(1) as f64,
        );
        std::fs::write(&path, report).unwrap_or_else(|e| panic!("{path}: {e}"));
    }
}
