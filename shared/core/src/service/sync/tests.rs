//! The worker and its engine against in-memory fakes: two in-memory platforms as source
//! and target, with the store, the leases and the queue in memory too.

use super::*;
use crate::clock::FixedClock;
use crate::domain::{
    ConflictPolicy, Connection, EntityType, Flow, FlowId, NewSchedule, Platform, SyncMode, TenantId,
};
use crate::memory::{
    connection_fixture, MemoryConnectors, MemoryFailures, MemoryFlows, MemoryPlatform,
    MemoryRecordIndex, MemoryRuns, MemorySyncLeases, MemoryWorld,
};
use crate::ports::StoreError;
use crate::records::{decimal, Body, Product};
use crate::service::ScheduleService;
use crate::time::ScheduleExpression;

struct World {
    clock: Arc<FixedClock>,
    mem: MemoryWorld,
    leases: Arc<MemorySyncLeases>,
    index: Arc<MemoryRecordIndex>,
    failures: Arc<MemoryFailures>,
    runs: Arc<MemoryRuns>,
    flows: Arc<MemoryFlows>,
    worker: SyncWorker,
    tenant: TenantId,
    /// A WooCommerce-like connection and its platform.
    a: Connection,
    pa: Arc<MemoryPlatform>,
    /// A Supabase-like connection and its platform.
    b: Connection,
    pb: Arc<MemoryPlatform>,
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn world_with(settings: WorkerSettings, page_size: usize) -> World {
    world_wrapping_runs(settings, page_size, |runs| runs)
}

/// A world whose worker reaches its runs through `wrap` (a fake that interleaves).
fn world_wrapping_runs(
    settings: WorkerSettings,
    page_size: usize,
    wrap: impl FnOnce(Arc<MemoryRuns>) -> Arc<dyn RunLog>,
) -> World {
    let clock = Arc::new(FixedClock::new(at("2026-11-24T12:00:00Z")));
    let mem = MemoryWorld::default();
    let tenant = TenantId::parse("acme").unwrap_or_else(|e| panic!("{e}"));
    let a = connection_fixture(&tenant, Platform::WooCommerce);
    let b = connection_fixture(&tenant, Platform::Supabase);
    mem.connections.seed(a.clone());
    mem.connections.seed(b.clone());
    let pa = Arc::new(MemoryPlatform::new(clock.clone(), page_size));
    let pb = Arc::new(MemoryPlatform::new(clock.clone(), page_size));
    let connectors = Arc::new(MemoryConnectors::default());
    connectors.attach(a.id, pa.clone());
    connectors.attach(b.id, pb.clone());
    let leases = Arc::new(MemorySyncLeases::default());
    let index = Arc::new(MemoryRecordIndex::default());
    let failures = Arc::new(MemoryFailures::default());
    let runs = Arc::new(MemoryRuns::default());
    let flows = Arc::new(MemoryFlows::new(mem.connections.clone()));
    let schedules = crate::service::FiredCheck::new(mem.schedules.clone(), mem.trigger.clone());
    let worker = SyncWorker::new(
        WorkerPorts {
            connections: mem.connections.clone(),
            flows: flows.clone(),
            connectors,
            schedules,
            schedule_store: mem.schedules.clone(),
            leases: leases.clone(),
            index: index.clone(),
            failures: failures.clone(),
            runs: wrap(runs.clone()),
            jobs: mem.queue.clone(),
            alerts: crate::service::AlertRaiser::new(mem.alerts.clone(), clock.clone()),
            clock: clock.clone(),
        },
        settings,
    );
    World {
        clock,
        mem,
        leases,
        index,
        failures,
        runs,
        flows,
        worker,
        tenant,
        a,
        pa,
        b,
        pb,
    }
}

fn world() -> World {
    world_with(WorkerSettings::default(), 3)
}

impl World {
    fn flow(&self, from: &Connection, to: &Connection, policy: ConflictPolicy) -> Flow {
        let flow = Flow {
            id: FlowId::new_random(),
            tenant_id: self.tenant.clone(),
            source_connection_id: from.id,
            target_connection_id: to.id,
            entities: vec![EntityType::Products],
            conflict_policy: policy,
            doc_number_prefix: None,
            enabled: true,
            created_at: self.clock.now(),
            updated_at: self.clock.now(),
            version: 1,
        };
        self.flows.seed(flow.clone());
        flow
    }

    fn job(&self, from: &Connection, mode: SyncMode, ids: &[&str]) -> SyncJob {
        SyncJob {
            job_id: uuid::Uuid::new_v4().to_string(),
            tenant_id: self.tenant.clone(),
            connection_id: from.id,
            platform: from.platform,
            entity_type: EntityType::Products,
            sync_mode: mode,
            trigger: if ids.is_empty() {
                Trigger::Manual
            } else {
                Trigger::Webhook
            },
            triggered_at: self.clock.now(),
            ids: ids.iter().map(|i| i.to_string()).collect(),
            resume: None,
            attempt: 0,
            stands_for: Vec::new(),
            window: None,
            reported: Some(!ids.is_empty()),
        }
    }

    /// A person's run of A's products 1 to `n` by id (as `POST /api/sync/trigger` with
    /// `ids` makes, not yet sent).
    fn persons_run_of(&self, n: usize) -> SyncJob {
        let mut job = self.job(&self.a, SyncMode::Incremental, &[]);
        job.ids = (1..=n).map(|i| i.to_string()).collect();
        job.reported = Some(false);
        job
    }

    /// `job` as the API sends it for a person: its run recorded `queued` first.
    fn asked_for(&self, job: SyncJob) -> SyncJob {
        let queued = Run::of_job(
            &job,
            job.run_id(),
            None,
            self.clock.now(),
            RunStatus::Queued,
        );
        self.runs.seed(queued);
        job
    }

    /// Asks `job`'s run to stop, as `POST /api/sync/runs/{id}/cancel` does.
    async fn ask_to_stop(&self, job: &SyncJob) {
        let asked = self
            .runs
            .request_cancel(&self.tenant, &job.run_id(), self.clock.now())
            .await;
        assert!(asked.is_ok(), "{asked:?}");
    }

    fn deadline(&self) -> DateTime<Utc> {
        self.clock.now() + Duration::minutes(15)
    }

    /// Handles `job`, then every job it queued (continuations, follow-ups) until none is
    /// left; returns how many invocations that took.
    async fn run_to_end(&self, job: SyncJob) -> usize {
        let mut queue = vec![job];
        let mut invocations = 0;
        while let Some(next) = queue.pop() {
            invocations += 1;
            assert!(invocations < 500, "runaway continuation chain");
            let outcome = self.worker.handle(next, self.deadline()).await;
            assert_eq!(outcome, JobOutcome::Done);
            queue.extend(self.mem.queue.drain_jobs());
        }
        invocations
    }

    /// `job`'s run as stored.
    fn run_of(&self, job: &SyncJob) -> Run {
        let id = job.run_id();
        self.runs
            .all()
            .into_iter()
            .find(|r| r.id == id)
            .unwrap_or_else(|| panic!("no run {id}"))
    }

    fn last_run(&self) -> Run {
        self.runs
            .all()
            .into_iter()
            .max_by_key(|r| (r.started_at, r.id.clone()))
            .unwrap_or_else(|| panic!("no run"))
    }

    /// Keeps a webhook job for `ids` as the follow-up of A's stream while another run holds
    /// it; then that run's holder dies (its lease runs out). The stream's key.
    async fn keep_follow_up(&self, ids: &[&str]) -> SyncKey {
        let key = self.key(&self.a);
        self.leases
            .hold(key, "other", self.clock.now() + Duration::seconds(60));
        self.worker
            .handle(
                self.job(&self.a, SyncMode::Incremental, ids),
                self.deadline(),
            )
            .await;
        self.leases
            .hold(key, "other", self.clock.now() - Duration::seconds(1));
        key
    }

    fn key(&self, c: &Connection) -> SyncKey {
        SyncKey {
            connection: c.id,
            entity: EntityType::Products,
        }
    }
}

fn product(sku: &str, price: &str) -> Body {
    Body::Product(Box::new(Product {
        sku: Some(sku.into()),
        name: format!("Product {sku}"),
        price: decimal(price).unwrap_or_default(),
        ..Product::default()
    }))
}

/// Seeds `n` products into `p`, one a minute.
fn seed(w: &World, p: &MemoryPlatform, n: usize) {
    for i in 1..=n {
        p.put(
            EntityType::Products,
            &i.to_string(),
            product(&format!("SKU-{i}"), "10.00"),
        );
        w.clock.advance(Duration::minutes(1));
    }
}

/// The live products of a platform, by SKU (the ids differ between platforms).
fn by_sku(p: &MemoryPlatform) -> std::collections::BTreeMap<String, Body> {
    p.live(EntityType::Products)
        .into_values()
        .map(|b| (b.natural_key().unwrap_or_default(), b))
        .collect()
}

#[tokio::test]
async fn a_full_run_copies_everything_and_an_incremental_run_only_what_changed() {
    // GIVEN seven products at the source and a flow to an empty target
    let w = world();
    seed(&w, &w.pa, 7);
    w.flow(&w.a, &w.b, ConflictPolicy::SourceWins);
    // WHEN a full sync runs
    w.run_to_end(w.job(&w.a, SyncMode::Full, &[])).await;
    // THEN the target holds all seven and the cursor stands at the last one
    assert_eq!(by_sku(&w.pb), by_sku(&w.pa));
    let run = w.last_run();
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!((run.counts.read, run.counts.written), (7, 7));
    assert_eq!(
        w.leases.cursor(w.key(&w.a)).map(|c| c.id),
        Some("7".to_string())
    );
    // WHEN two products change and an incremental sync runs
    w.clock.advance(Duration::minutes(5));
    w.pa.put(EntityType::Products, "3", product("SKU-3", "12.50"));
    w.pa.put(EntityType::Products, "5", product("SKU-5", "7"));
    let writes_before = w.pb.writes();
    w.run_to_end(w.job(&w.a, SyncMode::Incremental, &[])).await;
    // THEN just those two are written (the overlap re-reads one already there, unchanged)
    assert_eq!(w.pb.writes() - writes_before, 2);
    assert_eq!(by_sku(&w.pb), by_sku(&w.pa));
    let run = w.last_run();
    assert_eq!(run.counts.written, 2);
    assert_eq!(run.cursor_before.map(|c| c.id), Some("7".to_string()));
    assert_eq!(run.cursor_after.map(|c| c.id), Some("5".to_string()));
}

#[tokio::test]
async fn a_webhook_job_syncs_exactly_the_ids_it_names_and_leaves_the_cursor() {
    let w = world();
    seed(&w, &w.pa, 5);
    w.flow(&w.a, &w.b, ConflictPolicy::SourceWins);
    w.run_to_end(w.job(&w.a, SyncMode::Incremental, &["2", "4"]))
        .await;
    let skus: Vec<String> = by_sku(&w.pb).into_keys().collect();
    assert_eq!(skus, ["SKU-2", "SKU-4"]);
    assert_eq!(w.leases.cursor(w.key(&w.a)), None);
    assert_eq!(w.last_run().trigger, Trigger::Webhook);
}

#[tokio::test]
async fn the_same_job_delivered_twice_runs_once() {
    let w = world();
    seed(&w, &w.pa, 4);
    w.flow(&w.a, &w.b, ConflictPolicy::SourceWins);
    let job = w.job(&w.a, SyncMode::Full, &[]);
    w.run_to_end(job.clone()).await;
    let writes = w.pb.writes();
    w.run_to_end(job).await;
    assert_eq!(w.pb.writes(), writes, "nothing written twice");
    assert_eq!(w.runs.all().len(), 1, "the redelivery found its run");
}

#[tokio::test]
async fn a_job_arriving_while_the_stream_is_busy_is_kept_once_and_runs_after() {
    // GIVEN a stream whose lease another run holds
    let w = world();
    seed(&w, &w.pa, 3);
    w.flow(&w.a, &w.b, ConflictPolicy::SourceWins);
    let key = w.key(&w.a);
    w.leases
        .hold(key, "someone-else", w.clock.now() + Duration::seconds(60));
    // WHEN three jobs arrive meanwhile
    for ids in [&["1"][..], &["2"], &["3"]] {
        let outcome = w
            .worker
            .handle(w.job(&w.a, SyncMode::Incremental, ids), w.deadline())
            .await;
        assert_eq!(outcome, JobOutcome::Done);
    }
    // THEN none ran, one follow-up waits with every id, and one wake-up is queued
    assert!(w.runs.all().is_empty());
    let pending = w
        .leases
        .pending(key)
        .unwrap_or_else(|| panic!("nothing kept"));
    assert_eq!(pending.ids, ["1", "2", "3"]);
    let wakes = w.mem.queue.delayed_jobs();
    assert_eq!(wakes.len(), 1);
    assert!(wakes[0].1 >= std::time::Duration::from_secs(60));
    // WHEN the holder dies (its lease expires) and the wake-up arrives
    w.clock.advance(Duration::seconds(70));
    w.run_to_end(wakes[0].0.clone()).await;
    // THEN the follow-up ran once, with every id
    assert_eq!(w.runs.all().len(), 1);
    assert_eq!(by_sku(&w.pb).len(), 3);
    assert_eq!(w.leases.pending(key), None);
    assert_eq!(w.leases.holder(key), None, "the lease is released");
}

#[tokio::test]
async fn a_follow_up_kept_during_a_run_runs_right_after_it() {
    // GIVEN a run in progress (we hold the lease as the worker would)
    let w = world();
    seed(&w, &w.pa, 2);
    w.flow(&w.a, &w.b, ConflictPolicy::SourceWins);
    let key = w.key(&w.a);
    let busy = w.job(&w.a, SyncMode::Full, &[]);
    w.leases
        .hold(key, "other", w.clock.now() + Duration::seconds(60));
    w.worker
        .handle(w.job(&w.a, SyncMode::Incremental, &["1"]), w.deadline())
        .await;
    // WHEN the other run lets go and the next job for the stream arrives
    w.leases
        .hold(key, "other", w.clock.now() - Duration::seconds(1));
    w.run_to_end(busy).await;
    // THEN that job ran, and the kept follow-up right after it, in the same invocation
    let runs = w.runs.all();
    assert_eq!(runs.len(), 2, "{runs:#?}");
    assert_eq!(w.leases.pending(key), None);
}

#[tokio::test]
async fn a_follow_up_whose_run_fails_in_a_way_that_may_pass_stays_kept_and_runs_later() {
    // GIVEN a follow-up kept while another run held the stream, whose holder then died
    let w = world();
    seed(&w, &w.pa, 3);
    w.flow(&w.a, &w.b, ConflictPolicy::SourceWins);
    let key = w.keep_follow_up(&["3"]).await;
    let wake = w.mem.queue.delayed_jobs()[0].0.clone();
    // WHEN the wake-up runs it while the target is down
    w.pb.fail_next(100);
    let outcome = w.worker.handle(wake.clone(), w.deadline()).await;
    // THEN the follow-up is still kept, and a later wake-up (twice the lease's wait at the
    // most) is queued to try again; the message itself is done
    assert_eq!(outcome, JobOutcome::Done);
    assert_eq!(
        w.leases.pending(key).map(|j| j.ids),
        Some(vec!["3".to_string()])
    );
    let wakes = w.mem.queue.delayed_jobs();
    let (again, wait) = wakes
        .last()
        .cloned()
        .unwrap_or_else(|| panic!("no wake-up"));
    assert_eq!(
        (again.trigger.clone(), again.attempt),
        (Trigger::FollowUp, 1)
    );
    assert_eq!(wait, std::time::Duration::from_secs(65));
    assert_eq!(w.leases.holder(key), None, "the lease is released");
    // WHEN the target is back and that wake-up comes
    w.pb.fail_next(0);
    w.clock.advance(Duration::seconds(65));
    w.run_to_end(again).await;
    // THEN the follow-up ran, once more, and is no longer kept
    assert_eq!(w.leases.pending(key), None);
    assert_eq!(by_sku(&w.pb).into_keys().collect::<Vec<_>>(), ["SKU-3"]);
    assert_eq!(w.last_run().attempts, 2);
    assert_eq!(w.last_run().status, RunStatus::Succeeded);
}

#[tokio::test]
async fn a_follow_up_that_fails_on_every_wake_up_is_alerted_on_its_last_one_only() {
    // GIVEN a follow-up kept while another run held the stream, and a target down for good
    let w = world_with(
        WorkerSettings {
            record_attempts: 3,
            ..WorkerSettings::default()
        },
        3,
    );
    seed(&w, &w.pa, 3);
    w.flow(&w.a, &w.b, ConflictPolicy::SourceWins);
    let key = w.keep_follow_up(&["3"]).await;
    w.pb.fail_next(usize::MAX);
    let mut wake = w.mem.queue.delayed_jobs()[0].0.clone();
    // WHEN each wake-up runs it (each its message's first receive)
    for attempt in 0..3 {
        assert!(
            w.mem.alerts.all().is_empty(),
            "alerted before try {attempt}"
        );
        let outcome = w.worker.handle(wake.clone(), w.deadline()).await;
        assert_eq!(outcome, JobOutcome::Done);
        if attempt < 2 {
            wake = w
                .mem
                .queue
                .delayed_jobs()
                .last()
                .map(|(job, _)| job.clone())
                .unwrap_or_else(|| panic!("no wake-up after try {attempt}"));
            assert_eq!(wake.attempt, attempt + 1);
        }
    }
    // THEN the last try, after which it only waits for the stream's next job, is alerted
    let alerts = w.mem.alerts.all();
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alerts[0].kind, crate::domain::AlertKind::RunFailed);
    assert!(w.leases.pending(key).is_some(), "still kept");
}

