//! The three cron dialects we accept, read into one [`CronSpec`], and the canonical
//! EventBridge `cron(...)` text written back from it.
//!
//! | dialect | fields | day-of-week numbering |
//! |---|---|---|
//! | Unix (5 fields) | min hour dom month dow | 0-7, 0 and 7 = Sunday |
//! | seconds-first (6 or 7 fields) | sec min hour dom month dow [year] | 1-7, 1 = Sunday |
//! | EventBridge `cron(...)` | min hour dom month dow year | 1-7, 1 = Sunday |
//!
//! Internally a weekday is 0-6 with 0 = Sunday (chrono's `num_days_from_sunday`), so each
//! dialect's numbers are mapped once, at parse time, and printed in EventBridge's numbering.

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Weekday};

use super::field::{
    format_set, parse_number, parse_set, parse_value, Bits, FieldRule, MONTH_NAMES,
};
use super::ExpressionError;

/// First and last year EventBridge accepts in its year field.
pub(crate) const FIRST_YEAR: u32 = 1970;
pub(crate) const LAST_YEAR: u32 = 2199;

/// Which text form an expression was written in.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Dialect {
    /// Five fields, `min hour dom month dow`, Sunday = 0 or 7.
    Unix,
    /// The original system's form: `sec min hour dom month dow [year]`, Sunday = 1.
    SecondsFirst,
    /// EventBridge's own `cron(min hour dom month dow year)`, Sunday = 1.
    EventBridge,
}

/// A parsed cron schedule: the set of local wall-clock minutes at which it fires.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CronSpec {
    minutes: Bits,
    hours: Bits,
    days: DaySpec,
    months: Bits,
    /// Years as offsets from [`FIRST_YEAR`]; `None` is every year.
    years: Option<Bits>,
}

/// How days are chosen. EventBridge lets only one of day-of-month and day-of-week be
/// restricted, so this is an either-or by construction.
#[derive(Clone, PartialEq, Eq, Debug)]
enum DaySpec {
    Every,
    MonthDays(MonthDays),
    WeekDays(WeekDays),
}

#[derive(Clone, PartialEq, Eq, Debug)]
enum MonthDays {
    Set(Bits),
    /// `L`: the last day of the month.
    Last,
    /// `LW`: the last weekday (Monday-Friday) of the month.
    LastWeekday,
    /// `nW`: the weekday nearest to day n, without leaving the month.
    NearestWeekday(u32),
}

#[derive(Clone, PartialEq, Eq, Debug)]
enum WeekDays {
    /// Weekdays, 0 = Sunday.
    Set(Bits),
    /// `nL`: the last such weekday of the month.
    Last(u32),
    /// `n#k`: the k-th such weekday of the month.
    Nth(u32, u32),
}

const MINUTE: FieldRule = FieldRule {
    name: "minute",
    min: 0,
    max: 59,
    base: 0,
    names: &[],
};
const HOUR: FieldRule = FieldRule {
    name: "hour",
    min: 0,
    max: 23,
    base: 0,
    names: &[],
};
const DAY_OF_MONTH: FieldRule = FieldRule {
    name: "day-of-month",
    min: 1,
    max: 31,
    base: 0,
    names: &[],
};
const MONTH: FieldRule = FieldRule {
    name: "month",
    min: 1,
    max: 12,
    base: 0,
    names: MONTH_NAMES,
};
const YEAR: FieldRule = FieldRule {
    name: "year",
    min: FIRST_YEAR,
    max: LAST_YEAR,
    base: FIRST_YEAR,
    names: &[],
};
/// Unix numbering: 0-7, both 0 and 7 are Sunday.
const UNIX_DOW: FieldRule = FieldRule {
    name: "day-of-week",
    min: 0,
    max: 7,
    base: 0,
    names: &[
        ("SUN", 0),
        ("MON", 1),
        ("TUE", 2),
        ("WED", 3),
        ("THU", 4),
        ("FRI", 5),
        ("SAT", 6),
    ],
};
/// EventBridge and seconds-first numbering: 1-7, 1 is Sunday.
const EB_DOW: FieldRule = FieldRule {
    name: "day-of-week",
    min: 1,
    max: 7,
    base: 0,
    names: &[
        ("SUN", 1),
        ("MON", 2),
        ("TUE", 3),
        ("WED", 4),
        ("THU", 5),
        ("FRI", 6),
        ("SAT", 7),
    ],
};
const WEEKDAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

