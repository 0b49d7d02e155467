//! AWS implementations of the ports. Each adapter turns SDK errors into domain outcomes
//! (a failed condition becomes `Conflict`/`AlreadyExists`, everything else `Unavailable`),
//! so nothing above this module sees an SDK type.

pub mod aws;
pub mod dynamodb;
pub mod scheduler;

pub use dynamodb::DynamoScheduleStore;
pub use scheduler::EventBridgeTrigger;
