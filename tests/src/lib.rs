//! Test harness: one moto server per test binary (started on a free loopback port on first
//! use, stopped when the binary exits), and fresh, uniquely named resources per test so
//! tests can run in parallel against it.

use std::sync::{Arc, OnceLock};

use infra::moto::MotoServer;
use infra::provision::{provision, Names};
use sync_shared::adapters::aws::SdkConfig;
use sync_shared::clock::FixedClock;
use sync_shared::config::AwsResources;

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
}

pub async fn fresh_aws() -> Aws {
    let sdk = sync_shared::adapters::aws::local(&moto().endpoint()).await;
    let suffix = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
    let names = Names::with_suffix(&suffix);
    let resources = provision(&sdk, &names)
        .await
        .unwrap_or_else(|e| panic!("provisioning failed: {e:#}"));
    Aws {
        sdk,
        names,
        resources,
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
    ) -> sync_shared::service::ScheduleService {
        let port = infra::moto::free_port().unwrap_or_else(|e| panic!("{e}"));
        let dead = sync_shared::adapters::aws::local(&format!("http://127.0.0.1:{port}")).await;
        let store = sync_shared::adapters::DynamoScheduleStore::new(
            self.dynamodb(),
            self.resources.table_name.clone(),
        );
        let trigger = sync_shared::adapters::EventBridgeTrigger::new(
            aws_sdk_scheduler::Client::new(&dead),
            &self.resources,
        );
        sync_shared::service::ScheduleService::new(Arc::new(store), Arc::new(trigger), clock)
    }
}

pub fn clock(at: &str) -> Arc<FixedClock> {
    let t = chrono::DateTime::parse_from_rfc3339(at)
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or_else(|e| panic!("{e}"));
    Arc::new(FixedClock::new(t))
}
