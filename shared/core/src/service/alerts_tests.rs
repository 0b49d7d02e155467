//! Alerts against in-memory fakes: one issue per condition, told once on opening and once
//! on resolution to every destination, whatever the writes that interleave, the
//! destinations that fail or the sweeps that run at once.

use super::*;
use chrono::TimeZone;
use std::sync::atomic::Ordering;

use crate::clock::FixedClock;
use crate::domain::{ConnectionId, EntityType, ScheduleId, MAX_DELIVERY_ATTEMPTS};
use crate::memory::{MemoryAlerts, MemoryReceiver, MemorySealer, MemoryTopic};

struct World {
    alerts: Arc<MemoryAlerts>,
    receiver: Arc<MemoryReceiver>,
    topic: Arc<MemoryTopic>,
    clock: Arc<FixedClock>,
    raiser: AlertRaiser,
    console: AlertConsole,
    delivery: AlertDelivery,
    tenant: TenantId,
}

fn t(minute: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 6, 9, 0, 0)
        .single()
        .unwrap_or_default()
        + Duration::minutes(minute)
}

fn world() -> World {
    let alerts = Arc::new(MemoryAlerts::default());
    let receiver = Arc::new(MemoryReceiver::default());
    let topic = Arc::new(MemoryTopic::default());
    let sealer = Arc::new(MemorySealer::default());
    let clock = Arc::new(FixedClock::new(t(0)));
    World {
        raiser: AlertRaiser::new(alerts.clone(), clock.clone()),
        console: AlertConsole::new(
            alerts.clone(),
            alerts.clone(),
            sealer.clone(),
            clock.clone(),
            true,
        ),
        delivery: AlertDelivery {
            issues: alerts.clone(),
            destinations: alerts.clone(),
            opener: sealer,
            http: receiver.clone(),
            topic: Some(topic.clone()),
            clock: clock.clone(),
            settings: DeliverySettings {
                api_base: "https://api.example.com".into(),
                allow_internal: true,
                ..DeliverySettings::default()
            },
        },
        alerts,
        receiver,
        topic,
        clock,
        tenant: TenantId::parse("shop-1").unwrap_or_else(|_| unreachable!()),
    }
}

fn stream() -> AlertSubject {
    AlertSubject::Stream(ConnectionId::new_random(), EntityType::Orders)
}

impl World {
    async fn raise(&self, subject: AlertSubject, error: &str) {
        let raised = Raised {
            tenant: &self.tenant,
            subject,
            kind: AlertKind::RunFailed,
            error,
            link: Some("/api/sync/runs/r1".into()),
        };
        assert_eq!(self.raiser.raise(raised).await, Ok(()));
    }

    async fn destination(
        &self,
        kind: DestinationKind,
        url: Option<&str>,
    ) -> (AlertDestination, Option<String>) {
        self.console
            .add_destination(
                &self.tenant,
                NewDestination {
                    kind,
                    name: "ops".into(),
                    url: url.map(str::to_string),
                    secret: None,
                },
            )
            .await
            .unwrap_or_else(|e| panic!("destination not added: {e}"))
    }

    async fn sweep(&self) -> DeliveryReport {
        let mut report = DeliveryReport::default();
        self.delivery.deliver(&mut report).await;
        report
    }

    fn received(&self, prefix: &str) -> Vec<serde_json::Value> {
        self.receiver.bodies(prefix)
    }
}

