//! The live demo beside the local stack: a real PostgreSQL with the tables the README's SQL
//! creates, the PostgREST layer in front of it (standing in for a Supabase project), a
//! seeded WooCommerce store simulator and a QuickBooks simulator; then a demo tenant with a
//! connection to each (the QuickBooks company connected through the real OAuth flow of the
//! deployment's app: our authorize route, Intuit's consent redirect, our callback), flows
//! store ⇄ project (customers, products) and store → QuickBooks → project (orders), a
//! schedule every minute, the store's webhooks
//! registered through our own API use case, and the project's Database Webhooks created with
//! the README's SQL.
//!
//! Everything is created through the same use cases the API calls, so what the demo shows is
//! what a user who typed the README's requests would have.

use anyhow::{Context, Result};
use std::sync::Arc;

use crate::tasks::Tasks;
use platform_sims::pg::Postgres;
use platform_sims::postgrest::PostgRest;
use platform_sims::woo::{WooConfig, WooStore};
use sync_core::domain::{
    ConflictPolicy, Connection, EntityType, NewConnection, NewFlow, NewSchedule, Platform, Secret,
    SyncMode, TenantId,
};
use sync_core::time::{ScheduleExpression, Zone};

/// The demo tenant (`syncctl dev-token --tenant demo`).
pub const TENANT: &str = "demo";
const SERVICE_KEY: &str = "sb_secret_demo_service_key_0123456789";
const STORE_WEBHOOK_SECRET: &str = "whsec_demo_store_0123456789abcdef";
const PROJECT_WEBHOOK_SECRET: &str = "sb-demo-shared-secret-0123456789ab";
/// The webhook verifier token of the simulated Intuit app (the deployment's).
pub const APP_VERIFIER: &str = "demo-app-verifier-token-0123456789";

/// Connects the simulated QuickBooks company for `tenant` the way a user does, over HTTP
/// against the API at `api_url`: our authorize route (with the user's JWT), Intuit's consent
/// screen (which approves at once), then the browser following the redirect to our
/// callback. Returns the callback page's text.
pub async fn connect_quickbooks(api_url: &str, jwt: &str) -> Result<String> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let started: serde_json::Value = http
        .post(format!("{api_url}/api/connections/quickbooks/authorize"))
        .bearer_auth(jwt)
        .send()
        .await?
        .error_for_status()
        .context("POST /api/connections/quickbooks/authorize")?
        .json()
        .await?;
    let consent = started["authorize_url"]
        .as_str()
        .context("no authorize_url")?;
    let approved = http.get(consent).send().await?;
    let back = approved
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .context("the consent screen did not redirect back")?
        .to_string();
    let page = http.get(&back).send().await?;
    let status = page.status();
    let text = page.text().await?;
    anyhow::ensure!(
        status.is_success(),
        "the callback answered {status}: {text}"
    );
    Ok(text)
}

/// The running demo platforms; stopped when dropped.
pub struct Demo {
    pub store_url: String,
    /// The store's REST API keys.
    pub consumer_key: String,
    pub consumer_secret: String,
    pub project_url: String,
    /// The project's service key.
    pub service_key: String,
    pub quickbooks_url: String,
    /// A `psql` command line for the project's database.
    pub psql: String,
    /// The project database's connection string.
    pub database_url: String,
    pub store: Arc<WooStore>,
    pub project: Arc<PostgRest>,
    _tasks: Tasks,
    _pg: Postgres,
}

/// The SQL a user runs in their Supabase project, after the local stand-in for what a
/// Supabase project provides.
pub fn project_sql() -> String {
    format!(
        "{}\n{}",
        include_str!("../supabase-local.sql"),
        include_str!("../supabase.sql")
    )
}

