//! Wiring: each function's use cases over the AWS adapters, built once per cold start.

use std::sync::Arc;

use aws_config::SdkConfig;
use sync_core::clock::Clock;
use sync_core::config::AwsResources;
use sync_core::config::WorkerConfig;
use sync_core::ports::HttpClient;
use sync_core::service::sync::{SyncWorker, WorkerPorts};
use sync_core::service::{
    ConnectionService, FlowService, Operations, OperationsPorts, PlatformConnectors,
    ScheduleService, Services,
};

/// The API's use cases over DynamoDB, EventBridge Scheduler, KMS and SQS (backfills).
pub fn services(sdk: &SdkConfig, resources: &AwsResources, clock: Arc<dyn Clock>) -> Services {
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    let table = resources.table_name.clone();
    let connection_store = Arc::new(crate::DynamoConnectionStore::new(
        dynamodb.clone(),
        table.clone(),
    ));
    let flow_store = Arc::new(crate::DynamoFlows::new(dynamodb.clone(), table.clone()));
    let schedule_store = Arc::new(crate::DynamoScheduleStore::new(
        dynamodb.clone(),
        table.clone(),
    ));
    let schedules = ScheduleService::new(
        schedule_store.clone(),
        Arc::new(crate::EventBridgeTrigger::new(
            aws_sdk_scheduler::Client::new(sdk),
            resources,
        )),
        connection_store.clone(),
        clock.clone(),
    )
    .creating(Arc::new(crate::DynamoScheduleCreate::new(
        dynamodb.clone(),
        table.clone(),
    )));
    let sealer = Arc::new(crate::KmsSealer::new(
        aws_sdk_kms::Client::new(sdk),
        resources.kms_key_id.clone(),
    ));
    let connections = ConnectionService::new(
        connection_store.clone(),
        Arc::new(crate::DynamoConnectionRemoval::new(
            dynamodb.clone(),
            table.clone(),
        )),
        sealer.clone(),
        schedules.clone(),
        flow_store.clone(),
        clock.clone(),
    );
    let jobs = Arc::new(crate::SqsQueue::new(
        aws_sdk_sqs::Client::new(sdk),
        resources.sync_queue_url.clone(),
    ));
    let flows = FlowService::new(
        flow_store.clone(),
        connection_store.clone(),
        jobs.clone(),
        clock.clone(),
    );
    let events = Arc::new(crate::DynamoEventStore::new(
        dynamodb.clone(),
        table.clone(),
    ));
    // The API writes a run only as it queues it (kept as long as the worker keeps runs by
    // default; the worker's own write of it sets the deployment's retention).
    let runs = Arc::new(crate::DynamoRuns::new(
        dynamodb.clone(),
        table.clone(),
        chrono::Duration::days(sync_core::config::DEFAULT_RUN_RETENTION_DAYS),
    ));
    // Reading only: the worker keeps and forgets failures.
    let failures = Arc::new(crate::DynamoFailures::new(dynamodb.clone(), table.clone()));
    // Only to set a stream's cursor by hand.
    let cursors = Arc::new(crate::DynamoSyncState::new(dynamodb.clone(), table.clone()));
    // Only to read what the sweeper last did.
    let sweeps = Arc::new(crate::DynamoSweepLog::new(dynamodb.clone(), table.clone()));
    let alerts = sync_core::service::AlertConsole::new(
        Arc::new(crate::DynamoAlerts::new(dynamodb.clone(), table.clone())),
        Arc::new(crate::DynamoAlertDestinations::new(dynamodb, table)),
        sealer,
        clock.clone(),
        false,
    );
    let audit =
        sync_core::service::ScheduleAudit::new(schedule_store.clone(), runs.clone(), clock.clone());
    let operations = Operations::new(OperationsPorts {
        connections: connection_store,
        flows: flow_store,
        schedules: schedule_store,
        runs: runs.clone(),
        failures: failures.clone(),
        jobs,
        cursors,
        clock,
    });
    Services {
        schedules,
        connections,
        flows,
        operations,
        events,
        runs,
        failures,
        audit,
        sweeps,
        alerts,
    }
}

