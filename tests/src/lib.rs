//! Test harness: one moto server per test binary (started on a free loopback port on first
//! use, stopped when the binary exits), and fresh, uniquely named resources per test so
//! tests can run in parallel against it.

pub mod platforms;

use std::sync::{Arc, OnceLock};

use aws_sdk_scheduler::types::ScheduleState;
use infra::jwt::LocalJwt;
use infra::local::{LocalOptions, LocalStack};
use infra::moto::MotoServer;
use infra::provision::{provision, Names};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;
use sync_aws::SdkConfig;
use sync_core::clock::FixedClock;
use sync_core::config::AwsResources;

static MOTO: OnceLock<Result<MotoServer, String>> = OnceLock::new();

/// The binary's moto server.
pub fn moto() -> &'static MotoServer {
    let started = MOTO.get_or_init(|| MotoServer::start(None).map_err(|e| format!("{e:#}")));
    match started {
        Ok(m) => m,
        Err(e) => panic!("moto could not start: {e}"),
    }
}

/// A private set of AWS resources in the shared moto.
pub struct Aws {
    pub sdk: SdkConfig,
    pub names: Names,
    pub resources: AwsResources,
    pub provisioned: infra::provision::Provisioned,
}

pub async fn fresh_aws() -> Aws {
    let sdk = sync_aws::sdk::local(&moto().endpoint()).await;
    let suffix = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
    let names = Names::with_suffix(&suffix);
    let provisioned = provision(&sdk, &names)
        .await
        .unwrap_or_else(|e| panic!("provisioning failed: {e:#}"));
    Aws {
        sdk,
        names,
        resources: provisioned.resources.clone(),
        provisioned,
    }
}

impl Aws {
    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.sdk)
    }

    pub fn scheduler(&self) -> aws_sdk_scheduler::Client {
        aws_sdk_scheduler::Client::new(&self.sdk)
    }

    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sdk)
    }

    /// Number of items in the table, however keyed.
    pub async fn item_count(&self) -> usize {
        self.dynamodb()
            .scan()
            .table_name(&self.resources.table_name)
            .send()
            .await
            .map(|o| o.items().len())
            .unwrap_or_else(|e| panic!("scan failed: {e}"))
    }

    /// Every item of the table as text, one line per item with its attributes in name
    /// order, the lines sorted: two snapshots are equal exactly when nothing was written.
    pub async fn table_snapshot(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .dynamodb()
                .scan()
                .table_name(&self.resources.table_name)
                .set_exclusive_start_key(start)
                .send()
                .await
                .unwrap_or_else(|e| panic!("scan failed: {e}"));
            lines.extend(page.items().iter().map(canonical_item));
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                break;
            }
        }
        lines.sort();
        lines
    }

    /// Messages a queue holds, visible or not.
    pub async fn queue_depth(&self, url: &str) -> u64 {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let got = self
            .sqs()
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .unwrap_or_else(|e| panic!("queue attributes: {e}"));
        let count = |name: A| {
            got.attributes()
                .and_then(|a| a.get(&name))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        count(A::ApproximateNumberOfMessages) + count(A::ApproximateNumberOfMessagesNotVisible)
    }

    /// The resources with a schedule group that does not exist: every Scheduler call then
    /// fails (moto answers 500), which is how tests make the EventBridge side fail.
    pub fn with_broken_scheduler(&self) -> AwsResources {
        let mut broken = self.resources.clone();
        broken.schedule_group = format!("{}-missing", broken.schedule_group);
        broken
    }
}

impl Aws {
    /// The schedule service with a working table and an EventBridge that cannot be reached
    /// at all (nothing listens on its port), the way a network failure looks.
    pub async fn service_with_unreachable_scheduler(
        &self,
        clock: Arc<FixedClock>,
    ) -> sync_core::service::ScheduleService {
        let port = infra::moto::free_port().unwrap_or_else(|e| panic!("{e}"));
        let dead = sync_aws::sdk::local(&format!("http://127.0.0.1:{port}")).await;
        let store =
            sync_aws::DynamoScheduleStore::new(self.dynamodb(), self.resources.table_name.clone());
        let trigger = sync_aws::EventBridgeTrigger::new(
            aws_sdk_scheduler::Client::new(&dead),
            &self.resources,
        );
        let connections = sync_aws::DynamoConnectionStore::new(
            self.dynamodb(),
            self.resources.table_name.clone(),
        );
        let creator =
            sync_aws::DynamoScheduleCreate::new(self.dynamodb(), self.resources.table_name.clone());
        sync_core::service::ScheduleService::new(
            Arc::new(store),
            Arc::new(trigger),
            Arc::new(connections),
            clock,
        )
        .creating(Arc::new(creator))
    }
}

