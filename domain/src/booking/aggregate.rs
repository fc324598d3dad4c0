//! The Booking aggregate: one booking of a host's slot, from request to confirmed,
//! calendar_failed, refused or cancelled, with its calendar-write attempts and the slot locks
//! it holds.
//!
//! The rule the rest of the booking flow rests on: a booking is `confirmed` only through
//! [`BookingCommand::Confirm`], which the command side sends after the calendar event was
//! written, and only while the booking holds its slot's lock. So a confirmed booking always
//! has its lock and its calendar event.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::EventUpcaster;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use super::availability::Slot;

mod decide;

/// Aggregate type name as stored in the ledger. Never change it.
pub const BOOKING_AGGREGATE_TYPE: &str = "booking";
const BOOKING_EVENT_VERSION: &str = "1.0";
/// The longest calendar error kept on a booking (server answers can be long).
pub const MAX_CALENDAR_ERROR_CHARS: usize = 500;
/// The longest attendee name.
const MAX_NAME_CHARS: usize = 200;
/// The longest attendee e-mail address.
const MAX_EMAIL_CHARS: usize = 254;

/// Where a booking is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BookingStatus {
    /// Requested; the slot lock is being claimed or held, the calendar event not yet written.
    Pending,
    /// The calendar event is written; the slot is the attendee's.
    Confirmed,
    /// Every calendar-write attempt failed; the slot was given up (terminal until an
    /// operator's retry re-claims it).
    CalendarFailed,
    /// Another booking held the slot when this one asked for it (terminal).
    Refused,
    /// Cancelled by the attendee, the host or an operator (terminal).
    Cancelled,
}

impl BookingStatus {
    /// The stored name (`pending`, `confirmed`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            BookingStatus::Pending => "pending",
            BookingStatus::Confirmed => "confirmed",
            BookingStatus::CalendarFailed => "calendar_failed",
            BookingStatus::Refused => "refused",
            BookingStatus::Cancelled => "cancelled",
        }
    }
}

/// Who acted on a booking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Party {
    /// The person who booked, through their signed link.
    Attendee,
    /// The host, from the portal.
    Host,
    /// An operator or tenant admin.
    Operator,
}

/// The person booking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attendee {
    /// Display name.
    pub name: String,
    /// E-mail address the confirmation goes to.
    pub email: String,
}

