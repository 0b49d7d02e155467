//! Requests racing each other over HTTP, against moto: PUTs and DELETEs on one schedule,
//! connection deletes (cascading or not) against schedule creates. Whatever the
//! interleaving, afterwards no stored schedule outlives its connection, no EventBridge
//! schedule exists without its stored schedule, every EventBridge schedule carries the
//! latest stored version, and nothing fires for what is gone.

use futures::future::join_all;
use integration_tests::{api, create_body_for, schedule_invariant_violations, Api};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const TENANT: &str = "acme";

async fn call(api: &Api, method: Method, path: String, body: Option<Value>) -> StatusCode {
    api.send(method, &path, Some(TENANT), body).await.0
}

/// Creates `n` schedules for `connection` over the API; returns their ids.
async fn schedules(api: &Api, connection: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let (status, body) = api
            .send(
                Method::POST,
                "/api/sync/schedules",
                Some(TENANT),
                Some(create_body_for(connection)),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        ids.push(body["id"].as_str().unwrap_or_default().to_string());
    }
    ids
}

/// `n` schedule creates for `connection`, sent at once; their statuses.
async fn racing_creates(api: &Api, connection: &str, n: usize) -> Vec<StatusCode> {
    join_all((0..n).map(|_| {
        call(
            api,
            Method::POST,
            "/api/sync/schedules".to_string(),
            Some(create_body_for(connection)),
        )
    }))
    .await
}

/// Fires what the emulated EventBridge holds over the next hour and returns the names that
/// fired; each must still have a stored schedule.
async fn fired_for_missing_schedules(api: &Api) -> Vec<String> {
    let firer =
        infra::firer::LocalScheduler::new(&api.aws.sdk, api.aws.resources.schedule_group.clone());
    let now = chrono::Utc::now();
    let fired = firer
        .fire_due(now, now + chrono::Duration::hours(1))
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let mut missing = Vec::new();
    for f in fired {
        let path = format!("/api/sync/schedules/{}", f.schedule);
        if call(api, Method::GET, path, None).await != StatusCode::OK {
            missing.push(f.schedule);
        }
    }
    missing
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn puts_and_deletes_racing_on_the_same_schedules_leave_no_trigger_behind() {
    let api = api().await;
    let connection = api.connection(TENANT).await;
    let ids = schedules(&api, &connection, 24).await;
    // Every schedule gets two PUTs and a DELETE at the same moment, all schedules at once.
    let mut requests = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let path = format!("/api/sync/schedules/{id}");
        // Half the deletes go first, half last, so both orders meet.
        let delete = call(&api, Method::DELETE, path.clone(), None);
        let pause = call(
            &api,
            Method::PUT,
            path.clone(),
            Some(json!({"is_active": false})),
        );
        let every_minute = call(
            &api,
            Method::PUT,
            path.clone(),
            Some(json!({"cron_expression": "* * * * *", "is_active": true})),
        );
        if i % 2 == 0 {
            requests.push(Box::pin(async move {
                let (d, p, m) = futures::join!(delete, pause, every_minute);
                vec![d, p, m]
            })
                as std::pin::Pin<
                    Box<dyn std::future::Future<Output = Vec<StatusCode>> + Send>,
                >);
        } else {
            requests.push(Box::pin(async move {
                let (p, m, d) = futures::join!(pause, every_minute, delete);
                vec![d, p, m]
            }));
        }
    }
    let outcomes = join_all(requests).await;
    for statuses in &outcomes {
        for s in statuses {
            assert!(
                [StatusCode::OK, StatusCode::CONFLICT, StatusCode::NOT_FOUND].contains(s),
                "{statuses:?}"
            );
        }
    }
    let violations = schedule_invariant_violations(&api.aws).await;
    assert!(violations.is_empty(), "{violations:#?}");
    assert!(fired_for_missing_schedules(&api).await.is_empty());
    // A schedule whose DELETE answered 200 can be neither read nor deleted again.
    for (id, statuses) in ids.iter().zip(&outcomes) {
        if statuses[0] == StatusCode::OK {
            let path = format!("/api/sync/schedules/{id}");
            assert_eq!(
                call(&api, Method::GET, path, None).await,
                StatusCode::NOT_FOUND
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn schedules_created_while_their_connection_is_deleted_never_outlive_it() {
    let api = api().await;
    for round in 0..10 {
        let connection = api.connection(TENANT).await;
        // Two schedules already there, so the cascade has work to do.
        schedules(&api, &connection, 2).await;
        let cascade = call(
            &api,
            Method::DELETE,
            format!("/api/connections/{connection}?cascade=true"),
            None,
        );
        let creates = racing_creates(&api, &connection, 4);
        let (deleted, created) = futures::join!(cascade, creates);
        assert_eq!(deleted, StatusCode::OK, "round {round}");
        for status in created {
            assert!(
                [StatusCode::CREATED, StatusCode::BAD_REQUEST].contains(&status),
                "round {round}: {status}"
            );
        }
    }
    let violations = schedule_invariant_violations(&api.aws).await;
    assert!(violations.is_empty(), "{violations:#?}");
    assert!(fired_for_missing_schedules(&api).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_plain_connection_delete_racing_schedule_creates_either_refuses_or_leaves_nothing() {
    let api = api().await;
    for round in 0..10 {
        let connection = api.connection(TENANT).await;
        let delete = call(
            &api,
            Method::DELETE,
            format!("/api/connections/{connection}"),
            None,
        );
        let creates = racing_creates(&api, &connection, 3);
        let (deleted, created) = futures::join!(delete, creates);
        let made = created
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count();
        match deleted {
            // The delete went first: every create was refused.
            StatusCode::OK => assert_eq!(made, 0, "round {round}: {created:?}"),
            // A create went first: the delete is refused and the connection stays.
            StatusCode::CONFLICT => assert!(made > 0, "round {round}"),
            other => panic!("round {round}: delete answered {other}"),
        }
    }
    let violations = schedule_invariant_violations(&api.aws).await;
    assert!(violations.is_empty(), "{violations:#?}");
}
