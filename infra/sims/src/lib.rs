//! Simulators of the platforms, for the local stack, the tests and the benchmarks. Each is a
//! real HTTP server on loopback that answers as the platform does where it matters to us
//! (see `../shared/docs/platforms.md`), faults included. None of this is linked into a
//! function binary.
//!
//! ## Layout
//! - [`server`]: the HTTP plumbing every simulator shares, and fault injection
//!   (`POST /__admin/faults`: status codes, `Retry-After`, latency, dropped connections).
//! - [`woo`]: a WooCommerce store (REST API v3: lists, batch, webhooks, basic auth over
//!   HTTPS and OAuth 1.0a over HTTP), seeded with deterministic data, sending signed webhooks.
//! - [`qbo`]: QuickBooks Online: Intuit's OAuth 2.0 service (authorize, token with
//!   rotating refresh tokens, revoke, discovery) for one app and one company.
//! - [`aws_proxy`]: a pass-through in front of moto that injects AWS faults into one
//!   service's calls (a failing queue while the table keeps working).
//! - [`receiver`]: receivers of alert notices (a Slack-compatible incoming webhook, and a
//!   webhook that checks the service's signature).
//! - [`pg`]: a throwaway PostgreSQL (Debian's package) on a free loopback port.
//! - [`postgrest`]: the subset of PostgREST (Supabase's Data API) the connector uses, over
//!   that PostgreSQL, sending Supabase's Database Webhook payloads when rows change.

// Simulator routes answer a refusal as the ready HTTP response (`Err(response)`), which is
// large; boxing every one would only add noise to code that is never in a function binary.
#![allow(clippy::result_large_err)]

pub mod aws_proxy;
pub mod pg;
pub mod postgrest;
pub mod qbo;
pub mod receiver;
pub mod server;
pub mod woo;