#[tokio::test]
async fn a_failure_that_persists_for_many_runs_is_told_once_and_its_recovery_once_to_every_destination(
) {
    let w = world();
    w.destination(DestinationKind::Slack, Some("http://127.0.0.1:9/slack"))
        .await;
    let (_, secret) = w
        .destination(DestinationKind::Webhook, Some("http://127.0.0.1:9/hook"))
        .await;
    w.destination(DestinationKind::Sns, None).await;
    let subject = stream();
    for n in 0..12 {
        w.clock.set(t(n * 15));
        w.raise(subject, &format!("500 from the shop ({n})")).await;
        let report = w.sweep().await;
        assert!(report.errors.is_empty(), "{:?}", report.errors);
    }
    assert_eq!(w.received("http://127.0.0.1:9/slack").len(), 1);
    let hooks = w.received("http://127.0.0.1:9/hook");
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0]["event"], "open");
    assert_eq!(hooks[0]["kind"], "run_failed");
    assert_eq!(hooks[0]["link"], "https://api.example.com/api/sync/runs/r1");
    assert_eq!(w.topic.published.lock().map(|p| p.len()).unwrap_or(0), 1);

    w.clock.set(t(200));
    assert_eq!(
        w.raiser
            .resolve(&w.tenant, subject, AlertKind::RunFailed)
            .await,
        Ok(())
    );
    // Not while it might still flap back...
    assert_eq!(w.sweep().await.sent, 0);
    // ... but once it has stayed clear for the flap period.
    w.clock.set(t(230));
    w.sweep().await;
    w.sweep().await;
    let slack = w.received("http://127.0.0.1:9/slack");
    assert_eq!(slack.len(), 2);
    assert!(slack[1]["text"]
        .as_str()
        .unwrap_or_default()
        .contains("resolved"));
    let hooks = w.received("http://127.0.0.1:9/hook");
    assert_eq!(hooks.len(), 2);
    assert_eq!(hooks[1]["event"], "resolved");
    assert_eq!(hooks[1]["count"], 12);
    assert_eq!(w.topic.published.lock().map(|p| p.len()).unwrap_or(0), 2);
    // Nothing is left to tell: the issue has left both indexes.
    assert!(w
        .alerts
        .due(t(10_000), 10)
        .await
        .unwrap_or_default()
        .is_empty());
    assert!(w.alerts.open().await.unwrap_or_default().is_empty());

    // The webhook's signature verifies with the secret answered at its creation.
    let received = w
        .receiver
        .received
        .lock()
        .map(|r| r.clone())
        .unwrap_or_default();
    let (_, headers, body) = received
        .iter()
        .find(|(url, _, _)| url.ends_with("/hook"))
        .cloned()
        .unwrap_or_default();
    let header = headers
        .iter()
        .find(|(k, _)| k == "x-sync-signature")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let (ts, sig) = header
        .trim_start_matches("t=")
        .split_once(",v1=")
        .unwrap_or_default();
    let mut signed = format!("{ts}.").into_bytes();
    signed.extend_from_slice(&body);
    let key = secret.unwrap_or_default();
    assert_eq!(sig, hmac_sha256_hex(key.as_bytes(), &signed));
    assert_ne!(
        hmac_sha256_hex(b"another secret of 32 characters!", &signed),
        sig
    );
}

#[tokio::test]
async fn a_failure_cleared_before_the_sweep_reaches_nobody() {
    let w = world();
    w.destination(DestinationKind::Slack, Some("http://127.0.0.1:9/slack"))
        .await;
    let subject = stream();
    w.raise(subject, "timed out").await;
    assert_eq!(
        w.raiser
            .resolve(&w.tenant, subject, AlertKind::RunFailed)
            .await,
        Ok(())
    );
    w.sweep().await;
    assert!(w.received("").is_empty());
    assert!(w
        .alerts
        .due(t(10_000), 10)
        .await
        .unwrap_or_default()
        .is_empty());
}

#[tokio::test]
async fn a_failing_destination_is_retried_with_back_off_without_holding_up_the_others() {
    let w = world();
    w.destination(DestinationKind::Slack, Some("http://127.0.0.1:9/slack"))
        .await;
    w.raise(stream(), "boom").await;
    w.receiver.status.store(503, Ordering::SeqCst);
    let report = w.sweep().await;
    assert_eq!((report.sent, report.failed), (0, 1));
    assert_eq!(w.topic.published.lock().map(|p| p.len()).unwrap_or(0), 0);
    // Not again before its back-off...
    w.clock.set(t(4));
    assert_eq!(w.sweep().await.failed, 0);
    // ... then again, and it reaches the destination once it is back.
    w.receiver.status.store(200, Ordering::SeqCst);
    w.clock.set(t(5));
    assert_eq!(w.sweep().await.sent, 1);
    w.clock.set(t(60));
    assert_eq!(w.sweep().await.sent, 0);
    let issue = &w.alerts.all()[0];
    let hearing = issue.hearings.values().next().cloned();
    assert_eq!(hearing.and_then(|h| h.heard), Some(AlertStatus::Open));
    assert_eq!(
        w.received("")
            .iter()
            .filter(|b| b["text"].is_string())
            .count(),
        2,
        "the refused try and the one that passed"
    );
}

