//! The application layer: use cases that need more than the one aggregate a command runs on,
//! decided from write-side state (aggregates and claims loaded for the purpose), never from a
//! read model, which may lag.

pub mod addresses;
pub mod domains;
pub mod registry;
pub mod retry;
pub mod tenants;
