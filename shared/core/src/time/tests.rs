//! Table tests for every dialect and DST case, and property tests that check the engine
//! against independent oracles: the `cron` crate (UTC) and a minute-by-minute scan (zones).

use super::*;
use chrono::{NaiveDateTime, Timelike};
use proptest::prelude::*;

fn canon(text: &str) -> String {
    match ScheduleExpression::parse(text) {
        Ok(e) => e.to_eventbridge(),
        Err(e) => panic!("{text:?} was refused: {e}"),
    }
}

fn refused(text: &str) -> String {
    match ScheduleExpression::parse(text) {
        Ok(e) => panic!("{text:?} was accepted as {}", e.to_eventbridge()),
        Err(e) => e.to_string(),
    }
}

fn utc(text: &str) -> DateTime<Utc> {
    match DateTime::parse_from_rfc3339(text) {
        Ok(t) => t.with_timezone(&Utc),
        Err(e) => panic!("bad test time {text}: {e}"),
    }
}

fn zone(name: &str) -> Zone {
    match name.parse() {
        Ok(z) => z,
        Err(e) => panic!("{e}"),
    }
}

/// Fire times of `expr` in `zone` after `after`, as RFC 3339 strings.
fn fires(expr: &str, zone_name: &str, after: &str, count: usize) -> Vec<String> {
    let e = ScheduleExpression::parse(expr).unwrap_or_else(|e| panic!("{e}"));
    let after = utc(after);
    e.upcoming(zone(zone_name), after, after, count)
        .into_iter()
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .collect()
}

#[test]
fn every_dialect_reaches_the_same_canonical_form() {
    let cases = [
        // The original system's seconds-first form.
        ("0 0 * * * *", "cron(0 * * * ? *)"),
        ("0 30 9 * * MON-FRI", "cron(30 9 ? * MON-FRI *)"),
        ("0 30 9 * * 2-6", "cron(30 9 ? * MON-FRI *)"),
        ("0 0 12 1 * ? 2027", "cron(0 12 1 * ? 2027)"),
        // Unix five fields: Sunday is 0 or 7, Monday 1.
        ("*/15 * * * *", "cron(0/15 * * * ? *)"),
        ("0 9 * * 1-5", "cron(0 9 ? * MON-FRI *)"),
        ("0 9 * * 0", "cron(0 9 ? * SUN *)"),
        ("0 9 * * 7", "cron(0 9 ? * SUN *)"),
        ("0 9 * * 5-7", "cron(0 9 ? * SUN,FRI,SAT *)"),
        ("0 9 * * */2", "cron(0 9 ? * SUN,TUE,THU,SAT *)"),
        ("0 0 1 JAN,jul *", "cron(0 0 1 1,7 ? *)"),
        ("5,10,15 0-6 * * *", "cron(5,10,15 0-6 * * ? *)"),
        ("0 0 1-31 * 0-6", "cron(0 0 * * ? *)"),
        // EventBridge's own form, with its special characters.
        (
            "cron(0/5 8-17 ? * MON-FRI *)",
            "cron(0/5 8-17 ? * MON-FRI *)",
        ),
        ("cron(0 12 ? * 2#1 *)", "cron(0 12 ? * 2#1 *)"),
        ("cron(0 18 L * ? *)", "cron(0 18 L * ? *)"),
        ("cron(0 8 LW * ? *)", "cron(0 8 LW * ? *)"),
        ("cron(0 8 15W * ? *)", "cron(0 8 15W * ? *)"),
        ("cron(0 10 ? * 6L 2027-2029)", "cron(0 10 ? * 6L 2027-2029)"),
        ("CRON(0 10 ? * fri *)", "cron(0 10 ? * FRI *)"),
        ("cron(0 10 * * MON *)", "cron(0 10 ? * MON *)"),
        // Macros.
        ("@hourly", "cron(0 * * * ? *)"),
        ("@daily", "cron(0 0 * * ? *)"),
        ("@weekly", "cron(0 0 ? * SUN *)"),
        ("@monthly", "cron(0 0 1 * ? *)"),
        ("@yearly", "cron(0 0 1 1 ? *)"),
        // Rates are written with EventBridge's singular/plural rule.
        ("rate(1 minutes)", "rate(1 minute)"),
        ("rate(5 minute)", "rate(5 minutes)"),
        ("RATE(2 Hours)", "rate(2 hours)"),
        ("rate( 1 day )", "rate(1 day)"),
    ];
    for (input, expected) in cases {
        assert_eq!(canon(input), expected, "input {input:?}");
    }
}