#[tokio::test]
async fn a_destination_down_for_good_is_recorded_as_failed_and_left() {
    let w = world();
    w.destination(DestinationKind::Slack, Some("http://127.0.0.1:9/slack"))
        .await;
    w.raise(stream(), "boom").await;
    w.receiver.down.store(true, Ordering::SeqCst);
    for day in 0..3 {
        for step in 0..(24 * 12) {
            w.clock.set(t(day * 1440 + step * 5));
            w.sweep().await;
        }
    }
    let issue = &w.alerts.all()[0];
    let hearing = issue
        .hearings
        .values()
        .next()
        .cloned()
        .unwrap_or_else(|| unreachable!());
    assert!(hearing.failed);
    assert!(hearing.last_error.unwrap_or_default().contains("connect"));
    assert_eq!(issue.due_at, None);
    assert_eq!(
        issue.status,
        AlertStatus::Open,
        "it is still listed as open"
    );
}

#[tokio::test]
async fn two_sweeps_at_once_tell_a_destination_once() {
    let w = world();
    w.destination(DestinationKind::Slack, Some("http://127.0.0.1:9/slack"))
        .await;
    w.raise(stream(), "boom").await;
    let (mut a, mut b) = (DeliveryReport::default(), DeliveryReport::default());
    futures::join!(w.delivery.deliver(&mut a), w.delivery.deliver(&mut b));
    w.delivery.deliver(&mut a).await;
    assert_eq!(a.sent + b.sent, 1);
    assert_eq!(w.received("").len(), 1);
}

#[tokio::test]
async fn a_raise_that_meets_a_concurrent_write_is_tried_again_and_counts() {
    let w = world();
    let subject = stream();
    w.raise(subject, "first").await;
    w.alerts.interleave.store(1, Ordering::SeqCst);
    w.raise(subject, "second").await;
    let issue = &w.alerts.all()[0];
    // Its own count, plus the one the interleaved writer added.
    assert_eq!(issue.count, 3);
    assert_eq!(issue.last_error, "second");
    w.alerts.interleave.store(10, Ordering::SeqCst);
    let raised = Raised {
        tenant: &w.tenant,
        subject,
        kind: AlertKind::RunFailed,
        error: "third",
        link: None,
    };
    assert_eq!(w.raiser.raise(raised).await, Err(StoreError::Conflict));
}

#[tokio::test]
async fn acknowledging_silences_an_issue_for_destinations_not_yet_told() {
    let w = world();
    w.raise(stream(), "boom").await;
    let id = w.alerts.all()[0].id.clone();
    let acked = w.console.ack(&w.tenant, &id, "ana@shop").await;
    assert!(acked.is_ok_and(|a| a.acked_by.as_deref() == Some("ana@shop")));
    w.destination(DestinationKind::Slack, Some("http://127.0.0.1:9/slack"))
        .await;
    w.sweep().await;
    assert!(w.received("").is_empty());
    let other = TenantId::parse("shop-2").unwrap_or_else(|_| unreachable!());
    assert!(matches!(
        w.console.ack(&other, &id, "x").await,
        Err(ServiceError::NotFound(_))
    ));
    let subject = w.alerts.all()[0].clone();
    let _ = w.raiser.resolve_id(&w.tenant, &subject.id).await;
    assert!(matches!(
        w.console.ack(&w.tenant, &id, "x").await,
        Err(ServiceError::Conflict(_))
    ));
}

