//! Calling a platform within its limits per account. Each process keeps its own share (so
//! one process never takes every call a company allows) and, where the function holds the
//! [`CallQuota`], every process holds to the account's limits together:
//!
//! - **Calls at once**: a call sits in one of the account's `seats` for as long as it is in
//!   flight (retries and a throttled call's wait included). A seat's lease lasts as long as
//!   the call can: to the deadline of the work it is part of (a run's checkpoint time, see
//!   [`super::http::until`]) and a little more, or `seat_lease` outside any deadline. When a
//!   call is done, its seat goes to the next call of the same process if one is waiting and
//!   the lease covers that call too (no write), else it is left. A process killed mid-call
//!   frees its seats when their leases end: no later than its invocation would have.
//! - **Calls a minute**: the budget is counted in windows aligned to the epoch, `per_window`
//!   calls in each; any 60 seconds touch at most `⌈60 / window⌉ + 1` windows, which bounds
//!   the calls of any minute (processes whose clocks differ by δ can add the calls of δ at a
//!   window's edge). A process takes `grant` calls at a time (one write per grant, not per
//!   call); what it does not use lapses with its window. The budget counts calls let
//!   through: a call's own retries (a timeout, a 5xx, a 429 waited out) are not counted
//!   again.
//!
//! A seat is taken before the budget, so a call that waits for the next window waits in its
//! seat and is counted in the window it goes in. If the quota cannot be reached, a call goes
//! on under this process's limits alone (logged): the platform's own 429, waited out as it
//! asks, is the last line, and a sync never stops because the table refused a write.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::clock::Clock;
use crate::ports::{CallQuota, PlatformError};

/// What a seat's lease adds to the deadline of the call in it (the call's own end is at the
/// deadline; the rest is the time to leave the seat).
const SEAT_MARGIN: Duration = Duration::from_secs(5);

/// A platform's limits per account, and one process's share of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The platform's name, for messages.
    pub platform: &'static str,
    /// Calls in flight from one process.
    pub in_flight_here: usize,
    /// Calls in any 60 seconds from one process.
    pub per_minute_here: usize,
    /// Calls in flight from every process together.
    pub seats: u32,
    /// The shared budget's window (whole seconds, dividing a minute or not).
    pub window: Duration,
    /// Calls in one window from every process together.
    pub per_window: u32,
    /// Calls a process takes from a window's budget at once.
    pub grant: u32,
    /// How long a call outside any deadline keeps its seat at most (a call within a
    /// deadline keeps it until then): a holder killed mid-call frees it after this.
    pub seat_lease: Duration,
}

impl Limits {
    /// The most calls any 60 seconds can hold under the shared budget.
    pub fn most_in_a_minute(&self) -> u64 {
        let window = self.window.as_secs().max(1);
        (60u64.div_ceil(window) + 1) * u64::from(self.per_window)
    }
}

/// This process's limiters, one per account, and the quota they share with other processes
/// (if the function holds one).
pub struct CallLimits {
    limiters: Mutex<HashMap<String, Arc<Limiter>>>,
    quota: Option<Arc<dyn CallQuota>>,
    /// This process, in the seats it holds.
    process: String,
}

impl CallLimits {
    /// Limits this process keeps alone (a function whose policy holds no quota).
    pub fn here() -> Self {
        Self::with(None)
    }

    /// Limits held with every other process through `quota`.
    pub fn shared(quota: Arc<dyn CallQuota>) -> Self {
        Self::with(Some(quota))
    }

    fn with(quota: Option<Arc<dyn CallQuota>>) -> Self {
        Self {
            limiters: Mutex::new(HashMap::new()),
            quota,
            process: uuid::Uuid::new_v4().simple().to_string(),
        }
    }