#[test]
fn the_five_field_form_with_step_names_keeps_the_exact_weekdays() {
    // Unix 1-7/2 is Mon, Wed, Fri, Sun; EventBridge numbering would give other days.
    assert_eq!(canon("0 6 * * 1-7/2"), "cron(0 6 ? * SUN,MON,WED,FRI *)");
}

#[test]
fn mistakes_are_refused_with_a_reason_and_a_fix() {
    let cases = [
        ("0 9 1 * 1", "either"),
        ("0 9 1 * 1", "two schedules"),
        ("0 0 9 1 * MON", "only one"),
        ("30 * * * * *", "once a minute"),
        ("* * * * * *", "set the seconds field to 0"),
        ("60 * * * *", "0 to 59"),
        ("0 24 * * *", "0 to 23"),
        ("0 0 32 * *", "1 to 31"),
        ("0 0 0 * *", "1 to 31"),
        ("0 0 * 13 *", "1 to 12"),
        ("0 0 * * 8", "0 to 7"),
        ("cron(0 0 ? * 0 *)", "1 to 7"),
        ("cron(0 0 1 1 ? 2200)", "1970 to 2199"),
        ("hello world", "no dialect"),
        ("every day at nine", "no dialect"),
        ("", "empty"),
        ("cron(this is not cron)", "6 fields"),
        ("cron(a b c d e f)", "not a valid minute"),
        ("rate(0 minutes)", "at least 1"),
        ("rate(five minutes)", "whole number"),
        ("rate(30 seconds)", "sub-minute"),
        ("rate(3 weeks)", "not a rate unit"),
        ("rate(100000 days)", "ten years"),
        ("@reboot", "not a known macro"),
        ("at(2027-01-01T00:00:00)", "not supported"),
        ("0 9 * * MON-FOO", "not a valid day-of-week"),
        ("0 9 * * 5-1", "runs backwards"),
        ("0 9,,10 * * *", "empty list item"),
        ("*/0 * * * *", "step 0"),
        ("cron(0 9 ? * 2#6 *)", "1 to 5"),
        ("cron(0 9 L5 * ? *)", "not a valid day-of-month"),
        ("0 -1 * * *", "not a valid hour"),
    ];
    for (input, needle) in cases {
        let message = refused(input);
        assert!(
            message.contains(needle),
            "{input:?} gave {message:?}, which lacks {needle:?}"
        );
    }
}

#[test]
fn unknown_time_zones_are_refused_and_names_are_canonicalised() {
    assert!("Mars/Olympus_Mons".parse::<Zone>().is_err());
    assert!("".parse::<Zone>().is_err());
    assert!("+05:00".parse::<Zone>().is_err());
    assert_eq!(zone("America/Edmonton").name(), "America/Edmonton");
    assert_eq!(zone("UTC").name(), "UTC");
    // Near misses are refused with the exact spelling to write, never silently corrected.
    for (text, fix) in [
        ("america/edmonton", "write 'America/Edmonton'"),
        ("UTC ", "write 'UTC'"),
        (" Europe/London", "write 'Europe/London'"),
    ] {
        let refused = text.parse::<Zone>().map(|z| z.name()).unwrap_err_text();
        assert!(refused.contains(fix), "{text:?}: {refused}");
    }
}

trait UnwrapErrText {
    fn unwrap_err_text(self) -> String;
}

impl<T: std::fmt::Debug, E: std::fmt::Display> UnwrapErrText for Result<T, E> {
    fn unwrap_err_text(self) -> String {
        match self {
            Ok(v) => panic!("accepted as {v:?}"),
            Err(e) => e.to_string(),
        }
    }
}

#[test]
fn both_day_fields_as_question_marks_are_refused_as_eventbridge_refuses_them() {
    assert!(refused("cron(0 0 ? * ? *)").contains("exactly one '?'"));
    assert!(refused("0 0 0 ? * ?").contains("exactly one '?'"));
}

