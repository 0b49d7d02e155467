//! The local stack: emulated AWS (moto), our resources in it, the HTTP gateway and the
//! schedule firer, started together with nothing to configure.

use anyhow::{Context, Result};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

use crate::firer::LocalScheduler;
use crate::gateway::{self, Gateway};
use crate::jwt::LocalJwt;
use crate::moto::MotoServer;
use crate::provision::{provision, Names};
use crate::pump::EventPump;
use sync_core::clock::SystemClock;
use sync_core::config::{ApiSettings, CoalescerConfig, IntakeConfig};

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
}

/// A started local stack; everything stops when it is dropped.
pub struct LocalStack {
    pub api_url: String,
    pub aws_endpoint: String,
    pub queue_arn: String,
    pub resources: sync_core::config::AwsResources,
    pub provisioned: crate::provision::Provisioned,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _moto: Option<MotoServer>,
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
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
        // The tunables (DEDUP_TTL_HOURS, …) come from the environment as in Lambda.
        let intake_config = IntakeConfig::from_lookup(|name| match name {
            "TABLE_NAME" => Some(resources.table_name.clone()),
            "KMS_KEY_ID" => Some(resources.kms_key_id.clone()),
            "WEBHOOK_QUEUE_URL" => Some(provisioned.events_queue_url.clone()),
            other => std::env::var(other).ok(),
        })?;
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
        let gateway = Arc::new(Gateway {
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
        let pump = EventPump::new(&sdk, provisioned.events_queue_url.clone(), coalescer);
        let firer = LocalScheduler::new(&sdk, resources.schedule_group.clone());
        let mut tasks = vec![tokio::spawn(gateway::serve(listener, gateway))];
        if !options.tick.is_zero() {
            tasks.push(tokio::spawn(firer.run(options.tick)));
            tasks.push(tokio::spawn(pump.run(options.coalesce_window)));
        }
        Ok(Self {
            api_url,
            aws_endpoint,
            queue_arn: resources.sync_queue_arn.clone(),
            resources,
            provisioned,
            tasks,
            _moto: moto,
        })
    }
}