#[tokio::test]
async fn a_webhook_jobs_record_turned_away_for_now_is_tried_again_later_until_it_lands() {
    // GIVEN a target that turns product 2 away for now (a 503 for it)
    let w = world();
    seed(&w, &w.pa, 3);
    w.flow(&w.a, &w.b, ConflictPolicy::SourceWins);
    w.pb.turn_away("2");
    // WHEN a webhook job names products 1 and 2
    let outcome = w
        .worker
        .handle(
            w.job(&w.a, SyncMode::Incremental, &["1", "2"]),
            w.deadline(),
        )
        .await;
    // THEN 1 is written, the run is partial, and a retry of 2 alone is queued for later
    assert_eq!(outcome, JobOutcome::Done);
    let run = w.last_run();
    assert_eq!(run.status, RunStatus::Partial);
    assert!(run.failures[0].retryable, "{run:#?}");
    let retries = w.mem.queue.delayed_jobs();
    assert_eq!(retries.len(), 1, "{retries:#?}");
    let (retry, wait) = retries[0].clone();
    assert_eq!(
        (retry.ids.clone(), retry.trigger.clone(), retry.attempt),
        (vec!["2".to_string()], Trigger::Retry, 1)
    );
    assert_eq!(wait, std::time::Duration::from_secs(30));
    // WHEN it is still turned away at the retry
    w.clock.advance(Duration::seconds(30));
    w.worker.handle(retry.clone(), w.deadline()).await;
    // THEN the next retry waits twice as long
    let retries = w.mem.queue.delayed_jobs();
    let (again, wait) = retries[1].clone();
    assert_eq!(
        (again.attempt, wait),
        (2, std::time::Duration::from_secs(60))
    );
    // WHEN the target takes it again
    w.pb.accept("2");
    w.clock.advance(Duration::seconds(60));
    w.run_to_end(again).await;
    // THEN it lands and the retry's run succeeds
    assert_eq!(
        by_sku(&w.pb).into_keys().collect::<Vec<_>>(),
        ["SKU-1", "SKU-2"]
    );
    assert_eq!(w.last_run().status, RunStatus::Succeeded);
}

#[tokio::test]
async fn a_record_turned_away_on_every_try_is_tried_a_bounded_number_of_times() {
    let w = world_with(
        WorkerSettings {
            record_attempts: 2,
            ..WorkerSettings::default()
        },
        3,
    );
    seed(&w, &w.pa, 1);
    w.flow(&w.a, &w.b, ConflictPolicy::SourceWins);
    w.pb.turn_away("1");
    w.worker
        .handle(w.job(&w.a, SyncMode::Incremental, &["1"]), w.deadline())
        .await;
    let (retry, _) = w.mem.queue.delayed_jobs()[0].clone();
    w.clock.advance(Duration::seconds(30));
    w.worker.handle(retry, w.deadline()).await;
    assert_eq!(w.mem.queue.delayed_jobs().len(), 1, "no third try");
    let run = w.last_run();
    assert_eq!(run.status, RunStatus::Partial);
    assert!(
        run.message.unwrap_or_default().contains("after 2 tries"),
        "the run says it gave up"
    );
    // A failure that may pass is no try toward quarantine: an outage quarantines nothing.
    assert_eq!(
        (run.failures[0].attempts, run.failures[0].quarantined),
        (0, false)
    );
    assert!(w.failures.all().is_empty());
}

#[tokio::test]
async fn a_follow_up_met_when_time_is_up_stays_kept_and_a_new_invocation_is_woken_at_once() {
    // GIVEN a follow-up kept while another run held the stream
    let w = world();
    seed(&w, &w.pa, 2);
    w.flow(&w.a, &w.b, ConflictPolicy::SourceWins);
    let key = w.keep_follow_up(&["2"]).await;
    // WHEN the next job runs with no time left after its own run
    let outcome = w
        .worker
        .handle(
            w.job(&w.a, SyncMode::Incremental, &["1"]),
            w.clock.now() + Duration::seconds(5),
        )
        .await;
    // THEN the follow-up is still kept, the lease is free, and a wake-up is queued now
    assert_eq!(outcome, JobOutcome::Done);
    assert!(w.leases.pending(key).is_some());
    assert_eq!(w.leases.holder(key), None);
    let wakes = w.mem.queue.delayed_jobs();
    let (wake, wait) = wakes
        .last()
        .cloned()
        .unwrap_or_else(|| panic!("no wake-up"));
    assert_eq!(
        (wake.trigger.clone(), wait),
        (Trigger::FollowUp, std::time::Duration::ZERO)
    );
    // WHEN it comes
    w.run_to_end(wake).await;
    // THEN the follow-up ran
    assert_eq!(w.leases.pending(key), None);
    assert_eq!(
        by_sku(&w.pb).into_keys().collect::<Vec<_>>(),
        ["SKU-1", "SKU-2"]
    );
}

#[tokio::test]
async fn a_kept_job_merged_with_a_newer_one_is_not_taken_for_the_newer_one_delivered_again() {
    // GIVEN two webhook jobs kept (merged) while another run held the stream
    let w = world();
    seed(&w, &w.pa, 2);
    w.flow(&w.a, &w.b, ConflictPolicy::SourceWins);
    let key = w.key(&w.a);
    w.leases
        .hold(key, "other", w.clock.now() + Duration::seconds(60));
    let older = w.job(&w.a, SyncMode::Incremental, &["1"]);
    let newer = w.job(&w.a, SyncMode::Incremental, &["2"]);
    w.worker.handle(older, w.deadline()).await;
    w.worker.handle(newer.clone(), w.deadline()).await;
    w.leases
        .hold(key, "other", w.clock.now() - Duration::seconds(1));
    // WHEN the newer job is delivered again (SQS delivers at least once), runs alone, and
    // then runs the kept one
    w.run_to_end(newer).await;
    // THEN the older job's record was synced too
    assert_eq!(
        by_sku(&w.pb).into_keys().collect::<Vec<_>>(),
        ["SKU-1", "SKU-2"]
    );
    assert_eq!(w.leases.pending(key), None);
}

#[tokio::test]
async fn a_run_recorded_queued_is_the_one_its_job_runs() {
    // GIVEN a manual job whose run the API recorded as queued
    let w = world();
    seed(&w, &w.pa, 2);
    w.flow(&w.a, &w.b, ConflictPolicy::SourceWins);
    let job = w.asked_for(w.job(&w.a, SyncMode::Full, &[]));
    w.clock.advance(Duration::seconds(5));
    // WHEN it runs
    w.run_to_end(job.clone()).await;
    // THEN that run, and no other, ran it: started when it ran, tried once
    let runs = w.runs.all();
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(runs[0].id, job.run_id());
    assert_eq!(runs[0].status, RunStatus::Succeeded);
    assert_eq!(runs[0].attempts, 1);
    assert_eq!(runs[0].started_at, w.clock.now());
    assert_eq!(by_sku(&w.pb).len(), 2);
}

#[tokio::test]
async fn runs_asked_for_while_the_stream_was_busy_are_settled_by_the_run_that_does_their_work() {
    // GIVEN another run holding the stream, and two runs asked for meanwhile (merged into
    // the stream's one follow-up)
    let w = world();
    seed(&w, &w.pa, 2);
    w.flow(&w.a, &w.b, ConflictPolicy::SourceWins);
    let key = w.key(&w.a);
    w.leases
        .hold(key, "other", w.clock.now() + Duration::seconds(60));
    let first = w.asked_for(w.job(&w.a, SyncMode::Incremental, &[]));
    let second = w.asked_for(w.job(&w.a, SyncMode::Full, &[]));
    w.worker.handle(first.clone(), w.deadline()).await;
    w.worker.handle(second.clone(), w.deadline()).await;
    let wake = w.mem.queue.delayed_jobs()[0].0.clone();
    // WHEN the holder lets go and the follow-up runs
    w.leases
        .hold(key, "other", w.clock.now() - Duration::seconds(1));
    w.clock.advance(Duration::seconds(70));
    w.run_to_end(wake).await;
    // THEN one run did the work, and each run asked for names it; none stays queued
    let runs = w.runs.all();
    let done: Vec<&Run> = runs
        .iter()
        .filter(|r| r.status == RunStatus::Succeeded)
        .collect();
    assert_eq!(done.len(), 1, "{runs:#?}");
    assert_eq!(done[0].sync_mode, SyncMode::Full);
    for asked in [&first, &second] {
        let run = runs
            .iter()
            .find(|r| r.id == asked.run_id())
            .unwrap_or_else(|| panic!("no run {}", asked.run_id()));
        assert_eq!(run.status, RunStatus::Skipped);
        let message = run.message.clone().unwrap_or_default();
        assert!(message.contains(done[0].id.as_str()), "{message}");
    }
    assert_eq!(by_sku(&w.pb).len(), 2);
}

