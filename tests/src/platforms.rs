//! The platforms for end-to-end sync tests: a real PostgreSQL with the tables the README's
//! SQL creates, the PostgREST layer in front of it (a Supabase project), and a WooCommerce
//! store simulator, with the local stack (moto, API, coalescer and worker handlers) beside
//! them, and one connection for each platform on tenant `acme`.

use std::sync::Arc;

use platform_sims::pg::Postgres;
use platform_sims::postgrest::PostgRest;
use platform_sims::woo::{Seed, WooStore};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::{api_with, Api};
use sync_core::domain::{SyncJob, SyncMode, TenantId, Trigger};

/// The store connection's webhook secret.
pub const WOO_WEBHOOK_SECRET: &str = "whsec_local_store_0123456789abcdef";
/// The QuickBooks connection's webhook verifier token.
pub const QBO_VERIFIER: &str = "qbo-verifier-token-0123456789abcdef";
/// The Supabase connection's webhook secret.
pub const SB_WEBHOOK_SECRET: &str = "sb-local-shared-secret-0123456789ab";

pub struct SyncWorld {
    pub api: Api,
    /// The QuickBooks simulator (Intuit's OAuth service and one company's books).
    pub qbo: Arc<platform_sims::qbo::QuickBooks>,
    pub qbo_url: String,
    pub db: tokio_postgres::Client,
    pub woo: Arc<WooStore>,
    pub woo_url: String,
    pub rest: Arc<PostgRest>,
    pub rest_url: String,
    /// The project's service-role key.
    pub service_key: String,
    /// The connections' ids.
    pub store: String,
    pub project: String,
    pub pg: Postgres,
    _tasks: infra::tasks::Tasks,
}

/// Logs of the stack in the test's output, filtered by `RUST_LOG` (off by default).
fn init_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    });
}

/// Everything started, the store seeded with `seed`, and both connections made (no flow).
pub async fn sync_world(seed: Seed) -> SyncWorld {
    sync_world_with(seed, Vec::new()).await
}

/// As [`sync_world`], with the worker configured by `function_env`.
pub async fn sync_world_with(seed: Seed, mut function_env: Vec<(String, String)>) -> SyncWorld {
    init_logs();
    let platforms = infra::demo::Platforms::start_seeded(seed)
        .await
        .unwrap_or_else(|e| panic!("platforms: {e:#}"));
    // Connection setup offers the simulator's Intuit app, as a deployment's own app.
    function_env.extend(platforms.quickbooks_env());
    let db = platform_sims::pg::connect(&platforms.database_url)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let infra::demo::Platforms {
        store_url: woo_url,
        consumer_key: key,
        consumer_secret: secret,
        project_url: rest_url,
        service_key,
        store: woo,
        project: rest,
        tasks,
        pg,
        quickbooks: qbo,
        quickbooks_url: qbo_url,
        ..
    } = platforms;
    let api = api_with(function_env).await;
    qbo.allow_redirect_uri(&api.url("/oauth/quickbooks/callback"));
    let store = connect(
        &api,
        json!({"platform": "woocommerce", "display_name": "Store",
               "config": {"base_url": woo_url},
               "secrets": {"consumer_key": key, "consumer_secret": secret,
                           "webhook_secret": WOO_WEBHOOK_SECRET}}),
    )
    .await;
    let project = connect(
        &api,
        json!({"platform": "supabase", "display_name": "Project",
               "config": {"project_url": rest_url},
               "secrets": {"service_key": service_key, "webhook_secret": SB_WEBHOOK_SECRET}}),
    )
    .await;
    SyncWorld {
        api,
        qbo,
        qbo_url,
        db,
        woo,
        woo_url,
        rest,
        rest_url,
        service_key,
        store,
        project,
        pg,
        _tasks: tasks,
    }
}

