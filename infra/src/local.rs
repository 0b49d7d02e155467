//! The local stack: emulated AWS (moto), our resources in it, the HTTP gateway and the
//! schedule firer, started together with nothing to configure.

use anyhow::{Context, Result};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

use crate::event_source::{Mapping, PollReport, SqsEventSource};
use crate::firer::LocalScheduler;
use crate::gateway::{self, Gateway};
use crate::jwt::LocalJwt;
use crate::moto::MotoServer;
use crate::provision::{provision, Names};
use sync_core::clock::SystemClock;
use sync_core::config::{ApiSettings, CoalescerConfig, IntakeConfig, SetupConfig, WorkerConfig};

/// How to run the local stack.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// Address for the API, e.g. `127.0.0.1:3000`.
    pub listen: String,
    /// Use this AWS endpoint instead of starting moto.
    pub aws_endpoint: Option<String>,
    /// Port for the moto it starts (a free one when `None`).
    pub moto_port: Option<u16>,
    /// How often due schedules are fired; zero leaves firing to the caller.
    pub tick: Duration,
    /// Names of the resources to create (tests use unique ones).
    pub names: Names,
    /// How long webhook events are gathered before they are coalesced into jobs.
    pub coalesce_window: Duration,
    /// Settings that take the place of the functions' environment variables
    /// (`TIME_BUDGET_MS`, `HTTP_ATTEMPTS`, `QBO_*`, …), as their configuration would.
    pub function_env: Vec<(String, String)>,
    /// Also start the demo platforms and seed the demo tenant ([`crate::demo`]).
    pub demo: bool,
}

/// The functions fed by queues, each behind the event source mapping the template gives it.
struct QueueFunctions {
    coalescer: sync_core::service::Coalescer,
    coalescer_source: SqsEventSource,
    worker: sync_worker::App,
    worker_source: SqsEventSource,
}

impl QueueFunctions {
    async fn coalesce_once(&self) -> Result<PollReport> {
        self.coalescer_source
            .poll_once(&|event| webhook_coalescer::handle(&self.coalescer, event))
            .await
    }

    async fn work_once(&self) -> Result<PollReport> {
        self.worker_source
            .poll_once(&|event| sync_worker::handle(&self.worker, event))
            .await
    }
}

/// The worker's timeout in the template; the sync queue's visibility timeout is six times it.
pub const WORKER_TIMEOUT: Duration = Duration::from_secs(300);
/// The coalescer's timeout in the template; the events queue's visibility timeout is six
/// times it.
pub const COALESCER_TIMEOUT: Duration = Duration::from_secs(30);

/// A started local stack; everything stops when it is dropped.
pub struct LocalStack {
    pub api_url: String,
    pub aws_endpoint: String,
    pub queue_arn: String,
    pub resources: sync_core::config::AwsResources,
    pub provisioned: crate::provision::Provisioned,
    /// The demo platforms, when asked for.
    pub demo: Option<crate::demo::Demo>,
    /// The functions' settings beyond their resources (`LocalOptions::function_env`, then
    /// the demo's QuickBooks app), as the stack's own functions got them.
    pub function_env: Vec<(String, String)>,
    functions: Arc<QueueFunctions>,
    _tasks: crate::tasks::Tasks,
    _moto: Option<MotoServer>,
}

