use super::*;
use chrono::TimeZone;

fn t(minute: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 6, 9, 0, 0)
        .single()
        .unwrap_or_default()
        + Duration::minutes(minute)
}

fn tenant() -> TenantId {
    TenantId::parse("shop-1").unwrap_or_else(|_| unreachable!())
}

fn raised<'a>(tenant: &'a TenantId, error: &'a str) -> Raised<'a> {
    Raised {
        tenant,
        subject: AlertSubject::Schedule(ScheduleId::new_random()),
        kind: AlertKind::FailingSchedule,
        error,
        link: Some("/api/sync/schedules/x".into()),
    }
}

const FLAP: Duration = Duration::minutes(30);

#[test]
fn a_condition_seen_again_while_open_updates_the_one_issue_keeping_its_first_error() {
    let tenant = tenant();
    let first = raised(&tenant, "401 from the shop");
    let opened = AlertIssue::raise(None, &first, t(0));
    let again = Raised {
        error: "500 from the shop",
        ..first.clone()
    };
    let updated = AlertIssue::raise(Some(&opened), &again, t(5));
    assert_eq!(updated.id, opened.id);
    assert_eq!(updated.count, 2);
    assert_eq!(updated.first_error, "401 from the shop");
    assert_eq!(updated.last_error, "500 from the shop");
    assert_eq!(updated.opened_at, t(0));
    assert_eq!(updated.status, AlertStatus::Open);
}

#[test]
fn the_same_tenant_subject_and_kind_is_one_issue_and_another_kind_is_another() {
    let tenant = tenant();
    let schedule = AlertSubject::Schedule(ScheduleId::new_random());
    let a = alert_id(&tenant, &schedule, AlertKind::FailingSchedule);
    assert_eq!(a, alert_id(&tenant, &schedule, AlertKind::FailingSchedule));
    assert_ne!(a, alert_id(&tenant, &schedule, AlertKind::AutoPaused));
    let other = TenantId::parse("shop-2").unwrap_or_else(|_| unreachable!());
    assert_ne!(a, alert_id(&other, &schedule, AlertKind::FailingSchedule));
}

#[test]
fn a_destination_hears_an_opening_once_and_its_resolution_once() {
    let tenant = tenant();
    let mut issue = AlertIssue::raise(None, &raised(&tenant, "boom"), t(0));
    assert_eq!(issue.notice_for("d1", t(1), FLAP), Some(AlertStatus::Open));
    issue.heard("d1", AlertStatus::Open, t(1));
    assert_eq!(issue.notice_for("d1", t(2), FLAP), None);
    issue = AlertIssue::raise(Some(&issue), &raised(&tenant, "boom"), t(3));
    assert_eq!(
        issue.notice_for("d1", t(4), FLAP),
        None,
        "an update is not told"
    );
    issue = issue.resolve(t(10)).unwrap_or_else(|| unreachable!());
    // The resolution waits until the condition has stayed clear for the flap period.
    assert_eq!(issue.notice_for("d1", t(11), FLAP), None);
    assert_eq!(issue.next_due(&["d1".into()], t(11), FLAP), Some(t(40)));
    assert_eq!(
        issue.notice_for("d1", t(40), FLAP),
        Some(AlertStatus::Resolved)
    );
    issue.heard("d1", AlertStatus::Resolved, t(40));
    assert_eq!(issue.notice_for("d1", t(41), FLAP), None);
    assert_eq!(issue.next_due(&["d1".into()], t(41), FLAP), None);
}

#[test]
fn a_resolution_is_told_only_to_destinations_that_heard_the_opening() {
    let tenant = tenant();
    let issue = AlertIssue::raise(None, &raised(&tenant, "boom"), t(0));
    let resolved = issue.resolve(t(1)).unwrap_or_else(|| unreachable!());
    assert_eq!(resolved.notice_for("d1", t(2), FLAP), None);
    assert_eq!(resolved.next_due(&["d1".into()], t(2), FLAP), None);
    assert_eq!(
        resolved.resolve(t(3)),
        None,
        "a resolved issue does not resolve again"
    );
}

