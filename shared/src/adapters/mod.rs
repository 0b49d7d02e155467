//! AWS implementations of the ports. Each adapter turns SDK errors into domain outcomes
//! (a failed condition becomes `Conflict`/`AlreadyExists`, everything else `Unavailable`),
//! so nothing above this module sees an SDK type.

pub mod aws;
pub mod connections;
pub mod dynamodb;
pub mod events;
pub mod kms;
pub mod scheduler;
pub mod sqs;

pub use connections::DynamoConnectionStore;
pub use dynamodb::DynamoScheduleStore;
pub use events::DynamoEventStore;
pub use kms::KmsSealer;
pub use scheduler::EventBridgeTrigger;
pub use sqs::SqsQueue;