#[tokio::test]
async fn a_persons_run_of_named_records_on_a_busy_stream_waits_unmerged_and_then_runs_them() {
    // GIVEN a busy stream with an incremental follow-up already waiting
    let w = world();
    seed(&w, &w.pa, 3);
    w.flow(&w.a, &w.b, ConflictPolicy::SourceWins);
    let key = w.key(&w.a);
    w.leases
        .hold(key, "other", w.clock.now() + Duration::seconds(60));
    w.worker
        .handle(w.job(&w.a, SyncMode::Incremental, &[]), w.deadline())
        .await;
    // WHEN a person asks for record 2 alone
    let mut named = w.job(&w.a, SyncMode::Incremental, &["2"]);
    named.trigger = Trigger::Manual;
    let named = w.asked_for(named);
    assert_eq!(
        w.worker.handle(named.clone(), w.deadline()).await,
        JobOutcome::Done
    );
    // THEN it is not merged into the follow-up (which would read only what changed since
    // the cursor): it comes back as itself once the lease has surely changed hands
    let waiting = w
        .leases
        .pending(key)
        .unwrap_or_else(|| panic!("nothing kept"));
    assert!(waiting.ids.is_empty() && waiting.stands_for.is_empty());
    let later: Vec<SyncJob> = w
        .mem
        .queue
        .delayed_jobs()
        .into_iter()
        .map(|(j, _)| j)
        .filter(|j| j.job_id == named.job_id)
        .collect();
    assert_eq!(later.len(), 1);
    w.leases
        .hold(key, "other", w.clock.now() - Duration::seconds(1));
    w.run_to_end(later[0].clone()).await;
    let ran = w.run_of(&named);
    assert_eq!(ran.status, RunStatus::Succeeded);
    assert_eq!(ran.counts.read, 1);
}

#[tokio::test]
async fn a_webhook_job_checks_the_deadline_between_chunks_and_goes_on_where_it_stopped() {
    // GIVEN a webhook job naming 250 products (three chunks of at most 100)
    let w = world();
    seed(&w, &w.pa, 250);
    w.flow(&w.a, &w.b, ConflictPolicy::SourceWins);
    let ids: Vec<String> = (1..=250).map(|i| i.to_string()).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    // WHEN it runs with its time already up after the first chunk
    let outcome = w
        .worker
        .handle(w.job(&w.a, SyncMode::Incremental, &refs), w.clock.now())
        .await;
    // THEN that chunk is written and a continuation goes on from the second
    assert_eq!(outcome, JobOutcome::Done);
    assert_eq!(w.pb.live(EntityType::Products).len(), 100);
    let continuation = w.mem.queue.drain_jobs();
    assert_eq!(continuation.len(), 1);
    let resume = continuation[0].resume.clone().and_then(|cp| cp.resume);
    assert_eq!(
        resume.map(|r| r["ids_from"].clone()),
        Some(serde_json::json!(1))
    );
    // WHEN the continuation has time
    let writes = w.pb.writes();
    w.run_to_end(continuation[0].clone()).await;
    // THEN the other 150 are written, once, in the same run
    assert_eq!(by_sku(&w.pb).len(), 250);
    assert_eq!(w.pb.writes() - writes, 150);
    assert_eq!(w.runs.all().len(), 1);
    assert_eq!(w.last_run().status, RunStatus::Succeeded);
}

#[tokio::test]
async fn a_record_that_always_fails_is_quarantined_and_the_cursor_moves_past_it_until_it_lands() {
    // GIVEN six products, the third of which the target refuses every time
    let w = world();
    seed(&w, &w.pa, 6);
    w.flow(&w.a, &w.b, ConflictPolicy::SourceWins);
    w.pb.refuse("3");
    let key = w.key(&w.a);
    // WHEN incremental runs meet it four times
    for _ in 0..4 {
        w.clock.advance(Duration::minutes(1));
        w.run_to_end(w.job(&w.a, SyncMode::Incremental, &[])).await;
    }
    // THEN the cursor still waits before it, and its tries are counted (no alert yet)
    assert_eq!(w.leases.cursor(key), None);
    assert!(w.mem.alerts.all().is_empty());
    let run = w.last_run();
    assert_eq!(
        (run.failures[0].attempts, run.failures[0].quarantined),
        (4, false)
    );
    // WHEN the fifth try fails too
    w.clock.advance(Duration::minutes(1));
    w.run_to_end(w.job(&w.a, SyncMode::Incremental, &[])).await;
    // THEN it is quarantined: kept with its error and tries, and the cursor moves past it
    let run = w.last_run();
    assert_eq!(run.status, RunStatus::Partial);
    assert_eq!(
        (run.failures[0].attempts, run.failures[0].quarantined),
        (5, true)
    );
    assert_eq!(w.leases.cursor(key).map(|c| c.id), Some("6".to_string()));
    let kept = w.failures.all();
    assert_eq!(kept.len(), 1, "{kept:#?}");
    assert_eq!((kept[0].record_id.as_str(), kept[0].attempts), ("3", 5));
    assert!(kept[0].error.contains("refused"));
    assert_eq!(
        kept[0].next_try_at,
        Some(w.clock.now() + Duration::minutes(15))
    );
    // AND the stream's records_quarantined alert opens, naming the record and its error
    let alerts = w.mem.alerts.all();
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alerts[0].kind, crate::domain::AlertKind::RecordsQuarantined);
    assert!(alerts[0].last_error.contains("the first 3: "));
    // WHEN the target takes it again: before its wait is over, a run does not try it
    w.pb.accept("3");
    w.clock.advance(Duration::minutes(5));
    w.run_to_end(w.job(&w.a, SyncMode::Incremental, &[])).await;
    assert!(!by_sku(&w.pb).contains_key("SKU-3"));
    assert_eq!(
        w.mem.alerts.all()[0].status,
        crate::domain::AlertStatus::Open,
        "it is still set aside"
    );
    // WHEN its wait is over
    w.clock.advance(Duration::minutes(11));
    w.run_to_end(w.job(&w.a, SyncMode::Incremental, &[])).await;
    // THEN it is tried by id, lands, and leaves the quarantine, which resolves the alert
    assert_eq!(by_sku(&w.pb), by_sku(&w.pa));
    assert!(w.failures.all().is_empty());
    assert_eq!(
        w.mem.alerts.all()[0].status,
        crate::domain::AlertStatus::Resolved
    );
    assert_eq!(
        w.index
            .state(w.a.id, EntityType::Products, "3")
            .map(|s| s.failures),
        Some(0)
    );
}

#[tokio::test]
async fn a_continuation_that_finds_its_stream_busy_is_sent_again_and_never_merged() {
    // GIVEN a stream held elsewhere, with a webhook job kept as its follow-up
    let w = world();
    seed(&w, &w.pa, 3);
    w.flow(&w.a, &w.b, ConflictPolicy::SourceWins);
    let key = w.key(&w.a);
    w.leases
        .hold(key, "other", w.clock.now() + Duration::seconds(60));
    w.worker
        .handle(w.job(&w.a, SyncMode::Incremental, &["1"]), w.deadline())
        .await;
    // WHEN a run's continuation arrives
    let job = w.job(&w.a, SyncMode::Full, &[]);
    let continuation = SyncJob {
        resume: Some(crate::domain::Checkpoint {
            run_id: RunId::for_job(job.triggered_at, &job.job_id),
            continuation: 1,
            after: None,
            resume: Some(serde_json::json!({"page": 2})),
            blocked: false,
            committed: None,
            stalled: 0,
        }),
        ..job
    };
    let outcome = w.worker.handle(continuation.clone(), w.deadline()).await;
    // THEN it is sent again for later, as it is, and the follow-up is left as it was (a
    // merge would have dropped its place and restarted the full run)
    assert_eq!(outcome, JobOutcome::Done);
    assert_eq!(
        w.leases.pending(key).map(|j| (j.ids, j.sync_mode)),
        Some((vec!["1".to_string()], SyncMode::Incremental))
    );
    assert!(w
        .mem
        .queue
        .delayed_jobs()
        .iter()
        .any(|(j, _)| j == &continuation));
}

#[tokio::test]
async fn a_run_that_keeps_running_out_of_time_at_one_point_fails_rather_than_continue_for_ever() {
    // GIVEN a source that fails every call, and invocations whose time is always up
    let w = world();
    seed(&w, &w.pa, 3);
    w.flow(&w.a, &w.b, ConflictPolicy::SourceWins);
    w.pa.fail_next(1000);
    // WHEN each invocation's continuation is handed to the next
    let mut job = w.job(&w.a, SyncMode::Incremental, &[]);
    let mut outcomes = Vec::new();
    for _ in 0..10 {
        outcomes.push(w.worker.handle(job.clone(), w.clock.now()).await);
        match w.mem.queue.drain_jobs().pop() {
            Some(next) => job = next,
            None => break,
        }
    }
    // THEN three continuations go on from the same point, then the run fails for a retry
    assert_eq!(outcomes.len(), 4, "{outcomes:?}");
    assert!(matches!(outcomes[3], JobOutcome::Retry(_)), "{outcomes:?}");
    let run = w.last_run();
    assert_eq!(run.status, RunStatus::Failed);
    assert!(run.message.unwrap_or_default().contains("in a row"));
}

#[tokio::test]
async fn a_bad_record_fails_alone_and_the_cursor_stays_before_it() {
    // GIVEN six products, the third of which the target refuses
    let w = world();
    seed(&w, &w.pa, 6);
    w.flow(&w.a, &w.b, ConflictPolicy::SourceWins);
    w.pb.refuse("3");
    // WHEN an incremental run goes through them all
    w.run_to_end(w.job(&w.a, SyncMode::Incremental, &[])).await;
    // THEN the other five are written, the run is partial with the failure kept, and the
    // cursor stands before the failed record's page
    let run = w.last_run();
    assert_eq!(run.status, RunStatus::Partial);
    assert_eq!((run.counts.written, run.counts.failed), (5, 1));
    assert_eq!(run.failures.len(), 1);
    assert_eq!(run.failures[0].record_id, "3");
    assert!(run.failures[0].error.contains("refused"));
    assert_eq!(by_sku(&w.pb).len(), 5);
    assert_eq!(
        w.leases.cursor(w.key(&w.a)),
        None,
        "page 1 held the failure"
    );
    // AND once the target takes it, the next run writes just it and moves the cursor
    w.pb.accept("3");
    let writes = w.pb.writes();
    w.clock.advance(Duration::minutes(1));
    w.run_to_end(w.job(&w.a, SyncMode::Incremental, &[])).await;
    assert_eq!(w.pb.writes() - writes, 1);
    assert_eq!(w.last_run().status, RunStatus::Succeeded);
    assert_eq!(
        w.leases.cursor(w.key(&w.a)).map(|c| c.id),
        Some("6".to_string())
    );
    assert_eq!(by_sku(&w.pb), by_sku(&w.pa));
}

#[tokio::test]
async fn a_record_the_source_cannot_map_fails_alone_too() {
    let w = world();
    seed(&w, &w.pa, 4);
    w.flow(&w.a, &w.b, ConflictPolicy::SourceWins);
    w.pa.unreadable("2");
    w.run_to_end(w.job(&w.a, SyncMode::Incremental, &[])).await;
    let run = w.last_run();
    assert_eq!(run.status, RunStatus::Partial);
    assert_eq!(run.failures[0].record_id, "2");
    assert_eq!(run.failures[0].flow_id, None);
    assert_eq!(by_sku(&w.pb).len(), 3);
}

#[tokio::test]
async fn an_outage_fails_the_run_for_a_retry_and_moves_nothing_then_the_retry_converges() {
    // GIVEN a target that is down for the next few calls
    let w = world();
    seed(&w, &w.pa, 5);
    w.flow(&w.a, &w.b, ConflictPolicy::SourceWins);
    w.pb.fail_next(1);
    let job = w.job(&w.a, SyncMode::Incremental, &[]);
    // WHEN the job runs
    let outcome = w.worker.handle(job.clone(), w.deadline()).await;
    // THEN the queue is asked to retry it, the run says failed, the cursor did not move
    assert!(matches!(outcome, JobOutcome::Retry(_)), "{outcome:?}");
    assert_eq!(w.last_run().status, RunStatus::Failed);
    assert_eq!(w.leases.cursor(w.key(&w.a)), None);
    assert_eq!(w.leases.holder(w.key(&w.a)), None, "the lease is released");
    // AND no alert is raised: the queue tries it again
    assert!(w.mem.alerts.all().is_empty());
    // AND the queue's retry of the same job completes it, as the same run
    w.run_to_end(job).await;
    let run = w.last_run();
    assert_eq!((run.status, run.attempts), (RunStatus::Succeeded, 2));
    assert_eq!(w.runs.all().len(), 1);
    assert_eq!(by_sku(&w.pb), by_sku(&w.pa));
    assert!(w.mem.alerts.all().is_empty(), "nobody heard of it");
}

