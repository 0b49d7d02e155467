//! The time engine: schedule expressions in every dialect we accept, their canonical
//! EventBridge form, IANA time zones, and fire times that follow EventBridge Scheduler.
//!
//! Everything here is pure: the current time is always passed in.
//!
//! ## Fire-time semantics (EventBridge Scheduler's)
//! - A cron schedule is evaluated on the wall clock of its time zone.
//! - A local time that does not exist (the hour skipped when clocks spring forward) does not
//!   fire at all.
//! - A local time that happens twice (the hour repeated when clocks fall back) fires once, at
//!   its first occurrence.
//! - `rate(n unit)` counts elapsed time from an anchor (the schedule's creation), ignoring the
//!   wall clock: `rate(1 day)` is every 24 hours, across DST changes too.

mod cron;
mod field;
mod zone;

pub use cron::{CronSpec, Dialect};
pub use zone::{Zone, DEFAULT_ZONE};

use chrono::{DateTime, Duration, LocalResult, SubsecRound, TimeZone, Utc};
use cron::Fields;
use std::fmt;

/// Why an expression was refused: the problem, and what to write instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpressionError {
    problem: String,
    hint: Option<String>,
}

impl ExpressionError {
    pub(crate) fn new(problem: impl Into<String>) -> Self {
        Self {
            problem: problem.into(),
            hint: None,
        }
    }

    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for ExpressionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.hint {
            Some(hint) => write!(f, "{}: {hint}", self.problem),
            None => f.write_str(&self.problem),
        }
    }
}

impl std::error::Error for ExpressionError {}

/// A unit of `rate(...)`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RateUnit {
    Minute,
    Hour,
    Day,
}

impl RateUnit {
    fn seconds(self) -> i64 {
        match self {
            RateUnit::Minute => 60,
            RateUnit::Hour => 3_600,
            RateUnit::Day => 86_400,
        }
    }

    fn word(self) -> &'static str {
        match self {
            RateUnit::Minute => "minute",
            RateUnit::Hour => "hour",
            RateUnit::Day => "day",
        }
    }
}

/// The longest rate we accept, in seconds: ten years.
const MAX_RATE_SECONDS: i64 = 3_650 * 86_400;

/// A parsed schedule expression, whatever dialect it was written in.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ScheduleExpression {
    Cron(CronSpec),
    Rate { value: u32, unit: RateUnit },
}

impl ScheduleExpression {
    /// Reads any accepted dialect; see the crate docs for the list.
    pub fn parse(text: &str) -> Result<Self, ExpressionError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(ExpressionError::new("the expression is empty")
                .hint("write e.g. '0 9 * * 1-5' or 'rate(15 minutes)'"));
        }
        if text.len() > 256 {
            return Err(ExpressionError::new(
                "the expression is longer than 256 characters",
            ));
        }
        let lower = text.to_ascii_lowercase();
        if let Some(inner) = wrapped(&lower, "rate") {
            return parse_rate(inner.trim());
        }
        if let Some(inner) = wrapped(text, "cron") {
            return parse_eventbridge(inner);
        }
        if lower.starts_with("at(") {
            return Err(
                ExpressionError::new("one-time at(...) schedules are not supported")
                    .hint("use a cron expression with a year, e.g. cron(0 9 15 6 ? 2027)"),
            );
        }
        if let Some(name) = lower.strip_prefix('@') {
            return parse_macro(name);
        }
        let fields: Vec<&str> = text.split_whitespace().collect();
        match fields.len() {
            5 => Ok(ScheduleExpression::Cron(CronSpec::parse(
                &Fields {
                    minute: fields[0],
                    hour: fields[1],
                    day_of_month: fields[2],
                    month: fields[3],
                    day_of_week: fields[4],
                    year: None,
                },
                Dialect::Unix,
            )?)),
            6 | 7 => parse_seconds_first(&fields),
            n => Err(ExpressionError::new(format!(
                "'{text}' has {n} fields, and no dialect has that many"
            ))
            .hint(
                "use 5 fields (min hour dom month dow), 6 with seconds first \
                 (0 min hour dom month dow), cron(min hour dom month dow year), or rate(n unit)",
            )),
        }
    }

    /// The expression EventBridge Scheduler is given: `cron(...)` or `rate(...)`.
    pub fn to_eventbridge(&self) -> String {
        match self {
            ScheduleExpression::Cron(spec) => spec.to_eventbridge(),
            ScheduleExpression::Rate { value, unit } => {
                let plural = if *value == 1 { "" } else { "s" };
                format!("rate({value} {}{plural})", unit.word())
            }
        }
    }

    /// The first fire time strictly after `after`. `anchor` is when a rate schedule started
    /// counting (its creation); cron schedules ignore it.
    pub fn next_after(
        &self,
        zone: Zone,
        anchor: DateTime<Utc>,
        after: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        // Fire times stay inside EventBridge's years, 1970 to 2199 (in UTC), and on whole
        // seconds; before 1970 zones ran on local mean time, which EventBridge never uses.
        let after = after.max(first_instant() - Duration::seconds(1));
        let fire = match self {
            ScheduleExpression::Rate { value, unit } => {
                let anchor = anchor.trunc_subsecs(0);
                let period = i64::from(*value) * unit.seconds();
                let elapsed = (after - anchor).num_seconds();
                // The first fire is one period after the anchor.
                let k = if elapsed < 0 { 1 } else { elapsed / period + 1 };
                anchor.checked_add_signed(Duration::seconds(k.checked_mul(period)?))
            }
            ScheduleExpression::Cron(spec) => {
                let tz = zone.tz();
                let mut from = after.with_timezone(&tz).naive_local();
                loop {
                    let local = spec.next_local(from)?;
                    let fire = match tz.from_local_datetime(&local) {
                        LocalResult::Single(t) => Some(t),
                        // Repeated wall-clock time: only its first occurrence fires.
                        LocalResult::Ambiguous(first, _) => Some(first),
                        // Skipped wall-clock time: it never happens, so it never fires.
                        LocalResult::None => None,
                    };
                    match fire {
                        Some(t) if t.with_timezone(&Utc) > after => {
                            break Some(t.with_timezone(&Utc))
                        }
                        _ => from = local.checked_add_signed(Duration::minutes(1))?,
                    }
                }
            }
        }?;
        (fire <= last_instant()).then_some(fire)
    }

    /// Up to `count` fire times strictly after `after`, in order.
    pub fn upcoming(
        &self,
        zone: Zone,
        anchor: DateTime<Utc>,
        after: DateTime<Utc>,
        count: usize,
    ) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(count.min(1_000));
        let mut t = after;
        while out.len() < count {
            match self.next_after(zone, anchor, t) {
                Some(next) => {
                    out.push(next);
                    t = next;
                }
                None => break,
            }
        }
        out
    }
}

