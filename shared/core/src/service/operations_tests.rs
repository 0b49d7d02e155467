//! Runs a person asks for, against in-memory fakes.

use super::*;
use crate::clock::FixedClock;
use crate::domain::{ConflictPolicy, NewFlow, NewSchedule, Platform};
use crate::memory::{connection_fixture, MemoryWorld};
use crate::ports::{RunHistory, SyncLeases};
use crate::service::Services;

struct World {
    clock: Arc<FixedClock>,
    services: Services,
    mem: MemoryWorld,
    tenant: TenantId,
    woo: Connection,
    supabase: Connection,
}

async fn world() -> World {
    let clock = Arc::new(FixedClock::new(
        DateTime::from_timestamp(1_795_521_600, 0).unwrap_or_default(),
    ));
    let (services, mem) = Services::in_memory(clock.clone());
    let tenant = TenantId::parse("acme").unwrap_or_else(|e| panic!("{e}"));
    let woo = connection_fixture(&tenant, Platform::WooCommerce);
    let supabase = connection_fixture(&tenant, Platform::Supabase);
    for c in [&woo, &supabase] {
        mem.connections.seed(c.clone());
    }
    services
        .flows
        .create(
            &tenant,
            NewFlow {
                source_connection_id: woo.id,
                target_connection_id: supabase.id,
                entities: vec![EntityType::Orders],
                conflict_policy: ConflictPolicy::SourceWins,
                doc_number_prefix: None,
                enabled: true,
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // The flow's backfill is not what these tests look at.
    mem.queue.drain_jobs();
    World {
        clock,
        services,
        mem,
        tenant,
        woo,
        supabase,
    }
}

fn ask(connection: &Connection, entity: EntityType) -> RunRequest {
    RunRequest {
        connection_id: connection.id,
        entity_type: entity,
        sync_mode: None,
        ids: Vec::new(),
    }
}

fn field<T: std::fmt::Debug>(r: Result<T, ServiceError>) -> String {
    match r {
        Err(ServiceError::Invalid { field, .. }) => field,
        other => panic!("expected a field error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_trigger_records_a_queued_manual_run_and_sends_the_job_it_names() {
    let w = world().await;
    let mut asked = ask(&w.woo, EntityType::Orders);
    asked.ids = vec!["7".into(), "3".into(), " 7 ".into()];
    let run = w
        .services
        .operations
        .trigger(&w.tenant, asked)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(run.status, RunStatus::Queued);
    assert_eq!(run.trigger, Trigger::Manual);
    assert_eq!(run.attempts, 0);
    let jobs = w.mem.queue.jobs();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].run_id(), run.id, "the job runs as the run answered");
    assert_eq!(jobs[0].ids, ["3", "7"]);
    assert_eq!(jobs[0].sync_mode, SyncMode::Incremental);
    let stored = RunHistory::get(w.mem.runs.as_ref(), &w.tenant, &run.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stored, Some(run));
}

#[tokio::test]
async fn a_trigger_with_nothing_to_write_to_or_a_bad_request_queues_nothing() {
    let w = world().await;
    let ops = &w.services.operations;
    // No flow reads products from the store, nor anything from Supabase.
    for (connection, entity) in [
        (&w.woo, EntityType::Products),
        (&w.supabase, EntityType::Orders),
    ] {
        match ops.trigger(&w.tenant, ask(connection, entity)).await {
            Err(ServiceError::Conflict(m)) => assert!(m.contains("no enabled flow"), "{m}"),
            other => panic!("expected a conflict, got {other:?}"),
        }
    }
    let mut full_with_ids = ask(&w.woo, EntityType::Orders);
    full_with_ids.sync_mode = Some(SyncMode::Full);
    full_with_ids.ids = vec!["1".into()];
    assert_eq!(field(ops.trigger(&w.tenant, full_with_ids).await), "ids");
    let mut too_many = ask(&w.woo, EntityType::Orders);
    too_many.ids = (0..=MAX_JOB_IDS).map(|i| i.to_string()).collect();
    assert_eq!(field(ops.trigger(&w.tenant, too_many).await), "ids");
    let mut blank = ask(&w.woo, EntityType::Orders);
    blank.ids = vec![" ".into()];
    assert_eq!(field(ops.trigger(&w.tenant, blank).await), "ids");
    let mut long = ask(&w.woo, EntityType::Orders);
    long.ids = vec!["9".repeat(101)];
    assert_eq!(field(ops.trigger(&w.tenant, long).await), "ids");
    // Another tenant's connection is no connection of this one.
    let other = TenantId::parse("globex").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        field(ops.trigger(&other, ask(&w.woo, EntityType::Orders)).await),
        "connection_id"
    );
    assert!(w.mem.queue.jobs().is_empty());
    assert!(w.mem.runs.all().is_empty());
}

#[tokio::test]
async fn a_trigger_the_queue_refuses_is_a_failed_run_and_unavailable() {
    let w = world().await;
    w.mem.queue.set_failing(true);
    let r = w
        .services
        .operations
        .trigger(&w.tenant, ask(&w.woo, EntityType::Orders))
        .await;
    assert!(matches!(r, Err(ServiceError::Unavailable(_))), "{r:?}");
    let runs = w.mem.runs.all();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, RunStatus::Failed, "never left queued");
}