#[tokio::test]
async fn a_failure_that_lasts_through_the_queues_last_try_raises_the_streams_alert_naming_the_run()
{
    // GIVEN a target down for longer than the queue keeps trying
    let w = world();
    seed(&w, &w.pa, 5);
    w.flow(&w.a, &w.b, ConflictPolicy::SourceWins);
    w.pb.fail_next(100);
    let job = w.job(&w.a, SyncMode::Incremental, &[]);
    // WHEN every receive of the job fails
    for receive in 1..=crate::ports::MAX_RECEIVES {
        let outcome = w
            .worker
            .handle_delivery(job.clone(), w.deadline(), receive)
            .await;
        assert!(matches!(outcome, JobOutcome::Retry(_)), "{outcome:?}");
        // THEN only the last one raises the alert
        let raised = !w.mem.alerts.all().is_empty();
        assert_eq!(
            raised,
            receive == crate::ports::MAX_RECEIVES,
            "receive {receive}"
        );
    }
    let alerts = w.mem.alerts.all();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].kind, crate::domain::AlertKind::RunFailed);
    assert_eq!(alerts[0].status, crate::domain::AlertStatus::Open);
    assert!(alerts[0].last_error.contains(w.last_run().id.as_str()));
    // AND a later run that succeeds resolves it
    w.pb.fail_next(0);
    w.run_to_end(w.job(&w.a, SyncMode::Incremental, &[])).await;
    assert_eq!(
        w.mem.alerts.all()[0].status,
        crate::domain::AlertStatus::Resolved
    );
}

#[tokio::test]
async fn refused_credentials_fail_the_run_without_a_retry() {
    let w = world();
    seed(&w, &w.pa, 2);
    w.flow(&w.a, &w.b, ConflictPolicy::SourceWins);
    w.pa.set_rejecting(true);
    let outcome = w
        .worker
        .handle(w.job(&w.a, SyncMode::Incremental, &[]), w.deadline())
        .await;
    assert_eq!(outcome, JobOutcome::Done);
    let run = w.last_run();
    assert_eq!(run.status, RunStatus::Failed);
    assert!(run.message.unwrap_or_default().contains("credentials"));
}

#[tokio::test]
async fn a_run_continued_many_times_ends_as_an_uninterrupted_one_would() {
    // GIVEN two identical worlds; one of them has no time to spare (every page checkpoints)
    let hurried_settings = WorkerSettings {
        time_budget: Some(Duration::zero()),
        ..WorkerSettings::default()
    };
    let hurried = world_with(hurried_settings, 3);
    let calm = world();
    for w in [&hurried, &calm] {
        seed(w, &w.pa, 20);
        w.pb.put(EntityType::Products, "b1", product("SKU-5", "99"));
        w.flow(&w.a, &w.b, ConflictPolicy::SourceWins);
    }
    hurried.pb.refuse("9");
    calm.pb.refuse("9");
    // WHEN each runs a full sync
    let invocations = hurried
        .run_to_end(hurried.job(&hurried.a, SyncMode::Full, &[]))
        .await;
    calm.run_to_end(calm.job(&calm.a, SyncMode::Full, &[]))
        .await;
    // THEN the hurried one took one invocation per page, and both end the same
    assert_eq!(invocations, 7);
    let (h, c) = (hurried.last_run(), calm.last_run());
    assert_eq!(h.continuations, 6);
    assert_eq!((h.status, h.counts), (c.status, c.counts));
    let why = |r: &Run| -> Vec<(String, String)> {
        r.failures
            .iter()
            .map(|f| (f.record_id.clone(), f.error.clone()))
            .collect()
    };
    assert_eq!(why(&h), why(&c));
    assert_eq!(by_sku(&hurried.pb), by_sku(&calm.pb));
    assert_eq!(
        hurried.leases.cursor(hurried.key(&hurried.a)),
        calm.leases.cursor(calm.key(&calm.a))
    );
    assert_eq!(hurried.runs.all().len(), 1, "one run, continued");
}

#[tokio::test]
async fn flows_both_ways_converge_and_do_not_echo() {
    // GIVEN products on A, flows A→B and B→A
    let w = world();
    seed(&w, &w.pa, 4);
    w.flow(&w.a, &w.b, ConflictPolicy::SourceWins);
    w.flow(&w.b, &w.a, ConflictPolicy::SourceWins);
    // WHEN A syncs to B, and B's changes (our writes) come back as a sync of B
    w.run_to_end(w.job(&w.a, SyncMode::Incremental, &[])).await;
    w.clock.advance(Duration::minutes(1));
    let writes_a = w.pa.writes();
    w.run_to_end(w.job(&w.b, SyncMode::Incremental, &[])).await;
    // THEN nothing bounces back to A: all four are echoes
    assert_eq!(w.pa.writes(), writes_a);
    let run = w.last_run();
    assert_eq!((run.counts.echo_skipped, run.counts.written), (4, 0));
    // WHEN someone edits a product on B
    w.clock.advance(Duration::minutes(1));
    let on_b =
        w.pb.live(EntityType::Products)
            .into_iter()
            .find(|(_, b)| b.natural_key().as_deref() == Some("SKU-2"))
            .map(|(id, _)| id)
            .unwrap_or_default();
    w.pb.put(EntityType::Products, &on_b, product("SKU-2", "15"));
    w.run_to_end(w.job(&w.b, SyncMode::Incremental, &[])).await;
    // THEN it reaches A once, and A's echo of it does not come back to B
    assert_eq!(w.pa.writes(), writes_a + 1);
    let writes_b = w.pb.writes();
    w.clock.advance(Duration::minutes(1));
    w.run_to_end(w.job(&w.a, SyncMode::Incremental, &[])).await;
    assert_eq!(w.pb.writes(), writes_b);
    assert_eq!(w.last_run().counts.echo_skipped, 1);
    assert_eq!(by_sku(&w.pa), by_sku(&w.pb));
}

#[tokio::test]
async fn an_edit_back_to_an_earlier_value_is_a_change_and_a_bookkeepers_edit_is_left_alone() {
    // GIVEN a product carried A→B, edited on B and carried back to A
    let w = world();
    seed(&w, &w.pa, 1);
    w.flow(&w.a, &w.b, ConflictPolicy::SourceWins);
    w.flow(&w.b, &w.a, ConflictPolicy::SourceWins);
    w.run_to_end(w.job(&w.a, SyncMode::Full, &[])).await;
    let on_b =
        w.pb.live(EntityType::Products)
            .into_keys()
            .next()
            .unwrap_or_default();
    w.clock.advance(Duration::minutes(1));
    w.pb.put(EntityType::Products, &on_b, product("SKU-1", "20"));
    w.run_to_end(w.job(&w.b, SyncMode::Incremental, &[])).await;
    assert_eq!(by_sku(&w.pa)["SKU-1"], product("SKU-1", "20"));
    // WHEN A is edited back to the price it first had
    w.clock.advance(Duration::minutes(1));
    w.pa.put(EntityType::Products, "1", product("SKU-1", "10.00"));
    w.run_to_end(w.job(&w.a, SyncMode::Incremental, &[])).await;
    // THEN that is a change, and B gets it
    assert_eq!(by_sku(&w.pb)["SKU-1"], product("SKU-1", "10"));
    // WHEN B is edited while A stays as it is, and only A is polled (no B→A run yet)
    w.clock.advance(Duration::minutes(1));
    w.pb.put(EntityType::Products, &on_b, product("SKU-1", "30"));
    let writes_b = w.pb.writes();
    w.run_to_end(w.job(&w.a, SyncMode::Full, &[])).await;
    // THEN A's unchanged record does not overwrite B's edit
    assert_eq!(w.pb.writes(), writes_b);
    assert_eq!(by_sku(&w.pb)["SKU-1"], product("SKU-1", "30"));
}

#[tokio::test]
async fn with_newest_wins_an_older_change_does_not_overwrite_a_newer_one() {
    let w = world();
    seed(&w, &w.pa, 1);
    w.flow(&w.a, &w.b, ConflictPolicy::NewestWins);
    w.run_to_end(w.job(&w.a, SyncMode::Full, &[])).await;
    let id_b =
        w.pb.live(EntityType::Products)
            .into_keys()
            .next()
            .unwrap_or_default();
    // A changes first, B later; then A's change is synced
    w.clock.advance(Duration::minutes(1));
    w.pa.put(EntityType::Products, "1", product("SKU-1", "11"));
    w.clock.advance(Duration::minutes(1));
    w.pb.put(EntityType::Products, &id_b, product("SKU-1", "22"));
    w.run_to_end(w.job(&w.a, SyncMode::Incremental, &[])).await;
    assert_eq!(
        w.pb.live(EntityType::Products).get(&id_b),
        Some(&product("SKU-1", "22"))
    );
}

#[tokio::test]
async fn a_record_deleted_at_the_source_is_marked_deleted_at_the_target() {
    let w = world();
    seed(&w, &w.pa, 3);
    w.flow(&w.a, &w.b, ConflictPolicy::SourceWins);
    w.run_to_end(w.job(&w.a, SyncMode::Full, &[])).await;
    w.clock.advance(Duration::minutes(1));
    w.pa.delete(EntityType::Products, "2");
    w.run_to_end(w.job(&w.a, SyncMode::Incremental, &["2"]))
        .await;
    let skus: Vec<String> = by_sku(&w.pb).into_keys().collect();
    assert_eq!(skus, ["SKU-1", "SKU-3"]);
    // A deletion of something never synced is nothing to do.
    w.pa.put(EntityType::Products, "9", product("SKU-9", "1"));
    w.pa.delete(EntityType::Products, "9");
    let writes = w.pb.writes();
    w.run_to_end(w.job(&w.a, SyncMode::Incremental, &["9"]))
        .await;
    assert_eq!(w.pb.writes(), writes);
}

#[tokio::test]
async fn a_stream_without_a_flow_records_a_skipped_run() {
    let w = world();
    seed(&w, &w.pa, 1);
    w.run_to_end(w.job(&w.a, SyncMode::Incremental, &[])).await;
    let run = w.last_run();
    assert_eq!(run.status, RunStatus::Skipped);
    assert!(run.message.unwrap_or_default().contains("no enabled flow"));
}

#[tokio::test]
async fn jobs_of_deleted_schedules_and_connections_are_dropped_and_say_why() {
    let w = world();
    w.flow(&w.a, &w.b, ConflictPolicy::SourceWins);
    // A schedule's job, whose schedule was deleted behind its trigger's back.
    let (s, job) = scheduled(&w, SyncMode::Incremental, Default::default()).await;
    use crate::ports::ScheduleStore;
    w.mem
        .schedules
        .delete(&w.tenant, s.id, s.version)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    w.run_to_end(job).await;
    let run = w.last_run();
    assert_eq!(run.status, RunStatus::Skipped);
    assert_eq!(
        run.message.as_deref(),
        Some("the schedule no longer exists")
    );
    assert!(w.mem.trigger.is_empty(), "its orphaned trigger was removed");
    // A job for a connection that is gone.
    let mut gone = w.job(&w.a, SyncMode::Incremental, &[]);
    gone.connection_id = crate::domain::ConnectionId::new_random();
    w.clock.advance(Duration::seconds(1));
    w.run_to_end(gone).await;
    assert_eq!(
        w.last_run().message.as_deref(),
        Some("the connection no longer exists")
    );
    assert_eq!(w.pb.writes(), 0);
}

#[tokio::test]
async fn a_scheduled_run_is_noted_on_its_schedule() {
    let w = world();
    seed(&w, &w.pa, 1);
    w.flow(&w.a, &w.b, ConflictPolicy::SourceWins);
    let (s, job) = scheduled(&w, SyncMode::Full, Default::default()).await;
    w.run_to_end(job).await;
    let run = w.last_run();
    assert_eq!(
        run.sync_mode,
        SyncMode::Full,
        "the schedule's current definition"
    );
    assert_eq!(run.schedule_id, Some(s.id));
    use crate::ports::ScheduleRuns;
    let stored = w
        .mem
        .schedules
        .get(&w.tenant, s.id)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("schedule gone"));
    assert_eq!(stored.last_run_status, Some(RunStatus::Succeeded));
    assert_eq!(stored.last_run_at, Some(w.clock.now()));
}

/// Leases that another worker takes over right after our first cursor save.
struct StolenAfterFirstSave {
    inner: Arc<MemorySyncLeases>,
    saves: std::sync::atomic::AtomicUsize,
    clock: Arc<FixedClock>,
}

