//! The sweeper Lambda, invoked by an EventBridge Scheduler `rate` schedule of its own (in
//! the template, outside the group of the users' schedules): one sweep per invocation (see
//! `sync_core::service::Sweeper`). Its answer summarises the sweep; what it could not do
//! is left to the next sweep, so an invocation never fails for it (a retry would only
//! sweep again).

use lambda_runtime::{Error, LambdaEvent};
use serde_json::{json, Value};
use std::sync::Arc;

use sync_aws::SdkConfig;
use sync_core::clock::SystemClock;
use sync_core::config::{ConfigError, SweeperConfig};
use sync_core::service::{SweepReport, Sweeper};

/// How often the template's schedule invokes the sweeper (its `rate`), which the local
/// stack keeps too.
pub const RATE: std::time::Duration = std::time::Duration::from_secs(300);

/// The function's wiring from its environment (`get` reads one variable): what its `main`
/// builds in Lambda, and what the local stack builds on loopback.
pub fn from_lookup(
    sdk: &SdkConfig,
    get: impl Fn(&str) -> Option<String>,
) -> Result<Sweeper, ConfigError> {
    Ok(sync_aws::wiring::sweeper(
        sdk,
        &SweeperConfig::from_lookup(get)?,
        Arc::new(SystemClock),
    ))
}

pub async fn handle(sweeper: &Sweeper, _event: LambdaEvent<Value>) -> Result<Value, Error> {
    Ok(summary(&sweeper.sweep().await))
}

/// What a sweep answers (and the local stack logs).
pub fn summary(report: &SweepReport) -> Value {
    json!({
        "abandoned": report.abandoned.iter().map(|(run, redo)| json!({
            "run_id": run.to_string(),
            "redo_run_id": redo.as_ref().map(|r| r.to_string()),
        })).collect::<Vec<_>>(),
        "resent": report.resent.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
        "paused": report.paused.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        "missed": report.missed.iter().map(|m| json!({
            "tenant_id": m.tenant.to_string(),
            "schedule_id": m.schedule.to_string(),
            "fire_time": m.fire_time.to_rfc3339(),
            "catch_up_run_id": m.catch_up.as_ref().map(|r| r.to_string()),
        })).collect::<Vec<_>>(),
        "drifts": report.drifts.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        "counts": {
            "abandoned": report.counts.abandoned,
            "caught_up": report.counts.caught_up,
            "missed": report.counts.missed,
            "repairs": report.counts.repairs,
            "paused": report.counts.paused,
        },
        "errors": report.errors,
    })
}