async fn connect(api: &Api, body: Value) -> String {
    let (status, got) = api
        .send(
            reqwest::Method::POST,
            "/api/connections",
            Some("acme"),
            Some(body),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{got}");
    got["id"].as_str().unwrap_or_default().to_string()
}

impl SyncWorld {
    /// A flow over the API; its creation queues the backfill.
    pub async fn flow(&self, source: &str, target: &str, entities: &[&str]) -> String {
        self.flow_with(source, target, entities, json!({})).await
    }

    /// A flow over the API with more of its settings (`conflict_policy`, ...).
    pub async fn flow_with(
        &self,
        source: &str,
        target: &str,
        entities: &[&str],
        settings: Value,
    ) -> String {
        let mut body = json!({"source_connection_id": source, "target_connection_id": target,
                              "entities": entities});
        if let (Some(b), Some(more)) = (body.as_object_mut(), settings.as_object()) {
            b.extend(more.clone());
        }
        let (status, got) = self
            .api
            .send(
                reqwest::Method::POST,
                "/api/flows",
                Some("acme"),
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{got}");
        got["id"].as_str().unwrap_or_default().to_string()
    }

    /// Another store, seeded with `seed` (the same seed gives the same order numbers), and
    /// its connection named `name`.
    pub async fn another_store(&self, name: &str, seed: Seed) -> (Arc<WooStore>, String) {
        let config = platform_sims::woo::WooConfig {
            seed: Some(seed),
            ..platform_sims::woo::WooConfig::default()
        };
        let (key, secret) = (config.consumer_key.clone(), config.consumer_secret.clone());
        let (url, store, _tasks) = WooStore::start(config, 0)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        let id = connect(
            &self.api,
            json!({"platform": "woocommerce", "display_name": name,
                   "config": {"base_url": url},
                   "secrets": {"consumer_key": key, "consumer_secret": secret,
                               "webhook_secret": WOO_WEBHOOK_SECRET}}),
        )
        .await;
        (store, id)
    }

    /// Runs the worker's handler until the sync queue is empty.
    pub async fn work(&self) -> usize {
        self.api
            .stack
            .work_until_idle(200)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// Runs SQL in the project's database, as a user of the project would.
    pub async fn sql(&self, statements: &str) {
        self.db
            .batch_execute(statements)
            .await
            .unwrap_or_else(|e| panic!("{statements}: {e}"));
    }

    /// Rows of a table, as JSON objects ordered by id.
    pub async fn rows(&self, table: &str) -> Vec<Value> {
        let sql = format!("select to_jsonb(t) from public.{table} t order by id");
        self.db
            .query(&sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .iter()
            .map(|r| r.get::<_, Value>(0))
            .collect()
    }

    /// Runs recorded for the tenant, newest first (first page).
    pub async fn runs(&self, query: &str) -> Vec<Value> {
        let got = self.get(&format!("/api/sync/runs?{query}")).await;
        got["runs"].as_array().cloned().unwrap_or_default()
    }

    /// The API's answer to `GET path` for the tenant, which must be 200.
    pub async fn get(&self, path: &str) -> Value {
        let (status, got) = self
            .api
            .send(reqwest::Method::GET, path, Some("acme"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {got}");
        got
    }

    /// Connects the simulator's company the way a user does, through the deployment app's
    /// OAuth flow (our authorize route, the consent redirect, our callback); then sets the
    /// books' settings (`config`, over `income_account` 79) and the webhook verifier token.
    pub async fn connect_quickbooks(&self, config: Value) -> String {
        infra::demo::connect_quickbooks(&self.api.stack.api_url, &crate::token("acme"))
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        let (status, list) = self
            .api
            .send(reqwest::Method::GET, "/api/connections", Some("acme"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{list}");
        let id = list
            .as_array()
            .and_then(|all| all.iter().find(|c| c["platform"] == "quickbooks"))
            .and_then(|c| c["id"].as_str())
            .unwrap_or_default()
            .to_string();
        let mut settings = json!({"income_account": "79"});
        if let (Some(s), Some(extra)) = (settings.as_object_mut(), config.as_object()) {
            s.extend(extra.clone());
        }
        let (status, got) = self
            .api
            .send(
                reqwest::Method::PUT,
                &format!("/api/connections/{id}"),
                Some("acme"),
                Some(json!({"config": settings,
                            "secrets": {"webhook_verifier_token": QBO_VERIFIER},
                            "webhooks_enabled": true})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{got}");
        id
    }

    /// A connection as the table holds it (its secrets sealed), as a worker reads it.
    pub async fn stored_connection(&self, id: &str) -> sync_core::domain::Connection {
        use sync_core::ports::ConnectionReader;
        let aws = &self.api.aws;
        sync_aws::DynamoConnectionStore::new(aws.dynamodb(), aws.resources.table_name.clone())
            .get(id.parse().unwrap_or_else(|e| panic!("{e}")))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("no connection {id}"))
    }

    /// A connection of tenant `acme` as the API shows it.
    pub async fn connection(&self, id: &str) -> Value {
        self.get(&format!("/api/connections/{id}")).await
    }

    /// Every entity of a kind in the simulated company, deleted ones included.
    pub async fn books(&self, entity: &str) -> Vec<Value> {
        let got = self
            .qbo_admin(
                reqwest::Method::GET,
                &format!("entities/{entity}"),
                Value::Null,
            )
            .await;
        got.as_array().cloned().unwrap_or_default()
    }

    /// An admin call on the QuickBooks simulator (`/__admin/qbo/{path}`).
    pub async fn qbo_admin(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        self.admin(&self.qbo_url, method, &format!("qbo/{path}"), body)
            .await
    }

    /// A job for `connection`'s `entity`, as a trigger would queue it.
    pub fn job(&self, connection: &str, entity: &str, mode: SyncMode, ids: &[&str]) -> SyncJob {
        SyncJob {
            job_id: uuid::Uuid::new_v4().to_string(),
            tenant_id: TenantId::parse("acme").unwrap_or_else(|e| panic!("{e}")),
            connection_id: connection.parse().unwrap_or_else(|e| panic!("{e}")),
            platform: if connection == self.store {
                sync_core::domain::Platform::WooCommerce
            } else if connection == self.project {
                sync_core::domain::Platform::Supabase
            } else {
                sync_core::domain::Platform::QuickBooks
            },
            entity_type: entity.parse().unwrap_or_else(|e| panic!("{e}")),
            sync_mode: mode,
            trigger: if ids.is_empty() {
                Trigger::Manual
            } else {
                Trigger::Webhook
            },
            triggered_at: chrono::Utc::now(),
            ids: ids.iter().map(|s| s.to_string()).collect(),
            resume: None,
            attempt: 0,
            stands_for: Vec::new(),
            window: None,
            reported: Some(!ids.is_empty()),
        }
    }

    /// Queues an incremental sync of `connection`'s `entity`, works the queue to the end,
    /// and answers the newest run.
    pub async fn poll(&self, connection: &str, entity: &str) -> Value {
        self.enqueue(&self.job(connection, entity, SyncMode::Incremental, &[]))
            .await;
        self.work().await;
        self.runs("limit=1")
            .await
            .into_iter()
            .next()
            .unwrap_or_default()
    }

    /// Puts `job` on the sync queue.
    pub async fn enqueue(&self, job: &SyncJob) {
        self.api
            .aws
            .sqs()
            .send_message()
            .queue_url(&self.api.aws.provisioned.sync_queue_url)
            .message_body(serde_json::to_string(job).unwrap_or_else(|e| panic!("{e}")))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// An admin call on the store (as its shop manager, or its fault switch).
    pub async fn store_admin(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        self.admin(&self.woo_url, method, path, body).await
    }

    /// The same on the PostgREST layer (faults only).
    pub async fn project_admin(&self, method: reqwest::Method, path: &str, body: Value) {
        self.admin(&self.rest_url, method, path, body).await;
    }

    /// A simulator's admin route below `base`, which must succeed; its JSON answer.
    async fn admin(&self, base: &str, method: reqwest::Method, path: &str, body: Value) -> Value {
        let response = self
            .api
            .http
            .request(method, format!("{base}/__admin/{path}"))
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let status = response.status();
        let got: Value = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {got}");
        got
    }

    /// The worker's stream state in the table, as the worker's own adapter sees it.
    pub fn leases(&self) -> sync_aws::DynamoSyncState {
        sync_aws::DynamoSyncState::new(
            self.api.aws.dynamodb(),
            self.api.aws.resources.table_name.clone(),
        )
    }

    /// The stream of `connection`'s `entity`.
    pub fn stream(&self, connection: &str, entity: &str) -> sync_core::ports::SyncKey {
        sync_core::ports::SyncKey {
            connection: connection.parse().unwrap_or_else(|e| panic!("{e}")),
            entity: entity.parse().unwrap_or_else(|e| panic!("{e}")),
        }
    }

    /// Makes `owner` hold the stream's lease for `ttl` from now, as a worker elsewhere would
    /// (taking it over if another holds it: a lease that ran out while its holder worked).
    pub async fn hold_stream(&self, connection: &str, entity: &str, owner: &str, ttl_ms: i64) {
        let key = self.stream(connection, entity);
        let until = chrono::Utc::now() + chrono::Duration::milliseconds(ttl_ms);
        self.api
            .aws
            .dynamodb()
            .update_item()
            .table_name(&self.api.aws.resources.table_name)
            .key(
                "pk",
                aws_sdk_dynamodb::types::AttributeValue::S(format!("STREAM#{}", key.connection)),
            )
            .key(
                "sk",
                aws_sdk_dynamodb::types::AttributeValue::S(key.entity.as_str().to_string()),
            )
            .update_expression(
                "SET #owner = :owner, lease_until = :until, epoch = if_not_exists(epoch, :zero) + :one",
            )
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":zero", aws_sdk_dynamodb::types::AttributeValue::N("0".into()))
            .expression_attribute_values(":one", aws_sdk_dynamodb::types::AttributeValue::N("1".into()))
            .expression_attribute_values(
                ":owner",
                aws_sdk_dynamodb::types::AttributeValue::S(owner.to_string()),
            )
            .expression_attribute_values(
                ":until",
                aws_sdk_dynamodb::types::AttributeValue::N(until.timestamp_millis().to_string()),
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// The stream's cursor as stored (read by taking its lease for a moment, as a run
    /// would; `None` while another holds it, or when it has none).
    pub async fn cursor(
        &self,
        connection: &str,
        entity: &str,
    ) -> Option<sync_core::domain::Cursor> {
        use sync_core::ports::{Lease, SyncLeases};
        let key = self.stream(connection, entity);
        let me = format!("test-{}", uuid::Uuid::new_v4());
        let lease = self
            .leases()
            .acquire(key, &me, chrono::Utc::now(), chrono::Duration::seconds(5))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let _ = self.leases().release(key, &me).await;
        match lease {
            Lease::Acquired(held) => held.cursor,
            Lease::Held => None,
        }
    }

    /// The follow-up kept for the stream, if any.
    pub async fn kept(&self, connection: &str, entity: &str) -> Option<SyncJob> {
        use sync_core::ports::SyncLeases;
        let key = self.stream(connection, entity);
        // Read as the lease's holder would: take it for a moment under a name of our own.
        let me = format!("test-{}", uuid::Uuid::new_v4());
        self.hold_stream(connection, entity, &me, 1_000).await;
        let kept = self
            .leases()
            .peek_pending(key, &me)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let _ = self.leases().release(key, &me).await;
        kept.map(|p| p.job)
    }

    /// The store's product with this SKU, as the store renders it (trashed ones too).
    pub fn store_product(&self, sku: &Value) -> Option<Value> {
        self.woo
            .all(platform_sims::woo::Kind::Products)
            .into_iter()
            .find(|p| &p["sku"] == sku)
    }
}