#[test]
fn an_acknowledged_issue_tells_nobody_anything_more_until_it_reopens() {
    let tenant = tenant();
    let mut issue = AlertIssue::raise(None, &raised(&tenant, "boom"), t(0));
    issue.heard("d1", AlertStatus::Open, t(1));
    issue.acked_at = Some(t(2));
    assert_eq!(
        issue.notice_for("d2", t(3), FLAP),
        None,
        "a new destination is not told either"
    );
    let resolved = issue.resolve(t(4)).unwrap_or_else(|| unreachable!());
    // (The one that heard the opening hears it cleared: the ack silenced the episode's
    // updates, and the resolution is good news.)
    assert_eq!(
        resolved.notice_for("d1", t(34), FLAP),
        Some(AlertStatus::Resolved)
    );
    let mut told = resolved.clone();
    told.heard("d1", AlertStatus::Resolved, t(34));
    let reopened = AlertIssue::raise(Some(&told), &raised(&tenant, "again"), t(100));
    assert_eq!(reopened.acked_at, None, "a new episode");
    // (Back before its resolution was told: the same episode, still acknowledged.)
    let back = AlertIssue::raise(Some(&resolved), &raised(&tenant, "again"), t(20));
    assert_eq!(back.acked_at, Some(t(2)));
}

#[test]
fn a_condition_that_flaps_stays_one_episode_told_once_open_and_once_resolved_when_it_settles() {
    let tenant = tenant();
    let mut issue = AlertIssue::raise(None, &raised(&tenant, "boom"), t(0));
    issue.heard("d1", AlertStatus::Open, t(1));
    // It clears and comes back, again and again, each time before the flap period is over.
    for n in 0..5 {
        issue = issue
            .resolve(t(10 + n * 20))
            .unwrap_or_else(|| unreachable!());
        assert_eq!(issue.notice_for("d1", t(11 + n * 20), FLAP), None);
        issue = AlertIssue::raise(Some(&issue), &raised(&tenant, "boom"), t(20 + n * 20));
        assert_eq!(issue.status, AlertStatus::Open);
        assert_eq!(issue.opened_at, t(0), "the same episode");
        assert_eq!(
            issue.notice_for("d1", t(21 + n * 20), FLAP),
            None,
            "heard already"
        );
    }
    assert_eq!(issue.count, 6);
    // A destination that never heard it is told it open, once.
    assert_eq!(
        issue.notice_for("d2", t(120), FLAP),
        Some(AlertStatus::Open)
    );
    // It settles: the resolution is told once it has stayed clear for the period.
    issue = issue.resolve(t(130)).unwrap_or_else(|| unreachable!());
    assert_eq!(issue.notice_for("d1", t(159), FLAP), None);
    assert_eq!(
        issue.notice_for("d1", t(160), FLAP),
        Some(AlertStatus::Resolved)
    );
    issue.heard("d1", AlertStatus::Resolved, t(160));
    // Back after that: a new episode, told at once.
    let later = AlertIssue::raise(Some(&issue), &raised(&tenant, "boom"), t(200));
    assert_eq!(later.opened_at, t(200));
    assert_eq!(later.count, 1);
    assert_eq!(
        later.notice_for("d1", t(200), FLAP),
        Some(AlertStatus::Open)
    );
}

#[test]
fn a_failed_delivery_is_tried_again_with_back_off_then_recorded_as_failed() {
    let tenant = tenant();
    let mut issue = AlertIssue::raise(None, &raised(&tenant, "boom"), t(0));
    let mut now = t(0);
    for attempt in 1..MAX_DELIVERY_ATTEMPTS {
        assert_eq!(issue.notice_for("d1", now, FLAP), Some(AlertStatus::Open));
        issue.not_heard("d1", AlertStatus::Open, "503", now);
        let retry = issue.hearings["d1"].retry_at.unwrap_or(now);
        assert_eq!(retry - now, FIRST_RETRY * 2_i32.pow(attempt - 1));
        assert_eq!(
            issue.notice_for("d1", retry - Duration::seconds(1), FLAP),
            None
        );
        assert_eq!(issue.next_due(&["d1".into()], now, FLAP), Some(retry));
        now = retry;
    }
    issue.not_heard("d1", AlertStatus::Open, "503", now);
    let hearing = &issue.hearings["d1"];
    assert!(hearing.failed);
    assert_eq!(hearing.last_error.as_deref(), Some("503"));
    assert_eq!(issue.notice_for("d1", now + Duration::days(1), FLAP), None);
}

