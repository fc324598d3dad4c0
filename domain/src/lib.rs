//! dezky's domain: aggregates, commands, events and the rules they enforce.
//!
//! Everything here is deterministic: time, identifiers and the acting user arrive in the
//! command or in [`EventMetadata`], never from a clock or a random source inside a handler.
//! Nothing here performs I/O; the write side (`dezky-commands`) persists what the aggregates
//! decide.

pub mod booking;
pub mod domains;
pub mod effects;
pub mod metadata;
pub mod probe;
pub mod tenant;
pub mod text;

pub use metadata::{Actor, EventMetadata, MetadataError};