#[tokio::test]
async fn destinations_are_checked_sealed_and_never_shown_whole() {
    let w = world();
    let strict = AlertConsole::new(
        w.alerts.clone(),
        w.alerts.clone(),
        Arc::new(MemorySealer::default()),
        w.clock.clone(),
        false,
    );
    let new = |kind, url: Option<&str>, secret: Option<&str>| NewDestination {
        kind,
        name: "ops".into(),
        url: url.map(str::to_string),
        secret: secret.map(str::to_string),
    };
    for (bad, field) in [
        (
            new(
                DestinationKind::Slack,
                Some("http://hooks.example.com/x"),
                None,
            ),
            "url",
        ),
        (
            new(
                DestinationKind::Slack,
                Some("https://169.254.169.254/x"),
                None,
            ),
            "url",
        ),
        (new(DestinationKind::Slack, None, None), "url"),
        (
            new(
                DestinationKind::Slack,
                Some("https://hooks.example.com/x"),
                Some("0123456789abcdef"),
            ),
            "secret",
        ),
        (
            new(
                DestinationKind::Webhook,
                Some("https://hooks.example.com/x"),
                Some("short"),
            ),
            "secret",
        ),
        (
            new(
                DestinationKind::Sns,
                Some("https://hooks.example.com/x"),
                None,
            ),
            "url",
        ),
    ] {
        match strict.add_destination(&w.tenant, bad).await {
            Err(ServiceError::Invalid { field: f, .. }) => assert_eq!(f, field),
            other => panic!("expected a refusal of {field}, got {other:?}"),
        }
    }
    assert!(AlertDestinations::list(&*w.alerts, &w.tenant)
        .await
        .unwrap_or_default()
        .is_empty());
    let (made, secret) = strict
        .add_destination(
            &w.tenant,
            new(
                DestinationKind::Webhook,
                Some("https://hooks.example.com/a/b?token=xyz"),
                None,
            ),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(made.url_host.as_deref(), Some("https://hooks.example.com"));
    assert_eq!(secret.map(|s| s.len()), Some(64));
    let sealed = made.sealed.clone().unwrap_or_else(|| unreachable!());
    assert!(!String::from_utf8_lossy(&sealed.ciphertext).contains("token=xyz"));
    let (_, given) = strict
        .add_destination(
            &w.tenant,
            new(
                DestinationKind::Webhook,
                Some("https://hooks.example.com/c"),
                Some("a secret of my own choosing"),
            ),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(given, None, "a secret the user gave is not answered back");
    strict
        .add_destination(&w.tenant, new(DestinationKind::Sns, None, None))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        strict
            .add_destination(&w.tenant, new(DestinationKind::Sns, None, None))
            .await,
        Err(ServiceError::Conflict(_))
    ));
    assert!(strict.remove_destination(&w.tenant, &made.id).await.is_ok());
    assert!(matches!(
        strict.remove_destination(&w.tenant, &made.id).await,
        Err(ServiceError::NotFound(_))
    ));
}

#[tokio::test]
async fn a_schedule_subject_and_a_stream_subject_are_separate_issues() {
    let w = world();
    w.raise(stream(), "a").await;
    let raised = Raised {
        tenant: &w.tenant,
        subject: AlertSubject::Schedule(ScheduleId::new_random()),
        kind: AlertKind::FailingSchedule,
        error: "b",
        link: None,
    };
    assert_eq!(w.raiser.raise(raised).await, Ok(()));
    let open = w
        .console
        .list(&w.tenant, Some(AlertStatus::Open))
        .await
        .unwrap_or_default();
    assert_eq!(open.len(), 2);
    assert!(w
        .console
        .list(&w.tenant, Some(AlertStatus::Resolved))
        .await
        .unwrap_or_default()
        .is_empty());
}

#[tokio::test]
async fn a_destination_added_while_an_issue_is_open_is_told_of_it() {
    let w = world();
    w.destination(DestinationKind::Slack, Some("http://127.0.0.1:9/first"))
        .await;
    w.raise(stream(), "boom").await;
    assert_eq!(w.sweep().await.sent, 1);
    // Everyone has heard: nothing is due any more...
    w.clock.set(t(30));
    assert_eq!(w.sweep().await.sent, 0);
    // ... until a destination joins mid-episode: it hears the opening, once.
    w.destination(DestinationKind::Slack, Some("http://127.0.0.1:9/second"))
        .await;
    assert_eq!(w.sweep().await.sent, 1);
    w.clock.set(t(60));
    assert_eq!(w.sweep().await.sent, 0);
    assert_eq!(w.received("http://127.0.0.1:9/second").len(), 1);
    assert_eq!(w.received("http://127.0.0.1:9/first").len(), 1);
}