impl LocalStack {
    pub async fn start(options: &LocalOptions) -> Result<Self> {
        let moto = match &options.aws_endpoint {
            Some(_) => None,
            None => Some(MotoServer::start(options.moto_port)?),
        };
        let aws_endpoint = match (&options.aws_endpoint, &moto) {
            (Some(endpoint), _) => endpoint.clone(),
            (None, Some(m)) => m.endpoint(),
            (None, None) => anyhow::bail!("no AWS endpoint"),
        };
        let sdk = sync_aws::sdk::local(&aws_endpoint).await;
        let provisioned = provision(&sdk, &options.names)
            .await
            .context("creating local AWS resources")?;
        let resources = provisioned.resources.clone();
        let settings = ApiSettings::from_env()?;
        let listener = TcpListener::bind(&options.listen).await.with_context(|| {
            format!(
                "listening on {} (use --listen to pick another address)",
                options.listen
            )
        })?;
        let api_url = format!("http://{}", listener.local_addr()?);
        let mut settings = settings;
        settings
            .public_base_url
            .get_or_insert_with(|| api_url.clone());
        let http = Arc::new(sync_http::ReqwestClient::new().map_err(anyhow::Error::msg)?);
        // The demo's platforms first: the functions are configured with their addresses.
        let platforms = match options.demo {
            true => Some(crate::demo::Platforms::start().await?),
            false => None,
        };
        let demo_env = platforms
            .as_ref()
            .map(|p| p.quickbooks_env())
            .unwrap_or_default();
        if let Some(p) = &platforms {
            p.quickbooks.allow_redirect_uri(&format!(
                "{}/oauth/quickbooks/callback",
                settings.public_base_url.as_deref().unwrap_or(&api_url)
            ));
        }
        let mut function_env = options.function_env.clone();
        for (name, value) in demo_env {
            if !function_env.iter().any(|(k, _)| *k == name) {
                function_env.push((name, value));
            }
        }
        let env = |name: &str| {
            function_env
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .or_else(|| std::env::var(name).ok())
        };
        // The tunables (DEDUP_TTL_HOURS, …) come from the environment as in Lambda.
        let intake_config = IntakeConfig::from_lookup(|name| match name {
            "TABLE_NAME" => Some(resources.table_name.clone()),
            "KMS_KEY_ID" => Some(resources.kms_key_id.clone()),
            "WEBHOOK_QUEUE_URL" => Some(provisioned.events_queue_url.clone()),
            other => env(other),
        })?;
        let setup_config = SetupConfig::from_lookup(|name| match name {
            "TABLE_NAME" => Some(resources.table_name.clone()),
            "KMS_KEY_ID" => Some(resources.kms_key_id.clone()),
            other => env(other),
        })?;
        let gateway = Arc::new(Gateway {
            setup: connection_setup::App {
                setup: sync_aws::wiring::webhook_setup(
                    &sdk,
                    &setup_config,
                    http.clone(),
                    Arc::new(SystemClock),
                ),
                connect: sync_aws::wiring::quickbooks_connect(
                    &sdk,
                    &setup_config,
                    http.clone(),
                    Arc::new(SystemClock),
                ),
                settings: settings.clone(),
                time_limit: connection_setup::TIME_LIMIT,
            },
            schedules: schedule_api::App::with_aws(&sdk, &resources, settings),
            webhooks: webhook_intake::App {
                intake: sync_aws::wiring::intake(&sdk, &intake_config, Arc::new(SystemClock)),
                max_body_bytes: intake_config.max_body_bytes,
            },
            jwt: LocalJwt::from_env(),
        });
        let coalescer = sync_aws::wiring::coalescer(
            &sdk,
            &CoalescerConfig {
                table_name: resources.table_name.clone(),
                sync_queue_url: provisioned.sync_queue_url.clone(),
            },
        );
        // The worker's tunables (TIME_BUDGET_MS, HTTP_ATTEMPTS, …) come from the environment
        // as in Lambda; its resources are the local ones.
        let worker_config = WorkerConfig::from_lookup(|name| match name {
            "TABLE_NAME" => Some(resources.table_name.clone()),
            "KMS_KEY_ID" => Some(resources.kms_key_id.clone()),
            "SCHEDULE_GROUP" => Some(resources.schedule_group.clone()),
            "SYNC_QUEUE_URL" => Some(resources.sync_queue_url.clone()),
            "SYNC_QUEUE_ARN" => Some(resources.sync_queue_arn.clone()),
            "SYNC_DLQ_ARN" => Some(resources.sync_dlq_arn.clone()),
            "SCHEDULER_ROLE_ARN" => Some(resources.scheduler_role_arn.clone()),
            other => env(other),
        })?;
        let functions = Arc::new(QueueFunctions {
            coalescer,
            coalescer_source: SqsEventSource::new(
                &sdk,
                Mapping {
                    queue_url: provisioned.events_queue_url.clone(),
                    queue_arn: provisioned.events_queue_arn.clone(),
                    batch_size: 1000,
                    window: options.coalesce_window,
                    timeout: COALESCER_TIMEOUT,
                    visibility_timeout: COALESCER_TIMEOUT * 6,
                },
            ),
            worker: sync_worker::App {
                worker: sync_aws::wiring::worker(&sdk, &worker_config, http, Arc::new(SystemClock)),
            },
            worker_source: SqsEventSource::new(
                &sdk,
                Mapping {
                    queue_url: resources.sync_queue_url.clone(),
                    queue_arn: resources.sync_queue_arn.clone(),
                    batch_size: 5,
                    window: Duration::ZERO,
                    timeout: WORKER_TIMEOUT,
                    visibility_timeout: WORKER_TIMEOUT * 6,
                },
            ),
        });
        let firer = LocalScheduler::new(&sdk, resources.schedule_group.clone());
        // Aborted if anything below fails (the demo), as when the stack is dropped.
        let mut tasks = crate::tasks::Tasks::default();
        tasks.push(tokio::spawn(gateway::serve(listener, gateway.clone())));
        if !options.tick.is_zero() {
            tasks.push(tokio::spawn(firer.run(options.tick)));
            // The event source gathers for the batching window from the first event; an
            // empty queue is polled again shortly.
            let f = functions.clone();
            tasks.push(tokio::spawn(async move {
                f.coalescer_source
                    .run(
                        |event| webhook_coalescer::handle(&f.coalescer, event),
                        Duration::from_millis(250),
                    )
                    .await
            }));
            let f = functions.clone();
            tasks.push(tokio::spawn(async move {
                f.worker_source
                    .run(
                        |event| sync_worker::handle(&f.worker, event),
                        Duration::from_millis(500),
                    )
                    .await
            }));
        }
        let demo = if let Some(platforms) = platforms {
            Some(
                crate::demo::Demo::start(
                    platforms,
                    &gateway.schedules.services,
                    &gateway.setup.setup,
                    &api_url,
                )
                .await?,
            )
        } else {
            None
        };
        Ok(Self {
            demo,
            function_env,
            api_url,
            aws_endpoint,
            queue_arn: resources.sync_queue_arn.clone(),
            resources,
            provisioned,
            functions,
            _tasks: tasks,
            _moto: moto,
        })
    }

    /// Hands what is on the webhook-events queue now to the coalescer's handler, once (as
    /// its event source does after each batching window).
    pub async fn coalesce_once(&self) -> Result<PollReport> {
        self.functions.coalesce_once().await
    }

    /// Hands one batch of the sync queue to the worker's handler, once.
    pub async fn work_once(&self) -> Result<PollReport> {
        self.functions.work_once().await
    }

    /// Runs the worker until the sync queue has nothing visible (or `limit` batches).
    pub async fn work_until_idle(&self, limit: usize) -> Result<usize> {
        let mut batches = 0;
        while batches < limit {
            let report = self.work_once().await?;
            if report.received == 0 {
                break;
            }
            batches += 1;
        }
        Ok(batches)
    }
}