/// Commands a booking accepts. Times arrive in the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BookingCommand {
    /// Record a new pending booking of `slot`.
    Request {
        /// The host's tenant.
        tenant_id: String,
        /// The host.
        host_id: String,
        /// The host's calendar collection at the time of booking.
        calendar: String,
        /// The slot, on the host's grid.
        slot: Slot,
        /// Its lock key.
        lock_key: String,
        /// Who books.
        attendee: Attendee,
        /// When.
        at: DateTime<Utc>,
    },
    /// The booking holds, or is about to claim, the lock `lock_key`: its own slot's lock after
    /// the claim, or — recorded before the claim — another slot's lock it is moving to, or its
    /// own again before an operator's retry. A lock recorded here that the booking does not
    /// need is given back ([`Booking::locks_to_free`]), so a crash never leaks it.
    HoldSlot {
        /// The lock.
        lock_key: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// Another booking holds the slot: the request is refused.
    Refuse {
        /// The holder.
        held_by: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// The calendar event is written: confirm.
    Confirm {
        /// When.
        at: DateTime<Utc>,
    },
    /// A calendar write failed; at `max_attempts` failures the booking is abandoned.
    RecordWriteFailure {
        /// What the calendar server said.
        error: String,
        /// The cap on attempts.
        max_attempts: u32,
        /// When.
        at: DateTime<Utc>,
    },
    /// The lock `lock_key` was released on the slot lock.
    FreeSlot {
        /// The lock.
        lock_key: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// An operator re-drives a `calendar_failed` booking whose lock it re-claimed.
    Retry {
        /// Who.
        by: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// Cancel the booking.
    Cancel {
        /// Who.
        by: Party,
        /// When.
        at: DateTime<Utc>,
    },
    /// Move the booking to `slot`, whose lock `lock_key` this booking already holds
    /// ([`BookingCommand::HoldSlot`], then the claim).
    Reschedule {
        /// The new slot.
        slot: Slot,
        /// Its lock key.
        lock_key: String,
        /// Who.
        by: Party,
        /// When.
        at: DateTime<Utc>,
    },
    /// The calendar matches the booking again (event moved or deleted).
    RecordCalendarSynced {
        /// When.
        at: DateTime<Utc>,
    },
    /// Moving or deleting the calendar event failed; it is retried.
    RecordCalendarSyncFailure {
        /// What the calendar server said.
        error: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// The attendee's confirmation e-mail was handed to the mail server.
    RecordConfirmationSent {
        /// When.
        at: DateTime<Utc>,
    },
    /// Sending the confirmation e-mail failed; `retryable` says whether to try again.
    RecordConfirmationFailure {
        /// What the mail server said (or that none is configured).
        error: String,
        /// Whether another attempt may succeed.
        retryable: bool,
        /// When.
        at: DateTime<Utc>,
    },
}

/// Events a booking emits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BookingEvent {
    /// A booking was requested.
    BookingRequested {
        /// The tenant.
        tenant_id: String,
        /// The host.
        host_id: String,
        /// The host's calendar collection.
        calendar: String,
        /// The slot.
        slot: Slot,
        /// Its lock key.
        lock_key: String,
        /// Who books.
        attendee: Attendee,
        /// When.
        at: DateTime<Utc>,
    },
    /// The booking holds a slot lock.
    SlotHeld {
        /// The lock.
        lock_key: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// The slot was held by another booking.
    BookingRefused {
        /// The holder.
        held_by: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// A calendar write failed.
    CalendarWriteFailed {
        /// Which attempt (1-based).
        attempt: u32,
        /// What the calendar server said (truncated).
        error: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// The calendar event is written; the booking is confirmed.
    BookingConfirmed {
        /// Which attempt wrote it (1-based).
        attempt: u32,
        /// When.
        at: DateTime<Utc>,
    },
    /// The attempts are spent: the booking is `calendar_failed` and gives its slot up.
    CalendarWriteAbandoned {
        /// Attempts made.
        attempts: u32,
        /// When.
        at: DateTime<Utc>,
    },
    /// The booking released a slot lock.
    SlotFreed {
        /// The lock.
        lock_key: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// An operator re-drives the booking: pending again with fresh attempts.
    BookingRetried {
        /// Who.
        by: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// The booking was cancelled.
    BookingCancelled {
        /// Who.
        by: Party,
        /// When.
        at: DateTime<Utc>,
    },
    /// The booking moved to another slot.
    BookingRescheduled {
        /// The new slot.
        slot: Slot,
        /// Its lock key.
        lock_key: String,
        /// The slot it left.
        previous_slot: Slot,
        /// The lock it leaves (released next).
        previous_lock_key: String,
        /// Who.
        by: Party,
        /// When.
        at: DateTime<Utc>,
    },
    /// The calendar event was moved or deleted to match the booking.
    CalendarSynced {
        /// When.
        at: DateTime<Utc>,
    },
    /// Moving or deleting the calendar event failed.
    CalendarSyncFailed {
        /// What the calendar server said (truncated).
        error: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// The attendee's confirmation e-mail was handed to the mail server.
    ConfirmationEmailSent {
        /// When.
        at: DateTime<Utc>,
    },
    /// Sending the confirmation e-mail failed.
    ConfirmationEmailFailed {
        /// What the mail server said (truncated).
        error: String,
        /// Whether another attempt may succeed (not for "not configured" or a refusal).
        retryable: bool,
        /// When.
        at: DateTime<Utc>,
    },
}

impl DomainEvent for BookingEvent {
    fn event_type(&self) -> String {
        match self {
            BookingEvent::BookingRequested { .. } => "BookingRequested",
            BookingEvent::SlotHeld { .. } => "SlotHeld",
            BookingEvent::BookingRefused { .. } => "BookingRefused",
            BookingEvent::CalendarWriteFailed { .. } => "CalendarWriteFailed",
            BookingEvent::BookingConfirmed { .. } => "BookingConfirmed",
            BookingEvent::CalendarWriteAbandoned { .. } => "CalendarWriteAbandoned",
            BookingEvent::SlotFreed { .. } => "SlotFreed",
            BookingEvent::BookingRetried { .. } => "BookingRetried",
            BookingEvent::BookingCancelled { .. } => "BookingCancelled",
            BookingEvent::BookingRescheduled { .. } => "BookingRescheduled",
            BookingEvent::CalendarSynced { .. } => "CalendarSynced",
            BookingEvent::CalendarSyncFailed { .. } => "CalendarSyncFailed",
            BookingEvent::ConfirmationEmailSent { .. } => "ConfirmationEmailSent",
            BookingEvent::ConfirmationEmailFailed { .. } => "ConfirmationEmailFailed",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        BOOKING_EVENT_VERSION.to_owned()
    }
}

/// Why a booking refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BookingError {
    /// A command on a booking that was never requested.
    #[error("no such booking")]
    NotFound,
    /// A second request for one booking id.
    #[error("the booking was already requested")]
    AlreadyRequested,
    /// The command does not fit the booking's status.
    #[error("a {status} booking cannot be {action}")]
    WrongStatus {
        /// The status.
        status: &'static str,
        /// What was asked.
        action: &'static str,
    },
    /// Confirmation or retry while the booking does not hold its slot lock.
    #[error("the booking does not hold its slot")]
    SlotNotHeld,
    /// A lock that is not this booking's current one.
    #[error("the lock {0} is not this booking's")]
    ForeignLock(String),
    /// Rescheduling to the slot the booking already has.
    #[error("the booking already has that slot")]
    SameSlot,
    /// A missing or malformed field.
    #[error("invalid {0}")]
    Invalid(&'static str),
    /// A field holds a control character or a direction override ([`crate::text`]); a CR or
    /// LF in the attendee's name would otherwise reach the calendar event and the e-mail.
    #[error("the {field} contains a character that is not allowed there (U+{code_point:04X})")]
    DisallowedCharacter {
        /// Which field.
        field: &'static str,
        /// The first character refused, as its Unicode code point.
        code_point: u32,
    },
}

/// A booking, folded from its events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Booking {
    /// Status; `None` before the request.
    pub status: Option<BookingStatus>,
    /// The tenant.
    pub tenant_id: String,
    /// The host.
    pub host_id: String,
    /// The host's calendar collection.
    pub calendar: String,
    /// The slot (moves on reschedule).
    pub slot: Option<Slot>,
    /// The lock key of the slot.
    pub lock_key: String,
    /// Who booked.
    pub attendee: Option<Attendee>,
    /// Calendar-write attempts since the request or the last operator retry.
    pub attempts: u32,
    /// The last calendar error, if any.
    pub last_error: Option<String>,
    /// Locks this booking holds (its current one, and briefly a previous one).
    pub held_locks: Vec<String>,
    /// Whether the calendar event must still be moved or deleted to match the booking.
    pub calendar_out_of_sync: bool,
    /// Whether the attendee's confirmation e-mail went out.
    pub confirmation_sent: bool,
    /// Failed attempts at the confirmation e-mail.
    pub confirmation_attempts: u32,
    /// The last failure to send it, and whether it may be retried.
    pub confirmation_error: Option<(String, bool)>,
}

fn truncate(error: &str) -> String {
    error.chars().take(MAX_CALENDAR_ERROR_CHARS).collect()
}

impl Booking {
    /// Whether the confirmation e-mail should be (re)sent: confirmed, not yet sent, and no
    /// failure that another attempt cannot fix.
    pub fn confirmation_due(&self, max_attempts: u32) -> bool {
        self.status == Some(BookingStatus::Confirmed)
            && !self.confirmation_sent
            && self.confirmation_attempts < max_attempts.max(1)
            && self
                .confirmation_error
                .as_ref()
                .is_none_or(|(_, retryable)| *retryable)
    }

    /// Whether the booking holds its current slot's lock.
    pub fn holds_slot(&self) -> bool {
        self.held_locks.contains(&self.lock_key)
    }

    /// Locks the booking holds but no longer needs: the previous slot after a reschedule, or
    /// every lock of a booking that is abandoned, refused or cancelled.
    pub fn locks_to_free(&self) -> Vec<String> {
        match self.status {
            Some(BookingStatus::Pending | BookingStatus::Confirmed) => self
                .held_locks
                .iter()
                .filter(|k| **k != self.lock_key)
                .cloned()
                .collect(),
            _ => self.held_locks.clone(),
        }
    }

    fn status_name(&self) -> &'static str {
        self.status.map_or("unrequested", BookingStatus::as_str)
    }

    fn wrong(&self, action: &'static str) -> BookingError {
        match self.status {
            None => BookingError::NotFound,
            Some(_) => BookingError::WrongStatus {
                status: self.status_name(),
                action,
            },
        }
    }

    /// Decides a command. Pure: one function per command (`decide.rs`), laid out like the
    /// Tenant aggregate's.
    pub fn decide(&self, command: BookingCommand) -> Result<Vec<BookingEvent>, BookingError> {
        match command {
            BookingCommand::Request {
                tenant_id,
                host_id,
                calendar,
                slot,
                lock_key,
                attendee,
                at,
            } => self.request(tenant_id, host_id, calendar, slot, lock_key, attendee, at),
            BookingCommand::HoldSlot { lock_key, at } => self.hold_slot(lock_key, at),
            BookingCommand::Refuse { held_by, at } => self.refuse(held_by, at),
            BookingCommand::Confirm { at } => self.confirm(at),
            BookingCommand::RecordWriteFailure {
                error,
                max_attempts,
                at,
            } => self.record_write_failure(&error, max_attempts, at),
            BookingCommand::FreeSlot { lock_key, at } => self.free_slot(lock_key, at),
            BookingCommand::Retry { by, at } => self.retry(by, at),
            BookingCommand::Cancel { by, at } => self.cancel(by, at),
            BookingCommand::Reschedule {
                slot,
                lock_key,
                by,
                at,
            } => self.reschedule(slot, lock_key, by, at),
            BookingCommand::RecordCalendarSynced { at } => self.record_calendar_synced(at),
            BookingCommand::RecordConfirmationSent { at } => self.record_confirmation_sent(at),
            BookingCommand::RecordConfirmationFailure {
                error,
                retryable,
                at,
            } => self.record_confirmation_failure(&error, retryable, at),
            BookingCommand::RecordCalendarSyncFailure { error, at } => {
                self.record_calendar_sync_failure(&error, at)
            }
        }
    }
}

impl Aggregate for Booking {
    const TYPE: &'static str = BOOKING_AGGREGATE_TYPE;
    type Command = BookingCommand;
    type Event = BookingEvent;
    type Error = BookingError;
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
            BookingEvent::BookingRequested {
                tenant_id,
                host_id,
                calendar,
                slot,
                lock_key,
                attendee,
                ..
            } => {
                self.status = Some(BookingStatus::Pending);
                self.tenant_id = tenant_id;
                self.host_id = host_id;
                self.calendar = calendar;
                self.slot = Some(slot);
                self.lock_key = lock_key;
                self.attendee = Some(attendee);
            }
            BookingEvent::SlotHeld { lock_key, .. } => {
                if !self.held_locks.contains(&lock_key) {
                    self.held_locks.push(lock_key);
                }
            }
            BookingEvent::BookingRefused { .. } => self.status = Some(BookingStatus::Refused),
            BookingEvent::CalendarWriteFailed { attempt, error, .. } => {
                self.attempts = attempt;
                self.last_error = Some(error);
            }
            BookingEvent::BookingConfirmed { attempt, .. } => {
                self.attempts = attempt;
                self.status = Some(BookingStatus::Confirmed);
            }
            BookingEvent::CalendarWriteAbandoned { .. } => {
                self.status = Some(BookingStatus::CalendarFailed);
                // A failed write whose answer was lost may have landed: the abandoned
                // booking's event must be deleted (absent is fine), or it would outlive it.
                self.calendar_out_of_sync = true;
            }
            BookingEvent::SlotFreed { lock_key, .. } => self.held_locks.retain(|k| *k != lock_key),
            BookingEvent::BookingRetried { .. } => {
                self.status = Some(BookingStatus::Pending);
                self.attempts = 0;
            }
            BookingEvent::BookingCancelled { .. } => {
                self.status = Some(BookingStatus::Cancelled);
                // The event may exist even for a pending booking (a write whose answer was
                // lost), and deleting what is absent is harmless: always delete.
                self.calendar_out_of_sync = true;
            }
            BookingEvent::BookingRescheduled { slot, lock_key, .. } => {
                if !self.held_locks.contains(&lock_key) {
                    self.held_locks.push(lock_key.clone());
                }
                self.slot = Some(slot);
                self.lock_key = lock_key;
                // A confirmed booking's event must move. A pending one's next write carries the
                // new time, unless a failed write may have landed at the old time (its answer
                // lost): then that event must go first, or the create-only write would find it
                // and count the old time as written.
                self.calendar_out_of_sync = match self.status {
                    Some(BookingStatus::Confirmed) => true,
                    Some(BookingStatus::Pending) => self.calendar_out_of_sync || self.attempts > 0,
                    _ => false,
                };
            }
            BookingEvent::CalendarSynced { .. } => self.calendar_out_of_sync = false,
            BookingEvent::CalendarSyncFailed { error, .. } => self.last_error = Some(error),
            BookingEvent::ConfirmationEmailSent { .. } => self.confirmation_sent = true,
            BookingEvent::ConfirmationEmailFailed {
                error, retryable, ..
            } => {
                self.confirmation_attempts += 1;
                self.confirmation_error = Some((error, retryable));
            }
        }
    }
}

/// The upcasters a booking event store must be built with (none yet).
pub fn booking_upcasters() -> Vec<Box<dyn EventUpcaster>> {
    Vec::new()
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use cqrs_es::test::TestFramework;

    use super::*;

    type Given = TestFramework<Booking>;

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-01T09:00:00Z")
            .expect("instant")
            .with_timezone(&Utc)
    }

    fn slot(hour: i64) -> Slot {
        let start = at() + Duration::hours(hour);
        Slot {
            start,
            end: start + Duration::minutes(30),
        }
    }

    fn requested() -> BookingEvent {
        BookingEvent::BookingRequested {
            tenant_id: "t-1".into(),
            host_id: "h-1".into(),
            calendar: "ann/bookings/".into(),
            slot: slot(24),
            lock_key: "h-1/A".into(),
            attendee: Attendee {
                name: "Bo".into(),
                email: "bo@example.eu".into(),
            },
            at: at(),
        }
    }

    fn held(key: &str) -> BookingEvent {
        BookingEvent::SlotHeld {
            lock_key: key.into(),
            at: at(),
        }
    }

    fn failed(attempt: u32) -> BookingEvent {
        BookingEvent::CalendarWriteFailed {
            attempt,
            error: "503".into(),
            at: at(),
        }
    }

    fn write_failure(max: u32) -> BookingCommand {
        BookingCommand::RecordWriteFailure {
            error: "503".into(),
            max_attempts: max,
            at: at(),
        }
    }

    #[test]
    fn a_booking_is_requested_pending_with_a_trimmed_attendee() {
        let command = BookingCommand::Request {
            tenant_id: "t-1".into(),
            host_id: "h-1".into(),
            calendar: "ann/bookings/".into(),
            slot: slot(24),
            lock_key: "h-1/A".into(),
            attendee: Attendee {
                name: " Bo ".into(),
                email: "bo@example.eu ".into(),
            },
            at: at(),
        };
        Given::with(())
            .given_no_previous_events()
            .when(command)
            .then_expect_events(vec![requested()]);
    }

    #[test]
    fn a_request_without_a_plausible_email_is_refused() {
        let command = BookingCommand::Request {
            tenant_id: "t-1".into(),
            host_id: "h-1".into(),
            calendar: "c/".into(),
            slot: slot(24),
            lock_key: "h-1/A".into(),
            attendee: Attendee {
                name: "Bo".into(),
                email: "bo at example".into(),
            },
            at: at(),
        };
        Given::with(())
            .given_no_previous_events()
            .when(command)
            .then_expect_error(BookingError::Invalid("attendee e-mail"));
    }

    #[test]
    fn a_booking_without_its_slot_cannot_be_confirmed() {
        Given::with(())
            .given(vec![requested()])
            .when(BookingCommand::Confirm { at: at() })
            .then_expect_error(BookingError::SlotNotHeld);
    }

    #[test]
    fn a_booking_holding_its_slot_is_confirmed_on_the_next_attempt() {
        Given::with(())
            .given(vec![requested(), held("h-1/A"), failed(1)])
            .when(BookingCommand::Confirm { at: at() })
            .then_expect_events(vec![BookingEvent::BookingConfirmed {
                attempt: 2,
                at: at(),
            }]);
    }

    #[test]
    fn a_failed_write_below_the_cap_keeps_the_booking_pending() {
        Given::with(())
            .given(vec![requested(), held("h-1/A")])
            .when(write_failure(5))
            .then_expect_events(vec![failed(1)]);
    }

    #[test]
    fn the_fifth_failed_write_abandons_the_booking() {
        Given::with(())
            .given(vec![
                requested(),
                held("h-1/A"),
                failed(1),
                failed(2),
                failed(3),
                failed(4),
            ])
            .when(write_failure(5))
            .then_expect_events(vec![
                failed(5),
                BookingEvent::CalendarWriteAbandoned {
                    attempts: 5,
                    at: at(),
                },
            ]);
    }

    #[test]
    fn an_abandoned_booking_frees_its_slot_and_cannot_be_confirmed() {
        let mut booking = Booking::default();
        for e in [
            requested(),
            held("h-1/A"),
            failed(1),
            BookingEvent::CalendarWriteAbandoned {
                attempts: 1,
                at: at(),
            },
        ] {
            booking.apply(e);
        }
        assert_eq!(booking.status, Some(BookingStatus::CalendarFailed));
        assert_eq!(booking.locks_to_free(), vec!["h-1/A".to_owned()]);
        assert!(booking.calendar_out_of_sync);
        assert_eq!(
            booking.decide(BookingCommand::Confirm { at: at() }),
            Err(BookingError::WrongStatus {
                status: "calendar_failed",
                action: "confirmed"
            })
        );
    }

    #[test]
    fn an_operator_retry_needs_the_slot_claimed_again() {
        let abandoned = vec![
            requested(),
            held("h-1/A"),
            failed(1),
            BookingEvent::CalendarWriteAbandoned {
                attempts: 1,
                at: at(),
            },
            BookingEvent::SlotFreed {
                lock_key: "h-1/A".into(),
                at: at(),
            },
        ];
        let retry = BookingCommand::Retry {
            by: "op".into(),
            at: at(),
        };
        Given::with(())
            .given(abandoned.clone())
            .when(retry.clone())
            .then_expect_error(BookingError::SlotNotHeld);
        let mut with_lock = abandoned;
        with_lock.push(held("h-1/A"));
        Given::with(())
            .given(with_lock)
            .when(retry)
            .then_expect_events(vec![BookingEvent::BookingRetried {
                by: "op".into(),
                at: at(),
            }]);
    }

    #[test]
    fn a_retried_booking_starts_its_attempts_afresh() {
        let mut booking = Booking::default();
        for e in [
            requested(),
            held("h-1/A"),
            failed(1),
            BookingEvent::CalendarWriteAbandoned {
                attempts: 1,
                at: at(),
            },
            BookingEvent::BookingRetried {
                by: "op".into(),
                at: at(),
            },
        ] {
            booking.apply(e);
        }
        assert_eq!(booking.status, Some(BookingStatus::Pending));
        assert_eq!(booking.attempts, 0);
        assert_eq!(booking.last_error.as_deref(), Some("503"));
    }

    #[test]
    fn a_booking_whose_slot_is_taken_is_refused_and_a_holder_cannot_be() {
        Given::with(())
            .given(vec![requested()])
            .when(BookingCommand::Refuse {
                held_by: "b-2".into(),
                at: at(),
            })
            .then_expect_events(vec![BookingEvent::BookingRefused {
                held_by: "b-2".into(),
                at: at(),
            }]);
        Given::with(())
            .given(vec![requested(), held("h-1/A")])
            .when(BookingCommand::Refuse {
                held_by: "b-2".into(),
                at: at(),
            })
            .then_expect_error(BookingError::WrongStatus {
                status: "slot-holding",
                action: "refused",
            });
    }

    #[test]
    fn a_cancelled_booking_must_delete_its_event_and_free_its_slot() {
        let mut booking = Booking::default();
        for e in [
            requested(),
            held("h-1/A"),
            BookingEvent::BookingConfirmed {
                attempt: 1,
                at: at(),
            },
            BookingEvent::BookingCancelled {
                by: Party::Attendee,
                at: at(),
            },
        ] {
            booking.apply(e);
        }
        assert!(booking.calendar_out_of_sync);
        assert_eq!(booking.locks_to_free(), vec!["h-1/A".to_owned()]);
    }

    #[test]
    fn a_rescheduled_confirmed_booking_frees_only_its_previous_slot_and_moves_its_event() {
        let mut booking = Booking::default();
        for e in [
            requested(),
            held("h-1/A"),
            BookingEvent::BookingConfirmed {
                attempt: 1,
                at: at(),
            },
            held("h-1/B"),
        ] {
            booking.apply(e);
        }
        let events = booking
            .decide(BookingCommand::Reschedule {
                slot: slot(48),
                lock_key: "h-1/B".into(),
                by: Party::Host,
                at: at(),
            })
            .expect("reschedules");
        for e in events {
            booking.apply(e);
        }
        assert_eq!(booking.lock_key, "h-1/B");
        assert!(booking.holds_slot());
        assert_eq!(booking.locks_to_free(), vec!["h-1/A".to_owned()]);
        assert!(booking.calendar_out_of_sync);
        assert_eq!(
            booking.decide(BookingCommand::FreeSlot {
                lock_key: "h-1/B".into(),
                at: at()
            }),
            Err(BookingError::WrongStatus {
                status: "confirmed",
                action: "freed of its own slot"
            })
        );
    }

    #[test]
    fn a_pending_booking_with_a_failed_write_must_clear_its_old_event_when_it_moves() {
        let mut booking = Booking::default();
        for e in [requested(), held("h-1/A"), failed(1), held("h-1/B")] {
            booking.apply(e);
        }
        for e in booking
            .decide(BookingCommand::Reschedule {
                slot: slot(48),
                lock_key: "h-1/B".into(),
                by: Party::Attendee,
                at: at(),
            })
            .expect("reschedules")
        {
            booking.apply(e);
        }
        assert!(booking.calendar_out_of_sync);
    }

    #[test]
    fn a_move_needs_the_new_slot_held_first_and_only_slots_of_the_same_host() {
        Given::with(())
            .given(vec![requested(), held("h-1/A")])
            .when(BookingCommand::Reschedule {
                slot: slot(48),
                lock_key: "h-1/B".into(),
                by: Party::Host,
                at: at(),
            })
            .then_expect_error(BookingError::SlotNotHeld);
        Given::with(())
            .given(vec![requested(), held("h-1/A")])
            .when(BookingCommand::HoldSlot {
                lock_key: "h-2/B".into(),
                at: at(),
            })
            .then_expect_error(BookingError::ForeignLock("h-2/B".into()));
    }

    #[test]
    fn a_lock_claimed_for_a_booking_cancelled_meanwhile_is_recorded_to_be_given_back() {
        let mut booking = Booking::default();
        for e in [
            requested(),
            BookingEvent::BookingCancelled {
                by: Party::Attendee,
                at: at(),
            },
        ] {
            booking.apply(e);
        }
        let events = booking
            .decide(BookingCommand::HoldSlot {
                lock_key: "h-1/A".into(),
                at: at(),
            })
            .expect("recorded");
        for e in events {
            booking.apply(e);
        }
        assert_eq!(booking.locks_to_free(), vec!["h-1/A".to_owned()]);
    }

    #[test]
    fn a_confirmed_booking_owes_its_confirmation_until_it_is_sent_or_cannot_be() {
        let confirmed = [
            requested(),
            held("h-1/A"),
            BookingEvent::BookingConfirmed {
                attempt: 1,
                at: at(),
            },
        ];
        let mut booking = Booking::default();
        booking.apply(requested());
        assert!(!booking.confirmation_due(5), "pending: nothing to send yet");
        let mut booking = Booking::default();
        for e in confirmed.clone() {
            booking.apply(e);
        }
        assert!(booking.confirmation_due(5));
        booking.apply(BookingEvent::ConfirmationEmailFailed {
            error: "421".into(),
            retryable: true,
            at: at(),
        });
        assert!(booking.confirmation_due(5));
        assert!(!booking.confirmation_due(1), "the attempts are spent");
        booking.apply(BookingEvent::ConfirmationEmailFailed {
            error: "not configured".into(),
            retryable: false,
            at: at(),
        });
        assert!(!booking.confirmation_due(5));
        let mut sent = Booking::default();
        for e in confirmed {
            sent.apply(e);
        }
        Given::with(())
            .given(vec![
                requested(),
                held("h-1/A"),
                BookingEvent::BookingConfirmed {
                    attempt: 1,
                    at: at(),
                },
                BookingEvent::ConfirmationEmailSent { at: at() },
            ])
            .when(BookingCommand::RecordConfirmationSent { at: at() })
            .then_expect_events(vec![]);
        assert!(sent.confirmation_due(5));
    }

    #[test]
    fn a_pending_booking_cannot_be_marked_as_e_mailed() {
        Given::with(())
            .given(vec![requested(), held("h-1/A")])
            .when(BookingCommand::RecordConfirmationSent { at: at() })
            .then_expect_error(BookingError::WrongStatus {
                status: "pending",
                action: "marked as e-mailed",
            });
    }

    #[test]
    fn rescheduling_to_the_same_slot_is_refused() {
        Given::with(())
            .given(vec![requested(), held("h-1/A")])
            .when(BookingCommand::Reschedule {
                slot: slot(24),
                lock_key: "h-1/A".into(),
                by: Party::Attendee,
                at: at(),
            })
            .then_expect_error(BookingError::SameSlot);
    }

    #[test]
    fn a_refused_booking_cannot_be_cancelled() {
        Given::with(())
            .given(vec![
                requested(),
                BookingEvent::BookingRefused {
                    held_by: "b-2".into(),
                    at: at(),
                },
            ])
            .when(BookingCommand::Cancel {
                by: Party::Attendee,
                at: at(),
            })
            .then_expect_error(BookingError::WrongStatus {
                status: "refused",
                action: "cancelled",
            });
    }

    #[test]
    fn commands_on_an_unrequested_booking_are_not_found() {
        Given::with(())
            .given_no_previous_events()
            .when(BookingCommand::Cancel {
                by: Party::Host,
                at: at(),
            })
            .then_expect_error(BookingError::NotFound);
    }

    #[test]
    fn a_long_calendar_error_is_truncated() {
        let long = "x".repeat(MAX_CALENDAR_ERROR_CHARS * 2);
        let mut booking = Booking::default();
        booking.apply(requested());
        let events = booking
            .decide(BookingCommand::RecordWriteFailure {
                error: long,
                max_attempts: 5,
                at: at(),
            })
            .expect("records");
        let BookingEvent::CalendarWriteFailed { error, .. } = &events[0] else {
            panic!("{events:?}");
        };
        assert_eq!(error.chars().count(), MAX_CALENDAR_ERROR_CHARS);
    }

    #[test]
    fn booking_events_keep_their_stored_names() {
        let json = serde_json::to_value(requested()).expect("serializes");
        assert!(json.get("BookingRequested").is_some(), "{json}");
        assert_eq!(
            json["BookingRequested"]["slot"]["start"],
            "2026-12-02T09:00:00Z"
        );
        assert_eq!(failed(1).event_type(), "CalendarWriteFailed");
    }
}
