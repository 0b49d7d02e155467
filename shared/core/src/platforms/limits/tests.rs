use super::*;
use crate::memory::MemoryCallQuota;
use chrono::{DateTime, TimeZone, Utc};
use std::sync::atomic::AtomicUsize;

/// The wall clock as the test's (paused) tokio time moves it.
struct TestClock {
    base: DateTime<Utc>,
    start: Instant,
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        let gone = Instant::now().duration_since(self.start);
        self.base + chrono::Duration::from_std(gone).unwrap_or_default()
    }
}

fn clock() -> Arc<dyn Clock> {
    Arc::new(TestClock {
        // Three seconds into a window, so windows turn while the test runs.
        base: Utc
            .with_ymd_and_hms(2026, 3, 8, 9, 0, 3)
            .single()
            .unwrap_or_default(),
        start: Instant::now(),
    })
}

const KEY: &str = "quickbooks/9130";

/// A quota in memory, and the clock the processes share.
fn shared() -> (Arc<MemoryCallQuota>, Arc<dyn Clock>) {
    (Arc::new(MemoryCallQuota::default()), clock())
}

fn limits() -> Limits {
    Limits {
        platform: "QuickBooks",
        in_flight_here: 4,
        per_minute_here: 1000,
        seats: 5,
        window: Duration::from_secs(10),
        per_window: 1000,
        grant: 3,
        seat_lease: Duration::from_secs(30),
    }
}

/// `processes` processes sharing `quota`, each with its own limiter of the account.
fn processes(
    quota: &Arc<MemoryCallQuota>,
    limits: Limits,
    processes: usize,
    clock: &Arc<dyn Clock>,
) -> Vec<Arc<Limiter>> {
    (0..processes)
        .map(|_| CallLimits::shared(quota.clone()).limiter(KEY, limits, clock.clone()))
        .collect()
}

/// `count` calls spread over `limiters`, each in flight for `hold`: the most in flight at
/// once, and the instants (epoch ms) they went at. Every call must be let through.
async fn calls(
    limiters: &[Arc<Limiter>],
    count: usize,
    hold: Duration,
    clock: &Arc<dyn Clock>,
) -> (usize, Vec<i64>) {
    let now = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let times = Arc::new(Mutex::new(Vec::new()));
    let mut calls = Vec::new();
    for i in 0..count {
        let limiter = limiters[i % limiters.len()].clone();
        let (now, most, times, clock) = (now.clone(), most.clone(), times.clone(), clock.clone());
        calls.push(tokio::spawn(async move {
            let admission = limiter.admit().await.map_err(|e| e.to_string())?;
            lock(&times).push(clock.now().timestamp_millis());
            let at_once = now.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(at_once, Ordering::SeqCst);
            tokio::time::sleep(hold).await;
            now.fetch_sub(1, Ordering::SeqCst);
            admission.done().await;
            Ok::<_, String>(())
        }));
    }
    for call in calls {
        assert_eq!(call.await.map_err(|e| e.to_string()), Ok(Ok(())));
    }
    let times = lock(&times).clone();
    (most.load(Ordering::SeqCst), times)
}

#[test]
fn quickbooks_limits_keep_every_process_together_within_what_intuit_allows_a_company() {
    let qbo = crate::platforms::quickbooks::connector::LIMITS;
    assert!(qbo.seats <= 10, "{qbo:?}");
    assert!(qbo.most_in_a_minute() <= 500, "{}", qbo.most_in_a_minute());
    assert!(qbo.in_flight_here <= qbo.seats as usize);
    // A call may wait out Intuit's 60 s after a 429 and one 30 s try in its seat.
    assert!(qbo.seat_lease >= Duration::from_secs(90));
}

#[tokio::test(start_paused = true)]
async fn calls_of_several_processes_never_hold_more_seats_than_the_account_has() {
    let (quota, clock) = shared();
    let limiters = processes(&quota, limits(), 3, &clock);
    let (most, _) = calls(&limiters, 36, Duration::from_millis(300), &clock).await;
    // Three processes of four each would make twelve; the account has five seats.
    assert_eq!(most, 5);
    assert_eq!(quota.held(KEY, clock.now().timestamp_millis()), 0);
}

