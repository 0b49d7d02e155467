//! Shared core of the sync scheduling service: the domain, its ports, the use cases, and the
//! adapters that implement the ports (AWS for production, in-memory for tests).
//!
//! ## Layout
//! - [`time`]: schedule expressions in every accepted dialect, time zones, fire times. Pure.
//! - [`domain`]: identifiers, schedules, sync jobs.
//! - [`ports`]: the traits the use cases depend on (store, trigger).
//! - [`service`]: the use cases, written against ports only.
//! - [`adapters`]: DynamoDB and EventBridge Scheduler implementations of the ports.
//! - [`memory`]: in-memory implementations of the ports, for tests.
//! - [`clock`]: the injected clock.
//! - [`config`]: configuration read once from the environment.
pub mod adapters;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod memory;
pub mod ports;
pub mod service;
pub mod time;
pub mod webhooks;