#[async_trait::async_trait]
impl SyncLeases for StolenAfterFirstSave {
    async fn acquire(
        &self,
        key: SyncKey,
        owner: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<Lease, StateError> {
        self.inner.acquire(key, owner, now, ttl).await
    }
    async fn renew(
        &self,
        key: SyncKey,
        owner: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<(), StateError> {
        self.inner.renew(key, owner, now, ttl).await
    }
    async fn save_cursor(
        &self,
        key: SyncKey,
        owner: &str,
        cursor: &Cursor,
    ) -> Result<(), StateError> {
        let result = self.inner.save_cursor(key, owner, cursor).await;
        if self.saves.fetch_add(1, Ordering::SeqCst) == 0 {
            self.inner
                .hold(key, "thief", self.clock.now() + Duration::seconds(60));
        }
        result
    }
    async fn park(&self, key: SyncKey, job: &SyncJob) -> Result<bool, StateError> {
        self.inner.park(key, job).await
    }
    async fn peek_pending(
        &self,
        key: SyncKey,
        owner: &str,
    ) -> Result<Option<PendingJob>, StateError> {
        self.inner.peek_pending(key, owner).await
    }
    async fn done_pending(&self, key: SyncKey, version: u64) -> Result<bool, StateError> {
        self.inner.done_pending(key, version).await
    }
    async fn release(&self, key: SyncKey, owner: &str) -> Result<(), StateError> {
        self.inner.release(key, owner).await
    }
}

#[tokio::test]
async fn a_run_whose_lease_is_taken_over_stops_without_moving_the_cursor_further() {
    // GIVEN nine products (three pages), and a lease another worker takes over after our
    // first page's cursor is saved
    let w = world();
    seed(&w, &w.pa, 9);
    w.flow(&w.a, &w.b, ConflictPolicy::SourceWins);
    let stolen = Arc::new(StolenAfterFirstSave {
        inner: w.leases.clone(),
        saves: Default::default(),
        clock: w.clock.clone(),
    });
    let connectors = Arc::new(MemoryConnectors::default());
    connectors.attach(w.a.id, w.pa.clone());
    connectors.attach(w.b.id, w.pb.clone());
    let worker = SyncWorker::new(
        WorkerPorts {
            connections: w.mem.connections.clone(),
            flows: w.flows.clone(),
            connectors,
            schedules: crate::service::FiredCheck::new(
                w.mem.schedules.clone(),
                w.mem.trigger.clone(),
            ),
            schedule_store: w.mem.schedules.clone(),
            leases: stolen,
            index: w.index.clone(),
            failures: w.failures.clone(),
            runs: w.runs.clone(),
            jobs: w.mem.queue.clone(),
            alerts: crate::service::AlertRaiser::new(w.mem.alerts.clone(), w.clock.clone()),
            clock: w.clock.clone(),
        },
        WorkerSettings::default(),
    );
    // WHEN the run goes on
    let outcome = worker
        .handle(w.job(&w.a, SyncMode::Incremental, &[]), w.deadline())
        .await;
    // THEN it stops at its next cursor save, says why, and the new holder keeps the stream
    assert_eq!(outcome, JobOutcome::Done);
    let run = w.last_run();
    assert_eq!(run.status, RunStatus::Failed);
    assert!(run.message.unwrap_or_default().contains("taken over"));
    let key = w.key(&w.a);
    assert_eq!(w.leases.holder(key).as_deref(), Some("thief"));
    assert_eq!(w.leases.cursor(key).map(|c| c.id), Some("3".into()));
}

#[tokio::test]
async fn a_full_run_deletes_at_the_target_a_record_the_source_removed_without_a_trace() {
    let w = world();
    seed(&w, &w.pa, 20);
    w.flow(&w.a, &w.b, ConflictPolicy::SourceWins);
    w.run_to_end(w.job(&w.a, SyncMode::Full, &[])).await;
    assert_eq!(by_sku(&w.pb).len(), 20);
    w.pa.forget(EntityType::Products, "7");
    // An incremental run cannot see it.
    w.run_to_end(w.job(&w.a, SyncMode::Incremental, &[])).await;
    assert_eq!(by_sku(&w.pb).len(), 20);
    w.clock.advance(Duration::minutes(1));
    w.run_to_end(w.job(&w.a, SyncMode::Full, &[])).await;
    let skus: Vec<String> = by_sku(&w.pb).into_keys().collect();
    assert_eq!(skus.len(), 19);
    assert!(!skus.contains(&"SKU-7".to_string()));
}

#[tokio::test]
async fn a_full_run_that_finds_most_records_gone_deletes_nothing_and_says_why() {
    let w = world();
    seed(&w, &w.pa, 20);
    w.flow(&w.a, &w.b, ConflictPolicy::SourceWins);
    w.run_to_end(w.job(&w.a, SyncMode::Full, &[])).await;
    // As if the connection now pointed at another, nearly empty store.
    for id in 1..=15 {
        w.pa.forget(EntityType::Products, &id.to_string());
    }
    w.clock.advance(Duration::minutes(1));
    w.run_to_end(w.job(&w.a, SyncMode::Full, &[])).await;
    assert_eq!(by_sku(&w.pb).len(), 20, "nothing deleted");
    let run = w.last_run();
    let message = run.message.unwrap_or_default();
    assert!(message.contains("15 of the 20"), "{message}");
}

#[tokio::test]
async fn a_run_cancelled_before_it_started_is_not_run_when_its_job_arrives() {
    // GIVEN a run asked for, then cancelled while queued (as the API does)
    let w = world();
    seed(&w, &w.pa, 4);
    w.flow(&w.a, &w.b, ConflictPolicy::SourceWins);
    let job = w.asked_for(w.job(&w.a, SyncMode::Full, &[]));
    let mut cancelled = w.last_run();
    cancelled.status = RunStatus::Cancelled;
    w.runs.seed(cancelled);
    w.ask_to_stop(&job).await;
    // WHEN its job arrives
    w.run_to_end(job).await;
    // THEN nothing ran and the run says it was cancelled
    assert!(by_sku(&w.pb).is_empty());
    assert_eq!(w.runs.all().len(), 1);
    assert_eq!(w.last_run().status, RunStatus::Cancelled);
}

#[tokio::test]
async fn a_cancel_a_worker_wrote_over_is_found_as_the_run_opens() {
    // GIVEN a queued run asked to stop, whose `cancelled` status a worker taking it up at
    // that moment overwrote (it is queued or running again in the log)
    let w = world();
    seed(&w, &w.pa, 4);
    w.flow(&w.a, &w.b, ConflictPolicy::SourceWins);
    let job = w.asked_for(w.job(&w.a, SyncMode::Full, &[]));
    w.ask_to_stop(&job).await;
    // WHEN the job runs
    w.run_to_end(job).await;
    // THEN it stops before its first page
    let run = w.last_run();
    assert_eq!(run.status, RunStatus::Cancelled, "{run:#?}");
    assert!(run
        .message
        .unwrap_or_default()
        .contains("before it started"));
    assert!(by_sku(&w.pb).is_empty());
}

/// 150 products, product 2 turned away for now by the target, and a person's run of all
/// of them (two chunks of ids), asked for, that stopped near its time limit after the
/// first: the job, and its continuation (queued, not yet run).
async fn first_chunk_of_a_persons_run_turned_2_away(w: &World) -> (SyncJob, SyncJob) {
    seed(w, &w.pa, 150);
    w.flow(&w.a, &w.b, ConflictPolicy::SourceWins);
    w.pb.turn_away("2");
    let job = w.asked_for(w.persons_run_of(150));
    let soon = w.clock.now() + WorkerSettings::default().safety_margin;
    assert_eq!(w.worker.handle(job.clone(), soon).await, JobOutcome::Done);
    let mut continuation = w.mem.queue.drain_jobs();
    assert_eq!(continuation.len(), 1, "{continuation:#?}");
    assert!(w.mem.queue.delayed_jobs().is_empty(), "not yet");
    (job, continuation.remove(0))
}

#[tokio::test]
async fn a_persons_run_of_named_records_cancelled_between_parts_still_tries_again_what_failed_for_now(
) {
    // GIVEN 150 products, product 2 turned away for now by the target, and a person's run
    // of all of them (two chunks of ids) that stops near its time limit after the first
    let w = world();
    let (job, continuation) = first_chunk_of_a_persons_run_turned_2_away(&w).await;
    // WHEN the person cancels it before its continuation runs
    w.ask_to_stop(&job).await;
    let outcome = w.worker.handle(continuation, w.deadline()).await;
    // THEN it ends cancelled, the second chunk unread, and product 2 is still tried again
    assert_eq!(outcome, JobOutcome::Done);
    let run = w.run_of(&job);
    assert_eq!(run.status, RunStatus::Cancelled, "{run:#?}");
    assert_eq!(by_sku(&w.pb).len(), 99);
    let retries = w.mem.queue.delayed_jobs();
    assert_eq!(retries.len(), 1, "{retries:#?}");
    assert_eq!(retries[0].0.ids, ["2"]);
    assert!(retries[0].0.is_reported(), "nobody may cancel the retry");
    let message = run.message.unwrap_or_default();
    assert!(message.contains("tried again"), "{message}");
}

#[tokio::test]
async fn a_cancelled_run_whose_retry_cannot_be_queued_ends_saying_how_to_retry_its_records() {
    // GIVEN a person's run of products 1 to 150 stopped after its first chunk, product 2
    // turned away for now, then asked to stop
    let w = world();
    let (job, continuation) = first_chunk_of_a_persons_run_turned_2_away(&w).await;
    w.ask_to_stop(&job).await;
    // WHEN its continuation arrives while the queue refuses every message
    w.mem.queue.set_failing(true);
    let outcome = w.worker.handle(continuation, w.deadline()).await;
    // THEN the run ends cancelled all the same, keeps product 2 among its failures, and
    // says how to try it again
    assert_eq!(outcome, JobOutcome::Done);
    let run = w.run_of(&job);
    assert_eq!(run.status, RunStatus::Cancelled, "{run:#?}");
    assert!(run
        .failures
        .iter()
        .any(|f| f.record_id == "2" && f.retryable));
    let message = run.message.unwrap_or_default();
    assert!(
        message.contains(&format!("POST /api/sync/runs/{}/retry", run.id)),
        "{message}"
    );
}

#[tokio::test]
async fn a_persons_run_of_named_records_stopped_between_chunks_still_tries_again_what_failed_for_now(
) {
    // GIVEN a person's run of products 1 to 500 (five chunks of ids), read and written
    // slowly, whose first chunk has product 2 turned away for now
    let w = watchful_world_of_sixty();
    seed(&w, &w.pa, 500);
    w.pb.turn_away("2");
    slow(&w, 40);
    let job = w.persons_run_of(500);
    // WHEN someone asks it to stop as it starts (its watch finds the request within a
    // chunk or two)
    w.ask_to_stop(&job).await;
    let outcome = w.worker.handle(job, w.deadline()).await;
    // THEN it stops between chunks, and product 2 is still tried again
    assert_eq!(outcome, JobOutcome::Done);
    let run = w.last_run();
    assert_eq!(run.status, RunStatus::Cancelled, "{run:#?}");
    let written = by_sku(&w.pb).len();
    assert!(written < 499 && written % 100 == 99, "{written}");
    let retries = w.mem.queue.delayed_jobs();
    assert_eq!(retries.len(), 1, "{retries:#?}");
    assert_eq!(retries[0].0.ids, ["2"]);
    assert!(run.message.unwrap_or_default().contains("tried again"));
}

#[tokio::test]
async fn a_run_of_a_platforms_changes_asked_to_stop_anyway_runs_to_its_end() {
    // GIVEN a webhook job's run, queued by a person's retry before runs said whether they
    // carry a platform's changes, and asked to stop then (as the API no longer does)
    let w = watchful_world_of_sixty();
    slow(&w, 5);
    let ids: Vec<String> = (1..=60).map(|i| i.to_string()).collect();
    let names: Vec<&str> = ids.iter().map(String::as_str).collect();
    let job = w.asked_for(w.job(&w.a, SyncMode::Incremental, &names));
    w.ask_to_stop(&job).await;
    // WHEN it runs
    let outcome = w.worker.handle(job.clone(), w.deadline()).await;
    // THEN it was not stopped, before it started or on the way
    assert_eq!(outcome, JobOutcome::Done);
    let run = w.run_of(&job);
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    assert_eq!(by_sku(&w.pb).len(), 60);
    // AND one of 300 changes read slowly, asked to stop as it starts, is not stopped on
    // the way either (its watch would have found the request within a chunk or two)
    let w = watchful_world_of_sixty();
    seed(&w, &w.pa, 300);
    slow(&w, 40);
    let ids: Vec<String> = (1..=300).map(|i| i.to_string()).collect();
    let names: Vec<&str> = ids.iter().map(String::as_str).collect();
    let job = w.job(&w.a, SyncMode::Incremental, &names);
    w.ask_to_stop(&job).await;
    assert_eq!(
        w.worker.handle(job.clone(), w.deadline()).await,
        JobOutcome::Done
    );
    assert_eq!(w.run_of(&job).status, RunStatus::Succeeded);
    assert_eq!(by_sku(&w.pb).len(), 300);
}

/// Sixty products flowing from A to B, with a lease renewed (and cancel requests looked
/// for) every 50 ms.
fn watchful_world_of_sixty() -> World {
    let settings = WorkerSettings {
        lease_ttl: Duration::milliseconds(150),
        ..WorkerSettings::default()
    };
    let w = world_with(settings, 3);
    seed(&w, &w.pa, 60);
    w.flow(&w.a, &w.b, ConflictPolicy::SourceWins);
    w
}

/// Makes both platforms of `w` take `ms` to answer each read and write.
fn slow(w: &World, ms: u64) {
    w.pa.set_latency(std::time::Duration::from_millis(ms));
    w.pb.set_latency(std::time::Duration::from_millis(ms));
}

#[tokio::test]
async fn a_working_run_asked_to_stop_ends_at_a_pages_end_and_keeps_what_it_wrote() {
    // GIVEN sixty products (twenty pages) read slowly, and a lease renewed (and cancel
    // requests looked for) every 50 ms
    let w = watchful_world_of_sixty();
    slow(&w, 25);
    let job = w.job(&w.a, SyncMode::Incremental, &[]);
    // WHEN someone asks it to stop as it starts
    w.ask_to_stop(&job).await;
    let outcome = w.worker.handle(job, w.deadline()).await;
    // THEN it stopped between pages: what it wrote is whole pages, in the target once,
    // and the cursor is at the last of them
    assert_eq!(outcome, JobOutcome::Done);
    let run = w.last_run();
    assert_eq!(run.status, RunStatus::Cancelled, "{run:#?}");
    let written = run.counts.written as usize;
    assert!((3..60).contains(&written), "{run:#?}");
    assert_eq!(written % 3, 0, "whole pages");
    assert_eq!(by_sku(&w.pb).len(), written);
    let key = w.key(&w.a);
    assert_eq!(
        w.leases.cursor(key).map(|c| c.id),
        Some(written.to_string())
    );
    assert!(run
        .message
        .unwrap_or_default()
        .contains("cancelled on request"));
    assert!(w.mem.queue.drain_jobs().is_empty(), "no continuation");
    // AND the next run goes on from there: nothing is lost or written twice
    slow(&w, 0);
    w.run_to_end(w.job(&w.a, SyncMode::Incremental, &[])).await;
    assert_eq!(by_sku(&w.pb).len(), 60);
    let next: Vec<Run> = w
        .runs
        .all()
        .into_iter()
        .filter(|r| r.status == RunStatus::Succeeded)
        .collect();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].counts.written as usize, 60 - written);
}

