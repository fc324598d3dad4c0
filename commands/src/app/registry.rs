//! The one registry of aggregates: each aggregate the platform runs is registered here once,
//! with its upcasters, and every framework and every load goes through it, so an event stored
//! at an old version loads the same way in the API, the sagas, the processors, the CLI and the
//! tests.

use cqrs_es::persist::{EventUpcaster, PersistedEventStore};
use cqrs_es::{Aggregate, AggregateContext, CqrsFramework, EventStore};

use crate::{Ledger, LedgerRepository};

/// An aggregate the platform runs over the ledger, with the upcasters its store needs.
pub trait Registered: Aggregate<Services = ()> {
    /// The upcasters that turn this aggregate's older event versions into the current shape.
    fn upcasters() -> Vec<Box<dyn EventUpcaster>>;
}

/// cqrs-es over the ledger for one aggregate.
pub type Cqrs<A> = CqrsFramework<A, PersistedEventStore<LedgerRepository, A>>;

/// The event store of `A` over `ledger`, with `A`'s upcasters.
pub fn event_store<A: Registered>(ledger: &Ledger) -> PersistedEventStore<LedgerRepository, A> {
    PersistedEventStore::new_event_store(LedgerRepository::new(ledger.clone()))
        .with_upcasters(A::upcasters())
}

/// The command framework of `A` over `ledger` (no cqrs-es queries: projections follow the
/// ledger by position instead).
pub fn framework<A: Registered>(ledger: &Ledger) -> Cqrs<A> {
    CqrsFramework::new(event_store(ledger), vec![], ())
}

/// The current state of aggregate `id` of type `A` and its version (0: no events yet).
pub async fn load<A: Registered + Clone>(ledger: &Ledger, id: &str) -> Result<(A, usize), String> {
    let mut context = event_store::<A>(ledger)
        .load_aggregate(id)
        .await
        .map_err(|e| e.to_string())?;
    let version = context.current_sequence;
    Ok((context.aggregate().clone(), version))
}

/// `payload`, stored as `event_type` at `event_version`, in `A`'s current shape: what a
/// follower that reads events by position (not through an event store) applies.
pub fn upcast_payload<A: Registered>(
    event_type: &str,
    event_version: &str,
    payload: serde_json::Value,
) -> serde_json::Value {
    let mut event = cqrs_es::persist::SerializedEvent {
        aggregate_id: String::new(),
        sequence: 0,
        aggregate_type: A::TYPE.to_owned(),
        event_type: event_type.to_owned(),
        event_version: event_version.to_owned(),
        payload,
        metadata: serde_json::Value::Null,
    };
    for upcaster in A::upcasters() {
        if upcaster.can_upcast(&event.event_type, &event.event_version) {
            event = upcaster.upcast(event);
        }
    }
    event.payload
}

macro_rules! register {
    ($($aggregate:ty => $upcasters:path),* $(,)?) => {
        $(
            impl Registered for $aggregate {
                fn upcasters() -> Vec<Box<dyn EventUpcaster>> {
                    $upcasters()
                }
            }
        )*

        /// The stored aggregate type names of every registered aggregate.
        pub fn registered_types() -> Vec<String> {
            vec![$(<$aggregate as Aggregate>::TYPE.to_owned()),*]
        }
    };
}

register! {
    dezky_domain::tenant::Tenant => dezky_domain::tenant::tenant_upcasters,
    dezky_domain::tenant::SlugClaim => dezky_domain::tenant::slug_claim_upcasters,
    dezky_domain::tenant::PlatformFlag => dezky_domain::tenant::platform_flag_upcasters,
    dezky_domain::domains::Domain => dezky_domain::domains::domain_upcasters,
    dezky_domain::effects::Effect => dezky_domain::effects::effect_upcasters,
    dezky_domain::booking::BookingHost => dezky_domain::booking::booking_host_upcasters,
    dezky_domain::booking::SlotLock => dezky_domain::booking::slot_lock_upcasters,
    dezky_domain::booking::Booking => dezky_domain::booking::booking_upcasters,
    dezky_domain::probe::Probe => dezky_domain::probe::upcasters,
}