#[tokio::test(start_paused = true)]
async fn no_window_holds_more_calls_than_its_budget_and_a_spent_window_waits_for_the_next() {
    let (quota, clock) = shared();
    let limits = Limits {
        per_window: 7,
        seats: 100,
        ..limits()
    };
    let limiters = processes(&quota, limits, 3, &clock);
    let (_, times) = calls(&limiters, 60, Duration::ZERO, &clock).await;
    assert_eq!(times.len(), 60);
    let mut by_window: HashMap<i64, u32> = HashMap::new();
    for t in &times {
        *by_window.entry(t - t.rem_euclid(10_000)).or_default() += 1;
    }
    assert!(by_window.values().all(|n| *n <= 7), "{by_window:?}");
    for (_, taken) in quota.taken(KEY) {
        assert!(taken <= 7);
    }
    // Sixty calls at seven a window span at least nine windows.
    assert!(by_window.len() >= 9, "{by_window:?}");
    for t in &times {
        let in_minute = times
            .iter()
            .filter(|u| **u >= *t && **u < t + 60_000)
            .count();
        assert!(in_minute as u64 <= limits.most_in_a_minute());
    }
}

#[tokio::test(start_paused = true)]
async fn a_seat_whose_holder_was_killed_frees_when_its_lease_ends() {
    let (quota, clock) = shared();
    let limits = Limits {
        seats: 1,
        ..limits()
    };
    let limiters = processes(&quota, limits, 2, &clock);
    // The first process is killed mid-call: it never leaves its seat.
    let killed = limiters[0].admit().await.map_err(|e| e.to_string());
    assert!(killed.is_ok());
    std::mem::forget(killed);
    let started = Instant::now();
    let admitted = limiters[1].admit().await;
    assert!(admitted.is_ok());
    let waited = Instant::now().duration_since(started);
    assert!(waited >= limits.seat_lease, "{waited:?}");
    assert!(
        waited < limits.seat_lease + Duration::from_secs(2),
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_call_that_cannot_have_a_seat_before_its_deadline_is_out_of_time() {
    let (quota, clock) = shared();
    let limits = Limits {
        seats: 1,
        ..limits()
    };
    let limiters = processes(&quota, limits, 2, &clock);
    let holding = limiters[0].admit().await.map_err(|e| e.to_string());
    let deadline = Instant::now() + Duration::from_secs(2);
    let waited = crate::platforms::http::until(deadline, limiters[1].admit()).await;
    assert!(
        matches!(waited, Err(PlatformError::OutOfTime(_))),
        "{:?}",
        waited.err()
    );
    // Once the first leaves, the seat is there at once.
    if let Ok(holding) = holding {
        holding.done().await;
    }
    let started = Instant::now();
    assert!(limiters[1].admit().await.is_ok());
    assert_eq!(Instant::now().duration_since(started), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_quota_that_cannot_be_reached_leaves_calls_under_this_processes_limits() {
    let quota = Arc::new(MemoryCallQuota::default());
    quota.set_down(true);
    let clock = clock();
    let limiters = processes(&quota, limits(), 1, &clock);
    let (most, _) = calls(&limiters, 12, Duration::from_millis(100), &clock).await;
    assert_eq!(most, limits().in_flight_here);
}

#[tokio::test(start_paused = true)]
async fn a_seat_goes_to_the_next_call_of_the_same_process_without_a_write_and_is_left_when_none_waits(
) {
    let (quota, clock) = shared();
    let limits = Limits {
        in_flight_here: 1,
        ..limits()
    };
    let limiter = processes(&quota, limits, 1, &clock).remove(0);
    calls(
        std::slice::from_ref(&limiter),
        10,
        Duration::from_millis(100),
        &clock,
    )
    .await;
    assert_eq!(quota.sits(), 1);
    assert_eq!(quota.held(KEY, clock.now().timestamp_millis()), 0);
    // A call alone sits and leaves.
    let alone = limiter.admit().await.map_err(|e| e.to_string());
    assert_eq!(quota.held(KEY, clock.now().timestamp_millis()), 1);
    if let Ok(alone) = alone {
        alone.done().await;
    }
    assert_eq!(quota.sits(), 2);
    assert_eq!(quota.held(KEY, clock.now().timestamp_millis()), 0);
}

#[tokio::test(start_paused = true)]
async fn a_kept_seat_whose_lease_is_half_gone_is_left_and_another_taken() {
    let (quota, clock) = shared();
    let limits = Limits {
        in_flight_here: 1,
        seats: 2,
        ..limits()
    };
    let limiter = processes(&quota, limits, 1, &clock).remove(0);
    let first = limiter.clone();
    let long = tokio::spawn(async move {
        let admission = first.admit().await.map_err(|e| e.to_string())?;
        // A call that outlives half its seat's lease.
        tokio::time::sleep(limits.seat_lease / 2 + Duration::from_secs(1)).await;
        admission.done().await;
        Ok::<_, String>(())
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    let next = limiter.admit().await.map_err(|e| e.to_string());
    assert_eq!(long.await.map_err(|e| e.to_string()), Ok(Ok(())));
    assert!(next.is_ok());
    assert_eq!(quota.sits(), 2);
    assert_eq!(quota.held(KEY, clock.now().timestamp_millis()), 1);
}

#[tokio::test(start_paused = true)]
async fn a_call_keeps_its_seat_until_its_deadline_however_long_it_takes() {
    let (quota, clock) = shared();
    let limits = Limits {
        seats: 1,
        ..limits()
    };
    let limiters = processes(&quota, limits, 2, &clock);
    let first = limiters[0].clone();
    // A call within a run whose deadline is a minute away, slow far past `seat_lease`.
    let slow = tokio::spawn(crate::platforms::http::until(
        Instant::now() + Duration::from_secs(60),
        async move {
            let admission = first.admit().await.map_err(|e| e.to_string())?;
            tokio::time::sleep(Duration::from_secs(50)).await;
            let ended = Instant::now();
            admission.done().await;
            Ok::<_, String>(ended)
        },
    ));
    tokio::time::sleep(Duration::from_millis(10)).await;
    let other = limiters[1].admit().await;
    let admitted = Instant::now();
    assert!(other.is_ok());
    let ended = slow.await.map_err(|e| e.to_string());
    assert!(
        matches!(ended, Ok(Ok(ended)) if admitted >= ended),
        "the other process was seated while the slow call was in flight"
    );
}

#[tokio::test(start_paused = true)]
async fn a_call_that_gives_up_waiting_for_the_budget_leaves_its_seat() {
    let (quota, clock) = shared();
    let limits = Limits {
        seats: 2,
        per_window: 1,
        grant: 1,
        ..limits()
    };
    let limiter = processes(&quota, limits, 1, &clock).remove(0);
    if let Ok(first) = limiter.admit().await {
        first.done().await;
    }
    // The window is spent and the next is 7 s away: more than the call has.
    let deadline = Instant::now() + Duration::from_secs(2);
    let waited = crate::platforms::http::until(deadline, limiter.admit()).await;
    assert!(matches!(waited, Err(PlatformError::OutOfTime(_))));
    assert_eq!(quota.held(KEY, clock.now().timestamp_millis()), 0);
}

#[tokio::test(start_paused = true)]
async fn within_a_runs_deadline_a_seat_goes_from_call_to_call_of_the_run_without_a_write() {
    let (quota, clock) = shared();
    let limits = Limits {
        in_flight_here: 1,
        ..limits()
    };
    let limiter = processes(&quota, limits, 1, &clock).remove(0);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut calls = Vec::new();
    for _ in 0..10 {
        let limiter = limiter.clone();
        // Each call of the run under the run's deadline (spawned tasks do not inherit it).
        calls.push(tokio::spawn(crate::platforms::http::until(
            deadline,
            async move {
                assert!(crate::platforms::http::time_left().is_some());
                let admission = limiter.admit().await.map_err(|e| e.to_string())?;
                tokio::time::sleep(Duration::from_millis(100)).await;
                admission.done().await;
                Ok::<_, String>(())
            },
        )));
    }
    for call in calls {
        assert_eq!(call.await.map_err(|e| e.to_string()), Ok(Ok(())));
    }
    assert_eq!(quota.sits(), 1);
    assert_eq!(quota.held(KEY, clock.now().timestamp_millis()), 0);
}

#[tokio::test(start_paused = true)]
async fn a_seat_kept_for_a_call_that_is_then_dropped_is_left() {
    let (quota, clock) = shared();
    let limits = Limits {
        seats: 2,
        per_window: 1,
        grant: 1,
        ..limits()
    };
    let limiter = processes(&quota, limits, 1, &clock).remove(0);
    let first = limiter.admit().await.map_err(|e| e.to_string());
    // A second call sits and waits for the next window's budget.
    let waiting = {
        let limiter = limiter.clone();
        tokio::spawn(async move { limiter.admit().await.map(|_| ()) })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The first is done while the second waits: its seat is kept for it...
    if let Ok(first) = first {
        first.done().await;
    }
    // ...and the second is dropped (its run stopped) before it takes it.
    waiting.abort();
    let _ = waiting.await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(quota.held(KEY, clock.now().timestamp_millis()), 0);
}