/// The Database Webhooks of `table`, as the README's SQL creates them.
fn webhook_sql(table: &str, url: &str, secret: &str) -> String {
    let headers =
        format!(r#"{{"Content-Type": "application/json", "x-webhook-secret": "{secret}"}}"#);
    format!(
        "create trigger sync_{table}_changed after insert or delete on public.{table}
           for each row execute function supabase_functions.http_request('{url}', 'POST', '{headers}', '{{}}', '5000');
         create trigger sync_{table}_updated after update on public.{table}
           for each row when (old.* is distinct from new.*)
           execute function supabase_functions.http_request('{url}', 'POST', '{headers}', '{{}}', '5000');"
    )
}

/// The simulated platforms alone: a PostgreSQL project behind the PostgREST layer, and a
/// seeded store (`syncctl sims`, and the simulators' tests with the platforms' own clients).
pub struct Platforms {
    pub store_url: String,
    pub consumer_key: String,
    pub consumer_secret: String,
    pub project_url: String,
    pub service_key: String,
    pub database_url: String,
    pub psql: String,
    pub store: Arc<WooStore>,
    pub project: Arc<PostgRest>,
    /// Intuit's OAuth service for one app and company.
    pub quickbooks_url: String,
    pub quickbooks: Arc<platform_sims::qbo::QuickBooks>,
    /// The simulators' servers; aborted when dropped.
    pub tasks: Tasks,
    pub pg: Postgres,
}

impl Platforms {
    /// What the connection-setup function is configured with to connect companies through
    /// the simulator's Intuit app (as the template's `QuickBooks*` parameters do for Intuit's).
    pub fn quickbooks_env(&self) -> Vec<(String, String)> {
        let app = self.quickbooks.config();
        let url = &self.quickbooks_url;
        [
            ("QBO_CLIENT_ID", app.client_id.clone()),
            ("QBO_CLIENT_SECRET", app.client_secret.clone()),
            ("QBO_ENVIRONMENT", "sandbox".to_string()),
            ("QBO_AUTHORIZE_URL", format!("{url}/connect/oauth2")),
            ("QBO_TOKEN_URL", format!("{url}/oauth2/v1/tokens/bearer")),
            ("QBO_API_URL", url.clone()),
            ("QBO_WEBHOOK_VERIFIER", APP_VERIFIER.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// The platforms with the store seeded as the demo's.
    pub async fn start() -> Result<Self> {
        Self::start_seeded(platform_sims::woo::Seed::default()).await
    }

    /// The platforms with the store seeded with `seed`.
    pub async fn start_seeded(seed: platform_sims::woo::Seed) -> Result<Self> {
        let pg = tokio::task::spawn_blocking(Postgres::start)
            .await?
            .context("starting PostgreSQL (./infra/setup.sh installs it)")?;
        pg.create_database("project", &project_sql()).await?;
        let (project_url, project, tasks) =
            PostgRest::start(&pg.url("project"), vec![SERVICE_KEY.to_string()], 0).await?;
        let config = WooConfig {
            seed: Some(seed),
            ..WooConfig::default()
        };
        let (consumer_key, consumer_secret) =
            (config.consumer_key.clone(), config.consumer_secret.clone());
        let mut tasks = Tasks::from(tasks);
        let (store_url, store, store_tasks) = WooStore::start(config, 0).await?;
        tasks.extend(store_tasks);
        let (quickbooks_url, quickbooks, qbo_tasks) =
            platform_sims::qbo::QuickBooks::start(platform_sims::qbo::QboConfig::default(), 0)
                .await?;
        tasks.extend(qbo_tasks);
        Ok(Self {
            quickbooks_url,
            quickbooks,
            store_url,
            consumer_key,
            consumer_secret,
            project_url,
            service_key: SERVICE_KEY.into(),
            database_url: pg.url("project"),
            psql: pg.psql("project"),
            store,
            project,
            tasks,
            pg,
        })
    }
}

impl Demo {
    /// Seeds the demo tenant on the started `platforms` through the local API function's
    /// `services` and the connection-setup function's `setup`, whose API is at `api_url`.
    pub async fn start(
        platforms: Platforms,
        services: &sync_core::service::Services,
        setup: &sync_core::service::WebhookSetup,
        api_url: &str,
    ) -> Result<Self> {
        let Platforms {
            store_url,
            consumer_key: key,
            consumer_secret: secret,
            project_url,
            database_url,
            psql,
            store,
            project,
            tasks,
            pg,
            quickbooks_url,
            service_key,
            ..
        } = platforms;

        let tenant = TenantId::parse(TENANT).map_err(anyhow::Error::msg)?;
        let store_connection = connect(
            services,
            &tenant,
            Platform::WooCommerce,
            "Demo store",
            serde_json::json!({ "base_url": store_url }),
            &[
                ("consumer_key", &key),
                ("consumer_secret", &secret),
                ("webhook_secret", STORE_WEBHOOK_SECRET),
            ],
        )
        .await?;
        let project_connection = connect(
            services,
            &tenant,
            Platform::Supabase,
            "Demo project",
            serde_json::json!({ "project_url": project_url }),
            &[
                ("service_key", SERVICE_KEY),
                ("webhook_secret", PROJECT_WEBHOOK_SECRET),
            ],
        )
        .await?;
        // The QuickBooks company, connected through the deployment app's OAuth flow, with
        // its books' income account set.
        let jwt = crate::jwt::LocalJwt::from_env().token(
            "tenant_id",
            TENANT,
            chrono::Utc::now().timestamp(),
            300,
        );
        connect_quickbooks(api_url, &jwt)
            .await
            .context("connecting the QuickBooks company")?;
        // The app's webhook endpoint, as set in Intuit's developer portal: one URL for every
        // company connected through the app.
        reqwest::Client::new()
            .post(format!("{quickbooks_url}/__admin/qbo/webhooks"))
            .json(
                &serde_json::json!({"url": format!("{api_url}/webhooks/quickbooks"),
                                      "verifier": APP_VERIFIER, "format": "cloudevents"}),
            )
            .send()
            .await?
            .error_for_status()
            .context("registering the app's webhook endpoint at the QuickBooks simulator")?;
        let books = services
            .connections
            .list(&tenant)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .into_iter()
            .find(|c| c.platform == Platform::QuickBooks)
            .context("the QuickBooks connection is missing after connecting")?;
        let mut patch = sync_core::domain::ConnectionPatch::default();
        patch
            .config
            .insert("income_account".into(), serde_json::json!("79"));
        services
            .connections
            .update(&tenant, books.id, patch)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        // Store ⇄ project for customers and products; the store's orders go into the books,
        // and the books' documents on into the project (store → books → warehouse).
        for (source, target, entities, conflict_policy) in [
            (
                &store_connection,
                &project_connection,
                vec![EntityType::Customers, EntityType::Products],
                // Two ways: a change made at one end while the other end's copy is on its
                // way over is not overwritten by that older copy.
                ConflictPolicy::NewestWins,
            ),
            (
                &project_connection,
                &store_connection,
                vec![EntityType::Products, EntityType::Customers],
                ConflictPolicy::NewestWins,
            ),
            (
                &store_connection,
                &books,
                vec![
                    EntityType::Orders,
                    EntityType::Customers,
                    EntityType::Products,
                ],
                ConflictPolicy::SourceWins,
            ),
            (
                &books,
                &project_connection,
                vec![EntityType::Orders],
                ConflictPolicy::SourceWins,
            ),
        ] {
            services
                .flows
                .create(
                    &tenant,
                    NewFlow {
                        source_connection_id: source.id,
                        target_connection_id: target.id,
                        entities,
                        conflict_policy,
                        doc_number_prefix: None,
                        enabled: true,
                    },
                )
                .await
                .map_err(|e| anyhow::anyhow!("demo flow: {e}"))?;
        }
        let expression = ScheduleExpression::parse("* * * * *").map_err(anyhow::Error::msg)?;
        for entity in [
            EntityType::Orders,
            EntityType::Customers,
            EntityType::Products,
        ] {
            services
                .schedules
                .create(
                    &tenant,
                    NewSchedule {
                        credential_id: store_connection.id,
                        platform: Platform::WooCommerce,
                        entity_type: entity,
                        cron_expression: "* * * * *".into(),
                        expression: expression.clone(),
                        sync_mode: SyncMode::Incremental,
                        timezone: Zone::UTC,
                        is_active: true,
                        options: Default::default(),
                    },
                )
                .await
                .map_err(|e| anyhow::anyhow!("demo schedule: {e}"))?;
        }
        // The store's webhooks, registered at the store by the connection-setup function's
        // own use case (the one behind POST /api/connections/{id}/webhooks).
        setup
            .register(&tenant, store_connection.id, api_url)
            .await
            .map_err(|e| anyhow::anyhow!("registering the store's webhooks: {e}"))?;
        // The project's Database Webhooks, as the README's SQL creates them.
        let db = platform_sims::pg::connect(&database_url).await?;
        let url = project_connection.webhook_url(api_url);
        for table in ["products", "customers"] {
            db.batch_execute(&webhook_sql(table, &url, PROJECT_WEBHOOK_SECRET))
                .await
                .with_context(|| format!("webhooks of {table}"))?;
        }
        Ok(Self {
            quickbooks_url,
            store_url,
            consumer_key: key,
            consumer_secret: secret,
            project_url,
            service_key,
            psql,
            database_url,
            store,
            project,
            _tasks: tasks,
            _pg: pg,
        })
    }
}

async fn connect(
    services: &sync_core::service::Services,
    tenant: &TenantId,
    platform: Platform,
    name: &str,
    config: serde_json::Value,
    secrets: &[(&str, &str)],
) -> Result<Connection> {
    services
        .connections
        .create(
            tenant,
            NewConnection {
                platform,
                display_name: name.into(),
                config: config.as_object().cloned().unwrap_or_default(),
                secrets: secrets
                    .iter()
                    .map(|(k, v)| (k.to_string(), Secret::new(*v)))
                    .collect(),
                webhooks_enabled: Some(true),
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("demo connection {name}: {e}"))
}