pub fn clock(at: &str) -> Arc<FixedClock> {
    let t = chrono::DateTime::parse_from_rfc3339(at)
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or_else(|e| panic!("{e}"));
    Arc::new(FixedClock::new(t))
}

impl Aws {
    /// All API use cases against this moto.
    pub fn services(&self, clock: Arc<FixedClock>) -> sync_core::service::Services {
        sync_aws::wiring::services(&self.sdk, &self.resources, clock)
    }

    /// Creates the sample connection of `platform` for `tenant` through the real service
    /// (sealed with the emulated KMS) and returns its id.
    pub async fn connection(
        &self,
        tenant: &str,
        platform: sync_core::domain::Platform,
    ) -> sync_core::domain::ConnectionId {
        let tenant = sync_core::domain::TenantId::parse(tenant).unwrap_or_else(|e| panic!("{e}"));
        self.services(clock("2026-11-24T12:00:00Z"))
            .connections
            .create(&tenant, sync_core::fixtures::new_connection(platform))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .id
    }
}

/// The local stack (without its background firer and pump) on a fresh set of resources,
/// with an HTTP client.
pub struct Api {
    pub stack: LocalStack,
    pub aws: Aws,
    pub http: reqwest::Client,
}

pub async fn api() -> Api {
    api_with(Vec::new()).await
}

/// The local stack with the worker configured by `function_env` (its environment variables).
pub async fn api_with(function_env: Vec<(String, String)>) -> Api {
    api_through(&moto().endpoint(), function_env).await
}

/// The local stack whose functions reach AWS at `endpoint` (a fault-injecting stand-in in
/// front of the binary's moto); the test's own clients go to moto directly.
pub async fn api_through(endpoint: &str, function_env: Vec<(String, String)>) -> Api {
    let aws = fresh_aws().await;
    let stack = LocalStack::start(&LocalOptions {
        listen: "127.0.0.1:0".into(),
        aws_endpoint: Some(endpoint.to_string()),
        moto_port: None,
        tick: Duration::ZERO,
        names: aws.names.clone(),
        coalesce_window: Duration::ZERO,
        function_env,
        demo: false,
    })
    .await
    .unwrap_or_else(|e| panic!("local stack: {e:#}"));
    Api {
        stack,
        aws,
        http: reqwest::Client::new(),
    }
}

pub fn create_body() -> Value {
    create_body_for("8d2f5b7a-1c3e-4f60-9a8b-2e4d6f8a0b1c")
}

