//! dezky's composition root: settings, the command line and the operations behind it.
//!
//! This is the only crate that knows about the terminal, HTTP and the process; everything it
//! runs lives in `dezky-domain` and `dezky-commands`.

pub mod audit_cli;
pub mod bench;
pub mod bench_graphql;
pub mod bench_rebuild;
pub mod booking;
pub mod cli;
pub mod client;
pub mod client_setup;
pub mod demo;
pub mod dev;
pub mod edge;
pub mod explorer;
pub mod graphql;
pub mod health;
pub mod metrics;
pub mod processors;
pub mod progress;
pub mod projections_cli;
pub mod sagas;
pub mod sagas_cli;
mod scratch;
pub mod serve;
pub mod settings;
