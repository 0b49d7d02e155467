//! Local stack and developer tooling: everything needed to run the service on one machine
//! against emulated AWS, and the `syncctl` command line.
//!
//! ## Layout
//! - [`moto`]: starts `moto_server` on loopback and stops it with us.
//! - [`provision`]: creates the table, queues and schedule group the template defines.
//! - [`jwt`]: the local stand-in for the HTTP API's JWT authorizer.
//! - [`gateway`]: serves the template's routes over HTTP by calling the Lambda handlers.
//! - [`firer`]: fires the emulated EventBridge schedules (moto never does).
//! - [`event_source`]: Lambda's SQS event source mapping, feeding queues to the coalescer's
//!   and the worker's own handlers (moto runs no Lambda).
//! - [`demo`]: the demo platforms (simulated store, PostgreSQL behind PostgREST) and tenant.
//! - [`local`]: all of the above together.
//! - [`sam`]: what `sam local` needs from a running local stack (the samples' connections,
//!   the `--env-vars` file).
//! - [`cli`]: the `syncctl` command line.
pub mod cli;
pub mod demo;
pub mod event_source;
pub mod firer;
pub mod gateway;
pub mod jwt;
pub mod local;
pub mod moto;
pub mod provision;
pub mod sam;
pub mod tasks;
