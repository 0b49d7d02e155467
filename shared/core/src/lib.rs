//! Core of the sync scheduling service: the domain, its ports, the use cases, and in-memory
//! adapters of the ports for tests. Nothing here knows AWS or an HTTP client: the AWS
//! adapters live in `sync-aws`.
//!
//! ## Layout
//! - [`time`]: schedule expressions in every accepted dialect, time zones, fire times. Pure.
//! - [`domain`]: identifiers, connections, schedules, flows, runs, sync jobs.
//! - [`platforms`]: one module per platform behind one trait, and the registry.
//! - [`records`]: the canonical orders, customers and products, and their fingerprints.
//! - [`ports`]: the traits the use cases depend on (store, trigger).
//! - [`service`]: the use cases, written against ports only.
//! - [`memory`]: in-memory implementations of the ports, for tests.
//! - [`clock`]: the injected clock.
//! - [`config`]: configuration read once from the environment.
//! - [`logtext`]: outside values clipped before they are logged.
pub mod clock;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod fixtures;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod logtext;
pub mod memory;
pub mod platforms;
pub mod ports;
pub mod records;
pub mod service;
pub mod time;
