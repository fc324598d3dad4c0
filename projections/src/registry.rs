//! The one registry of projections: every read model this version runs, with the schema
//! version its code folds and how to host it. `dezky serve`, `dezky projections` and the
//! GraphQL operations all read it, so a read model added here is served, listed and
//! rebuildable everywhere at once.

use std::future::Future;
use std::pin::Pin;

use dezky_commands::Ledger;
use tokio::sync::watch;

use crate::audit::AuditTimeline;
use crate::bookings::Bookings;
use crate::domains::DomainDirectory;
use crate::effects::SagaEffects;
use crate::host::ProjectionHost;
use crate::mail_addresses::MailAddresses;
use crate::runner::{Projection, ProjectionError};
use crate::settings::TenantSettings;
use crate::tenants::TenantDirectory;

/// A boxed future, as hosts of different projection types are handled alike.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A host of one projection, whatever its type.
pub trait Hosted: Send {
    /// The projection's name.
    fn name(&self) -> &'static str;
    /// The live build's position, for read-your-writes and readiness.
    fn position(&self) -> watch::Receiver<u64>;
    /// Creates the build registry entries and tables a fresh database needs.
    fn prepare(&self) -> BoxFuture<'_, Result<(), ProjectionError>>;
    /// Hosts the projection until `shutdown` turns true.
    fn run(self: Box<Self>, shutdown: watch::Receiver<bool>) -> BoxFuture<'static, ()>;
}

impl<P: Projection> Hosted for ProjectionHost<P> {
    fn name(&self) -> &'static str {
        ProjectionHost::name(self)
    }

    fn position(&self) -> watch::Receiver<u64> {
        ProjectionHost::position(self)
    }

    fn prepare(&self) -> BoxFuture<'_, Result<(), ProjectionError>> {
        Box::pin(ProjectionHost::prepare(self))
    }

    fn run(self: Box<Self>, shutdown: watch::Receiver<bool>) -> BoxFuture<'static, ()> {
        Box::pin((*self).run(shutdown))
    }
}

/// One registered projection.
#[derive(Clone, Copy)]
pub struct Registered {
    /// Its name (the prefix of its tables).
    pub name: &'static str,
    /// The schema version this code folds.
    pub schema_version: u32,
    host: fn(Ledger, String) -> Box<dyn Hosted>,
}

impl Registered {
    /// A host of this projection over `ledger`, holding its lease as `holder`.
    pub fn host(&self, ledger: Ledger, holder: String) -> Box<dyn Hosted> {
        (self.host)(ledger, holder)
    }
}

macro_rules! registered {
    ($projection:ty) => {
        Registered {
            name: <$projection>::NAME,
            schema_version: <$projection>::VERSION,
            host: |ledger, holder| {
                Box::new(ProjectionHost::new(
                    ledger,
                    holder,
                    <$projection>::with_version,
                ))
            },
        }
    };
}

/// Every projection this version runs, in the order they are started.
pub fn all() -> [Registered; 7] {
    [
        registered!(TenantDirectory),
        registered!(AuditTimeline),
        registered!(TenantSettings),
        registered!(SagaEffects),
        registered!(DomainDirectory),
        registered!(MailAddresses),
        registered!(Bookings),
    ]
}

/// The projection named `name`, if this version has one.
pub fn find(name: &str) -> Option<Registered> {
    all().into_iter().find(|p| p.name == name)
}