/// Nine products flowing from A to B, with no time to spare: every page checkpoints.
fn hurried_world_of_nine() -> World {
    let settings = WorkerSettings {
        time_budget: Some(Duration::zero()),
        ..WorkerSettings::default()
    };
    let w = world_with(settings, 3);
    seed(&w, &w.pa, 9);
    w.flow(&w.a, &w.b, ConflictPolicy::SourceWins);
    w
}

#[tokio::test]
async fn a_run_asked_to_stop_between_invocations_ends_when_its_continuation_arrives() {
    // GIVEN a run with no time to spare (every page checkpoints), after its first page
    let w = hurried_world_of_nine();
    let job = w.job(&w.a, SyncMode::Full, &[]);
    w.worker.handle(job.clone(), w.deadline()).await;
    let continuation = w.mem.queue.drain_jobs();
    assert_eq!(continuation.len(), 1);
    assert_eq!(w.last_run().status, RunStatus::Running);
    // WHEN it is asked to stop, and its continuation arrives
    w.ask_to_stop(&job).await;
    w.run_to_end(continuation[0].clone()).await;
    // THEN it ends cancelled with its first page kept, and goes no further
    let run = w.last_run();
    assert_eq!(run.status, RunStatus::Cancelled, "{run:#?}");
    assert_eq!(run.counts.written, 3);
    assert_eq!(by_sku(&w.pb).len(), 3);
    assert_eq!(w.runs.all().len(), 1);
}

/// The target's id of the product with `sku`.
fn id_of(p: &MemoryPlatform, sku: &str) -> String {
    p.live(EntityType::Products)
        .into_iter()
        .find(|(_, b)| b.natural_key().as_deref() == Some(sku))
        .map(|(id, _)| id)
        .unwrap_or_else(|| panic!("no {sku}"))
}

#[tokio::test]
async fn a_resync_rewrites_exactly_what_the_source_changed_in_its_span_and_leaves_the_cursor() {
    // GIVEN ten products (one a minute from 12:00) synced, then three copies changed at the
    // target behind our back: the record index still thinks the target holds the source's
    let w = world();
    let start = w.clock.now();
    seed(&w, &w.pa, 10);
    w.flow(&w.a, &w.b, ConflictPolicy::SourceWins);
    w.run_to_end(w.job(&w.a, SyncMode::Incremental, &[])).await;
    let key = w.key(&w.a);
    let cursor = w.leases.cursor(key);
    for sku in ["SKU-2", "SKU-5", "SKU-8"] {
        w.pb.put(
            EntityType::Products,
            &id_of(&w.pb, sku),
            product(sku, "55.00"),
        );
    }
    let writes = w.pb.writes();
    // WHEN the products changed from 12:03 to 12:06 (4, 5 and 6) are resynced
    let mut job = w.job(&w.a, SyncMode::Incremental, &[]);
    job.window = Some(crate::domain::Window {
        from: start + Duration::minutes(3),
        to: start + Duration::minutes(6),
    });
    w.run_to_end(job.clone()).await;
    // THEN exactly those three are written again (5 repaired), the others left as they are
    let run = w.run_of(&job);
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    assert_eq!((run.counts.read, run.counts.written), (3, 3), "{run:#?}");
    assert_eq!(run.window, job.window);
    assert_eq!(w.pb.writes() - writes, 3);
    let price = |sku: &str| match by_sku(&w.pb).get(sku) {
        Some(Body::Product(p)) => p.price,
        other => panic!("{sku}: {other:?}"),
    };
    let (source, changed) = (
        decimal("10.00").unwrap_or_default(),
        decimal("55.00").unwrap_or_default(),
    );
    assert_eq!(price("SKU-5"), source);
    assert_eq!(price("SKU-2"), changed);
    assert_eq!(price("SKU-8"), changed);
    // AND the stream's cursor is where the last incremental run left it
    assert_eq!(w.leases.cursor(key), cursor);
}

#[tokio::test]
async fn a_resync_arriving_while_the_stream_is_busy_waits_unmerged() {
    let w = world();
    seed(&w, &w.pa, 2);
    w.flow(&w.a, &w.b, ConflictPolicy::SourceWins);
    let key = w.key(&w.a);
    w.leases
        .hold(key, "other", w.clock.now() + Duration::seconds(60));
    let mut job = w.job(&w.a, SyncMode::Incremental, &[]);
    job.window = Some(crate::domain::Window {
        from: w.clock.now() - Duration::hours(1),
        to: w.clock.now(),
    });
    w.worker.handle(job.clone(), w.deadline()).await;
    assert!(w.leases.pending(key).is_none(), "not kept to be merged");
    let later = w.mem.queue.delayed_jobs();
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].0, job, "sent again as it is");
}

#[tokio::test]
async fn runs_merged_into_one_that_is_cancelled_say_so() {
    // GIVEN two runs asked for while another run held the stream, merged into the stream's
    // one follow-up; sixty products read slowly
    let w = watchful_world_of_sixty();
    let key = w.key(&w.a);
    w.leases
        .hold(key, "other", w.clock.now() + Duration::seconds(60));
    let first = w.asked_for(w.job(&w.a, SyncMode::Incremental, &[]));
    let second = w.asked_for(w.job(&w.a, SyncMode::Incremental, &[]));
    w.worker.handle(first.clone(), w.deadline()).await;
    w.worker.handle(second.clone(), w.deadline()).await;
    let wake = w.mem.queue.delayed_jobs()[0].0.clone();
    let merged = w
        .leases
        .pending(key)
        .unwrap_or_else(|| panic!("nothing kept"));
    // WHEN the follow-up runs and is cancelled as it starts
    w.leases
        .hold(key, "other", w.clock.now() - Duration::seconds(1));
    slow(&w, 25);
    w.ask_to_stop(&merged).await;
    w.worker.handle(wake, w.deadline()).await;
    // THEN the follow-up's run ended cancelled, and each run merged into it says so rather
    // than that it did their work
    let runs = w.runs.all();
    let stopped = runs
        .iter()
        .find(|r| r.id == merged.run_id())
        .unwrap_or_else(|| panic!("no merged run: {runs:#?}"));
    assert_eq!(stopped.status, RunStatus::Cancelled, "{stopped:#?}");
    assert!((stopped.counts.written as usize) < 60);
    for asked in [&first, &second] {
        let run = runs
            .iter()
            .find(|r| r.id == asked.run_id())
            .unwrap_or_else(|| panic!("no run"));
        assert_eq!(run.status, RunStatus::Cancelled, "{run:#?}");
        let message = run.message.clone().unwrap_or_default();
        assert!(message.contains(stopped.id.as_str()), "{message}");
    }
}

#[tokio::test]
async fn a_continuation_delivered_again_after_its_run_ended_changes_nothing() {
    // GIVEN a run continued page by page to its end
    let w = hurried_world_of_nine();
    w.worker
        .handle(w.job(&w.a, SyncMode::Full, &[]), w.deadline())
        .await;
    let first_continuation = w.mem.queue.drain_jobs();
    assert_eq!(first_continuation.len(), 1);
    w.run_to_end(first_continuation[0].clone()).await;
    let ended = w.last_run();
    assert_eq!(ended.status, RunStatus::Succeeded);
    let writes = w.pb.writes();
    // WHEN its first continuation is delivered again (its message was not deleted)
    w.run_to_end(first_continuation[0].clone()).await;
    // THEN the run and the target are as they were
    assert_eq!(w.last_run(), ended);
    assert_eq!(w.pb.writes(), writes);
}