#[test]
fn destination_urls_must_be_https_and_public_unless_the_stack_is_local() {
    for refused in [
        "http://hooks.example.com/x",
        "https://127.0.0.1/x",
        "https://localhost:8443/x",
        "https://10.1.2.3/x",
        "https://172.16.0.1/x",
        "https://192.168.1.1/x",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/x",
        "https://[fd00::1]/x",
        "https://[::ffff:10.0.0.1]/x",
        "https://100.64.0.1/x",
        "https://user:pw@hooks.example.com/x",
        "https://metadata.google.internal/x",
        "https://intranet/x",
        "hooks.example.com/x",
        "https:///x",
        // Hosts an HTTP client reads as another (internal) host than a plain parse does.
        "https://127.1/x",
        "https://0x7f.0.0.1/x",
        "https://0177.0.0.1/x",
        "https://2130706433/x",
        "https://127.0.0.1\\.hooks.example.com/x",
        "https://hooks.example.com\\@127.0.0.1/x",
        "https://%31%32%37.0.0.1/x",
        "https://127\u{ff0e}0\u{ff0e}0\u{ff0e}1/x",
        "https://[::10.0.0.1]/x",
        "https://[64:ff9b::a9fe:a9fe]/x",
        "https://[2002:c0a8:0101::1]/x",
        "https://[fe80::1%25eth0]/x",
        "https://hooks.example.com:99999/x",
        "https://hooks.example.com:/x",
    ] {
        assert!(
            check_destination_url(refused, false).is_err(),
            "{refused} was accepted"
        );
    }
    assert_eq!(
        check_destination_url("https://hooks.slack.com/services/T0/B0/xyz", false).ok(),
        Some("https://hooks.slack.com".to_string())
    );
    assert!(check_destination_url("https://93.184.216.34:8443/hook", false).is_ok());
    assert!(check_destination_url("https://[2606:4700::1111]/hook", false).is_ok());
    assert!(check_destination_url("https://xn--bcher-kva.example/hook", false).is_ok());
    assert!(check_destination_url("https://hooks.example.com./hook", false).is_ok());
    assert!(check_destination_url("http://127.0.0.1:9000/hook", true).is_ok());
    assert!(check_destination_url("ftp://127.0.0.1/hook", true).is_err());
}

#[test]
fn a_notice_says_who_what_how_often_the_errors_what_to_do_and_links_the_subject() {
    let tenant = tenant();
    let mut issue = AlertIssue::raise(None, &raised(&tenant, "401 from the shop"), t(0));
    issue = AlertIssue::raise(Some(&issue), &raised(&tenant, "500 from the shop"), t(5));
    let notice = Notice::of(&issue, AlertStatus::Open, "https://api.example.com/");
    let text = notice.text();
    for part in [
        "shop-1",
        "schedule:",
        "2 time(s)",
        "401 from the shop",
        "500 from the shop",
        "What to do",
        "https://api.example.com/api/sync/schedules/x",
    ] {
        assert!(text.contains(part), "{part} missing from {text}");
    }
    let resolved = Notice::of(
        &issue.resolve(t(9)).unwrap_or_else(|| unreachable!()),
        AlertStatus::Resolved,
        "",
    );
    assert!(resolved.summary.contains("resolved"));
    assert_ne!(resolved.notice_id, notice.notice_id);
}

#[test]
fn kinds_and_statuses_read_back_from_their_names() {
    for kind in AlertKind::ALL {
        assert_eq!(kind.as_str().parse::<AlertKind>(), Ok(kind));
    }
    assert!("sometimes".parse::<AlertStatus>().is_err());
    assert_eq!(
        "webhook".parse::<DestinationKind>(),
        Ok(DestinationKind::Webhook)
    );
}

