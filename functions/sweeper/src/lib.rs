//! The sweeper Lambda, invoked by an EventBridge Scheduler `rate` schedule of its own (in
//! the template, outside the group of the users' schedules): one sweep per invocation (see
//! `sync_core::service::Sweeper`). Its answer summarises the sweep; what it could not do
//! is left to the next sweep, so an invocation never fails for it (a retry would only
//! sweep again). A sweep also raises and resolves the alerts it sees and tells each
//! alert's destinations what they are to hear. Each sweep also prints its counts as CloudWatch metrics (the embedded
//! metric format), which the template's alarms watch.

use lambda_runtime::{Error, LambdaEvent};
use serde_json::{json, Value};
use std::sync::Arc;

use sync_aws::metrics::Metric;
use sync_aws::SdkConfig;
use sync_core::clock::SystemClock;
use sync_core::config::{ConfigError, SweeperConfig};
use sync_core::service::{SweepReport, Sweeper};

/// How often the template's schedule invokes the sweeper (its `rate`), which the local
/// stack keeps too.
pub const RATE: std::time::Duration = std::time::Duration::from_secs(300);

/// The function: the sweep, and where its metrics go.
pub struct App {
    pub sweeper: Sweeper,
    pub metrics_namespace: String,
}

/// The function's wiring from its environment (`get` reads one variable): what its `main`
/// builds in Lambda, and what the local stack builds on loopback.
pub fn from_lookup(
    sdk: &SdkConfig,
    get: impl Fn(&str) -> Option<String>,
) -> Result<App, ConfigError> {
    let config = SweeperConfig::from_lookup(get)?;
    let http = sync_http::ReqwestClient::for_alerts(config.alert_local_urls)
        .map_err(|e| ConfigError(format!("alert HTTP client: {e}")))?;
    Ok(App {
        sweeper: sync_aws::wiring::sweeper(sdk, &config, Arc::new(http), Arc::new(SystemClock)),
        metrics_namespace: config.metrics_namespace,
    })
}

pub async fn handle(app: &App, _event: LambdaEvent<Value>) -> Result<Value, Error> {
    let report = app.sweeper.sweep().await;
    println!(
        "{}",
        metrics(&app.metrics_namespace, &report, chrono::Utc::now())
    );
    Ok(summary(&report))
}

/// The sweep's counts as one metrics log line (names as the template's alarms use them).
pub fn metrics(namespace: &str, report: &SweepReport, at: chrono::DateTime<chrono::Utc>) -> String {
    let c = &report.counts;
    sync_aws::metrics::emf(
        namespace,
        &[("Function", "Sweeper")],
        &[
            Metric::count("AbandonedRuns", c.abandoned),
            Metric::count("ResentRuns", report.resent.len() as u64),
            Metric::count("CaughtUpFires", c.caught_up),
            Metric::count("MissedFires", c.missed),
            Metric::count("DriftRepairs", c.repairs),
            Metric::count("AutoPaused", c.paused),
            Metric::count("SchedulesSwept", c.schedules),
            Metric::count("AlertsRaised", report.alerts_raised),
            Metric::count("AlertNoticesSent", report.alerts.sent),
            Metric::count("AlertNoticesFailed", report.alerts.failed),
            Metric::count("SweepErrors", report.errors.len() as u64),
        ],
        at,
    )
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
            "schedules": report.counts.schedules,
            "triggers": report.counts.triggers,
        },
        "alerts": {
            "raised": report.alerts_raised,
            "notices_sent": report.alerts.sent,
            "notices_failed": report.alerts.failed,
        },
        "errors": report.errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweeps_metrics_line_counts_what_it_did_and_the_errors_it_met() {
        let mut report = SweepReport::default();
        report.counts.abandoned = 2;
        report.counts.missed = 3;
        report.errors = vec!["schedules not read".into()];
        let at = chrono::DateTime::from_timestamp(1_795_521_600, 0).unwrap_or_default();
        let line: Value =
            serde_json::from_str(&metrics("SyncService/test", &report, at)).unwrap_or_default();
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "SyncService/test"
        );
        assert_eq!(line["AbandonedRuns"], 2.0);
        assert_eq!(line["MissedFires"], 3.0);
        assert_eq!(line["SweepErrors"], 1.0);
        assert_eq!(line["Function"], "Sweeper");
    }
}
