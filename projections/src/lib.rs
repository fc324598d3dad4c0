//! dezky's read side: projections fold the ledger, in position order, into read models that
//! serve queries; the runner keeps each one caught up and records how far it has read in the
//! same transaction as its rows.

pub mod audit;
pub mod bookings;
pub mod builds;
pub mod domains;
pub mod effects;
pub mod host;
pub mod mail_addresses;
pub mod registry;
pub mod runner;
pub mod settings;
pub mod sql;
pub mod tenants;

pub use runner::{Projection, ProjectionError, ProjectionRunner, ReadTx};