/// The sync worker over DynamoDB, KMS, SQS, EventBridge Scheduler (it repairs lagging
/// triggers) and `http` for the platforms.
pub fn worker(
    sdk: &SdkConfig,
    config: &WorkerConfig,
    http: Arc<dyn HttpClient>,
    clock: Arc<dyn Clock>,
) -> SyncWorker {
    let resources = &config.resources;
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    let table = resources.table_name.clone();
    let connections = Arc::new(crate::DynamoConnectionReader::new(
        dynamodb.clone(),
        table.clone(),
    ));
    let schedule_store = Arc::new(crate::DynamoScheduleRuns::new(
        dynamodb.clone(),
        table.clone(),
    ));
    // (It can rewrite or remove a lagging trigger, never create one.)
    let schedules = sync_core::service::FiredCheck::new(
        schedule_store.clone(),
        Arc::new(crate::EventBridgeAligner::new(
            aws_sdk_scheduler::Client::new(sdk),
            resources,
        )),
    );
    let state = Arc::new(crate::DynamoSyncState::new(dynamodb.clone(), table.clone()));
    let sealer = Arc::new(crate::KmsSealer::new(
        aws_sdk_kms::Client::new(sdk),
        resources.kms_key_id.clone(),
    ));
    SyncWorker::new(
        WorkerPorts {
            connections,
            flows: Arc::new(crate::DynamoFlowSource::new(
                dynamodb.clone(),
                table.clone(),
            )),
            connectors: Arc::new(
                PlatformConnectors::new(sealer, http, clock.clone(), config.retry())
                    .with_tokens(Arc::new(crate::DynamoTokens::new(
                        dynamodb.clone(),
                        table.clone(),
                    )))
                    .with_app(
                        sync_core::domain::Platform::QuickBooks,
                        config.quickbooks_app.secrets(),
                    )
                    .with_call_quota(Arc::new(crate::DynamoCallQuota::new(
                        dynamodb.clone(),
                        table.clone(),
                    ))),
            ),
            schedules,
            schedule_store,
            leases: state.clone(),
            index: state,
            failures: Arc::new(crate::DynamoFailures::new(dynamodb.clone(), table.clone())),
            runs: Arc::new(crate::DynamoRuns::new(
                dynamodb.clone(),
                table.clone(),
                chrono::Duration::days(config.run_retention_days),
            )),
            jobs: Arc::new(crate::SqsQueue::new(
                aws_sdk_sqs::Client::new(sdk),
                resources.sync_queue_url.clone(),
            )),
            alerts: sync_core::service::AlertRaiser::new(
                Arc::new(crate::DynamoAlerts::new(dynamodb, table)),
                clock.clone(),
            ),
            clock,
        },
        config.settings(),
    )
}

/// Webhook registration at platforms, over DynamoDB (connections) and KMS (their secrets),
/// calling platforms through `http`.
pub fn webhook_setup(
    sdk: &SdkConfig,
    config: &sync_core::config::SetupConfig,
    http: Arc<dyn HttpClient>,
    clock: Arc<dyn Clock>,
) -> sync_core::service::WebhookSetup {
    let sealer = Arc::new(crate::KmsSealer::new(
        aws_sdk_kms::Client::new(sdk),
        config.kms_key_id.clone(),
    ));
    sync_core::service::WebhookSetup::new(
        Arc::new(crate::DynamoConnectionStore::new(
            aws_sdk_dynamodb::Client::new(sdk),
            config.table_name.clone(),
        )),
        sealer.clone(),
        Arc::new(PlatformConnectors::new(
            sealer,
            http,
            clock.clone(),
            config.retry(),
        )),
        clock,
    )
}

/// Connecting QuickBooks companies through the deployment's Intuit app, over DynamoDB
/// (connections, used states) and KMS (states and secrets), calling Intuit through `http`.
pub fn quickbooks_connect(
    sdk: &SdkConfig,
    config: &sync_core::config::SetupConfig,
    http: Arc<dyn HttpClient>,
    clock: Arc<dyn Clock>,
) -> sync_core::service::QuickBooksConnect {
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    sync_core::service::QuickBooksConnect::new(
        Arc::new(crate::DynamoConnectionStore::new(
            dynamodb.clone(),
            config.table_name.clone(),
        )),
        Arc::new(crate::KmsSealer::new(
            aws_sdk_kms::Client::new(sdk),
            config.kms_key_id.clone(),
        )),
        Arc::new(crate::DynamoOAuthStates::new(
            dynamodb,
            config.table_name.clone(),
        )),
        http,
        clock,
        config.retry(),
        config.quickbooks(),
    )
}

/// The webhook intake over DynamoDB, KMS and SQS.
pub fn intake(
    sdk: &SdkConfig,
    config: &sync_core::config::IntakeConfig,
    clock: Arc<dyn Clock>,
) -> sync_core::service::Intake {
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    sync_core::service::Intake::new(
        Arc::new(crate::DynamoConnectionReader::new(
            dynamodb.clone(),
            config.table_name.clone(),
        )),
        // (It opens webhook secrets; the API seals them.)
        Arc::new(crate::KmsOpener::new(
            aws_sdk_kms::Client::new(sdk),
            config.kms_key_id.clone(),
        )),
        Arc::new(crate::DynamoEventStore::new(
            dynamodb,
            config.table_name.clone(),
        )),
        Arc::new(crate::SqsQueue::new(
            aws_sdk_sqs::Client::new(sdk),
            config.webhook_queue_url.clone(),
        )),
        clock,
        config.settings(),
    )
}

