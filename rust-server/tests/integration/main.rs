//! The crate's integration tests, one module per concern, linked into one test binary: each
//! binary is a full link of the server's dependencies with link-time optimisation, so three
//! binaries cost three times the build.

mod golden_parity;
mod http_errors;
mod path_checks;