#[tokio::test]
async fn open_issues_everyone_has_heard_never_crowd_out_one_that_is_due() {
    let w = world();
    w.destination(DestinationKind::Slack, Some("http://127.0.0.1:9/slack"))
        .await;
    // More open issues than a sweep reads, all told...
    for _ in 0..(MAX_DUE_ISSUES + 20) {
        w.raise(stream(), "boom").await;
    }
    let mut told = 0;
    for minute in 0..3 {
        w.clock.set(t(minute));
        told += w.sweep().await.sent;
    }
    assert_eq!(told, MAX_DUE_ISSUES as u64 + 20);
    // ... and still open: a new one is told at the next sweep.
    w.clock.set(t(10));
    w.raise(stream(), "the new one").await;
    assert_eq!(w.sweep().await.sent, 1);
    let last = w.received("http://127.0.0.1:9/slack");
    assert!(last
        .last()
        .and_then(|b| b["text"].as_str())
        .is_some_and(|text| text.contains("the new one")));
}

#[tokio::test]
async fn a_round_out_of_time_sends_nothing_more_and_leaves_the_rest_due() {
    let mut w = world();
    w.destination(DestinationKind::Slack, Some("http://127.0.0.1:9/slack"))
        .await;
    w.raise(stream(), "boom").await;
    w.delivery.settings.budget = std::time::Duration::ZERO;
    assert_eq!(w.sweep().await.sent, 0);
    assert!(w.received("").is_empty());
    // The next sweep, with time, tells it.
    w.delivery.settings.budget = std::time::Duration::from_secs(45);
    assert_eq!(w.sweep().await.sent, 1);
}

#[tokio::test]
async fn a_table_that_fails_as_the_hearing_is_recorded_is_tried_again_so_nobody_hears_twice() {
    let w = world();
    w.destination(DestinationKind::Slack, Some("http://127.0.0.1:9/slack"))
        .await;
    w.raise(stream(), "boom").await;
    // The claim goes through; the record of who heard fails once.
    w.alerts.fail_put_in.store(2, Ordering::SeqCst);
    let report = w.sweep().await;
    assert_eq!(report.sent, 1);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    for minute in [11, 30, 120] {
        w.clock.set(t(minute));
        assert_eq!(w.sweep().await.sent, 0);
    }
    assert_eq!(w.received("").len(), 1);
}

#[tokio::test]
async fn an_opening_given_up_on_is_never_followed_by_its_resolution() {
    let w = world();
    w.destination(DestinationKind::Slack, Some("http://127.0.0.1:9/slack"))
        .await;
    let subject = stream();
    w.raise(subject, "boom").await;
    w.receiver.status.store(503, Ordering::SeqCst);
    for day in 0..2 {
        for step in 0..(24 * 12) {
            w.clock.set(t(day * 1440 + step * 5));
            w.sweep().await;
        }
    }
    let refused = w.received("").len();
    assert_eq!(refused, MAX_DELIVERY_ATTEMPTS as usize);
    w.receiver.status.store(200, Ordering::SeqCst);
    let _ = w
        .raiser
        .resolve(&w.tenant, subject, AlertKind::RunFailed)
        .await;
    w.clock.set(t(3000));
    assert_eq!(
        w.sweep().await.sent,
        0,
        "a resolution of what it never heard"
    );
    assert_eq!(w.received("").len(), refused);
}