#[test]
fn fire_times_stay_inside_eventbridges_years() {
    // Before 1970 the zone ran on local mean time; fire times start at 1970 instead.
    assert_eq!(
        fires("0 12 * * *", "America/Edmonton", "1900-06-01T00:00:00Z", 1),
        ["1970-01-01T19:00:00Z"]
    );
    // The last local day of 2199 west of UTC is already 2200 in UTC: it does not fire.
    assert_eq!(
        fires(
            "0 20 31 12 *",
            "America/Edmonton",
            "2199-06-01T00:00:00Z",
            2
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        fires("0 20 31 12 *", "UTC", "2199-06-01T00:00:00Z", 2),
        ["2199-12-31T20:00:00Z"]
    );
    assert!(fires("rate(1 day)", "UTC", "2199-12-31T00:00:00Z", 3).is_empty());
}

#[test]
fn spring_forward_skips_the_missing_local_time() {
    // Edmonton, 2026-03-08: 02:00 MST jumps to 03:00 MDT, so 02:30 does not exist that day.
    assert_eq!(
        fires("30 2 * * *", "America/Edmonton", "2026-03-07T00:00:00Z", 2),
        ["2026-03-07T09:30:00Z", "2026-03-09T08:30:00Z"]
    );
    // Sydney, 2026-10-04: 02:00 AEST jumps to 03:00 AEDT.
    assert_eq!(
        fires("30 2 * * *", "Australia/Sydney", "2026-10-02T00:00:00Z", 2),
        ["2026-10-02T16:30:00Z", "2026-10-04T15:30:00Z"]
    );
    // Lord Howe moves by 30 minutes, 2026-10-04: 02:00 jumps to 02:30.
    assert_eq!(
        fires(
            "15 2 * * *",
            "Australia/Lord_Howe",
            "2026-10-02T00:00:00Z",
            2
        ),
        ["2026-10-02T15:45:00Z", "2026-10-04T15:15:00Z"]
    );
    // An hourly schedule loses the missing hour and nothing else.
    assert_eq!(
        fires("0 * * * *", "America/Edmonton", "2026-03-08T06:30:00Z", 3),
        [
            "2026-03-08T07:00:00Z",
            "2026-03-08T08:00:00Z",
            "2026-03-08T09:00:00Z"
        ]
    );
}

#[test]
fn fall_back_fires_a_repeated_local_time_once_at_its_first_occurrence() {
    // Edmonton, 2026-11-01: 01:00-01:59 happens twice (MDT, then MST).
    assert_eq!(
        fires("30 1 * * *", "America/Edmonton", "2026-10-31T00:00:00Z", 3),
        [
            "2026-10-31T07:30:00Z",
            "2026-11-01T07:30:00Z",
            "2026-11-02T08:30:00Z"
        ]
    );
    // Every 30 minutes: the second pass through 01:00 and 01:30 does not fire.
    assert_eq!(
        fires(
            "*/30 * * * *",
            "America/Edmonton",
            "2026-11-01T06:45:00Z",
            4
        ),
        [
            "2026-11-01T07:00:00Z",
            "2026-11-01T07:30:00Z",
            "2026-11-01T09:00:00Z",
            "2026-11-01T09:30:00Z"
        ]
    );
    // Sydney (southern hemisphere), 2026-04-05: 03:00 AEDT falls back to 02:00 AEST.
    assert_eq!(
        fires("30 2 * * *", "Australia/Sydney", "2026-04-03T00:00:00Z", 3),
        [
            "2026-04-03T15:30:00Z",
            "2026-04-04T15:30:00Z",
            "2026-04-05T16:30:00Z"
        ]
    );
    // Lord Howe, 2026-04-05: 02:00 falls back to 01:30, so 01:45 happens twice.
    assert_eq!(
        fires(
            "45 1 * * *",
            "Australia/Lord_Howe",
            "2026-04-04T00:00:00Z",
            2
        ),
        ["2026-04-04T14:45:00Z", "2026-04-05T15:15:00Z"]
    );
}

#[test]
fn an_after_time_inside_the_repeated_hour_is_respected() {
    // 08:10Z is 01:10 MST, the second pass; the next :30 that fires is not 01:30 again.
    assert_eq!(
        fires("30 * * * *", "America/Edmonton", "2026-11-01T08:10:00Z", 1),
        ["2026-11-01T09:30:00Z"]
    );
}

#[test]
fn rate_counts_elapsed_time_across_dst() {
    let e = ScheduleExpression::parse("rate(1 day)").unwrap_or_else(|e| panic!("{e}"));
    let anchor = utc("2026-10-31T18:00:00Z");
    let got = e.upcoming(
        zone("America/Edmonton"),
        anchor,
        utc("2026-10-31T20:00:00Z"),
        3,
    );
    assert_eq!(
        got,
        [
            utc("2026-11-01T18:00:00Z"),
            utc("2026-11-02T18:00:00Z"),
            utc("2026-11-03T18:00:00Z")
        ]
    );
    // The first fire is one period after the anchor, never the anchor itself.
    let e = ScheduleExpression::parse("rate(15 minutes)").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        e.next_after(zone("UTC"), anchor, anchor),
        Some(utc("2026-10-31T18:15:00Z"))
    );
    assert_eq!(
        e.next_after(zone("UTC"), anchor, utc("2026-10-31T18:15:00Z")),
        Some(utc("2026-10-31T18:30:00Z"))
    );
}

