//! Fires the emulated EventBridge schedules, because moto stores schedules but never fires
//! them. It reads each schedule back from the emulated Scheduler (not from our table), so
//! what it fires is exactly what the adapter wrote: expression, time zone, state and target
//! input. Fire times come from the same time engine the API uses.

use anyhow::{Context, Result};
use aws_sdk_scheduler::types::ScheduleState;
use chrono::{DateTime, Utc};
use std::time::Duration;

use sync_aws::{describe, SdkConfig};
use sync_core::domain::job::{EXECUTION_ID_PLACEHOLDER, SCHEDULED_TIME_PLACEHOLDER};
use sync_core::time::{ScheduleExpression, Zone};

/// Most invocations one schedule gets in one window; a long pause does not flood the queue.
const MAX_FIRES_PER_WINDOW: usize = 100;

/// One invocation sent to a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fired {
    pub schedule: String,
    pub at: DateTime<Utc>,
    pub queue_arn: String,
}

/// Fires the schedules of one group.
pub struct LocalScheduler {
    scheduler: aws_sdk_scheduler::Client,
    sqs: aws_sdk_sqs::Client,
    group: String,
}

fn to_chrono(t: &aws_smithy_types::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

impl LocalScheduler {
    pub fn new(sdk: &SdkConfig, group: impl Into<String>) -> Self {
        Self {
            scheduler: aws_sdk_scheduler::Client::new(sdk),
            sqs: aws_sdk_sqs::Client::new(sdk),
            group: group.into(),
        }
    }

    /// Sends every invocation due in `(after, until]`, as EventBridge would have: the
    /// target's input with the scheduled time and an execution id filled in.
    pub async fn fire_due(&self, after: DateTime<Utc>, until: DateTime<Utc>) -> Result<Vec<Fired>> {
        let mut fired = Vec::new();
        let names =
            sync_aws::scheduler_inventory::schedule_names(&self.scheduler, &self.group).await?;
        for name in names {
            match self.fire_one(&name, after, until).await {
                Ok(mut f) => fired.append(&mut f),
                Err(e) => tracing::warn!(schedule = %name, error = %e, "could not fire schedule"),
            }
        }
        Ok(fired)
    }

    async fn fire_one(
        &self,
        name: &str,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<Fired>> {
        let s = self
            .scheduler
            .get_schedule()
            .name(name)
            .group_name(&self.group)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!(describe(&e)))?;
        if s.state() != Some(&ScheduleState::Enabled) {
            return Ok(Vec::new());
        }
        let expression = ScheduleExpression::parse(s.schedule_expression().unwrap_or_default())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let zone: Zone = s
            .schedule_expression_timezone()
            .unwrap_or("UTC")
            .parse()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        // A rate counts from the schedule's last write, as `Schedule::next_run_at` assumes.
        let anchor = s
            .last_modification_date()
            .or(s.creation_date())
            .and_then(to_chrono)
            .unwrap_or(after);
        let target = s.target().context("schedule without a target")?;
        let queue_arn = target.arn().to_string();
        let input = target.input().unwrap_or("{}").to_string();
        let queue_url = self.queue_url(&queue_arn).await?;

        let mut fired = Vec::new();
        let mut t = after;
        while fired.len() < MAX_FIRES_PER_WINDOW {
            let Some(at) = expression
                .next_after(zone, anchor, t)
                .filter(|at| *at <= until)
            else {
                break;
            };
            let body = input
                .replace(
                    SCHEDULED_TIME_PLACEHOLDER,
                    &at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                )
                .replace(EXECUTION_ID_PLACEHOLDER, &uuid::Uuid::new_v4().to_string());
            self.sqs
                .send_message()
                .queue_url(&queue_url)
                .message_body(body)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!(describe(&e)))?;
            tracing::info!(schedule = %name, at = %at, "fired");
            fired.push(Fired {
                schedule: name.to_string(),
                at,
                queue_arn: queue_arn.clone(),
            });
            t = at;
        }
        Ok(fired)
    }

    /// `arn:aws:sqs:<region>:<account>:<name>` to the queue's URL.
    async fn queue_url(&self, arn: &str) -> Result<String> {
        let mut parts = arn.rsplitn(3, ':');
        let (Some(name), Some(account)) = (parts.next(), parts.next()) else {
            anyhow::bail!("'{arn}' is not a queue ARN");
        };
        let out = self
            .sqs
            .get_queue_url()
            .queue_name(name)
            .queue_owner_aws_account_id(account)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!(describe(&e)))?;
        out.queue_url()
            .map(str::to_string)
            .context("queue without a URL")
    }

    /// Fires what is due every `tick`, forever.
    pub async fn run(self, tick: Duration) {
        let mut last = Utc::now();
        loop {
            tokio::time::sleep(tick).await;
            let now = Utc::now();
            if let Err(e) = self.fire_due(last, now).await {
                tracing::warn!(error = %e, "firing pass failed");
            }
            last = now;
        }
    }
}
