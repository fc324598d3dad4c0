//! The slot lock: one small aggregate per bookable time of a host (aggregate id
//! `{host}/{slot start UTC}`, see [`crate::booking::slot_lock_key`]) whose whole state is
//! "which booking holds me".
//!
//! It is claimed the way [`crate::tenant::SlugClaim`] claims slugs: two concurrent claims both
//! decide on the same version; the ledger commits one and answers the other with a conflict,
//! and the loser's retry sees the holder and gets [`SlotLockError::Taken`]. So fifty
//! concurrent bookings of one slot make exactly one holder.

use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::EventUpcaster;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

/// Aggregate type name as stored in the ledger. Never change it.
pub const SLOT_LOCK_AGGREGATE_TYPE: &str = "slot_lock";
const SLOT_LOCK_EVENT_VERSION: &str = "1.0";

/// Commands a slot lock accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotLockCommand {
    /// Hold the slot for a booking. Claiming a lock the booking already holds changes nothing,
    /// so a retried booking step is harmless.
    Claim {
        /// The booking.
        booking_id: String,
    },
    /// Free the slot. Releasing a lock the booking does not hold changes nothing: the release
    /// already happened (and someone else may hold the slot now), which a retried step must
    /// not undo.
    Release {
        /// The booking.
        booking_id: String,
    },
}

/// Events a slot lock emits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SlotLockEvent {
    /// A booking holds the slot.
    SlotLockClaimed {
        /// The booking.
        booking_id: String,
    },
    /// The holder let the slot go; it can be booked again.
    SlotLockReleased {
        /// The booking that held it.
        booking_id: String,
    },
}

impl DomainEvent for SlotLockEvent {
    fn event_type(&self) -> String {
        match self {
            SlotLockEvent::SlotLockClaimed { .. } => "SlotLockClaimed".to_owned(),
            SlotLockEvent::SlotLockReleased { .. } => "SlotLockReleased".to_owned(),
        }
    }

    fn event_version(&self) -> String {
        SLOT_LOCK_EVENT_VERSION.to_owned()
    }
}

/// Why a slot lock refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlotLockError {
    /// Another booking holds the slot.
    #[error("the slot is held by booking {by}")]
    Taken {
        /// The holder.
        by: String,
    },
    /// A blank booking id.
    #[error("the booking id must not be blank")]
    BlankBookingId,
}

/// A slot's lock, folded from its events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotLock {
    /// The booking holding the slot, if any.
    pub holder: Option<String>,
}

impl SlotLock {
    /// Decides a command. Pure.
    pub fn decide(&self, command: SlotLockCommand) -> Result<Vec<SlotLockEvent>, SlotLockError> {
        match command {
            SlotLockCommand::Claim { booking_id } => {
                if booking_id.trim().is_empty() {
                    return Err(SlotLockError::BlankBookingId);
                }
                match &self.holder {
                    None => Ok(vec![SlotLockEvent::SlotLockClaimed { booking_id }]),
                    Some(holder) if *holder == booking_id => Ok(Vec::new()),
                    Some(holder) => Err(SlotLockError::Taken { by: holder.clone() }),
                }
            }
            SlotLockCommand::Release { booking_id } => match &self.holder {
                Some(holder) if *holder == booking_id => {
                    Ok(vec![SlotLockEvent::SlotLockReleased { booking_id }])
                }
                _ => Ok(Vec::new()),
            },
        }
    }
}

impl Aggregate for SlotLock {
    const TYPE: &'static str = SLOT_LOCK_AGGREGATE_TYPE;
    type Command = SlotLockCommand;
    type Event = SlotLockEvent;
    type Error = SlotLockError;
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
            SlotLockEvent::SlotLockClaimed { booking_id } => self.holder = Some(booking_id),
            SlotLockEvent::SlotLockReleased { .. } => self.holder = None,
        }
    }
}

/// The upcasters a slot-lock event store must be built with (none yet).
pub fn slot_lock_upcasters() -> Vec<Box<dyn EventUpcaster>> {
    Vec::new()
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;

    type Given = TestFramework<SlotLock>;

    fn claimed(b: &str) -> SlotLockEvent {
        SlotLockEvent::SlotLockClaimed {
            booking_id: b.into(),
        }
    }

    fn claim(b: &str) -> SlotLockCommand {
        SlotLockCommand::Claim {
            booking_id: b.into(),
        }
    }

    fn release(b: &str) -> SlotLockCommand {
        SlotLockCommand::Release {
            booking_id: b.into(),
        }
    }

    #[test]
    fn a_free_slot_is_held_by_the_first_booking() {
        Given::with(())
            .given_no_previous_events()
            .when(claim("b-1"))
            .then_expect_events(vec![claimed("b-1")]);
    }

    #[test]
    fn a_held_slot_is_refused_to_another_booking_naming_the_holder() {
        Given::with(())
            .given(vec![claimed("b-1")])
            .when(claim("b-2"))
            .then_expect_error(SlotLockError::Taken { by: "b-1".into() });
    }

    #[test]
    fn claiming_again_for_the_holder_changes_nothing() {
        Given::with(())
            .given(vec![claimed("b-1")])
            .when(claim("b-1"))
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_released_slot_can_be_held_by_another_booking() {
        Given::with(())
            .given(vec![
                claimed("b-1"),
                SlotLockEvent::SlotLockReleased {
                    booking_id: "b-1".into(),
                },
            ])
            .when(claim("b-2"))
            .then_expect_events(vec![claimed("b-2")]);
    }

    #[test]
    fn a_release_by_a_booking_that_no_longer_holds_the_slot_changes_nothing() {
        Given::with(())
            .given(vec![
                claimed("b-1"),
                SlotLockEvent::SlotLockReleased {
                    booking_id: "b-1".into(),
                },
                claimed("b-2"),
            ])
            .when(release("b-1"))
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_blank_booking_cannot_hold_a_slot() {
        Given::with(())
            .given_no_previous_events()
            .when(claim(""))
            .then_expect_error(SlotLockError::BlankBookingId);
    }

    #[test]
    fn slot_lock_events_keep_their_stored_names() {
        let released = SlotLockEvent::SlotLockReleased {
            booking_id: "b".into(),
        };
        for (event, name) in [
            (claimed("b"), "SlotLockClaimed"),
            (released, "SlotLockReleased"),
        ] {
            assert_eq!(event.event_type(), name);
            let json = serde_json::to_value(&event).expect("serializes");
            assert!(json.get(name).is_some(), "{json}");
        }
    }
}
