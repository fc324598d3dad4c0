//! The booking host: a person of a tenant who can be booked, with the availability they
//! published (aggregate id = the host id the tenant chooses, one per bookable person).

use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::EventUpcaster;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use super::availability::{Availability, AvailabilityError};

/// Aggregate type name as stored in the ledger. Never change it.
pub const BOOKING_HOST_AGGREGATE_TYPE: &str = "booking_host";
const BOOKING_HOST_EVENT_VERSION: &str = "1.0";
/// Earlier availabilities a host remembers: bookings made on an earlier slot grid keep their
/// locks on that grid, and a new slot must not overlap them (see
/// [`BookingHost::grids`]). Beyond this many changes the oldest grid is forgotten.
pub const MAX_REMEMBERED_GRIDS: usize = 20;

/// Commands a booking host accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BookingHostCommand {
    /// Publish (or replace) the host's availability.
    Publish {
        /// The tenant the host belongs to; a host never moves between tenants.
        tenant_id: String,
        /// What the host can be booked for.
        availability: Availability,
    },
}

/// Events a booking host emits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BookingHostEvent {
    /// The host's availability is now this.
    AvailabilityPublished {
        /// The tenant.
        tenant_id: String,
        /// The availability.
        availability: Availability,
    },
}

impl DomainEvent for BookingHostEvent {
    fn event_type(&self) -> String {
        "AvailabilityPublished".to_owned()
    }

    fn event_version(&self) -> String {
        BOOKING_HOST_EVENT_VERSION.to_owned()
    }
}

/// Why a booking host refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BookingHostError {
    /// The availability breaks a rule.
    #[error(transparent)]
    Availability(#[from] AvailabilityError),
    /// The host id belongs to another tenant.
    #[error("the host belongs to another tenant")]
    OtherTenant,
    /// A blank tenant id.
    #[error("the tenant id must not be blank")]
    BlankTenantId,
}

/// A host, folded from its events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookingHost {
    /// The tenant, once published.
    pub tenant_id: Option<String>,
    /// The current availability, once published.
    pub availability: Option<Availability>,
    /// Earlier availabilities with a different slot grid, oldest first (at most
    /// [`MAX_REMEMBERED_GRIDS`]).
    #[serde(default)]
    pub earlier: Vec<Availability>,
}

/// Whether two availabilities lay out the same slots (the calendar may differ).
fn same_grid(a: &Availability, b: &Availability) -> bool {
    a.time_zone == b.time_zone
        && a.working_hours == b.working_hours
        && a.slot_minutes == b.slot_minutes
        && a.buffer_minutes == b.buffer_minutes
}

impl BookingHost {
    /// Every slot grid the host has published, the current one first: the grids whose slot
    /// locks a new booking must not overlap.
    pub fn grids(&self) -> Vec<&Availability> {
        self.availability
            .iter()
            .chain(self.earlier.iter().rev())
            .collect()
    }

    /// Decides a command. Pure.
    pub fn decide(
        &self,
        command: BookingHostCommand,
    ) -> Result<Vec<BookingHostEvent>, BookingHostError> {
        match command {
            BookingHostCommand::Publish {
                tenant_id,
                availability,
            } => {
                if tenant_id.trim().is_empty() {
                    return Err(BookingHostError::BlankTenantId);
                }
                if self.tenant_id.as_ref().is_some_and(|t| *t != tenant_id) {
                    return Err(BookingHostError::OtherTenant);
                }
                availability.validate()?;
                if self.availability.as_ref() == Some(&availability) {
                    return Ok(Vec::new());
                }
                Ok(vec![BookingHostEvent::AvailabilityPublished {
                    tenant_id,
                    availability,
                }])
            }
        }
    }
}

impl Aggregate for BookingHost {
    const TYPE: &'static str = BOOKING_HOST_AGGREGATE_TYPE;
    type Command = BookingHostCommand;
    type Event = BookingHostEvent;
    type Error = BookingHostError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            BookingHostEvent::AvailabilityPublished {
                tenant_id,
                availability,
            } => {
                self.tenant_id = Some(tenant_id);
                if let Some(previous) = self.availability.take() {
                    let known = same_grid(&previous, &availability)
                        || self.earlier.iter().any(|a| same_grid(a, &previous));
                    if !known {
                        self.earlier.push(previous);
                        if self.earlier.len() > MAX_REMEMBERED_GRIDS {
                            self.earlier.remove(0);
                        }
                    }
                }
                // The current grid is checked as the current one; keep it out of the list.
                self.earlier.retain(|a| !same_grid(a, &availability));
                self.availability = Some(availability);
            }
        }
    }
}

/// The upcasters a booking-host event store must be built with (none yet).
pub fn booking_host_upcasters() -> Vec<Box<dyn EventUpcaster>> {
    Vec::new()
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::super::availability::{Weekday, WorkingHours};
    use super::*;

    type Given = TestFramework<BookingHost>;

    fn availability() -> Availability {
        Availability {
            time_zone: "Europe/Berlin".into(),
            working_hours: vec![WorkingHours {
                weekday: Weekday::Mon,
                start_minute: 540,
                end_minute: 1020,
            }],
            slot_minutes: 30,
            buffer_minutes: 10,
            horizon_days: 30,
            calendar: "ann/bookings/".into(),
        }
    }

    fn publish(tenant: &str, availability: Availability) -> BookingHostCommand {
        BookingHostCommand::Publish {
            tenant_id: tenant.into(),
            availability,
        }
    }

    fn published(tenant: &str) -> BookingHostEvent {
        BookingHostEvent::AvailabilityPublished {
            tenant_id: tenant.into(),
            availability: availability(),
        }
    }

    #[test]
    fn a_host_publishes_valid_availability() {
        Given::with(())
            .given_no_previous_events()
            .when(publish("t-1", availability()))
            .then_expect_events(vec![published("t-1")]);
    }

    #[test]
    fn invalid_availability_is_refused_with_its_reason() {
        let mut bad = availability();
        bad.time_zone = "Nowhere/Land".into();
        Given::with(())
            .given_no_previous_events()
            .when(publish("t-1", bad))
            .then_expect_error(BookingHostError::Availability(
                AvailabilityError::UnknownTimeZone("Nowhere/Land".into()),
            ));
    }

    #[test]
    fn a_host_of_one_tenant_cannot_be_published_by_another() {
        Given::with(())
            .given(vec![published("t-1")])
            .when(publish("t-2", availability()))
            .then_expect_error(BookingHostError::OtherTenant);
    }

    #[test]
    fn a_host_remembers_each_earlier_grid_once_but_not_a_calendar_change() {
        let mut host = BookingHost::default();
        let first = availability();
        let mut longer = availability();
        longer.slot_minutes = 45;
        let mut moved_calendar = longer.clone();
        moved_calendar.calendar = "ann/other/".into();
        for a in [
            first.clone(),
            longer.clone(),
            first.clone(),
            longer,
            moved_calendar.clone(),
        ] {
            host.apply(BookingHostEvent::AvailabilityPublished {
                tenant_id: "t-1".into(),
                availability: a,
            });
        }
        let grids = host.grids();
        assert_eq!(grids.len(), 2, "{grids:?}");
        assert_eq!(grids[0], &moved_calendar);
        assert_eq!(grids[1], &first);
    }

    #[test]
    fn publishing_the_same_availability_again_changes_nothing() {
        Given::with(())
            .given(vec![published("t-1")])
            .when(publish("t-1", availability()))
            .then_expect_events(vec![]);
    }
}