/// An HTTP client that, on its first send, has a person add another destination (as the API
/// does while a sweep is telling), then sends.
struct AddsADestinationMidSend {
    inner: Arc<MemoryReceiver>,
    console: AlertConsole,
    tenant: TenantId,
    added: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl HttpClient for AddsADestinationMidSend {
    async fn send(
        &self,
        request: HttpRequest,
    ) -> Result<crate::ports::HttpResponse, crate::ports::TransportError> {
        if !self.added.swap(true, Ordering::SeqCst) {
            let added = self
                .console
                .add_destination(
                    &self.tenant,
                    NewDestination {
                        kind: DestinationKind::Slack,
                        name: "late".into(),
                        url: Some("http://127.0.0.1:9/late".into()),
                        secret: None,
                    },
                )
                .await;
            assert!(added.is_ok(), "{added:?}");
        }
        self.inner.send(request).await
    }
}

#[tokio::test]
async fn a_destination_added_while_a_sweep_is_telling_is_told_by_the_next() {
    let mut w = world();
    w.destination(DestinationKind::Slack, Some("http://127.0.0.1:9/first"))
        .await;
    w.delivery.http = Arc::new(AddsADestinationMidSend {
        inner: w.receiver.clone(),
        console: w.console.clone(),
        tenant: w.tenant.clone(),
        added: Default::default(),
    });
    w.raise(stream(), "boom").await;
    assert_eq!(w.sweep().await.sent, 1);
    w.clock.set(t(1));
    assert_eq!(w.sweep().await.sent, 1, "the one added meanwhile");
    w.clock.set(t(30));
    assert_eq!(w.sweep().await.sent, 0);
    assert_eq!(w.received("http://127.0.0.1:9/late").len(), 1);
    assert_eq!(w.received("http://127.0.0.1:9/first").len(), 1);
}

#[tokio::test]
async fn two_sns_destinations_asked_for_at_once_are_one() {
    let w = world();
    let sns = || NewDestination {
        kind: DestinationKind::Sns,
        name: "topic".into(),
        url: None,
        secret: None,
    };
    let (a, b) = futures::join!(
        w.console.add_destination(&w.tenant, sns()),
        w.console.add_destination(&w.tenant, sns())
    );
    assert_eq!(
        [a.is_ok(), b.is_ok()].iter().filter(|ok| **ok).count(),
        1,
        "{a:?} {b:?}"
    );
    assert!(matches!(
        a.err().or(b.err()),
        Some(ServiceError::Conflict(_))
    ));
}

/// A failure log whose look for quarantined records lets another run quarantine one (and
/// raise the stream's alert) first, as a run on another worker may.
struct QuarantinedMeanwhile {
    raiser: AlertRaiser,
    run: Run,
}

#[async_trait::async_trait]
impl FailureLog for QuarantinedMeanwhile {
    async fn keep(
        &self,
        _: &[crate::domain::FailedRecord],
    ) -> Result<(), crate::ports::StateError> {
        Ok(())
    }
    async fn forget(&self, _: SyncKey, _: &[String]) -> Result<(), crate::ports::StateError> {
        Ok(())
    }
    async fn due(
        &self,
        _: SyncKey,
        _: DateTime<Utc>,
        _: usize,
    ) -> Result<Vec<crate::domain::FailedRecord>, crate::ports::StateError> {
        let raised = self
            .raiser
            .quarantine_after(&self.run, &crate::memory::MemoryFailures::default())
            .await;
        assert_eq!(raised, Ok(()));
        // (What this run saw: nothing left, before the other run's record was kept.)
        Ok(Vec::new())
    }
}

#[tokio::test]
async fn a_run_that_finds_no_quarantined_record_left_does_not_resolve_one_quarantined_meanwhile() {
    let w = world();
    let connection = ConnectionId::new_random();
    let mut quarantining = crate::fixtures::run(&w.tenant, connection, "other", t(0));
    quarantining.entity_type = EntityType::Orders;
    quarantining.status = RunStatus::Partial;
    quarantining.failures = vec![crate::domain::RecordFailure {
        record_id: "1042".into(),
        flow_id: None,
        error: "closed period".into(),
        error_code: "quickbooks_6210".into(),
        retryable: false,
        attempts: 5,
        quarantined: true,
    }];
    let opened = w
        .raiser
        .quarantine_after(&quarantining, &crate::memory::MemoryFailures::default())
        .await;
    assert_eq!(opened, Ok(()));
    let mut clean = crate::fixtures::run(&w.tenant, connection, "clean", t(1));
    clean.entity_type = EntityType::Orders;
    clean.status = RunStatus::Succeeded;
    w.clock.set(t(2));
    let meanwhile = QuarantinedMeanwhile {
        raiser: w.raiser.clone(),
        run: quarantining,
    };
    let settled = w.raiser.quarantine_after(&clean, &meanwhile).await;
    assert_eq!(settled, Ok(()));
    let issues = w.alerts.all();
    assert_eq!(issues.len(), 1, "{issues:#?}");
    assert_eq!(issues[0].status, AlertStatus::Open, "{issues:#?}");
    assert_eq!(issues[0].count, 2);
    // With nothing quarantined meanwhile, the same run resolves it.
    let resolved = w
        .raiser
        .quarantine_after(&clean, &crate::memory::MemoryFailures::default())
        .await;
    assert_eq!(resolved, Ok(()));
    assert_eq!(w.alerts.all()[0].status, AlertStatus::Resolved);
}