#[test]
fn a_destination_whose_opening_was_given_up_on_is_not_told_of_a_resolution_it_never_needed() {
    let tenant = tenant();
    let mut issue = AlertIssue::raise(None, &raised(&tenant, "boom"), t(0));
    for _ in 0..MAX_DELIVERY_ATTEMPTS {
        issue.not_heard("d1", AlertStatus::Open, "503", t(0));
    }
    issue.heard("d2", AlertStatus::Open, t(0));
    let mut resolved = issue.resolve(t(10)).unwrap_or_else(|| unreachable!());
    assert_eq!(resolved.notice_for("d1", t(41), FLAP), None);
    assert_eq!(
        resolved.notice_for("d2", t(41), FLAP),
        Some(AlertStatus::Resolved)
    );
    assert_eq!(
        resolved.next_due(&["d1".into()], t(41), FLAP),
        None,
        "nothing is due for it"
    );
    resolved.heard("d2", AlertStatus::Resolved, t(41));
    // A later episode is a new story: it is told of that one.
    let reopened = AlertIssue::raise(Some(&resolved), &raised(&tenant, "again"), t(500));
    assert_eq!(
        reopened.notice_for("d1", t(500), FLAP),
        Some(AlertStatus::Open)
    );
}

#[test]
fn the_tries_of_one_notice_do_not_count_against_the_next() {
    let tenant = tenant();
    let mut issue = AlertIssue::raise(None, &raised(&tenant, "boom"), t(0));
    issue.heard("d1", AlertStatus::Open, t(0));
    let mut resolved = issue.resolve(t(10)).unwrap_or_else(|| unreachable!());
    // The resolution fails all but once...
    for _ in 1..MAX_DELIVERY_ATTEMPTS {
        resolved.not_heard("d1", AlertStatus::Resolved, "503", t(10));
    }
    // ... the condition comes back (quietly, inside the flap period) and clears again: the
    // resolution still owed is due at once, with its tries counted on.
    let reopened = AlertIssue::raise(Some(&resolved), &raised(&tenant, "again"), t(12));
    let again = reopened.resolve(t(13)).unwrap_or_else(|| unreachable!());
    let hearing = &again.hearings["d1"];
    assert_eq!(hearing.attempts, MAX_DELIVERY_ATTEMPTS - 1);
    // An opening of a later episode, though, has tries of its own.
    let mut later = AlertIssue::raise(Some(&again), &raised(&tenant, "later"), t(600));
    later.hearings.insert(
        "d1".into(),
        Hearing {
            heard: Some(AlertStatus::Resolved),
            ..hearing.clone()
        },
    );
    assert_eq!(
        later.notice_for("d1", t(600), FLAP),
        Some(AlertStatus::Open)
    );
    later.not_heard("d1", AlertStatus::Open, "503", t(600));
    let hearing = &later.hearings["d1"];
    assert_eq!((hearing.attempts, hearing.failed), (1, false));
    assert_eq!(hearing.retry_at, Some(t(600) + FIRST_RETRY));
}

#[test]
fn a_condition_back_after_anyone_heard_it_resolve_is_a_new_episode_with_new_notice_ids() {
    let tenant = tenant();
    let mut issue = AlertIssue::raise(None, &raised(&tenant, "boom"), t(0));
    issue.heard("a", AlertStatus::Open, t(1));
    issue.heard("b", AlertStatus::Open, t(1));
    let mut resolved = issue.resolve(t(10)).unwrap_or_else(|| unreachable!());
    // A heard it resolve; B's resolution is still being tried.
    resolved.heard("a", AlertStatus::Resolved, t(40));
    resolved.not_heard("b", AlertStatus::Resolved, "503", t(40));
    let back = AlertIssue::raise(Some(&resolved), &raised(&tenant, "boom"), t(45));
    assert_eq!(back.opened_at, t(45), "a new episode");
    assert_eq!(back.notice_for("a", t(45), FLAP), Some(AlertStatus::Open));
    let first = Notice::of(&issue, AlertStatus::Open, "");
    let again = Notice::of(&back, AlertStatus::Open, "");
    assert_ne!(first.notice_id, again.notice_id);
    // And one told the resolution in the very sweep the condition came back in: the
    // record of it starts a new episode too.
    let mut continued = issue.clone();
    continued.count += 1;
    let split = continued.new_episode(t(50));
    assert_eq!(
        (split.opened_at, split.count, split.acked_at),
        (t(50), 1, None)
    );
}
