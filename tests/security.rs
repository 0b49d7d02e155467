//! What nobody without the right token, secret or signature can do, through the local
//! gateway over HTTP against moto:
//!
//! - another tenant's id is 404 on every route that takes one (the route table decides
//!   which routes those are, so a new route is covered by being added), and names nothing of
//!   the owner's where an id is given in a body or a query; none of it writes anything;
//! - no webhook delivery without a valid signature or shared secret queues anything, on
//!   every webhook route and platform;
//! - no secret, token, code or signature appears in any log line at any level, through the
//!   whole life of a connection (consent, webhooks registered and delivered, syncs).

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use integration_tests::platforms::{
    sync_world, QBO_VERIFIER, SB_WEBHOOK_SECRET, WOO_WEBHOOK_SECRET,
};
use integration_tests::{api_with, create_body_for, token, Api};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sync_api::routes::{Endpoint, API_ROUTES, GATEWAY_ROUTES};
use sync_core::domain::{AlertKind, AlertSubject, EntityType, Platform, Raised};
use sync_core::fixtures;
use sync_core::platforms::SignOptions;

/// Everything every test of this binary logs, at every level.
static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

/// Starts capturing the logs of the whole binary (once, before any test does anything).
fn capture_logs() -> Arc<Mutex<Vec<u8>>> {
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = buffer.clone();
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing_subscriber::filter::LevelFilter::TRACE)
            .with_ansi(false)
            .with_writer(move || Sink(sink.clone()))
            .try_init();
        buffer
    })
    .clone()
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut logs = self.0.lock().unwrap_or_else(|e| e.into_inner());
        logs.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The app's verifier for `POST /webhooks/quickbooks`.
const APP_VERIFIER: &str = "app-verifier-token-for-the-security-tests";

async fn stack() -> Api {
    capture_logs();
    api_with(vec![(
        "QBO_WEBHOOK_VERIFIER".to_string(),
        APP_VERIFIER.to_string(),
    )])
    .await
}

/// The kind of thing a route's `{id}` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owned {
    Schedule,
    Connection,
    Flow,
    Run,
    Alert,
    AlertDestination,
}

/// What an API route's `{id}` is; `None` for a route without one. Every endpoint is named,
/// so a new one must be placed here before this compiles.
fn owned_by_path(endpoint: Endpoint) -> Option<Owned> {
    use Endpoint as E;
    match endpoint {
        E::ScheduleGet | E::ScheduleUpdate | E::ScheduleDelete | E::ScheduleRun => {
            Some(Owned::Schedule)
        }
        E::ScheduleAudit => Some(Owned::Schedule),
        E::ConnectionGet
        | E::ConnectionUpdate
        | E::ConnectionDelete
        | E::ConnectionEvents
        | E::ConnectionStreams => Some(Owned::Connection),
        E::FlowGet | E::FlowUpdate | E::FlowDelete => Some(Owned::Flow),
        E::RunGet | E::RunRetry | E::RunCancel => Some(Owned::Run),
        E::AlertAck => Some(Owned::Alert),
        E::AlertDestinationDelete => Some(Owned::AlertDestination),
        E::ScheduleList
        | E::ScheduleCreate
        | E::SchedulePreview
        | E::ConnectionList
        | E::ConnectionCreate
        | E::FlowList
        | E::FlowCreate
        | E::RunList
        | E::SyncTrigger
        | E::SyncResync
        | E::FailureList
        | E::FailureRetry
        | E::SweeperStatus
        | E::AlertList
        | E::AlertDestinationList
        | E::AlertDestinationCreate
        | E::OpenApi => None,
    }
}

/// A body a route would accept from its owner, so that only ownership can refuse it.
fn plausible_body(endpoint: Endpoint) -> Option<Value> {
    match endpoint {
        Endpoint::ScheduleUpdate => Some(json!({"is_active": false, "pause_note": "taken"})),
        Endpoint::ConnectionUpdate => {
            Some(json!({"display_name": "Taken", "webhooks_enabled": false}))
        }
        Endpoint::FlowUpdate => Some(json!({"enabled": false})),
        _ => None,
    }
}

