//! dezky's write side: the hash-chained ledger that is the audit log, its signed checkpoints,
//! verification and export, and the cqrs-es repository that runs commands on it.
//!
//! The ledger format is specified in `docs/ledger-format.md`; [`encoding`] is its code.

pub mod app;
pub mod audit;
pub mod booking;
pub mod checkpoint;
pub mod encoding;
pub mod error;
pub mod export;
pub mod keys;
pub mod lease;
pub mod merkle;
pub mod ports;
pub mod process;
pub mod repository;
pub mod saga;
pub mod store;
pub mod verify;

pub use error::LedgerError;
pub use repository::LedgerRepository;
pub use store::{AppendBatch, Appended, Ledger, LedgerOptions, NewEvent};