/// A size a test takes from its environment (a benchmark runs it bigger), else `default`.
pub fn env_size(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn token(tenant: &str) -> String {
    LocalJwt::from_env().token("tenant_id", tenant, chrono::Utc::now().timestamp(), 600)
}

pub fn create_body_for(credential: &str) -> Value {
    json!({
        "credential_id": credential,
        "platform": "woocommerce",
        "entity_type": "orders",
        "cron_expression": "0 0 9 * * MON-FRI",
        "timezone": "America/Edmonton"
    })
}

impl Api {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.stack.api_url)
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        tenant: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, self.url(path));
        if let Some(t) = tenant {
            req = req.bearer_auth(token(t));
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let response = req.send().await.unwrap_or_else(|e| panic!("{e}"));
        let status = response.status();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    /// A WooCommerce connection of `tenant`, created over the API.
    pub async fn connection(&self, tenant: &str) -> String {
        let (status, body) = self
            .send(
                reqwest::Method::POST,
                "/api/connections",
                Some(tenant),
                Some(json!({
                    "platform": "woocommerce",
                    "display_name": "Shop",
                    "config": {"base_url": "https://shop.example.com"},
                    "secrets": {"consumer_key": "ck_0123456789abcdef", "consumer_secret": "cs_0123456789abcdef",
                                "webhook_secret": "whsec_0123456789abcdef"}
                })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap_or_default().to_string()
    }

    pub async fn create(&self, tenant: &str) -> String {
        let credential = self.connection(tenant).await;
        let (status, body) = self
            .send(
                reqwest::Method::POST,
                "/api/sync/schedules",
                Some(tenant),
                Some(create_body_for(&credential)),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap_or_default().to_string()
    }

    pub async fn eventbridge_state(&self, id: &str) -> Option<ScheduleState> {
        self.aws
            .scheduler()
            .get_schedule()
            .name(id)
            .group_name(&self.aws.resources.schedule_group)
            .send()
            .await
            .ok()
            .and_then(|s| s.state().cloned())
    }
}

/// What the schedule invariants say must never be seen, read straight from the table and
/// the schedule group with the SDK (not through the adapters under test):
/// - a stored schedule whose connection is gone;
/// - an EventBridge schedule in the group without its stored schedule;
/// - an EventBridge schedule whose expression, zone, state or schedule version is not the
///   stored one's.
///
/// Returns one line per violation.
pub async fn schedule_invariant_violations(aws: &Aws) -> Vec<String> {
    use std::collections::HashMap;
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let out = aws
            .dynamodb()
            .scan()
            .table_name(&aws.resources.table_name)
            .set_exclusive_start_key(start.take())
            .consistent_read(true)
            .send()
            .await
            .unwrap_or_else(|e| panic!("scan: {e}"));
        items.extend(out.items().iter().cloned());
        match out.last_evaluated_key() {
            Some(k) if !k.is_empty() => start = Some(k.clone()),
            _ => break,
        }
    }
    let text = |item: &HashMap<String, aws_sdk_dynamodb::types::AttributeValue>, f: &str| {
        item.get(f)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default()
    };
    let kind = |item: &HashMap<_, _>, k: &str| text(item, "kind") == k;
    let connections: std::collections::HashSet<String> = items
        .iter()
        .filter(|i| kind(i, "connection"))
        .map(|i| text(i, "id"))
        .collect();
    let schedules: HashMap<String, _> = items
        .iter()
        .filter(|i| kind(i, "schedule"))
        .map(|i| (text(i, "id"), i.clone()))
        .collect();
    let mut violations = Vec::new();
    for (id, s) in &schedules {
        if !connections.contains(&text(s, "credential_id")) {
            violations.push(format!(
                "schedule {id} outlived its connection {}",
                text(s, "credential_id")
            ));
        }
    }
    let mut pages = aws
        .scheduler()
        .list_schedules()
        .group_name(&aws.resources.schedule_group)
        .into_paginator()
        .send();
    let mut names = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.unwrap_or_else(|e| panic!("list schedules: {e}"));
        names.extend(
            page.schedules()
                .iter()
                .filter_map(|s| s.name().map(str::to_string)),
        );
    }
    for name in names {
        let Ok(got) = aws
            .scheduler()
            .get_schedule()
            .name(&name)
            .group_name(&aws.resources.schedule_group)
            .send()
            .await
        else {
            continue; // deleted since it was listed
        };
        let Some(stored) = schedules.get(&name) else {
            violations.push(format!(
                "EventBridge schedule {name} ({:?}) has no stored schedule",
                got.state()
            ));
            continue;
        };
        let input: Value = got
            .target()
            .and_then(|t| t.input())
            .and_then(|i| serde_json::from_str(i).ok())
            .unwrap_or_default();
        let want_state = if stored.get("is_active").and_then(|v| v.as_bool().ok()) == Some(&true) {
            ScheduleState::Enabled
        } else {
            ScheduleState::Disabled
        };
        let checks = [
            (
                "expression",
                got.schedule_expression().unwrap_or_default().to_string(),
                text(stored, "schedule_expression"),
            ),
            (
                "timezone",
                got.schedule_expression_timezone()
                    .unwrap_or_default()
                    .to_string(),
                text(stored, "timezone"),
            ),
            (
                "state",
                format!("{:?}", got.state()),
                format!("{:?}", Some(&want_state)),
            ),
            (
                "version",
                input["trigger"]["schedule_version"].to_string(),
                stored
                    .get("version")
                    .and_then(|v| v.as_n().ok())
                    .cloned()
                    .unwrap_or_default(),
            ),
        ];
        for (what, have, want) in checks {
            if have != want {
                violations.push(format!(
                    "EventBridge schedule {name}: {what} is {have}, stored {want}"
                ));
            }
        }
    }
    violations
}

/// `syncctl` with `args`: its exit code, standard output and standard error.
pub async fn syncctl(args: &[&str]) -> (i32, String, String) {
    let mut argv = vec!["syncctl".to_string()];
    argv.extend(args.iter().map(|a| a.to_string()));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = infra::cli::run(argv, &mut out, &mut err).await;
    (
        code,
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

type Item = std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>;

/// An item as text with its attributes (and those of nested maps) in name order.
fn canonical_item(item: &Item) -> String {
    let mut names: Vec<&String> = item.keys().collect();
    names.sort();
    let fields: Vec<String> = names
        .into_iter()
        .map(|n| format!("{n}={}", canonical_value(&item[n])))
        .collect();
    format!("{{{}}}", fields.join(", "))
}

fn canonical_value(v: &aws_sdk_dynamodb::types::AttributeValue) -> String {
    use aws_sdk_dynamodb::types::AttributeValue as V;
    match v {
        V::M(m) => canonical_item(m),
        V::L(l) => format!(
            "[{}]",
            l.iter().map(canonical_value).collect::<Vec<_>>().join(", ")
        ),
        V::Ss(s) | V::Ns(s) => {
            let mut s = s.clone();
            s.sort();
            format!("{s:?}")
        }
        other => format!("{other:?}"),
    }
}