#[test]
fn special_day_characters_pick_the_right_days() {
    let cases = [
        (
            "cron(0 12 L 2 ? *)",
            "2027-01-01T00:00:00Z",
            "2027-02-28T12:00:00Z",
        ),
        (
            "cron(0 12 L 2 ? *)",
            "2028-01-01T00:00:00Z",
            "2028-02-29T12:00:00Z",
        ),
        // May 2026 ends on a Sunday: the last weekday is Friday the 29th.
        (
            "cron(0 12 LW 5 ? *)",
            "2026-05-01T00:00:00Z",
            "2026-05-29T12:00:00Z",
        ),
        // 2026-08-15 is a Saturday: the nearest weekday is Friday the 14th.
        (
            "cron(0 12 15W 8 ? *)",
            "2026-08-01T00:00:00Z",
            "2026-08-14T12:00:00Z",
        ),
        // 2026-08-01 is a Saturday: 1W cannot go back into July, so Monday the 3rd.
        (
            "cron(0 12 1W 8 ? *)",
            "2026-07-31T00:00:00Z",
            "2026-08-03T12:00:00Z",
        ),
        // First Monday of December 2026 (the 1st is a Tuesday).
        (
            "cron(0 12 ? 12 2#1 *)",
            "2026-11-24T00:00:00Z",
            "2026-12-07T12:00:00Z",
        ),
        // Last Friday of November 2026.
        (
            "cron(0 12 ? 11 6L *)",
            "2026-11-01T00:00:00Z",
            "2026-11-27T12:00:00Z",
        ),
        (
            "0 12 * * 5L",
            "2026-11-01T00:00:00Z",
            "2026-11-27T12:00:00Z",
        ),
    ];
    for (expr, after, expected) in cases {
        assert_eq!(fires(expr, "UTC", after, 1), [expected], "{expr}");
    }
}

#[test]
fn schedules_that_can_never_fire_have_no_next_time() {
    assert!(fires("0 0 31 2 *", "UTC", "2026-01-01T00:00:00Z", 1).is_empty());
    assert!(fires("cron(0 0 1 1 ? 2020)", "UTC", "2026-01-01T00:00:00Z", 1).is_empty());
    // A schedule limited to some years stops after the last one.
    assert_eq!(
        fires(
            "cron(0 0 1 1 ? 2027-2028)",
            "UTC",
            "2026-01-01T00:00:00Z",
            5
        ),
        ["2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"]
    );
}

// ---------------------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------------------

/// A random cron schedule as value sets, written out in two dialects independently.
#[derive(Debug, Clone)]
struct Sets {
    minutes: Vec<u32>,
    hours: Option<Vec<u32>>,
    days: Option<Vec<u32>>,
    months: Option<Vec<u32>>,
    /// Weekdays 0-6, Sunday = 0; only when `days` is free.
    weekdays: Option<Vec<u32>>,
    sunday_as_seven: bool,
}

fn list(values: &[u32], f: impl Fn(u32) -> u32) -> String {
    values
        .iter()
        .map(|v| f(*v).to_string())
        .collect::<Vec<_>>()
        .join(",")
}

impl Sets {
    fn unix(&self) -> String {
        let star = |o: &Option<Vec<u32>>| o.as_ref().map_or("*".to_string(), |v| list(v, |x| x));
        let dow = self.weekdays.as_ref().map_or("*".to_string(), |v| {
            list(v, |d| if d == 0 && self.sunday_as_seven { 7 } else { d })
        });
        format!(
            "{} {} {} {} {dow}",
            list(&self.minutes, |x| x),
            star(&self.hours),
            star(&self.days),
            star(&self.months)
        )
    }