/// The coalescer over SQS (jobs) and DynamoDB (event log, and when a stream's webhooks
/// arrived).
pub fn coalescer(
    sdk: &SdkConfig,
    config: &sync_core::config::CoalescerConfig,
) -> sync_core::service::Coalescer {
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    sync_core::service::Coalescer::new(
        Arc::new(crate::SqsQueue::new(
            aws_sdk_sqs::Client::new(sdk),
            config.sync_queue_url.clone(),
        )),
        Arc::new(crate::DynamoEventJobs::new(
            dynamodb.clone(),
            config.table_name.clone(),
        )),
        Arc::new(crate::DynamoWebhookArrivals::new(
            dynamodb,
            config.table_name.clone(),
        )),
    )
}

/// The schedule repair over DynamoDB and EventBridge Scheduler: for `syncctl repair` and a
/// scheduled sweeper.
pub fn repair(
    sdk: &SdkConfig,
    resources: &AwsResources,
    clock: Arc<dyn Clock>,
) -> sync_core::service::ScheduleRepair {
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    let store = Arc::new(crate::DynamoScheduleStore::new(
        dynamodb.clone(),
        resources.table_name.clone(),
    ));
    let connections = Arc::new(crate::DynamoConnectionStore::new(
        dynamodb,
        resources.table_name.clone(),
    ));
    let scheduler = aws_sdk_scheduler::Client::new(sdk);
    let trigger = Arc::new(crate::EventBridgeTrigger::new(scheduler.clone(), resources));
    let inventory = Arc::new(crate::EventBridgeInventory::new(scheduler, resources));
    let schedules =
        ScheduleService::new(store.clone(), trigger.clone(), connections.clone(), clock);
    sync_core::service::ScheduleRepair::new(store, inventory, trigger, connections, schedules)
}

/// The sweeper over DynamoDB (runs, streams, schedules, alerts, its status), SQS (the runs
/// it queues), EventBridge Scheduler (the drift it repairs), KMS (to open alert
/// destinations), SNS (the alert topic) and `http` (the alert webhooks).
pub fn sweeper(
    sdk: &SdkConfig,
    config: &sync_core::config::SweeperConfig,
    http: Arc<dyn HttpClient>,
    clock: Arc<dyn Clock>,
) -> sync_core::service::Sweeper {
    let resources = &config.resources;
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    let table = resources.table_name.clone();
    let schedules = Arc::new(crate::DynamoScheduleStore::new(
        dynamodb.clone(),
        table.clone(),
    ));
    let alerts = Arc::new(crate::DynamoAlerts::new(dynamodb.clone(), table.clone()));
    let connections = Arc::new(crate::DynamoConnectionStore::new(
        dynamodb.clone(),
        table.clone(),
    ));
    let topic = config.alert_topic_arn.as_ref().map(|arn| {
        Arc::new(crate::SnsAlertTopic::new(
            aws_sdk_sns::Client::new(sdk),
            arn,
        )) as Arc<dyn sync_core::ports::AlertTopic>
    });
    sync_core::service::Sweeper::new(
        sync_core::service::SweeperPorts {
            runs: Arc::new(crate::DynamoRunSweep::new(
                dynamodb.clone(),
                table.clone(),
                chrono::Duration::days(config.run_retention_days),
            )),
            streams: Arc::new(crate::DynamoStreamWatch::new(
                dynamodb.clone(),
                table.clone(),
            )),
            jobs: Arc::new(crate::SqsQueue::new(
                aws_sdk_sqs::Client::new(sdk),
                resources.sync_queue_url.clone(),
            )),
            schedules: schedules.clone(),
            connections: connections.clone(),
            log: Arc::new(crate::DynamoSweepLog::new(dynamodb.clone(), table.clone())),
            service: ScheduleService::new(
                schedules,
                Arc::new(crate::EventBridgeTrigger::new(
                    aws_sdk_scheduler::Client::new(sdk),
                    resources,
                )),
                connections,
                clock.clone(),
            ),
            repair: repair(sdk, resources, clock.clone()),
            alerts: sync_core::service::AlertRaiser::new(alerts.clone(), clock.clone()),
            delivery: sync_core::service::AlertDelivery {
                issues: alerts.clone(),
                destinations: Arc::new(crate::DynamoAlertDestinations::new(
                    dynamodb.clone(),
                    table.clone(),
                )),
                // (It opens destinations' URLs and secrets; the API seals them.)
                opener: Arc::new(crate::KmsOpener::new(
                    aws_sdk_kms::Client::new(sdk),
                    resources.kms_key_id.clone(),
                )),
                http,
                topic,
                clock: clock.clone(),
                settings: config.delivery(),
            },
            clock,
        },
        config.settings(),
    )
}