#[tokio::test]
async fn a_paused_schedule_runs_now_as_a_manual_run_of_that_schedule() {
    let w = world().await;
    let schedule = w
        .services
        .schedules
        .create(
            &w.tenant,
            NewSchedule {
                credential_id: w.woo.id,
                platform: Platform::WooCommerce,
                entity_type: EntityType::Orders,
                cron_expression: "0 9 * * *".into(),
                expression: crate::time::ScheduleExpression::parse("0 9 * * *")
                    .unwrap_or_else(|e| panic!("{e}")),
                sync_mode: SyncMode::Full,
                timezone: "Europe/Paris".parse().unwrap_or_else(|e| panic!("{e}")),
                is_active: false,
                options: Default::default(),
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let run = w
        .services
        .operations
        .run_schedule(&w.tenant, schedule.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(run.schedule_id, Some(schedule.id));
    assert_eq!(run.trigger.as_str(), "manual");
    let jobs = w.mem.queue.jobs();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].sync_mode, SyncMode::Full);
    assert_eq!(
        jobs[0].trigger,
        Trigger::ScheduleNow {
            schedule_id: schedule.id
        }
    );
    // Another tenant's schedule is not found.
    let other = TenantId::parse("globex").unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        w.services
            .operations
            .run_schedule(&other, schedule.id)
            .await,
        Err(ServiceError::NotFound("schedule"))
    ));
}

fn failed(w: &World, id: &str, entity: EntityType, error: &str, quarantined: bool) -> FailedRecord {
    let at = w.services.schedules.now();
    FailedRecord {
        tenant_id: w.tenant.clone(),
        connection_id: w.woo.id,
        entity_type: entity,
        record_id: id.into(),
        flow_id: None,
        error: error.into(),
        error_code: crate::ports::REFUSED.into(),
        attempts: if quarantined { 5 } else { 1 },
        first_failed_at: at - chrono::Duration::hours(2),
        last_failed_at: at - chrono::Duration::hours(1),
        run_id: RunId::for_job(at, "another run"),
        quarantined_at: quarantined.then_some(at),
        next_try_at: quarantined.then_some(at + chrono::Duration::hours(1)),
    }
}

async fn keep(w: &World, records: &[FailedRecord]) {
    use crate::ports::FailureLog;
    w.mem
        .failures
        .keep(records)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// A finished run of the store's orders, as the worker leaves it.
fn finished(w: &World, status: RunStatus, failed_ids: &[&str]) -> Run {
    let job = SyncJob {
        job_id: "earlier".into(),
        tenant_id: w.tenant.clone(),
        connection_id: w.woo.id,
        platform: Platform::WooCommerce,
        entity_type: EntityType::Orders,
        sync_mode: SyncMode::Full,
        trigger: Trigger::Webhook,
        triggered_at: w.services.schedules.now(),
        ids: Vec::new(),
        resume: None,
        attempt: 0,
        stands_for: Vec::new(),
        window: None,
        reported: Some(true),
    };
    let mut run = Run::of_job(&job, job.run_id(), None, job.triggered_at, status);
    for id in failed_ids {
        run.fail_record(crate::domain::RecordFailure {
            record_id: id.to_string(),
            flow_id: None,
            error: "refused".into(),
            error_code: crate::ports::REFUSED.into(),
            retryable: false,
            attempts: 1,
            quarantined: false,
        });
    }
    w.mem.runs.seed(run.clone());
    run
}

#[tokio::test]
async fn a_runs_retry_runs_its_failed_and_quarantined_records_again_by_id() {
    let w = world().await;
    let run = finished(&w, RunStatus::Partial, &["11", "12"]);
    // One more of its records was quarantined by it; another run's is not this one's.
    let mut mine = failed(&w, "13", EntityType::Orders, "closed period", true);
    mine.run_id = run.id.clone();
    keep(
        &w,
        &[
            mine,
            failed(&w, "99", EntityType::Orders, "closed period", true),
        ],
    )
    .await;
    let retried = w
        .services
        .operations
        .retry_run(&w.tenant, &run.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(retried.records, 3);
    assert_eq!(retried.runs.len(), 1);
    assert_eq!(retried.runs[0].trigger, Trigger::Retry);
    assert_eq!(retried.runs[0].status, RunStatus::Queued);
    let jobs = w.mem.queue.jobs();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].ids, ["11", "12", "13"]);
    assert_eq!(jobs[0].run_id(), retried.runs[0].id);
}