/// The first instant EventBridge schedules: 1970-01-01T00:00:00Z.
fn first_instant() -> DateTime<Utc> {
    DateTime::UNIX_EPOCH
}

/// The last instant EventBridge schedules: the end of 2199, UTC.
fn last_instant() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2199, 12, 31, 23, 59, 59)
        .single()
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// `name(inner)` with the name matched case-insensitively; returns `inner`.
fn wrapped<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let head = text.get(..name.len() + 1)?;
    if !head.eq_ignore_ascii_case(&format!("{name}(")) {
        return None;
    }
    text[name.len() + 1..].strip_suffix(')')
}

fn parse_rate(inner: &str) -> Result<ScheduleExpression, ExpressionError> {
    let usage = "write rate(n minute|minutes|hour|hours|day|days), e.g. rate(15 minutes)";
    let mut parts = inner.split_whitespace();
    let (Some(value), Some(unit), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(ExpressionError::new(format!("'rate({inner})' is not a rate")).hint(usage));
    };
    let value = field::parse_number(value)
        .filter(|v| *v >= 1)
        .ok_or_else(|| {
            ExpressionError::new(format!(
                "the rate value '{value}' is not a whole number of at least 1"
            ))
            .hint(usage)
        })?;
    let unit = match unit {
        "minute" | "minutes" => RateUnit::Minute,
        "hour" | "hours" => RateUnit::Hour,
        "day" | "days" => RateUnit::Day,
        "second" | "seconds" => {
            return Err(ExpressionError::new("sub-minute rates are not possible")
                .hint("EventBridge fires at most once a minute; use rate(1 minute) or longer"))
        }
        other => {
            return Err(ExpressionError::new(format!("'{other}' is not a rate unit")).hint(usage))
        }
    };
    if i64::from(value) * unit.seconds() > MAX_RATE_SECONDS {
        return Err(ExpressionError::new("the rate is longer than ten years")
            .hint("use a cron expression for rare schedules"));
    }
    Ok(ScheduleExpression::Rate { value, unit })
}

fn parse_eventbridge(inner: &str) -> Result<ScheduleExpression, ExpressionError> {
    let fields: Vec<&str> = inner.split_whitespace().collect();
    if fields.len() != 6 {
        return Err(ExpressionError::new(format!(
            "cron(...) needs 6 fields, found {}",
            fields.len()
        ))
        .hint("write cron(minutes hours day-of-month month day-of-week year), e.g. cron(0 9 ? * MON-FRI *)"));
    }
    Ok(ScheduleExpression::Cron(CronSpec::parse(
        &Fields {
            minute: fields[0],
            hour: fields[1],
            day_of_month: fields[2],
            month: fields[3],
            day_of_week: fields[4],
            year: Some(fields[5]),
        },
        Dialect::EventBridge,
    )?))
}

fn parse_seconds_first(fields: &[&str]) -> Result<ScheduleExpression, ExpressionError> {
    if field::parse_number(fields[0]) != Some(0) {
        return Err(ExpressionError::new(format!(
            "the seconds field is '{}', but schedules cannot fire more often than once a minute",
            fields[0]
        ))
        .hint(
            "set the seconds field to 0; for EventBridge's own syntax, which has no seconds, \
             wrap the expression in cron(...)",
        ));
    }
    Ok(ScheduleExpression::Cron(CronSpec::parse(
        &Fields {
            minute: fields[1],
            hour: fields[2],
            day_of_month: fields[3],
            month: fields[4],
            day_of_week: fields[5],
            year: fields.get(6).copied(),
        },
        Dialect::SecondsFirst,
    )?))
}

fn parse_macro(name: &str) -> Result<ScheduleExpression, ExpressionError> {
    let unix = match name {
        "hourly" => "0 * * * *",
        "daily" | "midnight" => "0 0 * * *",
        "weekly" => "0 0 * * 0",
        "monthly" => "0 0 1 * *",
        "yearly" | "annually" => "0 0 1 1 *",
        _ => {
            return Err(
                ExpressionError::new(format!("'@{name}' is not a known macro"))
                    .hint("use @hourly, @daily, @weekly, @monthly or @yearly"),
            )
        }
    };
    ScheduleExpression::parse(unix)
}

#[cfg(test)]
mod tests;