    /// The `cron` crate's seconds-first text, where Sunday is 1.
    fn cron_crate(&self) -> String {
        let star = |o: &Option<Vec<u32>>| o.as_ref().map_or("*".to_string(), |v| list(v, |x| x));
        let dow = self
            .weekdays
            .as_ref()
            .map_or("*".to_string(), |v| list(v, |d| d + 1));
        format!(
            "0 {} {} {} {} {dow}",
            list(&self.minutes, |x| x),
            star(&self.hours),
            star(&self.days),
            star(&self.months)
        )
    }
}

fn subset(lo: u32, hi: u32, max_len: usize) -> impl Strategy<Value = Vec<u32>> {
    proptest::collection::btree_set(lo..=hi, 1..=max_len).prop_map(|s| s.into_iter().collect())
}

fn sets() -> impl Strategy<Value = Sets> {
    (
        subset(0, 59, 4),
        proptest::option::of(subset(0, 23, 4)),
        proptest::option::of(subset(1, 31, 5)),
        proptest::option::of(subset(1, 12, 6)),
        proptest::option::of(subset(0, 6, 3)),
        any::<bool>(),
    )
        .prop_map(
            |(minutes, hours, days, months, weekdays, sunday_as_seven)| Sets {
                minutes,
                hours,
                weekdays: if days.is_some() { None } else { weekdays },
                days,
                months,
                sunday_as_seven,
            },
        )
}

fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    // 2024-01-01 .. 2030-01-01
    (1_704_067_200i64..1_893_456_000)
        .prop_map(|s| DateTime::from_timestamp(s, 0).unwrap_or_default())
}

const ZONES: [&str; 6] = [
    "America/Edmonton",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "Europe/London",
    "America/St_Johns",
    "Asia/Kolkata",
];

