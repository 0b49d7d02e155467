//! The schedule API over real HTTP, through the local gateway, against moto: what a client
//! of the deployed API sees, and what it leaves in DynamoDB and EventBridge.

use aws_sdk_scheduler::types::ScheduleState;
use infra::jwt::LocalJwt;
use integration_tests::{api, create_body, token};
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test]
async fn crud_over_http_keeps_eventbridge_in_step_with_the_table() {
    let api = api().await;
    let id = api.create("acme").await;
    assert_eq!(
        api.eventbridge_state(&id).await,
        Some(ScheduleState::Enabled)
    );
    // The schedule and its connection.
    assert_eq!(api.aws.item_count().await, 2);

    let path = format!("/api/sync/schedules/{id}");
    let (status, body) = api
        .send(
            reqwest::Method::PUT,
            &path,
            Some("acme"),
            Some(json!({"is_active": false, "timezone": "Europe/London"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        api.eventbridge_state(&id).await,
        Some(ScheduleState::Disabled)
    );
    let (_, got) = api
        .send(reqwest::Method::GET, &path, Some("acme"), None)
        .await;
    assert_eq!(got["timezone"], "Europe/London");
    assert_eq!(got["schedule_expression"], "cron(0 9 ? * MON-FRI *)");

    let (status, list) = api
        .send(
            reqwest::Method::GET,
            "/api/sync/schedules",
            Some("acme"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().map(Vec::len), Some(1));

    let (status, body) = api
        .send(reqwest::Method::DELETE, &path, Some("acme"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(api.eventbridge_state(&id).await, None);
    assert_eq!(api.aws.item_count().await, 1);
}

#[tokio::test]
async fn the_gateway_checks_tokens_like_the_authorizer() {
    let api = api().await;
    let jwt = LocalJwt::from_env();
    let now = chrono::Utc::now().timestamp();
    let expired = jwt.token("tenant_id", "acme", now - 7_200, 60);
    let no_tenant = jwt.token("other_claim", "acme", now, 600);
    for auth in [
        None,
        Some("Bearer nonsense".to_string()),
        Some(format!("Bearer {expired}")),
        Some(format!("Basic {}", token("acme"))),
    ] {
        let mut req = api
            .http
            .post(api.url("/api/sync/schedules"))
            .json(&create_body());
        if let Some(a) = &auth {
            req = req.header("authorization", a);
        }
        let response = req.send().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
    }
    // A valid token without the tenant claim passes the authorizer but not the handler.
    let response = api
        .http
        .post(api.url("/api/sync/schedules"))
        .bearer_auth(no_tenant)
        .json(&create_body())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await.unwrap_or_default();
    assert_eq!(body["error"]["code"], "unauthorized");
    assert_eq!(api.aws.item_count().await, 0);
}

/// A token signed with the local key carrying `claims` (merged over a valid set).
fn signed_with(claims: Value) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let jwt = LocalJwt::from_env();
    let now = chrono::Utc::now().timestamp();
    let mut all = json!({"iss": jwt.issuer, "aud": jwt.audience, "exp": now + 600});
    if let (Some(a), Some(c)) = (all.as_object_mut(), claims.as_object()) {
        a.extend(c.clone());
    }
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(json!({"alg": "HS256", "typ": "JWT"}).to_string()),
        URL_SAFE_NO_PAD.encode(all.to_string())
    );
    let secret = std::env::var("SYNC_LOCAL_JWT_SECRET")
        .unwrap_or_else(|_| "local-development-secret-not-for-production".into());
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    mac.update(input.as_bytes());
    format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

#[tokio::test]
async fn a_tenant_claim_that_is_not_a_plain_string_is_refused_and_nbf_is_honoured() {
    let api = api().await;
    let now = chrono::Utc::now().timestamp();
    let refused = [
        json!({"tenant_id": null}),
        json!({"tenant_id": true}),
        json!({"tenant_id": ["acme"]}),
        json!({"tenant_id": {"a": 1}}),
        json!({"tenant_id": ""}),
        json!({"tenant_id": "null"}),
        json!({"tenant_id": "acme", "nbf": now + 300}),
    ];
    for claims in refused {
        let (status, body) = {
            let response = api
                .http
                .get(api.url("/api/sync/schedules"))
                .bearer_auth(signed_with(claims.clone()))
                .send()
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let status = response.status();
            (status, response.text().await.unwrap_or_default())
        };
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{claims}: {body}");
    }
    // The scheme is case-insensitive, and a token past its nbf is fine.
    for scheme in ["bearer", "BEARER", "BeArEr"] {
        let response = api
            .http
            .get(api.url("/api/sync/schedules"))
            .header(
                "authorization",
                format!(
                    "{scheme} {}",
                    signed_with(json!({"tenant_id": "acme", "nbf": now - 5}))
                ),
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(response.status(), StatusCode::OK, "{scheme}");
    }
}

#[tokio::test]
async fn tenants_cannot_reach_each_others_schedules() {
    let api = api().await;
    let id = api.create("acme").await;
    let path = format!("/api/sync/schedules/{id}");
    for (method, body) in [
        (reqwest::Method::GET, None),
        (reqwest::Method::PUT, Some(json!({"is_active": false}))),
        (reqwest::Method::DELETE, None),
    ] {
        let (status, got) = api.send(method.clone(), &path, Some("globex"), body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method}: {got}");
    }
    let (_, list) = api
        .send(
            reqwest::Method::GET,
            "/api/sync/schedules",
            Some("globex"),
            None,
        )
        .await;
    assert_eq!(list, json!([]));
    assert_eq!(
        api.eventbridge_state(&id).await,
        Some(ScheduleState::Enabled)
    );
    let (status, _) = api
        .send(reqwest::Method::GET, &path, Some("acme"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn client_errors_over_http_have_json_bodies_and_write_nothing() {
    let api = api().await;
    let post = |body: reqwest::Body, content_type: &'static str| {
        api.http
            .post(api.url("/api/sync/schedules"))
            .bearer_auth(token("acme"))
            .header("content-type", content_type)
            .body(body)
    };
    let cases: Vec<(reqwest::RequestBuilder, StatusCode, &str)> = vec![
        (
            post("{not json".into(), "application/json"),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            post(vec![0xff, 0xfe, 0x00].into(), "application/json"),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            post(create_body().to_string().into(), "text/plain"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            post(
                format!("{{\"pad\":\"{}\"}}", "x".repeat(70_000)).into(),
                "application/json",
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            api.http
                .patch(api.url("/api/sync/schedules"))
                .bearer_auth(token("acme")),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            api.http
                .get(api.url("/api/sync/schedules/8d2f5b7a-1c3e-4f60-9a8b-2e4d6f8a0b1c"))
                .bearer_auth(token("acme")),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for (req, status, code) in cases {
        let response = req.send().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(response.status(), status);
        assert_eq!(
            response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/json")
        );
        let body: Value = response.json().await.unwrap_or_default();
        assert_eq!(body["error"]["code"], code, "{body}");
    }
    let mut bad = create_body();
    bad["cron_expression"] = json!("0 9 1 * 1");
    let (status, body) = api
        .send(
            reqwest::Method::POST,
            "/api/sync/schedules",
            Some("acme"),
            Some(bad),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["field"], "cron_expression");
    assert_eq!(api.aws.item_count().await, 0);
}

#[tokio::test]
async fn preview_over_http_stores_nothing() {
    let api = api().await;
    let (status, body) = api
        .send(
            reqwest::Method::POST,
            "/api/sync/schedules/preview",
            Some("acme"),
            Some(json!({"cron_expression": "cron(30 1 * * ? *)", "timezone": "America/Edmonton", "after": "2026-10-31T00:00:00Z", "count": 3})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["next_runs"],
        json!([
            "2026-10-31T07:30:00Z",
            "2026-11-01T07:30:00Z",
            "2026-11-02T08:30:00Z"
        ])
    );
    assert_eq!(api.aws.item_count().await, 0);
}

#[tokio::test]
async fn the_gateways_own_refusals_have_api_gateways_shape_and_the_functions_have_ours() {
    let api = api().await;
    // API Gateway's own answers, before any function runs.
    let (status, body) = api
        .send(reqwest::Method::GET, "/api/sync/schedules", None, None)
        .await;
    assert_eq!(
        (status, body),
        (StatusCode::UNAUTHORIZED, json!({"message": "Unauthorized"}))
    );
    let (status, body) = api
        .send(reqwest::Method::GET, "/no/such/route", Some("acme"), None)
        .await;
    assert_eq!(
        (status, body),
        (StatusCode::NOT_FOUND, json!({"message": "Not Found"}))
    );
    // The function's answers: the documented error object.
    let (status, body) = api
        .send(
            reqwest::Method::GET,
            "/api/no/such/route",
            Some("acme"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found", "{body}");
}
