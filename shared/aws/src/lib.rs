//! AWS implementations of the core's ports, and the wiring of each function's use cases
//! over them. Each adapter turns SDK errors into domain outcomes (a failed condition becomes
//! `Conflict`/`AlreadyExists`, everything else `Unavailable`), so nothing in `sync-core`
//! sees an SDK type.
//!
//! ## Layout
//! - [`sdk`]: SDK configuration (the Lambda environment, or a local endpoint such as moto).
//! - [`table`]: the one DynamoDB table: every item's keys and indexes, and the helpers
//!   every store on it shares.
//! - [`schedules`], [`connections`], [`events`], [`failures`], [`oauth_states`], [`tokens`]:
//!   stores on that table.
//! - [`scheduler`]: EventBridge Scheduler as the schedule trigger ([`scheduler_align`]: its
//!   rewrites and deletes alone, for the worker).
//! - [`sqs`]: the queues.
//! - [`kms`]: envelope encryption of connection secrets.
//! - [`flows`], [`runs`], [`sync_state`]: flows, run history, and the worker's leases,
//!   cursors and record index.
//! - [`sweep_log`]: the sweeper's status.
//! - [`alerts`]: alert issues and destinations; [`sns`]: the alert topic.
//! - [`metrics`]: CloudWatch metrics as log lines (the embedded metric format).
//! - [`wiring`]: each function's use cases over these adapters.

pub mod alert_destinations;
pub mod alerts;
pub mod call_quota;
pub mod connection_reader;
pub mod connection_removal;
pub mod connections;
pub mod event_jobs;
pub mod events;
pub mod failures;
pub mod flow_source;
pub mod flows;
pub mod kms;
pub mod kms_open;
pub mod metrics;
pub mod oauth_states;
pub mod runs;
pub mod runs_sweep;
pub mod schedule_create;
pub mod schedule_runs;
pub mod scheduler;
pub mod scheduler_align;
pub mod scheduler_inventory;
pub mod schedules;
pub mod sdk;
pub mod sns;
pub mod sqs;
pub mod stream_watch;
pub mod sweep_log;
pub mod sync_state;
pub mod table;
pub mod tokens;
pub mod webhook_arrivals;
pub mod wiring;

pub use alert_destinations::DynamoAlertDestinations;
pub use alerts::DynamoAlerts;
pub use call_quota::DynamoCallQuota;
pub use connection_reader::DynamoConnectionReader;
pub use connection_removal::DynamoConnectionRemoval;
pub use connections::DynamoConnectionStore;
pub use event_jobs::DynamoEventJobs;
pub use events::DynamoEventStore;
pub use failures::DynamoFailures;
pub use flow_source::DynamoFlowSource;
pub use flows::DynamoFlows;
pub use kms::KmsSealer;
pub use kms_open::KmsOpener;
pub use oauth_states::DynamoOAuthStates;
pub use runs::DynamoRuns;
pub use runs_sweep::DynamoRunSweep;
pub use schedule_create::DynamoScheduleCreate;
pub use schedule_runs::DynamoScheduleRuns;
pub use scheduler::EventBridgeTrigger;
pub use scheduler_align::EventBridgeAligner;
pub use scheduler_inventory::EventBridgeInventory;
pub use schedules::DynamoScheduleStore;
pub use sdk::{describe, SdkConfig};
pub use sns::SnsAlertTopic;
pub use sqs::SqsQueue;
pub use stream_watch::DynamoStreamWatch;
pub use sweep_log::DynamoSweepLog;
pub use sync_state::DynamoSyncState;
pub use tokens::DynamoTokens;
pub use webhook_arrivals::DynamoWebhookArrivals;
