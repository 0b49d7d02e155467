//! CloudWatch metrics in the embedded metric format: one JSON line a function prints to its
//! log, which CloudWatch Logs turns into metrics (no API call, no permission needed).

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

/// One value of one metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metric<'a> {
    pub name: &'a str,
    pub value: f64,
    /// CloudWatch's unit name: `Count`, `Milliseconds`, …
    pub unit: &'a str,
}

impl<'a> Metric<'a> {
    pub fn count(name: &'a str, value: u64) -> Self {
        Self {
            name,
            // (Counts stay far below 2^53, where f64 is exact.)
            value: value as f64,
            unit: "Count",
        }
    }
}

/// The log line that records `metrics` under `namespace` with `dimensions`, at `at`.
pub fn emf(
    namespace: &str,
    dimensions: &[(&str, &str)],
    metrics: &[Metric<'_>],
    at: DateTime<Utc>,
) -> String {
    let mut line = Map::new();
    line.insert(
        "_aws".into(),
        json!({
            "Timestamp": at.timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [dimensions.iter().map(|(name, _)| *name).collect::<Vec<_>>()],
                "Metrics": metrics.iter().map(|m| json!({"Name": m.name, "Unit": m.unit})).collect::<Vec<_>>(),
            }],
        }),
    );
    for (name, value) in dimensions {
        line.insert((*name).into(), Value::from(*value));
    }
    for m in metrics {
        line.insert(m.name.into(), json!(m.value));
    }
    Value::Object(line).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_names_each_metric_and_dimension_and_carries_their_values() {
        let at = DateTime::from_timestamp(1_795_521_600, 0).unwrap_or_default();
        let line = emf(
            "SyncService/prod",
            &[("Function", "Sweeper")],
            &[
                Metric::count("Abandoned", 2),
                Metric::count("SweepErrors", 0),
            ],
            at,
        );
        let got: Value = serde_json::from_str(&line).unwrap_or_default();
        let spec = &got["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(got["_aws"]["Timestamp"], 1_795_521_600_000i64);
        assert_eq!(spec["Namespace"], "SyncService/prod");
        assert_eq!(spec["Dimensions"], json!([["Function"]]));
        assert_eq!(
            spec["Metrics"],
            json!([{"Name": "Abandoned", "Unit": "Count"}, {"Name": "SweepErrors", "Unit": "Count"}])
        );
        assert_eq!(got["Function"], "Sweeper");
        assert_eq!(got["Abandoned"], 2.0);
        assert_eq!(got["SweepErrors"], 0.0);
        assert!(!line.contains('\n'), "one line");
    }
}