/// Brute force: every UTC minute in (after, until] whose local time matches and which is the
/// first occurrence of that local time.
fn scan(
    spec: &CronSpec,
    zone: Zone,
    after: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Vec<DateTime<Utc>> {
    let tz = zone.tz();
    let mut out = Vec::new();
    let start = after.timestamp() / 60 + 1;
    for minute in start..=until.timestamp() / 60 {
        let Some(u) = DateTime::from_timestamp(minute * 60, 0) else {
            continue;
        };
        let local: NaiveDateTime = u.with_timezone(&tz).naive_local();
        let matches = spec.next_local(local) == Some(local);
        let first = tz
            .from_local_datetime(&local)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            == Some(u);
        if matches && first {
            out.push(u);
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn unix_expressions_fire_exactly_when_the_cron_crate_says(s in sets(), after in instant()) {
        let ours = ScheduleExpression::parse(&s.unix()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let theirs: ::cron::Schedule = s.cron_crate().parse().map_err(|e| TestCaseError::fail(format!("{e}")))?;
        let expected: Vec<_> = theirs.after(&after).take(5).collect();
        let got = ours.upcoming(zone("UTC"), after, after, 5);
        prop_assert_eq!(got, expected, "unix {} vs cron {}", s.unix(), s.cron_crate());
    }

    #[test]
    fn the_canonical_form_reads_back_to_the_same_schedule(s in sets()) {
        let first = ScheduleExpression::parse(&s.unix()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let text = first.to_eventbridge();
        let again = ScheduleExpression::parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert_eq!(&again, &first, "{}", text);
        prop_assert_eq!(again.to_eventbridge(), text);
    }

    #[test]
    fn fire_times_in_dst_zones_match_a_minute_by_minute_scan(
        minutes in subset(0, 59, 3),
        hours in proptest::option::of(subset(0, 23, 6)),
        zone_index in 0..ZONES.len(),
        // Start near a DST change in either hemisphere so the odd hours are covered.
        start in prop_oneof![
            Just("2026-03-07T00:00:00Z"), Just("2026-10-31T00:00:00Z"),
            Just("2026-04-03T00:00:00Z"), Just("2026-10-02T00:00:00Z"),
            Just("2026-03-28T00:00:00Z"), Just("2026-10-24T00:00:00Z"),
        ],
        offset_minutes in 0i64..(3 * 24 * 60),
    ) {
        let hour_text = hours.as_ref().map_or("*".to_string(), |h| list(h, |x| x));
        let text = format!("{} {hour_text} * * *", list(&minutes, |x| x));
        let ScheduleExpression::Cron(spec) = ScheduleExpression::parse(&text).map_err(|e| TestCaseError::fail(e.to_string()))? else {
            return Err(TestCaseError::fail("not cron"));
        };
        let z = zone(ZONES[zone_index]);
        let after = utc(start) + Duration::minutes(offset_minutes);
        let until = after + Duration::days(2);
        let expected = scan(&spec, z, after, until);
        let expr = ScheduleExpression::Cron(spec);
        let got: Vec<_> = expr.upcoming(z, after, after, expected.len() + 1)
            .into_iter().filter(|t| *t <= until).collect();
        prop_assert_eq!(got, expected, "{} in {}", text, z);
    }

}

/// A valid expression (Unix cron, or its EventBridge form), or a near miss: the same with one
/// character changed or removed. The flag says whether it must parse.
fn expression_text() -> impl Strategy<Value = (String, bool)> {
    let alphabet = vec![
        '*', '?', '/', ',', '#', 'L', 'W', '-', '0', '5', '9', ' ', 'A', 'Z', '(', ')',
    ];
    (
        sets(),
        any::<bool>(),
        proptest::option::of((
            any::<proptest::sample::Index>(),
            proptest::sample::select(alphabet),
            any::<bool>(),
        )),
    )
        .prop_map(|(s, eventbridge, change)| {
            let unix = s.unix();
            let text = if eventbridge {
                ScheduleExpression::parse(&unix).map_or(unix.clone(), |e| e.to_eventbridge())
            } else {
                unix
            };
            let Some((at, c, remove)) = change else {
                return (text, true);
            };
            let mut chars: Vec<char> = text.chars().collect();
            let i = at.index(chars.len());
            if remove {
                chars.remove(i);
            } else {
                chars[i] = c;
            }
            (chars.into_iter().collect(), false)
        })
}

proptest! {
    #![proptest_config(crate::fuzzing::config(512))]

    #[test]
    fn no_text_makes_the_parser_panic(text in "\\PC{0,60}") {
        let _ = ScheduleExpression::parse(&text);
    }

    #[test]
    fn no_cron_like_text_makes_the_parser_panic(text in "(cron\\(|rate\\(|@)?[0-9A-Z*?/,#LW -]{0,40}\\)?") {
        if let Ok(e) = ScheduleExpression::parse(&text) {
            // Whatever parses must produce a canonical form that parses again.
            prop_assert!(ScheduleExpression::parse(&e.to_eventbridge()).is_ok());
            let _ = e.next_after(zone("UTC"), utc("2026-01-01T00:00:00Z"), utc("2026-01-01T00:00:00Z"));
        }
    }

    #[test]
    fn expressions_and_near_misses_read_back_from_their_canonical_form_and_fire_in_order_in_every_zone(
        (text, valid) in expression_text(),
        zone_index in 0..ZONES.len(),
        after in instant(),
    ) {
        let parsed = ScheduleExpression::parse(&text);
        prop_assert!(parsed.is_ok() || !valid, "{} was refused: {:?}", text, parsed.err().map(|e| e.to_string()));
        if let Ok(e) = parsed {
            let canonical = e.to_eventbridge();
            let again = ScheduleExpression::parse(&canonical).map_err(|err| TestCaseError::fail(format!("{text} -> {canonical}: {err}")))?;
            prop_assert_eq!(&again, &e, "{} -> {}", text, canonical);
            prop_assert_eq!(again.to_eventbridge(), canonical);
            let z = zone(ZONES[zone_index]);
            let mut previous = after;
            for t in e.upcoming(z, after, after, 3) {
                prop_assert!(t > previous, "{} in {}", text, z);
                previous = t;
            }
        }
    }

    #[test]
    fn no_text_makes_the_zone_parser_panic(text in "\\PC{0,40}") {
        let _ = text.parse::<Zone>();
    }

    #[test]
    fn fire_times_are_always_later_and_local_minutes(s in sets(), after in instant(), zone_index in 0..ZONES.len()) {
        let e = ScheduleExpression::parse(&s.unix()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let z = zone(ZONES[zone_index]);
        let mut previous = after;
        for t in e.upcoming(z, after, after, 3) {
            prop_assert!(t > previous);
            prop_assert_eq!(t.second(), 0);
            previous = t;
        }
    }
}