/// Acme's things, one of each kind a route can name.
struct Owner {
    woo: String,
    project: String,
    schedule: String,
    flow: String,
    run: String,
    alert: String,
    destination: String,
}

impl Owner {
    fn id(&self, kind: Owned) -> &str {
        match kind {
            Owned::Schedule => &self.schedule,
            Owned::Connection => &self.woo,
            Owned::Flow => &self.flow,
            Owned::Run => &self.run,
            Owned::Alert => &self.alert,
            Owned::AlertDestination => &self.destination,
        }
    }

    fn ids(&self) -> [&str; 7] {
        [
            &self.woo,
            &self.project,
            &self.schedule,
            &self.flow,
            &self.run,
            &self.alert,
            &self.destination,
        ]
    }
}

async fn created(api: &Api, path: &str, body: Value) -> Value {
    let (status, got) = api.send(Method::POST, path, Some("acme"), Some(body)).await;
    assert!(status.is_success(), "{path}: {status} {got}");
    got
}

fn text(v: &Value, pointers: &[&str]) -> String {
    pointers
        .iter()
        .find_map(|p| v.pointer(p).and_then(Value::as_str))
        .unwrap_or_else(|| panic!("no id at {pointers:?} in {v}"))
        .to_string()
}

/// One of each thing a route names, all Acme's.
async fn acme_owns_one_of_each(api: &Api) -> Owner {
    let woo = created(
        api,
        "/api/connections",
        fixtures::connection_body(Platform::WooCommerce),
    )
    .await;
    let woo = text(&woo, &["/connection/id", "/id"]);
    let project = created(
        api,
        "/api/connections",
        fixtures::connection_body(Platform::Supabase),
    )
    .await;
    let project = text(&project, &["/connection/id", "/id"]);
    let schedule = created(api, "/api/sync/schedules", create_body_for(&woo)).await;
    let flow = created(
        api,
        "/api/flows",
        json!({"source_connection_id": woo, "target_connection_id": project, "entities": ["orders"]}),
    )
    .await;
    let run = created(
        api,
        "/api/sync/trigger",
        json!({"connection_id": woo, "entity_type": "orders"}),
    )
    .await;
    let destination = created(
        api,
        "/api/alerts/destinations",
        json!({"kind": "webhook", "url": "https://hooks.example.com/acme",
               "secret": "destination-secret-0123456789"}),
    )
    .await;
    // An alert, raised as the worker raises one when a run fails.
    let issues =
        sync_aws::DynamoAlerts::new(api.aws.dynamodb(), api.aws.resources.table_name.clone());
    let raiser = sync_core::service::AlertRaiser::new(
        Arc::new(issues),
        Arc::new(sync_core::clock::SystemClock),
    );
    let tenant = fixtures::tenant();
    let subject = AlertSubject::Stream(
        woo.parse().unwrap_or_else(|e| panic!("{e}")),
        EntityType::Orders,
    );
    raiser
        .raise(Raised {
            tenant: &tenant,
            subject,
            kind: AlertKind::RunFailed,
            error: "the store answered 500",
            link: None,
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (_, alerts) = api
        .send(Method::GET, "/api/alerts?status=open", Some("acme"), None)
        .await;
    let alert = text(&alerts, &["/alerts/0/id", "/0/id"]);
    Owner {
        schedule: text(&schedule, &["/id", "/schedule/id"]),
        flow: text(&flow, &["/id", "/flow/id"]),
        run: text(&run, &["/run_id", "/run/run_id"]),
        destination: text(&destination, &["/id", "/destination/id"]),
        woo,
        project,
        alert,
    }
}

/// Acme's own view of each of its things, by the routes that read them.
async fn acme_view(api: &Api, owner: &Owner) -> Vec<(String, StatusCode, Value)> {
    let mut view = Vec::new();
    for path in [
        format!("/api/sync/schedules/{}", owner.schedule),
        format!("/api/connections/{}", owner.woo),
        format!("/api/connections/{}", owner.project),
        format!("/api/flows/{}", owner.flow),
        format!("/api/sync/runs/{}", owner.run),
        "/api/alerts?status=open".to_string(),
        "/api/alerts/destinations".to_string(),
    ] {
        let (status, got) = api.send(Method::GET, &path, Some("acme"), None).await;
        view.push((path, status, got));
    }
    view
}

#[tokio::test]
async fn another_tenants_id_is_not_found_on_every_route_that_takes_one_and_changes_nothing() {
    let api = stack().await;
    let owner = acme_owns_one_of_each(&api).await;
    let view = acme_view(&api, &owner).await;
    assert!(
        view.iter().all(|(_, s, _)| *s == StatusCode::OK),
        "{view:#?}"
    );
    let table = api.aws.table_snapshot().await;
    let jobs = api.aws.queue_depth(&api.aws.resources.sync_queue_url).await;
    let mut tried = Vec::new();
    for route in API_ROUTES {
        let kind = owned_by_path(route.endpoint);
        assert_eq!(
            kind.is_some(),
            route.path.contains("{id}"),
            "{} {}: the table of what ids name is out of date",
            route.method,
            route.path
        );
        let Some(kind) = kind else { continue };
        let mut path = route.path.replace("{id}", owner.id(kind));
        if route.endpoint == Endpoint::ConnectionDelete {
            path.push_str("?cascade=true");
        }
        let method: Method = route.method.parse().unwrap_or_else(|e| panic!("{e}"));
        let (status, got) = api
            .send(
                method,
                &path,
                Some("globex"),
                plausible_body(route.endpoint),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "{} {path}: {got}",
            route.method
        );
        assert!(
            got["error"]["message"].is_string(),
            "{} {path}: {got}",
            route.method
        );
        tried.push(route.endpoint);
    }
    // The routes of connection setup that take an id.
    for route in GATEWAY_ROUTES
        .iter()
        .filter(|r| r.path.starts_with("/api/") && r.path.contains("{id}"))
    {
        let path = route.path.replace("{id}", &owner.woo);
        for method in [Method::GET, Method::POST, Method::DELETE] {
            let (status, got) = api.send(method.clone(), &path, Some("globex"), None).await;
            assert!(
                status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}: {status} {got}"
            );
        }
    }
    assert_eq!(tried.len(), 18, "{tried:?}");
    // Where an id is given in a body or a query, the answer names nothing of Acme's and
    // queues nothing.
    let woo = &owner.woo;
    let named: Vec<(Method, String, Option<Value>)> = vec![
        (
            Method::POST,
            "/api/sync/trigger".into(),
            Some(json!({"connection_id": woo, "entity_type": "orders"})),
        ),
        (
            Method::POST,
            "/api/sync/trigger".into(),
            Some(json!({"connection_id": woo, "entity_type": "orders", "ids": ["1"]})),
        ),
        (
            Method::POST,
            "/api/sync/resync".into(),
            Some(json!({"connection_id": woo, "entity_type": "orders",
            "modified_from": "2026-11-01T00:00:00Z", "modified_to": "2026-11-02T00:00:00Z"})),
        ),
        (
            Method::POST,
            "/api/sync/resync".into(),
            Some(json!({"connection_id": woo, "entity_type": "orders",
            "cursor": "2026-11-01T00:00:00Z"})),
        ),
        (
            Method::POST,
            "/api/sync/failures/retry".into(),
            Some(json!({"connection_id": woo})),
        ),
        (
            Method::POST,
            "/api/flows".into(),
            Some(json!({"source_connection_id": woo,
            "target_connection_id": owner.project, "entities": ["customers"]})),
        ),
        (
            Method::POST,
            "/api/sync/schedules".into(),
            Some(create_body_for(woo)),
        ),
        (
            Method::GET,
            format!("/api/sync/runs?connection_id={woo}"),
            None,
        ),
        (
            Method::GET,
            format!("/api/sync/runs?schedule_id={}", owner.schedule),
            None,
        ),
        (
            Method::GET,
            format!("/api/sync/runs?flow_id={}", owner.flow),
            None,
        ),
        (
            Method::GET,
            format!("/api/sync/failures?connection_id={woo}"),
            None,
        ),
    ];
    // And every list: Globex's are empty of Acme's things.
    let lists = API_ROUTES
        .iter()
        .filter(|r| {
            r.method == "GET" && !r.path.contains("{id}") && r.endpoint != Endpoint::OpenApi
        })
        .map(|r| (Method::GET, r.path.to_string(), None));
    for (method, path, body) in named.into_iter().chain(lists) {
        let (status, got) = api.send(method.clone(), &path, Some("globex"), body).await;
        assert!(
            !matches!(status, StatusCode::CREATED | StatusCode::ACCEPTED)
                && !status.is_server_error(),
            "{method} {path}: {status} {got}"
        );
        let shown = got.to_string();
        for id in owner.ids() {
            assert!(!shown.contains(id), "{method} {path} shows {id}: {got}");
        }
    }
    // Nothing was written, queued or changed for Acme.
    assert_eq!(
        api.aws.table_snapshot().await,
        table,
        "another tenant wrote to the table"
    );
    assert_eq!(
        api.aws.queue_depth(&api.aws.resources.sync_queue_url).await,
        jobs
    );
    assert_eq!(acme_view(&api, &owner).await, view);
}

/// A delivery of `platform`'s sample event.
fn sample_body(platform: Platform) -> Vec<u8> {
    let name = match platform {
        Platform::WooCommerce => "woocommerce-order-updated.body.json",
        Platform::QuickBooks => "quickbooks-classic.body.json",
        Platform::Supabase => "supabase-update.body.json",
    };
    fixtures::event_file(&format!("webhooks/{name}")).unwrap_or_else(|e| panic!("{e}"))
}

/// A delivery tried: what it is, where it goes, its headers and its body.
type Attempt = (&'static str, String, Vec<(String, String)>, Vec<u8>);

/// POSTs `body` to `url` with `headers`.
async fn post(
    api: &Api,
    url: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> (StatusCode, Value) {
    let mut req = api
        .http
        .post(url)
        .header("content-type", "application/json");
    for (name, value) in headers {
        req = req.header(name.as_str(), value.as_str());
    }
    let response = req
        .body(body.to_vec())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn signed(platform: Platform, secret: &str, body: &[u8]) -> Vec<(String, String)> {
    platform
        .module()
        .sign(secret, body, &SignOptions::default())
}

/// The same bytes with one digit changed (a record id or an amount).
fn tampered(body: &[u8]) -> Vec<u8> {
    let mut out = body.to_vec();
    if let Some(b) = out.iter_mut().rev().find(|b| b.is_ascii_digit()) {
        *b = if *b == b'9' { b'0' } else { *b + 1 };
    }
    out
}

#[tokio::test]
async fn no_delivery_without_a_valid_signature_or_secret_queues_anything_on_any_webhook_route() {
    let api = stack().await;
    // Acme's connection of each platform, and Globex's with secrets of its own.
    let mut targets = Vec::new();
    for &platform in Platform::ALL {
        let (status, mine) = api
            .send(
                Method::POST,
                "/api/connections",
                Some("acme"),
                Some(fixtures::connection_body(platform)),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{mine}");
        let mut body = fixtures::connection_body(platform);
        let field = platform.spec().webhook_secret;
        let theirs = format!("globex-{field}-0123456789abcdef");
        body["secrets"][field] = json!(theirs);
        let (status, other) = api
            .send(Method::POST, "/api/connections", Some("globex"), Some(body))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{other}");
        let url = text(&mine, &["/connection/webhook_url", "/webhook_url"]);
        let other_url = text(&other, &["/connection/webhook_url", "/webhook_url"]);
        targets.push((platform, url, other_url, theirs));
    }
    let table = api.aws.table_snapshot().await;
    let events = &api.aws.provisioned.events_queue_url;
    let mut refused = 0;
    for (platform, url, other_url, theirs) in &targets {
        let platform = *platform;
        let secret = fixtures::webhook_secret(platform);
        let body = sample_body(platform);
        let made_up = format!(
            "{}/{}",
            url.rsplit_once('/')
                .map(|(base, _)| base)
                .unwrap_or_default(),
            uuid::Uuid::new_v4()
        );
        // Supabase's Database Webhooks carry a shared secret, not a signature of the body:
        // only where the platform signs the body can a changed body be caught.
        let signs_body =
            signed(platform, secret, &body) != signed(platform, secret, &tampered(&body));
        let mut attempts: Vec<Attempt> = vec![
            ("unsigned", url.clone(), Vec::new(), body.clone()),
            (
                "signed with a wrong secret",
                url.clone(),
                signed(platform, "not-the-secret-0123456789", &body),
                body.clone(),
            ),
            (
                "signed with another tenant's secret",
                url.clone(),
                signed(platform, theirs, &body),
                body.clone(),
            ),
            (
                "signed with an empty secret",
                url.clone(),
                signed(platform, "", &body),
                body.clone(),
            ),
            (
                "sent to another tenant's connection",
                other_url.clone(),
                signed(platform, secret, &body),
                body.clone(),
            ),
            (
                "sent to a connection that does not exist",
                made_up,
                signed(platform, secret, &body),
                body.clone(),
            ),
        ];
        if signs_body {
            attempts.push((
                "signed, then changed",
                url.clone(),
                signed(platform, secret, &body),
                tampered(&body),
            ));
        }
        for (what, to, headers, sent) in attempts {
            let (status, got) = post(&api, &to, &headers, &sent).await;
            assert!(
                matches!(status, StatusCode::UNAUTHORIZED | StatusCode::NOT_FOUND),
                "{platform} {what}: {status} {got}"
            );
            assert!(
                got["error"]["message"].is_string(),
                "{platform} {what}: {got}"
            );
            refused += 1;
        }
        // Methods other than POST take nothing either.
        for method in [Method::GET, Method::PUT, Method::DELETE] {
            let response = api
                .http
                .request(method.clone(), url.as_str())
                .body(body.clone())
                .send()
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(
                response.status().is_client_error(),
                "{platform} {method}: {}",
                response.status()
            );
        }
    }
    // The route QuickBooks' app-wide webhook uses: the app's verifier, nothing else.
    let routed = api.url("/webhooks/quickbooks");
    let body = sample_body(Platform::QuickBooks);
    for (what, headers, sent) in [
        ("unsigned", Vec::new(), body.clone()),
        (
            "signed with a connection's token",
            signed(
                Platform::QuickBooks,
                fixtures::webhook_secret(Platform::QuickBooks),
                &body,
            ),
            body.clone(),
        ),
        (
            "signed, then changed",
            signed(Platform::QuickBooks, APP_VERIFIER, &body),
            tampered(&body),
        ),
    ] {
        let (status, got) = post(&api, &routed, &headers, &sent).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "app route, {what}: {got}");
        refused += 1;
    }
    for path in ["/webhooks/woocommerce", "/webhooks/supabase"] {
        let body = sample_body(Platform::WooCommerce);
        let (status, got) = post(
            &api,
            &api.url(path),
            &signed(Platform::WooCommerce, WOO_WEBHOOK_SECRET, &body),
            &body,
        )
        .await;
        assert!(status.is_client_error(), "{path}: {status} {got}");
    }
    assert_eq!(
        refused,
        7 + 7 + 6 + 3,
        "woocommerce, quickbooks, supabase, the app route"
    );
    assert_eq!(
        api.aws.queue_depth(events).await,
        0,
        "a refused delivery was queued"
    );
    assert_eq!(
        api.aws.table_snapshot().await,
        table,
        "a refused delivery wrote to the table"
    );
    // The same deliveries, signed as the platform signs them, are taken: the refusals above
    // were for the signature alone.
    for (platform, url, _, _) in &targets {
        let before = api.aws.queue_depth(events).await;
        let body = sample_body(*platform);
        let (status, got) = post(
            &api,
            url,
            &signed(*platform, fixtures::webhook_secret(*platform), &body),
            &body,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{platform}: {got}");
        assert!(
            api.aws.queue_depth(events).await > before,
            "{platform}: a valid delivery was queued: {got}"
        );
    }
    let (status, got) = post(
        &api,
        &routed,
        &signed(Platform::QuickBooks, APP_VERIFIER, &body),
        &body,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "app route: {got}");
}

/// Words that look like a bearer token (a JWT, or QuickBooks' access tokens, which are
/// JWT-shaped): `eyJ` and 20 or more base64url characters.
fn jwt_like(logs: &str) -> Option<String> {
    let mut rest = logs;
    while let Some(at) = rest.find("eyJ") {
        let starts_a_word = rest[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_')));
        let word: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '='))
            .collect();
        if starts_a_word && word.len() >= 23 {
            return Some(word);
        }
        rest = &rest[at + 3..];
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_token_code_or_signature_appears_in_any_log_line_at_any_level() {
    let logs = capture_logs();
    let w = sync_world(platform_sims::woo::Seed {
        orders: 40,
        customers: 8,
        products: 6,
        seed: 21,
    })
    .await;
    // QuickBooks through the consent screen; WooCommerce's webhooks registered, so the store
    // signs its deliveries with a secret we made.
    let books = w.connect_quickbooks(json!({})).await;
    let path = format!("/api/connections/{}/webhooks", w.store);
    let (status, got) = w.api.send(Method::POST, &path, Some("acme"), None).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    // Secrets rotated over the API (a consumer secret on a connection of its own, so the
    // store's keeps working); an alert destination with a secret.
    let rotated = "cs_rotated_never_logged_0123456789";
    let (status, other) = w
        .api
        .send(
            Method::POST,
            "/api/connections",
            Some("acme"),
            Some(fixtures::connection_body(Platform::WooCommerce)),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{other}");
    let other = text(&other, &["/connection/id", "/id"]);
    let (status, got) = w
        .api
        .send(
            Method::PUT,
            &format!("/api/connections/{other}"),
            Some("acme"),
            Some(json!({"secrets": {"consumer_secret": rotated}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{got}");
    let (status, got) = w
        .api
        .send(
            Method::PUT,
            &format!("/api/connections/{}", w.project),
            Some("acme"),
            Some(json!({"secrets": {"webhook_secret": "sb-rotated-never-logged-0123456789"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{got}");
    let (status, got) = w
        .api
        .send(
            Method::POST,
            "/api/alerts/destinations",
            Some("acme"),
            Some(
                json!({"kind": "webhook", "url": "https://hooks.example.com/ops",
                        "secret": "destination-secret-never-logged-01"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{got}");
    // Syncs to both targets, then a change in the store delivered by its webhook.
    w.flow(&w.store, &w.project, &["orders"]).await;
    w.flow(&w.store, &books, &["customers"]).await;
    w.work().await;
    let order = w.woo.all(platform_sims::woo::Kind::Orders)[0]["id"].to_string();
    w.store_admin(
        Method::PUT,
        &format!("wc/v3/orders/{order}"),
        json!({"status": "completed"}),
    )
    .await;
    w.woo.deliver_now().await;
    w.api
        .stack
        .work_until_idle(50)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    w.work().await;
    // A delivery with a signature that fails, and one with a bearer token that fails.
    let body = sample_body(Platform::WooCommerce);
    let forged = signed(
        Platform::WooCommerce,
        "forged-secret-0123456789abcdef",
        &body,
    );
    let store_url = w.connection(&w.store).await["webhook_url"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (status, _) = post(&w.api, &store_url, &forged, &body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let bad_token = format!("{}x", token("acme"));
    let response = w
        .api
        .http
        .get(w.api.url("/api/connections"))
        .bearer_auth(&bad_token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let runs = w.runs("").await;
    assert!(runs.iter().any(|r| r["status"] == "succeeded"), "{runs:#?}");

    let mut secrets = w.woo.webhook_secrets();
    assert_eq!(secrets.len(), 12, "the store's webhooks were registered");
    let woo_config = w.woo.config();
    secrets.extend([
        woo_config.consumer_key.clone(),
        woo_config.consumer_secret.clone(),
        WOO_WEBHOOK_SECRET.to_string(),
        SB_WEBHOOK_SECRET.to_string(),
        QBO_VERIFIER.to_string(),
        w.service_key.clone(),
        w.qbo.config().client_secret.clone(),
        rotated.to_string(),
        "sb-rotated-never-logged-0123456789".to_string(),
        "destination-secret-never-logged-01".to_string(),
        "forged-secret-0123456789abcdef".to_string(),
        infra::jwt::LocalJwt::from_env().secret().to_string(),
    ]);
    secrets.extend(w.qbo.issued_credentials());
    secrets.extend(forged.iter().map(|(_, v)| v.clone()));
    // What the intake expected of the forged delivery: a log that says "expected X" leaks.
    for secret in w.woo.webhook_secrets() {
        secrets.extend(
            signed(Platform::WooCommerce, &secret, &body)
                .into_iter()
                .map(|(_, v)| v),
        );
    }
    // Credentials as they travel: HTTP Basic of the Intuit app and of the store's keys.
    let basic = |user: &str, password: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    };
    secrets.push(basic(
        &w.qbo.config().client_id,
        &w.qbo.config().client_secret,
    ));
    secrets.push(basic(&woo_config.consumer_key, &woo_config.consumer_secret));
    // The other tests' secrets, as far as their logs have come by now (they run alongside).
    for platform in Platform::ALL {
        secrets.extend(
            fixtures::connection_body(*platform)["secrets"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(_, v)| v.as_str().map(str::to_string)),
        );
        let field = platform.spec().webhook_secret;
        secrets.push(format!("globex-{field}-0123456789abcdef"));
    }
    secrets.extend([
        fixtures::webhook_secret(Platform::WooCommerce).replace("&amp;", "&"),
        APP_VERIFIER.to_string(),
        "destination-secret-0123456789".to_string(),
        "not-the-secret-0123456789".to_string(),
    ]);
    // The signatures the store sent.
    secrets.extend(w.woo.delivered_signatures());
    let logs =
        String::from_utf8_lossy(&logs.lock().unwrap_or_else(|e| e.into_inner())).into_owned();
    assert!(
        logs.len() > 10_000,
        "the logs were captured ({} bytes)",
        logs.len()
    );
    // Every function that handled something logged through the capture, at every level.
    for needle in [
        " TRACE ",
        " DEBUG ",
        "webhook_intake",
        "schedule_api",
        "connection_setup",
        "aws_smithy_runtime",
        "sync_core",
    ] {
        assert!(logs.contains(needle), "no {needle:?} in the logs");
    }
    // The lines of a sync job name the job, its tenant and its stream; those of an API
    // request its tenant; those of a webhook delivery the connection it was sent to.
    let within = |span: &str, fields: &[&str]| {
        let lines: Vec<&str> = logs.lines().filter(|l| l.contains(span)).collect();
        assert!(!lines.is_empty(), "no line logged within {span}");
        for line in &lines {
            for field in fields {
                assert!(line.contains(field), "{field} missing from {line}");
            }
        }
        lines.len()
    };
    within(
        " job{",
        &["job_id=", "tenant_id=", "connection_id=", "entity="],
    );
    within(" request{", &["request_id="]);
    within(" delivery{", &["request_id="]);
    let worker_lines: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("sync_core::service::sync:"))
        .filter(|l| !l.contains(" job{"))
        .collect();
    assert!(
        worker_lines.is_empty(),
        "lines of the sync worker outside a job: {:?}",
        &worker_lines[..worker_lines.len().min(3)]
    );
    assert!(
        logs.lines()
            .any(|l| l.contains(" request{") && l.contains("tenant_id=acme")),
        "no API line names its tenant"
    );
    assert!(
        logs.lines()
            .any(|l| l.contains(" delivery{") && l.contains("connection_id=")),
        "no delivery line names its connection"
    );
    let found: Vec<&String> = secrets
        .iter()
        .filter(|s| s.len() >= 8 && logs.contains(s.as_str()))
        .collect();
    if !found.is_empty() {
        let lines: Vec<&str> = logs
            .lines()
            .filter(|l| found.iter().any(|s| l.contains(s.as_str())))
            .take(5)
            .collect();
        panic!(
            "{} secrets in the logs, e.g. in:\n{}",
            found.len(),
            lines.join("\n")
        );
    }
    if let Some(token) = jwt_like(&logs) {
        let line = logs
            .lines()
            .find(|l| l.contains(&token))
            .unwrap_or_default();
        panic!("a bearer token in the logs: {line}");
    }
}