/// An hourly schedule of A's products in `mode` with `options`, and a job as its trigger
/// sends it.
async fn scheduled(
    w: &World,
    mode: SyncMode,
    options: crate::domain::ScheduleOptions,
) -> (crate::domain::Schedule, SyncJob) {
    let s = ScheduleService::new(
        w.mem.schedules.clone(),
        w.mem.trigger.clone(),
        w.mem.connections.clone(),
        w.clock.clone(),
    )
    .creating(w.mem.schedules.clone())
    .create(
        &w.tenant,
        NewSchedule {
            credential_id: w.a.id,
            platform: Platform::WooCommerce,
            entity_type: EntityType::Products,
            cron_expression: "@hourly".into(),
            expression: ScheduleExpression::parse("@hourly").unwrap_or_else(|e| panic!("{e}")),
            sync_mode: mode,
            timezone: "UTC".parse().unwrap_or_else(|e| panic!("{e}")),
            is_active: true,
            options,
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let mut job = w.job(&w.a, SyncMode::Incremental, &[]);
    job.trigger = Trigger::Schedule {
        schedule_id: s.id,
        schedule_version: s.version,
    };
    (s, job)
}

#[tokio::test]
async fn a_fire_of_a_skip_schedule_on_a_busy_stream_is_recorded_skipped_and_a_buffer_one_waits() {
    let w = world();
    seed(&w, &w.pa, 2);
    w.flow(&w.a, &w.b, ConflictPolicy::SourceWins);
    let key = w.key(&w.a);
    w.leases
        .hold(key, "other", w.clock.now() + Duration::seconds(60));
    let (schedule, skip) = scheduled(
        &w,
        SyncMode::Incremental,
        crate::domain::ScheduleOptions {
            overlap_policy: crate::domain::OverlapPolicy::Skip,
            ..Default::default()
        },
    )
    .await;
    w.worker.handle(skip.clone(), w.deadline()).await;
    let run = w.last_run();
    assert_eq!(run.status, RunStatus::Skipped, "{run:#?}");
    assert!(run
        .message
        .unwrap_or_default()
        .contains("overlap_policy skip"));
    assert!(w.leases.pending(key).is_none(), "nothing kept");
    // A fire of it tried before (its run failed, and the queue delivers it again) is the
    // schedule's own, not skipped: it waits.
    // (Another fire time: the run of a fire is the fire's, whatever its delivery.)
    let mut again = skip.clone();
    again.triggered_at = skip.triggered_at + Duration::hours(1);
    again.job_id = SyncJob::fire_job_id(schedule.id, again.triggered_at);
    let mut failed = Run::of_job(
        &again,
        again.run_id(),
        None,
        w.clock.now(),
        RunStatus::Failed,
    );
    failed.finished_at = Some(w.clock.now());
    w.runs.seed(failed);
    w.worker.handle(again, w.deadline()).await;
    assert!(w.leases.pending(key).is_some(), "kept as the follow-up");
    let (_, buffered) = scheduled(&w, SyncMode::Incremental, Default::default()).await;
    w.worker.handle(buffered, w.deadline()).await;
    assert!(w.leases.pending(key).is_some(), "kept as the follow-up");
}

#[tokio::test]
async fn a_continuation_delivered_again_while_its_run_goes_on_still_runs_it_to_its_end() {
    // GIVEN a run whose first continuation's successor could not be queued
    let w = hurried_world_of_nine();
    w.worker
        .handle(w.job(&w.a, SyncMode::Full, &[]), w.deadline())
        .await;
    let first = w.mem.queue.drain_jobs();
    assert_eq!(first.len(), 1);
    w.mem.queue.set_failing(true);
    let outcome = w.worker.handle(first[0].clone(), w.deadline()).await;
    assert!(matches!(outcome, JobOutcome::Retry(_)), "{outcome:?}");
    w.mem.queue.set_failing(false);
    // WHEN the queue delivers it again
    w.run_to_end(first[0].clone()).await;
    // THEN the run goes on to its end
    let run = w.last_run();
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    assert_eq!(by_sku(&w.pb).len(), 9);
}

#[tokio::test]
async fn a_continuation_that_finds_the_cursor_set_by_hand_stops_and_leaves_it() {
    // GIVEN an incremental run between invocations, and its stream's cursor set by hand
    let w = hurried_world_of_nine();
    w.worker
        .handle(w.job(&w.a, SyncMode::Incremental, &[]), w.deadline())
        .await;
    let next = w.mem.queue.drain_jobs();
    assert_eq!(next.len(), 1);
    let key = w.key(&w.a);
    let set = Cursor::at(w.clock.now() - Duration::days(3));
    let done =
        crate::ports::StreamCursors::set_cursor(w.leases.as_ref(), key, &set, "ops", w.clock.now())
            .await;
    assert!(
        matches!(done, Ok(crate::ports::CursorSet::Set { .. })),
        "{done:?}"
    );
    // WHEN its continuation arrives
    w.run_to_end(next[0].clone()).await;
    // THEN it stops, and the cursor set by hand stands
    let run = w.last_run();
    assert_eq!(run.status, RunStatus::Cancelled, "{run:#?}");
    assert!(run
        .message
        .unwrap_or_default()
        .contains("cursor was set by hand"));
    assert_eq!(w.leases.cursor(key), Some(set));
}

#[tokio::test]
async fn a_continuation_carrying_reported_changes_that_finds_the_cursor_set_by_hand_hands_them_to_a_run_from_there(
) {
    // GIVEN a run of changes a platform reported (a burst too large to name them), between
    // invocations, and its stream's cursor set by hand before all of them
    let w = hurried_world_of_nine();
    let mut burst = w.job(&w.a, SyncMode::Incremental, &[]);
    burst.trigger = Trigger::Webhook;
    burst.reported = Some(true);
    w.worker.handle(burst, w.deadline()).await;
    let next = w.mem.queue.drain_jobs();
    assert_eq!(next.len(), 1);
    let stopped = next[0].run_id();
    let key = w.key(&w.a);
    let set = Cursor::at(w.clock.now() - Duration::days(3));
    let done =
        crate::ports::StreamCursors::set_cursor(w.leases.as_ref(), key, &set, "ops", w.clock.now())
            .await;
    assert!(matches!(done, Ok(crate::ports::CursorSet::Set { .. })));
    w.clock.advance(Duration::seconds(1));
    // WHEN its continuation arrives (the queue refusing the hand-over at first)
    w.mem.queue.set_failing(true);
    let outcome = w.worker.handle(next[0].clone(), w.deadline()).await;
    assert!(matches!(outcome, JobOutcome::Retry(_)), "{outcome:?}");
    w.mem.queue.set_failing(false);
    w.run_to_end(next[0].clone()).await;
    // THEN that run stops, and a run from the cursor as set carries the changes to the end
    let run = w
        .runs
        .all()
        .into_iter()
        .find(|r| r.id == stopped)
        .unwrap_or_else(|| panic!("no run"));
    assert_eq!(run.status, RunStatus::Cancelled, "{run:#?}");
    let message = run.message.unwrap_or_default();
    assert!(message.contains("reads on from there now"), "{message}");
    let after = w.last_run();
    assert!(after.reported, "{after:#?}");
    assert_eq!(after.status, RunStatus::Succeeded, "{after:#?}");
    assert!(message.contains(after.id.as_str()), "{message}");
    assert_eq!(by_sku(&w.pb).len(), 9);
}

#[tokio::test]
async fn a_resync_between_flows_both_ways_does_not_overwrite_an_edit_not_yet_carried_back() {
    for back_enabled in [true, false] {
        resync_with_a_flow_back(back_enabled).await;
    }
}

/// A resync of A's products while B has a flow back to A (enabled, or paused: it carries
/// B's edits back once resumed) leaves an edit made at B alone.
async fn resync_with_a_flow_back(back_enabled: bool) {
    let w = world();
    let start = w.clock.now();
    seed(&w, &w.pa, 6);
    w.flow(&w.a, &w.b, ConflictPolicy::SourceWins);
    w.run_to_end(w.job(&w.a, SyncMode::Incremental, &[])).await;
    let mut back = w.flow(&w.b, &w.a, ConflictPolicy::SourceWins);
    back.enabled = back_enabled;
    w.flows.seed(back);
    w.pb.put(
        EntityType::Products,
        &id_of(&w.pb, "SKU-3"),
        product("SKU-3", "55.00"),
    );
    let writes = w.pb.writes();
    let mut job = w.job(&w.a, SyncMode::Incremental, &[]);
    job.window = Some(crate::domain::Window {
        from: start,
        to: w.clock.now(),
    });
    w.run_to_end(job).await;
    assert_eq!(w.pb.writes(), writes, "nothing rewritten");
    match by_sku(&w.pb).get("SKU-3") {
        Some(Body::Product(p)) => assert_eq!(p.price, decimal("55.00").unwrap_or_default()),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_full_run_between_invocations_goes_on_after_another_run_moved_the_cursor() {
    // GIVEN a full run after its first page, and an incremental run that ran meanwhile
    let w = hurried_world_of_nine();
    let full = w.job(&w.a, SyncMode::Full, &[]);
    w.worker.handle(full.clone(), w.deadline()).await;
    let next = w.mem.queue.drain_jobs();
    assert_eq!(next.len(), 1);
    w.run_to_end(w.job(&w.a, SyncMode::Incremental, &[])).await;
    // WHEN the full run's continuation arrives
    w.run_to_end(next[0].clone()).await;
    // THEN it runs to its end
    let run = w.run_of(&full);
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
}

#[tokio::test]
async fn a_fire_delivered_twice_or_after_the_sweeper_caught_it_up_is_one_run() {
    let w = world();
    seed(&w, &w.pa, 2);
    w.flow(&w.a, &w.b, ConflictPolicy::SourceWins);
    let (schedule, fire) = scheduled(&w, SyncMode::Incremental, Default::default()).await;
    // The sweeper found the fire missed: its catch-up is recorded queued and sent.
    let catch_up = SyncJob {
        job_id: SyncJob::fire_job_id(schedule.id, fire.triggered_at),
        trigger: Trigger::CatchUp {
            schedule_id: schedule.id,
        },
        ..fire.clone()
    };
    w.runs.seed(Run::of_job(
        &catch_up,
        catch_up.run_id(),
        None,
        w.clock.now(),
        RunStatus::Queued,
    ));
    // Then EventBridge's delivery turns up after all, twice (two execution ids), and the
    // catch-up last.
    let mut twice = fire.clone();
    twice.job_id = "another execution".into();
    for job in [fire, twice, catch_up.clone()] {
        w.run_to_end(job).await;
    }
    let runs = w.runs.all();
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(runs[0].id, catch_up.run_id());
    assert_eq!(runs[0].status, RunStatus::Succeeded, "{runs:#?}");
    assert_eq!(by_sku(&w.pb).len(), 2);
}

#[tokio::test]
async fn a_catch_up_of_a_schedule_paused_or_deleted_since_is_skipped() {
    let w = world();
    seed(&w, &w.pa, 2);
    w.flow(&w.a, &w.b, ConflictPolicy::SourceWins);
    let (schedule, fire) = scheduled(&w, SyncMode::Incremental, Default::default()).await;
    ScheduleService::new(
        w.mem.schedules.clone(),
        w.mem.trigger.clone(),
        w.mem.connections.clone(),
        w.clock.clone(),
    )
    .creating(w.mem.schedules.clone())
    .update(
        &w.tenant,
        schedule.id,
        crate::domain::SchedulePatch {
            is_active: Some(false),
            ..Default::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let catch_up = SyncJob {
        job_id: SyncJob::fire_job_id(schedule.id, fire.triggered_at),
        trigger: Trigger::CatchUp {
            schedule_id: schedule.id,
        },
        ..fire
    };
    w.run_to_end(catch_up).await;
    let run = w.last_run();
    assert_eq!(run.status, RunStatus::Skipped, "{run:#?}");
    assert!(run.message.unwrap_or_default().contains("paused"));
    assert!(by_sku(&w.pb).is_empty());
}

#[tokio::test]
async fn a_catch_up_skipped_for_a_paused_schedule_leaves_the_fires_run_another_delivery_is_running()
{
    let w = world();
    seed(&w, &w.pa, 2);
    w.flow(&w.a, &w.b, ConflictPolicy::SourceWins);
    let (schedule, fire) = scheduled(&w, SyncMode::Incremental, Default::default()).await;
    // The fire's run is under way elsewhere (another delivery took it up).
    let fire_id = SyncJob::fire_job_id(schedule.id, fire.triggered_at);
    let mut taken = fire.clone();
    taken.job_id = fire_id.clone();
    w.runs.seed(Run::of_job(
        &taken,
        taken.run_id(),
        None,
        w.clock.now(),
        RunStatus::Running,
    ));
    ScheduleService::new(
        w.mem.schedules.clone(),
        w.mem.trigger.clone(),
        w.mem.connections.clone(),
        w.clock.clone(),
    )
    .creating(w.mem.schedules.clone())
    .update(
        &w.tenant,
        schedule.id,
        crate::domain::SchedulePatch {
            is_active: Some(false),
            ..Default::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let catch_up = SyncJob {
        job_id: fire_id,
        trigger: Trigger::CatchUp {
            schedule_id: schedule.id,
        },
        ..fire
    };
    w.run_to_end(catch_up).await;
    let runs = w.runs.all();
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(runs[0].status, RunStatus::Running, "not written over");
}

#[tokio::test]
async fn two_deliveries_of_one_fire_kept_on_a_busy_stream_run_once_as_the_fires_run() {
    let w = world();
    seed(&w, &w.pa, 2);
    w.flow(&w.a, &w.b, ConflictPolicy::SourceWins);
    let key = w.key(&w.a);
    w.leases
        .hold(key, "other", w.clock.now() + Duration::seconds(60));
    let (schedule, fire) = scheduled(&w, SyncMode::Incremental, Default::default()).await;
    let mut again = fire.clone();
    again.job_id = "another execution".into();
    for job in [fire.clone(), again] {
        w.worker.handle(job, w.deadline()).await;
    }
    let kept = w
        .leases
        .pending(key)
        .unwrap_or_else(|| panic!("nothing kept"));
    assert_eq!(
        kept.job_id,
        SyncJob::fire_job_id(schedule.id, fire.triggered_at),
        "still the fire's identity"
    );
    // The holder lets go; the follow-up runs once, as the fire's run.
    w.leases
        .hold(key, "other", w.clock.now() - Duration::seconds(1));
    w.mem.queue.drain_jobs();
    let mut wake = w.job(&w.a, SyncMode::Incremental, &[]);
    wake.trigger = Trigger::FollowUp;
    w.run_to_end(wake).await;
    let runs = w.runs.all();
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(runs[0].id, kept.run_id());
    assert_eq!(runs[0].status, RunStatus::Succeeded);
}

#[tokio::test]
async fn a_poll_that_writes_changes_no_webhook_brought_raises_the_streams_silent_webhooks_alert() {
    let w = world();
    seed(&w, &w.pa, 3);
    w.flow(&w.a, &w.b, ConflictPolicy::SourceWins);
    w.run_to_end(w.job(&w.a, SyncMode::Full, &[])).await;
    let silent = |w: &World| {
        w.mem
            .alerts
            .all()
            .into_iter()
            .filter(|i| i.kind == crate::domain::AlertKind::WebhooksSilent)
            .collect::<Vec<_>>()
    };
    let poll_after = |minutes: i64| {
        w.clock.advance(Duration::minutes(minutes));
        w.run_to_end(w.job(&w.a, SyncMode::Incremental, &[]))
    };
    let counted = |w: &World| {
        let run = w.last_run();
        (run.counts.written, run.counts.unannounced)
    };
    // The coalescer notes the stream's webhooks as they arrive.
    let arrive = || {
        let (leases, key, now) = (w.leases.clone(), w.key(&w.a), w.clock.now());
        async move {
            let noted = crate::ports::WebhookArrivals::arrived(&*leases, key, now).await;
            assert!(noted.is_ok(), "{noted:?}");
        }
    };
    let webhooks = |on: bool| {
        let mut c = w.a.clone();
        c.webhooks_enabled = on;
        c.updated_at = w.clock.now();
        w.mem.connections.seed(c);
    };
    // Webhooks on, but none of the stream's ever arrived: whether the platform sends any
    // for it is not known.
    webhooks(true);
    w.clock.advance(Duration::minutes(1));
    w.pa.put(EntityType::Products, "2", product("SKU-2", "12"));
    poll_after(30).await;
    assert_eq!(counted(&w), (1, 0));
    // Turned off (after some of the stream's had come): a poll is how its changes come.
    arrive().await;
    webhooks(false);
    w.clock.advance(Duration::minutes(10));
    w.pa.put(EntityType::Products, "1", product("SKU-1", "11"));
    poll_after(30).await;
    assert_eq!(counted(&w), (1, 0));
    // On again: what changed while they were off came by no webhook, rightly.
    w.pa.put(EntityType::Products, "3", product("SKU-3", "12"));
    w.clock.advance(Duration::minutes(10));
    webhooks(true);
    poll_after(30).await;
    assert_eq!(counted(&w), (1, 0));
    // A change whose webhook's job ran: the poll finds it in place.
    w.clock.advance(Duration::minutes(1));
    w.pa.put(EntityType::Products, "2", product("SKU-2", "13"));
    w.clock.advance(Duration::seconds(5));
    arrive().await;
    w.run_to_end(w.job(&w.a, SyncMode::Incremental, &["2"]))
        .await;
    poll_after(30).await;
    assert_eq!(counted(&w), (0, 0));
    // A change made moments ago: its webhook may still be on its way.
    w.pa.put(EntityType::Products, "3", product("SKU-3", "13"));
    poll_after(5).await;
    assert_eq!(counted(&w), (1, 0));
    // A change whose webhook came but whose job failed to write it (or waits, kept behind
    // a busy stream, or was merged into this poll): it arrived after the change.
    w.clock.advance(Duration::minutes(1));
    w.pa.put(EntityType::Products, "1", product("SKU-1", "14"));
    w.pb.fail_next(1);
    w.clock.advance(Duration::seconds(5));
    arrive().await;
    let failed = w
        .worker
        .handle(w.job(&w.a, SyncMode::Incremental, &["1"]), w.deadline())
        .await;
    assert!(matches!(failed, JobOutcome::Retry(_)), "{failed:?}");
    poll_after(30).await;
    assert_eq!(counted(&w), (1, 0));
    assert!(silent(&w).is_empty(), "{:#?}", silent(&w));
    // A change made long before the poll, after the stream's webhooks last arrived, that
    // no webhook brought: they are not coming.
    w.clock.advance(Duration::minutes(1));
    w.pa.put(EntityType::Products, "2", product("SKU-2", "15"));
    poll_after(20).await;
    let poll = w.last_run();
    assert_eq!((poll.counts.written, poll.counts.unannounced), (1, 1));
    let alerts = silent(&w);
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alerts[0].subject, format!("stream:{}/products", w.a.id));
    assert!(
        alerts[0].last_error.contains(poll.id.as_str()),
        "{}",
        alerts[0].last_error
    );
}

#[tokio::test]
async fn a_run_refused_for_credentials_raises_the_alert_of_the_connection_marked_needs_reauth() {
    let w = world();
    seed(&w, &w.pa, 2);
    w.flow(&w.a, &w.b, ConflictPolicy::SourceWins);
    let mut refused = w.b.clone();
    refused.needs_reauth = Some("the platform refused the refresh token (invalid_grant)".into());
    w.mem.connections.seed(refused);
    let outcome = w
        .worker
        .handle(w.job(&w.a, SyncMode::Full, &[]), w.deadline())
        .await;
    assert_eq!(
        outcome,
        JobOutcome::Done,
        "refused for good: not tried again"
    );
    assert_eq!(w.last_run().status, RunStatus::Failed);
    let alerts = w.mem.alerts.all();
    let reauth: Vec<_> = alerts
        .iter()
        .filter(|i| i.kind == crate::domain::AlertKind::NeedsReauth)
        .collect();
    assert_eq!(reauth.len(), 1, "{alerts:#?}");
    assert_eq!(reauth[0].subject, format!("connection:{}", w.b.id));
    assert!(reauth[0].last_error.contains("invalid_grant"));
    // A run that fails otherwise raises none.
    let w = world();
    seed(&w, &w.pa, 2);
    w.flow(&w.a, &w.b, ConflictPolicy::SourceWins);
    w.pb.set_rejecting(true);
    w.worker
        .handle(w.job(&w.a, SyncMode::Full, &[]), w.deadline())
        .await;
    assert_eq!(w.last_run().status, RunStatus::Failed);
    assert!(w
        .mem
        .alerts
        .all()
        .iter()
        .all(|i| i.kind != crate::domain::AlertKind::NeedsReauth));
}

#[test]
fn only_a_poll_of_a_stream_whose_webhooks_arrived_measures_what_no_webhook_brought() {
    let w = world();
    let mut connection = w.a.clone();
    connection.webhooks_enabled = true;
    connection.updated_at = w.clock.now() - Duration::days(3);
    let started = w.clock.now();
    let cursor = started - Duration::hours(2);
    let arrived = Some(started - Duration::hours(3));
    let poll = w.job(&w.a, SyncMode::Incremental, &[]);
    let run_of = |job: &SyncJob, cursor: Option<DateTime<Utc>>| {
        Run::of_job(
            job,
            job.run_id(),
            cursor.map(Cursor::at),
            started,
            RunStatus::Running,
        )
    };
    let run = run_of(&poll, Some(cursor));
    assert_eq!(
        unannounced(&connection, &poll, &run, arrived),
        Some(Window {
            from: cursor,
            to: started - crate::domain::WEBHOOK_GRACE
        })
    );
    // Webhooks that arrived after the cursor: from then (and a little).
    let later = Some(cursor + Duration::minutes(30));
    assert_eq!(
        unannounced(&connection, &poll, &run, later).map(|w| w.from),
        Some(cursor + Duration::minutes(35))
    );
    let mut not_polls: Vec<(&str, SyncJob)> = Vec::new();
    let mut webhook = w.job(&w.a, SyncMode::Incremental, &["1"]);
    not_polls.push(("a webhook's job", webhook.clone()));
    webhook.ids.clear();
    not_polls.push(("a webhook's job of too many ids", webhook));
    let mut retry = poll.clone();
    retry.trigger = Trigger::Retry;
    not_polls.push(("a retry", retry));
    let mut resync = poll.clone();
    resync.window = Some(Window {
        from: cursor,
        to: started,
    });
    not_polls.push(("a resync", resync));
    not_polls.push(("a full run", w.job(&w.a, SyncMode::Full, &[])));
    let mut merged = poll.clone();
    merged.stands_for = vec![RunId::for_job(started, "another")];
    not_polls.push(("a job standing for others", merged));
    for (what, job) in not_polls {
        let run = run_of(&job, Some(cursor));
        assert_eq!(
            unannounced(&connection, &job, &run, arrived),
            None,
            "{what}"
        );
    }
    assert_eq!(
        unannounced(&connection, &poll, &run, None),
        None,
        "no webhook of the stream ever arrived"
    );
    assert_eq!(
        unannounced(&connection, &poll, &run_of(&poll, None), arrived),
        None,
        "a first run"
    );
    let mut off = connection.clone();
    off.webhooks_enabled = false;
    assert_eq!(
        unannounced(&off, &poll, &run, arrived),
        None,
        "webhooks off"
    );
    let mut just_changed = connection;
    just_changed.updated_at = started - Duration::minutes(10);
    assert_eq!(
        unannounced(&just_changed, &poll, &run, arrived),
        None,
        "the connection changed since: nothing it could have missed"
    );
}

#[tokio::test]
async fn a_job_delivered_late_after_the_sweeper_handed_its_run_to_a_redo_is_dropped() {
    // GIVEN a run the sweeper found abandoned and handed to another run to redo
    let w = world();
    seed(&w, &w.pa, 3);
    w.flow(&w.a, &w.b, ConflictPolicy::SourceWins);
    let job = w.job(&w.a, SyncMode::Full, &[]);
    let mut abandoned = left_an_hour_ago(&w, &job, RunStatus::Failed);
    abandoned.message = Some("abandoned: its worker stopped without finishing it".into());
    abandoned.redone_by = Some(RunId::for_job(w.clock.now(), "redo-of-it"));
    w.runs.seed(abandoned.clone());
    // WHEN its job's message, only late, is delivered after all
    w.worker.handle(job, w.deadline()).await;
    // THEN the redo alone does the work: nothing is written, the run stays as it was left
    assert_eq!(w.pb.writes(), 0);
    assert_eq!(w.last_run(), abandoned);
}

/// A run log in which the sweeper ends the run for a redo just after the worker first
/// reads it, before the worker writes it: a late job and the sweeper, interleaved.
struct RedoneAfterRead {
    runs: Arc<MemoryRuns>,
    redo: RunId,
    done: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl RunLog for RedoneAfterRead {
    async fn get(&self, tenant: &TenantId, id: &RunId) -> Result<Option<Run>, StoreError> {
        let got = RunLog::get(self.runs.as_ref(), tenant, id).await?;
        if !self.done.swap(true, std::sync::atomic::Ordering::SeqCst) {
            if let Some(mut ended) = got.clone() {
                ended.status = RunStatus::Failed;
                ended.redone_by = Some(self.redo.clone());
                ended.updated_at += Duration::seconds(1);
                self.runs.seed(ended);
            }
        }
        Ok(got)
    }
    async fn save(&self, run: &Run) -> Result<(), StoreError> {
        self.runs.save(run).await
    }
    async fn save_if_unchanged(
        &self,
        run: &Run,
        seen: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError> {
        self.runs.save_if_unchanged(run, seen).await
    }
    async fn replace_queued(&self, run: &Run) -> Result<bool, StoreError> {
        self.runs.replace_queued(run).await
    }
    async fn request_cancel(
        &self,
        tenant: &TenantId,
        id: &RunId,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.runs.request_cancel(tenant, id, at).await
    }
    async fn cancel_requested(
        &self,
        tenant: &TenantId,
        id: &RunId,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.runs.cancel_requested(tenant, id).await
    }
}

#[tokio::test]
async fn a_job_the_sweeper_hands_to_a_redo_while_a_worker_takes_it_up_is_left_to_the_redo() {
    // GIVEN a run taken up and left an hour ago, whose job is delivered again
    let redo = RunId::for_job(at("2026-11-24T12:00:00Z"), "redo-of-it");
    let w = world_wrapping_runs(WorkerSettings::default(), 3, |runs| {
        Arc::new(RedoneAfterRead {
            runs,
            redo: redo.clone(),
            done: Default::default(),
        })
    });
    seed(&w, &w.pa, 3);
    w.flow(&w.a, &w.b, ConflictPolicy::SourceWins);
    let job = w.job(&w.a, SyncMode::Full, &[]);
    let left = left_an_hour_ago(&w, &job, RunStatus::Running);
    w.runs.seed(left);
    // WHEN the sweeper ends it for a redo between the worker's read and its write
    w.worker.handle(job, w.deadline()).await;
    // THEN the worker does not take it back: the redo alone does its work
    assert_eq!(w.pb.writes(), 0);
    let stored = w.last_run();
    assert_eq!(
        (stored.status, stored.redone_by),
        (RunStatus::Failed, Some(redo))
    );
}

#[tokio::test]
async fn runs_merged_into_a_job_whose_run_was_redone_say_the_redo_does_their_work() {
    // GIVEN a run asked for through the API, merged into a job while the stream was busy,
    // and that job's run then abandoned and handed to a redo
    let w = world();
    seed(&w, &w.pa, 3);
    w.flow(&w.a, &w.b, ConflictPolicy::SourceWins);
    let asked = w.job(&w.a, SyncMode::Full, &[]);
    let mut queued = Run::of_job(
        &asked,
        RunId::for_job(w.clock.now(), "asked-for"),
        None,
        w.clock.now(),
        RunStatus::Queued,
    );
    queued.job_id = "asked-for".into();
    w.runs.seed(queued.clone());
    let mut job = w.job(&w.a, SyncMode::Full, &[]);
    job.stands_for = vec![queued.id.clone()];
    let redo = RunId::for_job(w.clock.now(), "redo-of-it");
    let mut abandoned = left_an_hour_ago(&w, &job, RunStatus::Failed);
    abandoned.redone_by = Some(redo.clone());
    w.runs.seed(abandoned);
    // WHEN the job is delivered after all
    w.worker.handle(job, w.deadline()).await;
    // THEN it is dropped, and the run it stood for names the redo as doing its work
    assert_eq!(w.pb.writes(), 0);
    let settled = w
        .runs
        .all()
        .into_iter()
        .find(|r| r.id == queued.id)
        .unwrap_or_else(|| panic!("the queued run is gone"));
    assert_eq!(settled.status, RunStatus::Skipped);
    let message = settled.message.unwrap_or_default();
    assert!(message.contains(redo.as_str()), "{message}");
}

/// `job`'s run as a worker left it an hour ago, in `status`.
fn left_an_hour_ago(w: &World, job: &SyncJob, status: RunStatus) -> Run {
    Run::of_job(
        job,
        job.run_id(),
        None,
        w.clock.now() - Duration::hours(1),
        status,
    )
}