    /// The limiter of one account (`key`, e.g. `quickbooks/<realm>`), the same for every
    /// connector of that account in this process.
    pub fn limiter(&self, key: &str, limits: Limits, clock: Arc<dyn Clock>) -> Arc<Limiter> {
        let mut all = lock(&self.limiters);
        all.entry(key.to_string())
            .or_insert_with(|| {
                Arc::new(Limiter {
                    key: key.to_string(),
                    limits,
                    permits: Arc::new(Semaphore::new(limits.in_flight_here)),
                    recent: Mutex::new(VecDeque::new()),
                    shared: self.quota.clone().map(|quota| Shared {
                        quota,
                        clock,
                        process: self.process.clone(),
                        calls: AtomicU64::new(0),
                        grant: Mutex::new(Grant::default()),
                        kept: Mutex::new(Vec::new()),
                        wanting: AtomicUsize::new(0),
                    }),
                })
            })
            .clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One account's limits in this process.
pub struct Limiter {
    key: String,
    limits: Limits,
    permits: Arc<Semaphore>,
    /// When this process's calls of the last minute went.
    recent: Mutex<VecDeque<Instant>>,
    shared: Option<Shared>,
}

struct Shared {
    quota: Arc<dyn CallQuota>,
    clock: Arc<dyn Clock>,
    process: String,
    /// Calls admitted so far (each holder's id is unique).
    calls: AtomicU64,
    grant: Mutex<Grant>,
    /// Seats this process holds between one call and the next that waits for one.
    kept: Mutex<Vec<Seat>>,
    /// Calls of this process waiting to be let through.
    wanting: AtomicUsize,
}

/// Calls left of a grant taken from one window's budget.
#[derive(Default)]
struct Grant {
    window_ms: i64,
    left: u32,
}

/// A call let through. [`Admission::done`] leaves its seat; dropped without it (a call
/// cancelled), the seat is left in the background.
pub struct Admission {
    _permit: OwnedSemaphorePermit,
    seat: Option<Seat>,
    limiter: Arc<Limiter>,
}

struct Seat {
    quota: Arc<dyn CallQuota>,
    key: String,
    seat: u32,
    holder: String,
    until_ms: i64,
}

impl Seat {
    async fn leave(self) {
        if let Err(e) = self.quota.leave(&self.key, self.seat, &self.holder).await {
            tracing::warn!(key = %self.key, seat = self.seat, error = %e, "a seat could not be left; it frees when its lease ends");
        }
    }
}

impl Admission {
    /// The call is over: its seat goes to this process's next call if one waits and the
    /// seat's lease has most of its time left; else it is left (with any kept seat no call
    /// came for).
    pub async fn done(mut self) {
        let (Some(seat), Some(shared)) = (self.seat.take(), self.limiter.shared.as_ref()) else {
            return;
        };
        {
            // Checked and kept under the lock the last waiter takes to leave what is kept.
            let mut kept = lock(&shared.kept);
            if shared.wanting.load(Ordering::SeqCst) > 0 {
                kept.push(seat);
                return;
            }
        }
        let mut leaving = vec![seat];
        if shared.wanting.load(Ordering::SeqCst) == 0 {
            leaving.append(&mut lock(&shared.kept));
        }
        for seat in leaving {
            seat.leave().await;
        }
    }
}

impl Admission {
    /// Leaves the seat at once (never handed on): the call will not be made.
    async fn give_up(mut self) {
        if let Some(seat) = self.seat.take() {
            seat.leave().await;
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Some(seat) = self.seat.take() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(seat.leave());
            }
        }
    }
}

/// Waits `d`, unless the work's deadline comes first.
async fn wait(d: Duration, why: impl FnOnce() -> String) -> Result<(), PlatformError> {
    if super::http::time_left().is_some_and(|left| d >= left) {
        return Err(PlatformError::OutOfTime(why()));
    }
    tokio::time::sleep(d).await;
    Ok(())
}

/// A call counted as waiting while it is in [`Limiter::admit`]. The last to stop waiting
/// leaves any seat kept for a waiting call that took none (it was seated elsewhere, or gave
/// up).
struct Wanting<'a>(Option<&'a Shared>);

impl<'a> Wanting<'a> {
    fn start(shared: Option<&'a Shared>) -> Self {
        if let Some(shared) = shared {
            shared.wanting.fetch_add(1, Ordering::SeqCst);
        }
        Self(shared)
    }
}

impl Drop for Wanting<'_> {
    fn drop(&mut self) {
        let Some(shared) = self.0 else { return };
        let stranded: Vec<Seat> = {
            let mut kept = lock(&shared.kept);
            if shared.wanting.fetch_sub(1, Ordering::SeqCst) != 1 {
                return;
            }
            std::mem::take(&mut *kept)
        };
        if stranded.is_empty() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                for seat in stranded {
                    seat.leave().await;
                }
            });
        }
    }
}

impl Limiter {
    /// Waits until one more call fits every limit, and lets it through.
    pub async fn admit(self: &Arc<Self>) -> Result<Admission, PlatformError> {
        let _wanting = Wanting::start(self.shared.as_ref());
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| PlatformError::Unavailable(e.to_string()))?;
        self.pace().await?;
        let Some(shared) = &self.shared else {
            return Ok(Admission {
                _permit: permit,
                seat: None,
                limiter: self.clone(),
            });
        };
        // Admitted as soon as it is seated, so that a seat is never kept by a call that
        // gave up (or was dropped) waiting for the budget.
        let admission = Admission {
            _permit: permit,
            seat: shared.sit(&self.key, &self.limits).await?,
            limiter: self.clone(),
        };
        match shared.spend(&self.key, &self.limits).await {
            Ok(()) => Ok(admission),
            Err(e) => {
                admission.give_up().await;
                Err(e)
            }
        }
    }

    /// Waits until one more call fits this process's calls a minute.
    async fn pace(&self) -> Result<(), PlatformError> {
        let minute = Duration::from_secs(60);
        loop {
            let wait_for = {
                let mut recent = lock(&self.recent);
                let now = Instant::now();
                while recent
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= minute)
                {
                    recent.pop_front();
                }
                if recent.len() < self.limits.per_minute_here {
                    recent.push_back(now);
                    None
                } else {
                    recent
                        .front()
                        .map(|t| minute.saturating_sub(now.duration_since(*t)))
                }
            };
            match wait_for {
                None => return Ok(()),
                Some(d) => {
                    wait(d, || {
                        format!(
                            "{}'s {} calls a minute from one process: no time left to wait {} s",
                            self.limits.platform,
                            self.limits.per_minute_here,
                            d.as_secs()
                        )
                    })
                    .await?
                }
            }
        }
    }
}

