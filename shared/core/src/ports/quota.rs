//! The call quota port: a platform's limits per account (QuickBooks': 10 calls at once and
//! 500 a minute per company) held across every worker process, not per process. The
//! limiter that uses it is [`crate::platforms::limits`]; the adapter keeps the budgets and
//! seats in the table (`shared/aws/src/call_quota.rs`).

use async_trait::async_trait;

use super::StoreError;

/// Budgets and seats shared by every process of the deployment, by key (e.g.
/// `quickbooks/<realm>`).
#[async_trait]
pub trait CallQuota: Send + Sync + 'static {
    /// Takes `want` calls of `key`'s budget for the window that starts at `window_ms` (epoch
    /// ms) if that keeps the calls taken in it at or under `limit`; answers whether it did.
    async fn take(
        &self,
        key: &str,
        window_ms: i64,
        want: u32,
        limit: u32,
    ) -> Result<bool, StoreError>;

    /// Sits `holder` in seat `seat` of `key` until `until_ms` if the seat is free at
    /// `now_ms` (never sat in, left, or its holder's time is up); answers whether it did.
    async fn sit(
        &self,
        key: &str,
        seat: u32,
        holder: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool, StoreError>;

    /// Leaves seat `seat` of `key` if `holder` still sits in it (else nothing).
    async fn leave(&self, key: &str, seat: u32, holder: &str) -> Result<(), StoreError>;
}
