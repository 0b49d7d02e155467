//! The call quota in memory: budgets and seats as the table keeps them, and a switch that
//! makes every call fail the way an unreachable table does.

use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use super::lock;
use crate::ports::{CallQuota, StoreError};

#[derive(Default)]
pub struct MemoryCallQuota {
    /// Calls taken, by (key, window start).
    taken: Mutex<HashMap<(String, i64), u32>>,
    /// Who sits in each seat and until when, by (key, seat).
    seats: Mutex<HashMap<(String, u32), (String, i64)>>,
    down: AtomicBool,
    /// Tries to sit, seated or not.
    sits: std::sync::atomic::AtomicU64,
}

impl MemoryCallQuota {
    /// Every call from now on fails as an unreachable table does (or works again).
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    fn reachable(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable(
                "the table cannot be reached".into(),
            ));
        }
        Ok(())
    }

    /// Calls taken from each window of `key`, by window start.
    pub fn taken(&self, key: &str) -> Vec<(i64, u32)> {
        let mut all: Vec<_> = lock(&self.taken)
            .iter()
            .filter(|((k, _), _)| k == key)
            .map(|((_, w), n)| (*w, *n))
            .collect();
        all.sort();
        all
    }

    /// Tries to sit so far, seated or not (each is a write in the table).
    pub fn sits(&self) -> u64 {
        self.sits.load(Ordering::SeqCst)
    }

    /// Seats of `key` held at `now_ms`.
    pub fn held(&self, key: &str, now_ms: i64) -> usize {
        lock(&self.seats)
            .iter()
            .filter(|((k, _), (_, until))| k == key && *until >= now_ms)
            .count()
    }
}

#[async_trait]
impl CallQuota for MemoryCallQuota {
    async fn take(
        &self,
        key: &str,
        window_ms: i64,
        want: u32,
        limit: u32,
    ) -> Result<bool, StoreError> {
        self.reachable()?;
        let mut taken = lock(&self.taken);
        let used = taken.entry((key.to_string(), window_ms)).or_default();
        if *used + want > limit {
            return Ok(false);
        }
        *used += want;
        Ok(true)
    }

    async fn sit(
        &self,
        key: &str,
        seat: u32,
        holder: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool, StoreError> {
        self.reachable()?;
        self.sits.fetch_add(1, Ordering::SeqCst);
        let mut seats = lock(&self.seats);
        let at = (key.to_string(), seat);
        if seats
            .get(&at)
            .is_some_and(|(held_by, until)| *until >= now_ms && held_by != holder)
        {
            return Ok(false);
        }
        seats.insert(at, (holder.to_string(), until_ms));
        Ok(true)
    }

    async fn leave(&self, key: &str, seat: u32, holder: &str) -> Result<(), StoreError> {
        self.reachable()?;
        let mut seats = lock(&self.seats);
        if seats
            .get(&(key.to_string(), seat))
            .is_some_and(|(h, _)| h == holder)
        {
            seats.remove(&(key.to_string(), seat));
        }
        Ok(())
    }
}