#[tokio::test]
async fn a_run_still_going_or_with_nothing_failed_is_a_conflict_and_a_failed_one_runs_whole() {
    let w = world().await;
    let ops = &w.services.operations;
    for status in [RunStatus::Queued, RunStatus::Running, RunStatus::Succeeded] {
        let run = finished(&w, status, &[]);
        match ops.retry_run(&w.tenant, &run.id).await {
            Err(ServiceError::Conflict(m)) => assert!(!m.is_empty()),
            other => panic!("{status}: expected a conflict, got {other:?}"),
        }
    }
    assert!(w.mem.queue.jobs().is_empty());
    let failed_run = finished(&w, RunStatus::Failed, &[]);
    let retried = ops
        .retry_run(&w.tenant, &failed_run.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((retried.records, retried.runs.len()), (0, 1));
    let jobs = w.mem.queue.jobs();
    assert!(jobs[0].ids.is_empty());
    assert_eq!(jobs[0].sync_mode, SyncMode::Full, "in the run's own mode");
    let other = TenantId::parse("globex").unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        ops.retry_run(&other, &failed_run.id).await,
        Err(ServiceError::NotFound("run"))
    ));
}

#[tokio::test]
async fn a_bulk_retry_by_error_code_queues_exactly_the_records_with_that_code() {
    let w = world().await;
    let coded = |id: &str, code: &str| FailedRecord {
        error_code: code.into(),
        ..failed(
            &w,
            id,
            EntityType::Orders,
            "QuickBooks fault 6210 (Account Period Closed)",
            true,
        )
    };
    keep(
        &w,
        &[
            coded("1", "quickbooks_6210"),
            coded("2", "quickbooks_6210"),
            // The same words in its message, another code; and one kept before codes were.
            coded("3", "quickbooks_6240"),
            coded("4", ""),
        ],
    )
    .await;
    let retried = w
        .services
        .operations
        .retry_failures(
            &w.tenant,
            FailureFilter {
                error_code: Some("QuickBooks_6210".into()),
                ..FailureFilter::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(retried.records, 2);
    assert_eq!(w.mem.queue.drain_jobs()[0].ids, ["1", "2"]);
}

#[tokio::test]
async fn a_bulk_retry_queues_only_what_its_filter_matches_one_run_per_stream() {
    let w = world().await;
    let mut recent = failed(&w, "3", EntityType::Orders, "HTTP 503 from the store", true);
    recent.last_failed_at = w.services.schedules.now();
    keep(
        &w,
        &[
            failed(
                &w,
                "1",
                EntityType::Orders,
                "Closed period: voids refused",
                true,
            ),
            failed(&w, "2", EntityType::Orders, "closed PERIOD", true),
            recent,
            failed(&w, "4", EntityType::Orders, "closed period", false),
            failed(&w, "5", EntityType::Products, "closed period", true),
        ],
    )
    .await;
    let ops = &w.services.operations;
    let retried = ops
        .retry_failures(
            &w.tenant,
            FailureFilter {
                entity_type: Some(EntityType::Orders),
                error_contains: Some("closed period".into()),
                ..FailureFilter::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Not "4" (not quarantined), not "5" (products), not "3" (another error).
    assert_eq!(retried.records, 2);
    assert!(!retried.more);
    assert_eq!(w.mem.queue.drain_jobs()[0].ids, ["1", "2"]);
    // By time: only what failed in the last half hour.
    let now = w.services.schedules.now();
    let retried = ops
        .retry_failures(
            &w.tenant,
            FailureFilter {
                connection_id: Some(w.woo.id),
                failed_from: Some(now - chrono::Duration::minutes(30)),
                not_quarantined_too: true,
                ..FailureFilter::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(retried.records, 1);
    assert_eq!(w.mem.queue.drain_jobs()[0].ids, ["3"]);
    // Everything quarantined: one run per stream.
    let retried = ops
        .retry_failures(&w.tenant, FailureFilter::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((retried.records, retried.runs.len()), (4, 2));
    // Another tenant has nothing to retry, and cannot name this tenant's connection.
    let other = TenantId::parse("globex").unwrap_or_else(|e| panic!("{e}"));
    let none = ops
        .retry_failures(&other, FailureFilter::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((none.records, none.runs.len()), (0, 0));
    let named = FailureFilter {
        connection_id: Some(w.woo.id),
        ..FailureFilter::default()
    };
    assert_eq!(
        field(ops.retry_failures(&other, named).await),
        "connection_id"
    );
    let backwards = FailureFilter {
        failed_from: Some(now),
        failed_to: Some(now),
        ..FailureFilter::default()
    };
    assert_eq!(
        field(ops.retry_failures(&w.tenant, backwards).await),
        "failed_to"
    );
}

#[tokio::test]
async fn a_bulk_retry_reads_every_page_of_failures_to_the_end() {
    let w = world().await;
    // 350 quarantined orders (four pages of 100 as the failure list reads them), and one
    // more on the last page that the filter leaves out.
    let mut records: Vec<FailedRecord> = (0..350)
        .map(|n| {
            failed(
                &w,
                &format!("{n:04}"),
                EntityType::Orders,
                "closed period",
                true,
            )
        })
        .collect();
    records.push(failed(&w, "9999", EntityType::Orders, "HTTP 503", true));
    keep(&w, &records).await;
    let retried = w
        .services
        .operations
        .retry_failures(
            &w.tenant,
            FailureFilter {
                error_contains: Some("closed".into()),
                ..FailureFilter::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (retried.records, retried.runs.len(), retried.more),
        (350, 1, false)
    );
    let ids = &w.mem.queue.jobs()[0].ids;
    assert_eq!(ids.len(), 350);
    assert_eq!((ids[0].as_str(), ids[349].as_str()), ("0000", "0349"));
}

/// A run log whose run is taken up by a worker (saved `running`) the moment a cancel is
/// requested: the interleaving where the API read the run queued just before.
struct TakenUpOnCancel(Arc<crate::memory::MemoryRuns>);

#[async_trait::async_trait]
impl RunLog for TakenUpOnCancel {
    async fn get(
        &self,
        tenant: &TenantId,
        id: &RunId,
    ) -> Result<Option<Run>, crate::ports::StoreError> {
        RunLog::get(self.0.as_ref(), tenant, id).await
    }
    async fn save(&self, run: &Run) -> Result<(), crate::ports::StoreError> {
        self.0.save(run).await
    }
    async fn save_if_unchanged(
        &self,
        run: &Run,
        seen: Option<DateTime<Utc>>,
    ) -> Result<bool, crate::ports::StoreError> {
        self.0.save_if_unchanged(run, seen).await
    }
    async fn replace_queued(&self, run: &Run) -> Result<bool, crate::ports::StoreError> {
        self.0.replace_queued(run).await
    }
    async fn request_cancel(
        &self,
        tenant: &TenantId,
        id: &RunId,
        at: DateTime<Utc>,
    ) -> Result<(), crate::ports::StoreError> {
        if let Some(mut run) = RunLog::get(self.0.as_ref(), tenant, id).await? {
            run.status = RunStatus::Running;
            self.0.save(&run).await?;
        }
        self.0.request_cancel(tenant, id, at).await
    }
    async fn cancel_requested(
        &self,
        tenant: &TenantId,
        id: &RunId,
    ) -> Result<Option<DateTime<Utc>>, crate::ports::StoreError> {
        self.0.cancel_requested(tenant, id).await
    }
}

async fn queued_run(w: &World) -> Run {
    w.services
        .operations
        .trigger(&w.tenant, ask(&w.woo, EntityType::Orders))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn a_queued_run_cancelled_is_cancelled_at_once_and_its_request_kept_for_the_worker() {
    let w = world().await;
    let run = queued_run(&w).await;
    let done = w.services.operations.cancel_run(&w.tenant, &run.id).await;
    let Ok(Cancelled::Dropped(cancelled)) = done else {
        panic!("expected the run dropped, got {done:?}")
    };
    assert_eq!(cancelled.status, RunStatus::Cancelled);
    assert!(cancelled.finished_at.is_some());
    let stored = RunHistory::get(w.mem.runs.as_ref(), &w.tenant, &run.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stored.map(|r| r.status), Some(RunStatus::Cancelled));
    let asked = w.mem.runs.cancel_requested(&w.tenant, &run.id).await;
    assert!(matches!(asked, Ok(Some(_))), "{asked:?}");
    // Asked again: it has ended.
    assert!(matches!(
        w.services.operations.cancel_run(&w.tenant, &run.id).await,
        Err(ServiceError::Conflict(m)) if m.contains("already ended cancelled")
    ));
}

#[tokio::test]
async fn a_run_carrying_a_platforms_changes_is_not_cancelled_queued_or_merged_into_a_persons_run() {
    let w = world().await;
    // A webhook's job parked on a busy stream, then a person's run merged into it (as a
    // job of no record in particular: one naming records waits unmerged): the merged run
    // is the person's, reads what changed since the cursor, and carries the webhook's.
    let mut webhook = crate::fixtures::job(&w.tenant, w.woo.id, w.clock.now());
    webhook.trigger = Trigger::Webhook;
    webhook.ids = vec!["1042".into()];
    webhook.reported = Some(true);
    let mut asked = webhook.clone();
    asked.job_id = "asked".into();
    asked.trigger = Trigger::Manual;
    asked.ids = Vec::new();
    asked.reported = Some(false);
    let merged = webhook.merged_with(&asked);
    assert_eq!(
        (
            merged.trigger.clone(),
            merged.ids.len(),
            merged.is_reported()
        ),
        (Trigger::Manual, 0, true)
    );
    let now = w.clock.now();
    let running = Run::of_job(&merged, merged.run_id(), None, now, RunStatus::Running);
    // The redo of an abandoned webhook run, still queued.
    let mut redo_job = webhook.clone();
    redo_job.job_id = "redo-of-a-webhook-run".into();
    redo_job.trigger = Trigger::Retry;
    let queued = Run::of_job(&redo_job, redo_job.run_id(), None, now, RunStatus::Queued);
    for run in [running, queued] {
        w.mem.runs.seed(run.clone());
        let refused = w.services.operations.cancel_run(&w.tenant, &run.id).await;
        assert!(
            matches!(&refused, Err(ServiceError::Conflict(m)) if m.contains("runs to its end")),
            "{refused:?}"
        );
        let kept = RunHistory::get(w.mem.runs.as_ref(), &w.tenant, &run.id)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(kept.map(|r| r.status), Some(run.status));
        assert_eq!(
            w.mem.runs.cancel_requested(&w.tenant, &run.id).await.ok(),
            Some(None),
            "no request a worker would find"
        );
    }
    // The same person's run alone can be cancelled.
    let alone = Run::of_job(&asked, asked.run_id(), None, now, RunStatus::Running);
    w.mem.runs.seed(alone.clone());
    assert!(matches!(
        w.services.operations.cancel_run(&w.tenant, &alone.id).await,
        Ok(Cancelled::Requested(..))
    ));
}

#[tokio::test]
async fn a_running_run_is_asked_to_stop_and_an_ended_or_unknown_one_is_refused() {
    let w = world().await;
    let mut run = queued_run(&w).await;
    run.status = RunStatus::Running;
    w.mem.runs.seed(run.clone());
    let done = w.services.operations.cancel_run(&w.tenant, &run.id).await;
    let Ok(Cancelled::Requested(as_is, at)) = done else {
        panic!("expected a request, got {done:?}")
    };
    assert_eq!(as_is.status, RunStatus::Running, "the worker ends it");
    assert_eq!(
        w.mem.runs.cancel_requested(&w.tenant, &run.id).await.ok(),
        Some(Some(at))
    );
    // Asked twice: the first request stands.
    w.clock.advance(chrono::Duration::minutes(1));
    let again = w.services.operations.cancel_run(&w.tenant, &run.id).await;
    assert!(
        matches!(again, Ok(Cancelled::Requested(_, t)) if t == at),
        "{again:?}"
    );
    // A running run of records a platform reported changed runs to its end.
    let mut webhook = run.clone();
    webhook.id = RunId::for_job(w.clock.now(), "webhook job");
    webhook.trigger = Trigger::Webhook;
    webhook.ids = vec!["1042".into()];
    webhook.ids_requested = 1;
    webhook.reported = true;
    w.mem.runs.seed(webhook.clone());
    assert!(matches!(
        w.services.operations.cancel_run(&w.tenant, &webhook.id).await,
        Err(ServiceError::Conflict(m)) if m.contains("runs to its end")
    ));
    // A person's retry of kept records can be stopped: they stay kept.
    let mut retry = run.clone();
    retry.id = RunId::for_job(w.clock.now(), "retry of kept records");
    retry.trigger = Trigger::Retry;
    retry.ids = vec!["1042".into()];
    retry.ids_requested = 1;
    w.mem.runs.seed(retry.clone());
    assert!(matches!(
        w.services.operations.cancel_run(&w.tenant, &retry.id).await,
        Ok(Cancelled::Requested(..))
    ));
    // A retry of no record in particular (the redo of an abandoned run) can be stopped.
    let mut redo = run.clone();
    redo.id = RunId::for_job(w.clock.now(), "redo-of-something");
    redo.trigger = Trigger::Retry;
    w.mem.runs.seed(redo.clone());
    assert!(matches!(
        w.services.operations.cancel_run(&w.tenant, &redo.id).await,
        Ok(Cancelled::Requested(..))
    ));
    assert_eq!(
        w.mem
            .runs
            .cancel_requested(&w.tenant, &webhook.id)
            .await
            .ok(),
        Some(None)
    );
    // Ended runs and other tenants' are refused, and nothing is requested for them.
    run.status = RunStatus::Succeeded;
    w.mem.runs.seed(run.clone());
    assert!(matches!(
        w.services.operations.cancel_run(&w.tenant, &run.id).await,
        Err(ServiceError::Conflict(_))
    ));
    let other = TenantId::parse("globex").unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        w.services.operations.cancel_run(&other, &run.id).await,
        Err(ServiceError::NotFound("run"))
    ));
    assert_eq!(
        w.mem.runs.cancel_requested(&other, &run.id).await.ok(),
        Some(None)
    );
}

#[tokio::test]
async fn a_run_a_worker_takes_up_while_it_is_cancelled_is_not_overwritten_but_asked_to_stop() {
    let w = world().await;
    let run = queued_run(&w).await;
    let ops = Operations::new(OperationsPorts {
        connections: w.mem.connections.clone(),
        flows: w.mem.flows.clone(),
        schedules: w.mem.schedules.clone(),
        runs: Arc::new(TakenUpOnCancel(w.mem.runs.clone())),
        failures: w.mem.failures.clone(),
        jobs: w.mem.queue.clone(),
        cursors: w.mem.leases.clone(),
        clock: w.clock.clone(),
    });
    let done = ops.cancel_run(&w.tenant, &run.id).await;
    assert!(
        matches!(&done, Ok(Cancelled::Requested(r, _)) if r.status == RunStatus::Running),
        "{done:?}"
    );
    let stored = RunHistory::get(w.mem.runs.as_ref(), &w.tenant, &run.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        stored.map(|r| r.status),
        Some(RunStatus::Running),
        "left to its worker"
    );
    assert!(matches!(
        w.mem.runs.cancel_requested(&w.tenant, &run.id).await,
        Ok(Some(_))
    ));
}

fn span(w: &World, from_hours_ago: i64, to_hours_ago: Option<i64>) -> ResyncRequest {
    let now = w.services.schedules.now();
    ResyncRequest {
        connection_id: w.woo.id,
        entity_type: EntityType::Orders,
        modified_from: now - chrono::Duration::hours(from_hours_ago),
        modified_to: to_hours_ago.map(|h| now - chrono::Duration::hours(h)),
    }
}

#[tokio::test]
async fn a_resync_queues_a_run_of_its_span_up_to_now_by_default_and_refuses_an_empty_one() {
    let w = world().await;
    let ops = &w.services.operations;
    let run = ops
        .resync(&w.tenant, span(&w, 48, None))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(run.status, RunStatus::Queued);
    let now = w.services.schedules.now();
    let window = run.window.unwrap_or_else(|| panic!("no window"));
    assert_eq!(window.to, now);
    assert_eq!(window.from, now - chrono::Duration::hours(48));
    let jobs = w.mem.queue.jobs();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].window, Some(window));
    assert!(jobs[0].ids.is_empty());
    // Refused: a span that ends before it starts, one that starts in the future, another
    // tenant's connection, an entity no flow reads.
    assert_eq!(
        field(ops.resync(&w.tenant, span(&w, 1, Some(2))).await),
        "modified_to"
    );
    assert_eq!(
        field(ops.resync(&w.tenant, span(&w, -1, None)).await),
        "modified_from"
    );
    let other = TenantId::parse("globex").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        field(ops.resync(&other, span(&w, 2, None)).await),
        "connection_id"
    );
    let mut products = span(&w, 2, None);
    products.entity_type = EntityType::Products;
    assert!(matches!(
        ops.resync(&w.tenant, products).await,
        Err(ServiceError::Conflict(_))
    ));
    assert_eq!(w.mem.queue.jobs().len(), 1);
}

#[tokio::test]
async fn a_streams_cursor_is_set_by_hand_only_while_no_run_holds_it() {
    let w = world().await;
    let ops = &w.services.operations;
    let key = SyncKey {
        connection: w.woo.id,
        entity: EntityType::Orders,
    };
    let now = w.services.schedules.now();
    let first = now - chrono::Duration::days(3);
    let change = ops
        .set_cursor(
            &w.tenant,
            w.woo.id,
            EntityType::Orders,
            first,
            "ops@example.com",
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(change.previous, None);
    assert_eq!(change.cursor, Cursor::at(first));
    assert_eq!(
        (change.set_by.as_str(), change.set_at),
        ("ops@example.com", now)
    );
    assert_eq!(w.mem.leases.cursor(key), Some(Cursor::at(first)));
    // Set again: the answer says what it replaced.
    let second = now - chrono::Duration::days(1);
    let change = ops
        .set_cursor(
            &w.tenant,
            w.woo.id,
            EntityType::Orders,
            second,
            "ops@example.com",
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(change.previous, Some(Cursor::at(first)));
    // While a run holds the stream: refused, nothing changed.
    w.mem
        .leases
        .hold(key, "a worker", now + chrono::Duration::seconds(60));
    assert!(matches!(
        ops.set_cursor(&w.tenant, w.woo.id, EntityType::Orders, first, "x")
            .await,
        Err(ServiceError::Conflict(_))
    ));
    assert_eq!(w.mem.leases.cursor(key), Some(Cursor::at(second)));
    // A cursor in the future, another tenant's connection: refused.
    w.mem
        .leases
        .hold(key, "a worker", now - chrono::Duration::seconds(1));
    let future = now + chrono::Duration::hours(1);
    assert_eq!(
        field(
            ops.set_cursor(&w.tenant, w.woo.id, EntityType::Orders, future, "x")
                .await
        ),
        "cursor"
    );
    let other = TenantId::parse("globex").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        field(
            ops.set_cursor(&other, w.woo.id, EntityType::Orders, first, "x")
                .await
        ),
        "connection_id"
    );
    assert_eq!(w.mem.leases.cursor(key), Some(Cursor::at(second)));
}

#[tokio::test]
async fn a_run_whose_lease_ran_out_cannot_move_a_cursor_set_by_hand_since() {
    let w = world().await;
    let key = SyncKey {
        connection: w.woo.id,
        entity: EntityType::Orders,
    };
    let now = w.services.schedules.now();
    // A worker held the stream and stalled; its lease ran out; a person set the cursor.
    w.mem
        .leases
        .hold(key, "slow worker", now - chrono::Duration::seconds(1));
    let set = now - chrono::Duration::days(2);
    w.services
        .operations
        .set_cursor(&w.tenant, w.woo.id, EntityType::Orders, set, "ops")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // The worker wakes up and tries to move it: refused.
    let moved = w
        .mem
        .leases
        .save_cursor(key, "slow worker", &Cursor::at(now))
        .await;
    assert!(
        matches!(moved, Err(crate::ports::StateError::LeaseLost)),
        "{moved:?}"
    );
    assert_eq!(w.mem.leases.cursor(key), Some(Cursor::at(set)));
}