impl Dialect {
    fn dow_rule(self) -> &'static FieldRule {
        match self {
            Dialect::Unix => &UNIX_DOW,
            Dialect::SecondsFirst | Dialect::EventBridge => &EB_DOW,
        }
    }

    /// Maps a day-of-week number of this dialect to 0-6, Sunday = 0.
    fn weekday(self, value: u32) -> u32 {
        match self {
            Dialect::Unix => value % 7,
            Dialect::SecondsFirst | Dialect::EventBridge => value - 1,
        }
    }
}

/// The text of each field, already split, in the order EventBridge uses.
pub(crate) struct Fields<'a> {
    pub minute: &'a str,
    pub hour: &'a str,
    pub day_of_month: &'a str,
    pub month: &'a str,
    pub day_of_week: &'a str,
    pub year: Option<&'a str>,
}

impl CronSpec {
    pub(crate) fn parse(fields: &Fields<'_>, dialect: Dialect) -> Result<Self, ExpressionError> {
        let minutes = parse_set(fields.minute, &MINUTE)?;
        let hours = parse_set(fields.hour, &HOUR)?;
        let months = parse_set(fields.month, &MONTH)?;
        let years = match fields.year {
            None | Some("*") | Some("?") => None,
            Some(text) => Some(parse_set(text, &YEAR)?),
        };
        if dialect != Dialect::Unix && fields.day_of_month == "?" && fields.day_of_week == "?" {
            return Err(ExpressionError::new(
                "both day-of-month and day-of-week are '?'; EventBridge needs exactly one '?'",
            )
            .hint("write * in the other day field, e.g. cron(0 0 * * ? *)"));
        }
        let dom = parse_month_days(fields.day_of_month)?;
        let dow = parse_week_days(fields.day_of_week, dialect)?;
        let days = match (dom, dow) {
            (None, None) => DaySpec::Every,
            (Some(d), None) => DaySpec::MonthDays(d),
            (None, Some(w)) => DaySpec::WeekDays(w),
            (Some(_), Some(_)) => return Err(both_days_error(dialect)),
        };
        Ok(CronSpec {
            minutes,
            hours,
            days,
            months,
            years,
        })
    }

    /// The canonical EventBridge expression, `cron(min hour dom month dow year)`.
    pub fn to_eventbridge(&self) -> String {
        let num = |v: u32| v.to_string();
        let (dom, dow) = match &self.days {
            DaySpec::Every => ("*".to_string(), "?".to_string()),
            DaySpec::MonthDays(d) => (
                match d {
                    MonthDays::Set(bits) => format_set(bits, 1, 31, &num),
                    MonthDays::Last => "L".to_string(),
                    MonthDays::LastWeekday => "LW".to_string(),
                    MonthDays::NearestWeekday(n) => format!("{n}W"),
                },
                "?".to_string(),
            ),
            DaySpec::WeekDays(w) => (
                "?".to_string(),
                match w {
                    // Names never take a step in EventBridge, so lists and ranges only.
                    WeekDays::Set(bits) => format_weekdays(bits),
                    WeekDays::Last(day) => format!("{}L", day + 1),
                    WeekDays::Nth(day, k) => format!("{}#{k}", day + 1),
                },
            ),
        };
        let year = match &self.years {
            None => "*".to_string(),
            Some(bits) => format_set(bits, 0, LAST_YEAR - FIRST_YEAR, &|v| {
                (v + FIRST_YEAR).to_string()
            }),
        };
        format!(
            "cron({} {} {dom} {} {dow} {year})",
            format_set(&self.minutes, 0, 59, &num),
            format_set(&self.hours, 0, 23, &num),
            format_set(&self.months, 1, 12, &num),
        )
    }

