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
    coalescer: webhook_coalescer::App,
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
    sweeper: Arc<sweeper::App>,
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
        let listener = TcpListener::bind(&options.listen).await.with_context(|| {
            format!(
                "listening on {} (use --listen to pick another address)",
                options.listen
            )
        })?;
        let api_url = format!("http://{}", listener.local_addr()?);
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
        let mut function_env = options.function_env.clone();
        for (name, value) in demo_env {
            if !function_env.iter().any(|(k, _)| *k == name) {
                function_env.push((name, value));
            }
        }
        // Every function reads its environment as in Lambda, through its own `from_lookup`
        // (the same wiring its `main` does): the local resources, then the functions'
        // settings, then this process's environment.
        let resource_env = resource_env(&provisioned);
        let env = |name: &str| -> Option<String> {
            let resource = resource_env
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v);
            resource.cloned().or_else(|| {
                function_env
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
                    .or_else(|| std::env::var(name).ok())
                    .or_else(|| (name == "PUBLIC_BASE_URL").then(|| api_url.clone()))
                    // (Alert receivers of the local stack are on loopback.)
                    .or_else(|| (name == "ALERT_LOCAL_URLS").then(|| "true".to_string()))
            })
        };
        if let Some(p) = &platforms {
            let base = env("PUBLIC_BASE_URL").filter(|url| !url.is_empty());
            p.quickbooks.allow_redirect_uri(&format!(
                "{}/oauth/quickbooks/callback",
                base.as_deref().unwrap_or(&api_url)
            ));
        }
        let gateway = Arc::new(Gateway {
            setup: connection_setup::App::from_lookup(&sdk, env, http.clone())?,
            schedules: schedule_api::App::from_lookup(&sdk, env)?,
            webhooks: webhook_intake::App::from_lookup(&sdk, env)?,
            jwt: LocalJwt::from_env(),
        });
        let functions = Arc::new(QueueFunctions {
            coalescer: webhook_coalescer::from_lookup(&sdk, env)?,
            coalescer_source: SqsEventSource::new(
                &sdk,
                Mapping {
                    queue_url: provisioned.events_queue_url.clone(),
                    queue_arn: provisioned.events_queue_arn.clone(),
                    batch_size: webhook_coalescer::BATCH_SIZE,
                    window: options.coalesce_window,
                    timeout: webhook_coalescer::TIMEOUT,
                    visibility_timeout: webhook_coalescer::TIMEOUT * 6,
                },
            ),
            worker: sync_worker::App::from_lookup(&sdk, env, http)?,
            worker_source: SqsEventSource::new(
                &sdk,
                Mapping {
                    queue_url: resources.sync_queue_url.clone(),
                    queue_arn: resources.sync_queue_arn.clone(),
                    batch_size: sync_worker::BATCH_SIZE,
                    window: Duration::ZERO,
                    timeout: sync_worker::TIMEOUT,
                    visibility_timeout: sync_worker::TIMEOUT * 6,
                },
            ),
        });
        let sweeper = Arc::new(sweeper::from_lookup(&sdk, env)?);
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
            // The sweeper on its template rate, invoked as its schedule would.
            let s = sweeper.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    tokio::time::sleep(sweeper::RATE).await;
                    let event = lambda_runtime::LambdaEvent::new(
                        serde_json::json!({}),
                        lambda_runtime::Context::default(),
                    );
                    match sweeper::handle(&s, event).await {
                        Ok(summary) => tracing::info!(%summary, "sweep"),
                        Err(e) => tracing::warn!(error = %e, "sweep failed"),
                    }
                }
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
            sweeper,
            _tasks: tasks,
            _moto: moto,
        })
    }

    /// The environment the stack's functions are configured with: the resources' variables,
    /// then its function settings; for a function run in a process of its own.
    pub fn environment(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = resource_env(&self.provisioned)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        env.extend(self.function_env.iter().cloned());
        env
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

    /// Invokes the sweeper's handler once, as its schedule does; its answer.
    pub async fn sweep_once(&self) -> Result<serde_json::Value> {
        let event = lambda_runtime::LambdaEvent::new(
            serde_json::json!({}),
            lambda_runtime::Context::default(),
        );
        sweeper::handle(&self.sweeper, event)
            .await
            .map_err(|e| anyhow::anyhow!("sweep failed: {e}"))
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

/// The variables naming the local resources, as the template sets them for the functions.
fn resource_env(provisioned: &crate::provision::Provisioned) -> Vec<(&'static str, String)> {
    let r = &provisioned.resources;
    vec![
        ("TABLE_NAME", r.table_name.clone()),
        ("KMS_KEY_ID", r.kms_key_id.clone()),
        ("SCHEDULE_GROUP", r.schedule_group.clone()),
        ("SYNC_QUEUE_URL", r.sync_queue_url.clone()),
        ("SYNC_QUEUE_ARN", r.sync_queue_arn.clone()),
        ("SYNC_DLQ_ARN", r.sync_dlq_arn.clone()),
        ("SCHEDULER_ROLE_ARN", r.scheduler_role_arn.clone()),
        ("WEBHOOK_QUEUE_URL", provisioned.events_queue_url.clone()),
        ("ALERT_TOPIC_ARN", provisioned.alert_topic_arn.clone()),
    ]
}