impl Shared {
    fn now_ms(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }

    /// A free seat, waited for; `None` when the quota cannot be reached.
    async fn sit(&self, key: &str, limits: &Limits) -> Result<Option<Seat>, PlatformError> {
        let call = self.calls.fetch_add(1, Ordering::Relaxed);
        let holder = format!("{}:{call}", self.process);
        let seats = limits.seats.max(1);
        // Calls of one process start at different seats, so they do not all try the same.
        let first = (call % u64::from(seats)) as u32;
        let mut pause = Duration::from_millis(50);
        loop {
            // The call may last until the work's deadline: a new seat's lease runs a margin
            // past it, and a kept one must outlast it by half that. Outside any deadline the
            // lease is `seat_lease`, and a kept seat must have half of it left.
            let (lease, needed) = match super::http::time_left() {
                Some(left) => (left + SEAT_MARGIN, left + SEAT_MARGIN / 2),
                None => (limits.seat_lease, limits.seat_lease / 2),
            };
            let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
            let (lease, needed) = (ms(lease), ms(needed));
            let kept = lock(&self.kept).pop();
            if let Some(seat) = kept {
                if seat.until_ms - self.now_ms() >= needed {
                    return Ok(Some(seat));
                }
                seat.leave().await;
                continue;
            }
            for i in 0..seats {
                let seat = (first + i) % seats;
                let now = self.now_ms();
                match self
                    .quota
                    .sit(key, seat, &holder, now, now.saturating_add(lease))
                    .await
                {
                    Ok(true) => {
                        return Ok(Some(Seat {
                            quota: self.quota.clone(),
                            key: key.to_string(),
                            seat,
                            holder,
                            until_ms: now.saturating_add(lease),
                        }))
                    }
                    Ok(false) => {}
                    Err(e) => {
                        unreachable_quota(key, &e);
                        return Ok(None);
                    }
                }
            }
            wait(pause, || {
                format!(
                    "{}'s {} calls at once are all in flight: no time left to wait for one",
                    limits.platform, limits.seats
                )
            })
            .await?;
            // Jittered, so that waiters do not try together.
            let jitter = crate::crypto::random_bytes(1)
                .map(|b| Duration::from_millis(u64::from(b.first().copied().unwrap_or(0) % 50)))
                .unwrap_or_default();
            pause = (pause * 2).min(Duration::from_secs(1)) + jitter;
        }
    }

    /// One call of the budget, waiting for the next window when this one is spent.
    async fn spend(&self, key: &str, limits: &Limits) -> Result<(), PlatformError> {
        let window = i64::try_from(limits.window.as_millis())
            .unwrap_or(60_000)
            .max(1);
        loop {
            let now = self.now_ms();
            let start = now - now.rem_euclid(window);
            {
                let mut grant = lock(&self.grant);
                if grant.window_ms == start && grant.left > 0 {
                    grant.left -= 1;
                    return Ok(());
                }
            }
            let mut took = 0;
            for want in [limits.grant.max(1), 1] {
                match self.quota.take(key, start, want, limits.per_window).await {
                    Ok(true) => {
                        took = want;
                        break;
                    }
                    Ok(false) if want > 1 => {}
                    Ok(false) => break,
                    Err(e) => {
                        unreachable_quota(key, &e);
                        return Ok(());
                    }
                }
            }
            if took > 0 {
                let mut grant = lock(&self.grant);
                if grant.window_ms != start {
                    *grant = Grant {
                        window_ms: start,
                        left: 0,
                    };
                }
                grant.left += took - 1;
                return Ok(());
            }
            let next = u64::try_from(start + window - now).unwrap_or(0);
            wait(Duration::from_millis(next + 5), || {
                format!(
                    "{}'s {} calls a minute: no time left to wait for the next window",
                    limits.platform,
                    limits.most_in_a_minute()
                )
            })
            .await?;
        }
    }
}

fn unreachable_quota(key: &str, e: &crate::ports::StoreError) {
    tracing::warn!(key, error = %e, "the shared call quota cannot be reached; this call keeps this process's limits only");
}

#[cfg(test)]
mod tests;