    /// The first local wall-clock minute at or after `from` that the schedule names, or
    /// `None` when there is none before the end of EventBridge's year range.
    pub fn next_local(&self, from: NaiveDateTime) -> Option<NaiveDateTime> {
        let mut t = from.with_second(0)?.with_nanosecond(0)?;
        // Each pass either returns or moves `t` forward to the start of a later unit; the
        // year bound ends the loop for schedules that can never fire (e.g. 31 February).
        loop {
            let year = u32::try_from(t.year()).ok()?;
            if year > LAST_YEAR {
                return None;
            }
            if let Some(years) = &self.years {
                if year < FIRST_YEAR || !years.contains(year - FIRST_YEAR) {
                    let from = if year < FIRST_YEAR {
                        0
                    } else {
                        year - FIRST_YEAR + 1
                    };
                    let next = years.next_from(from)?;
                    t = start_of_month(next + FIRST_YEAR, 1)?;
                    continue;
                }
            }
            if !self.months.contains(t.month()) {
                t = match self.months.next_from(t.month() + 1) {
                    Some(m) if m <= 12 => start_of_month(year, m)?,
                    _ => start_of_month(year + 1, self.months.next_from(1)?)?,
                };
                continue;
            }
            if !self.day_matches(t.date()) {
                t = t.date().succ_opt()?.and_time(NaiveTime::MIN);
                continue;
            }
            if !self.hours.contains(t.hour()) {
                t = match self.hours.next_from(t.hour() + 1) {
                    Some(h) if h <= 23 => t.date().and_hms_opt(h, 0, 0)?,
                    _ => t.date().succ_opt()?.and_time(NaiveTime::MIN),
                };
                continue;
            }
            match self.minutes.next_from(t.minute()) {
                Some(m) if m <= 59 => return t.with_minute(m),
                _ => {
                    t = t
                        .with_minute(0)?
                        .checked_add_signed(chrono::Duration::hours(1))?;
                }
            }
        }
    }

    fn day_matches(&self, date: NaiveDate) -> bool {
        let day = date.day();
        let last = last_day_of_month(date);
        match &self.days {
            DaySpec::Every => true,
            DaySpec::MonthDays(MonthDays::Set(bits)) => bits.contains(day),
            DaySpec::MonthDays(MonthDays::Last) => day == last,
            DaySpec::MonthDays(MonthDays::LastWeekday) => day == nearest_weekday(date, last),
            DaySpec::MonthDays(MonthDays::NearestWeekday(n)) => {
                *n <= last && day == nearest_weekday(date, *n)
            }
            DaySpec::WeekDays(w) => {
                let weekday = date.weekday().num_days_from_sunday();
                match w {
                    WeekDays::Set(bits) => bits.contains(weekday),
                    WeekDays::Last(d) => weekday == *d && day + 7 > last,
                    WeekDays::Nth(d, k) => weekday == *d && (day - 1) / 7 + 1 == *k,
                }
            }
        }
    }
}

fn start_of_month(year: u32, month: u32) -> Option<NaiveDateTime> {
    NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, 1).map(|d| d.and_time(NaiveTime::MIN))
}

fn last_day_of_month(date: NaiveDate) -> u32 {
    let (y, m) = if date.month() == 12 {
        (date.year() + 1, 1)
    } else {
        (date.year(), date.month() + 1)
    };
    NaiveDate::from_ymd_opt(y, m, 1)
        .and_then(|d| d.pred_opt())
        .map_or(28, |d| d.day())
}

/// The day of `date`'s month that is the weekday nearest to day `target`: a Saturday moves
/// back to Friday and a Sunday forward to Monday, unless that would leave the month.
fn nearest_weekday(date: NaiveDate, target: u32) -> u32 {
    let last = last_day_of_month(date);
    let Some(t) = date.with_day(target) else {
        return 0;
    };
    match t.weekday() {
        Weekday::Sat if target == 1 => 3,
        Weekday::Sat => target - 1,
        Weekday::Sun if target == last => target - 2,
        Weekday::Sun => target + 1,
        _ => target,
    }
}

