//! trackprint-server: the fast engine for trackprint's 25-number fingerprint.
//!
//! Module map: [`error`] (the error taxonomy), [`paths`] (library roots),
//! [`limits`] (semaphore, deadline), [`metrics`], [`decode`] (sniffing,
//! symphonia, truncation), [`features`] (the port of `pyengine/features`),
//! [`engine`] (one file -> fingerprint), [`http`] (axum routes, error bodies, code -> status),
//! [`serve`] (the accept loop: header-read timeout, connection cap, graceful shutdown).

pub mod decode;
pub mod engine;
pub mod error;
pub mod features;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod paths;
pub mod serve;
