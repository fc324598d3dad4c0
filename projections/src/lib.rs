//! dezky's read side: projections fold the ledger, in position order, into read models that
//! serve queries; the runner keeps each one caught up and records how far it has read in the
//! same transaction as its rows.

/// Declares a read model's type: a struct holding the build it folds into, its stored name and
/// the schema version its code folds, `new()` (the first build, [`builds::FIRST_BUILD`]),
/// `with_version(build)` (another build of the same fold, in its own tables: rebuilds and the
/// projection-equals-replay checks) and `Default`. Inside the type's `impl Projection`,
/// [`read_model_identity!`] supplies `name`, `build` and `schema_version`.
macro_rules! read_model {
    ($(#[$doc:meta])* $ty:ident, name = $name:literal, schema_version = $version:literal $(, $(#[$vdoc:meta])*)?) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $ty {
            version: u32,
        }

        impl $ty {
            /// The projection's name (the prefix of its tables).
            pub const NAME: &'static str = $name;
            /// The schema version of this code's fold and tables.
            $($(#[$vdoc])*)?
            pub const VERSION: u32 = $version;

            /// The first build.
            pub fn new() -> Self {
                Self {
                    version: $crate::builds::FIRST_BUILD,
                }
            }

            /// Another build of the same fold, in its own tables.
            pub fn with_version(build: u32) -> Self {
                Self { version: build }
            }
        }

        impl Default for $ty {
            fn default() -> Self {
                Self::new()
            }
        }
    };
}

/// `name`, `build` and `schema_version` of a [`read_model!`] type's `impl Projection`.
macro_rules! read_model_identity {
    () => {
        fn name(&self) -> &'static str {
            Self::NAME
        }

        fn build(&self) -> u32 {
            self.version
        }

        fn schema_version(&self) -> u32 {
            Self::VERSION
        }
    };
}

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
