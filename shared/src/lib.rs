//! Shared core of the sync scheduling service: the domain, its ports, and the AWS adapters
//! that implement them.
//!
//! ## Layout
//! - [`time`]: schedule expressions in every accepted dialect, time zones, fire times.
//! - [`clock`]: the injected clock.
pub mod clock;
pub mod time;