fn format_weekdays(bits: &Bits) -> String {
    let list = format_set(bits, 0, 6, &|v| WEEKDAY_NAMES[v as usize % 7].to_string());
    // `format_set` may choose a stepped form like `SUN/2`; spell those out as a list.
    if list.contains('/') {
        bits.iter()
            .filter(|v| *v < 7)
            .map(|v| WEEKDAY_NAMES[v as usize].to_string())
            .collect::<Vec<_>>()
            .join(",")
    } else {
        list
    }
}

/// `*` and `?` leave the day-of-month free; anything else restricts it.
fn parse_month_days(text: &str) -> Result<Option<MonthDays>, ExpressionError> {
    let upper = text.to_ascii_uppercase();
    match upper.as_str() {
        "*" | "?" => return Ok(None),
        "L" => return Ok(Some(MonthDays::Last)),
        "LW" => return Ok(Some(MonthDays::LastWeekday)),
        _ => {}
    }
    if let Some(n) = upper.strip_suffix('W') {
        let day = parse_value(n, &DAY_OF_MONTH)?;
        return Ok(Some(MonthDays::NearestWeekday(day)));
    }
    if upper.contains('L') || upper.contains('W') {
        return Err(
            ExpressionError::new(format!("'{text}' is not a valid day-of-month"))
                .hint("L, LW and nW (e.g. 15W) stand alone in the day-of-month field"),
        );
    }
    let bits = parse_set(text, &DAY_OF_MONTH)?;
    Ok(if bits == Bits::range(1, 31) {
        None
    } else {
        Some(MonthDays::Set(bits))
    })
}

fn parse_week_days(text: &str, dialect: Dialect) -> Result<Option<WeekDays>, ExpressionError> {
    let rule = dialect.dow_rule();
    let upper = text.to_ascii_uppercase();
    match upper.as_str() {
        "*" | "?" => return Ok(None),
        // A bare L is the last day of the week: Saturday.
        "L" => return Ok(Some(WeekDays::Set(Bits::range(6, 6)))),
        _ => {}
    }
    if let Some((day, nth)) = upper.split_once('#') {
        let day = dialect.weekday(parse_value(day, rule)?);
        let k = parse_number(nth)
            .filter(|k| (1..=5).contains(k))
            .ok_or_else(|| {
                ExpressionError::new(format!("'{text}' asks for occurrence '{nth}' of a weekday"))
                    .hint("write day#n with n from 1 to 5, e.g. MON#1 for the first Monday")
            })?;
        return Ok(Some(WeekDays::Nth(day, k)));
    }
    if let Some(day) = upper.strip_suffix('L') {
        let day = dialect.weekday(parse_value(day, rule)?);
        return Ok(Some(WeekDays::Last(day)));
    }
    let raw = parse_set(text, rule)?;
    let mut bits = Bits::default();
    for v in raw.iter() {
        bits.insert(dialect.weekday(v));
    }
    Ok(if bits == Bits::range(0, 6) {
        None
    } else {
        Some(WeekDays::Set(bits))
    })
}

fn both_days_error(dialect: Dialect) -> ExpressionError {
    match dialect {
        Dialect::Unix => ExpressionError::new(
            "both day-of-month and day-of-week are restricted; Unix cron reads that as \
             'either day matches', which one EventBridge schedule cannot express",
        )
        .hint(
            "keep one and write * in the other (e.g. '0 9 1 * *' for the 1st, \
             '0 9 * * 1' for Mondays), or create two schedules",
        ),
        Dialect::SecondsFirst | Dialect::EventBridge => ExpressionError::new(
            "both day-of-month and day-of-week are restricted; EventBridge allows only one",
        )
        .hint("write ? in the one you do not need, e.g. cron(0 9 ? * MON *)"),
    }
}
