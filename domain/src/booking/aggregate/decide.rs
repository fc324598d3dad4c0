//! One function per booking command: what it requires of the booking's state and which events
//! it yields. `Booking::decide` only dispatches here.

use chrono::{DateTime, Utc};

use super::{
    truncate, Attendee, Booking, BookingError, BookingEvent, BookingStatus as S, Party, Slot,
    MAX_EMAIL_CHARS, MAX_NAME_CHARS,
};
use crate::text::{first_disallowed_char, is_bidi_control, TextShape};

type Decided = Result<Vec<BookingEvent>, BookingError>;

impl Booking {
    /// A new booking request: every field checked, the attendee's name and address trimmed.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn request(
        &self,
        tenant_id: String,
        host_id: String,
        calendar: String,
        slot: Slot,
        lock_key: String,
        attendee: Attendee,
        at: DateTime<Utc>,
    ) -> Decided {
        if self.status.is_some() {
            return Err(BookingError::AlreadyRequested);
        }
        if tenant_id.trim().is_empty() {
            return Err(BookingError::Invalid("tenant id"));
        }
        if host_id.trim().is_empty() || lock_key.trim().is_empty() {
            return Err(BookingError::Invalid("host"));
        }
        if slot.end <= slot.start {
            return Err(BookingError::Invalid("slot"));
        }
        let name = attendee.name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            return Err(BookingError::Invalid("attendee name"));
        }
        if let Some(c) = first_disallowed_char(name, TextShape::SingleLine) {
            return Err(BookingError::DisallowedCharacter {
                field: "attendee name",
                code_point: u32::from(c),
            });
        }
        let email = attendee.email.trim();
        let plausible = email.len() <= MAX_EMAIL_CHARS
            && email
                .split_once('@')
                .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
            && !email
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || is_bidi_control(c));
        if !plausible {
            return Err(BookingError::Invalid("attendee e-mail"));
        }
        Ok(vec![BookingEvent::BookingRequested {
            tenant_id,
            host_id,
            calendar,
            slot,
            lock_key,
            attendee: Attendee {
                name: name.to_owned(),
                email: email.to_owned(),
            },
            at,
        }])
    }

    /// Records a claimed slot lock.
    pub(super) fn hold_slot(&self, lock_key: String, at: DateTime<Utc>) -> Decided {
        if self.status.is_none() {
            return Err(BookingError::NotFound);
        }
        // A booking's own lock is recorded whatever its status: the claim has happened, and a
        // booking cancelled meanwhile must know the lock to give it back
        // ([`Booking::locks_to_free`]). Another slot of the same host may be held only by a
        // live booking, on its way to a reschedule (recorded before the claim, so a crash in
        // between leaves a lock the booking knows to give back).
        let own_host = lock_key
            .strip_prefix(self.host_id.as_str())
            .is_some_and(|rest| rest.starts_with('/'));
        let moving = own_host && matches!(self.status, Some(S::Pending | S::Confirmed));
        if lock_key != self.lock_key && !moving {
            return Err(BookingError::ForeignLock(lock_key));
        }
        if self.held_locks.contains(&lock_key) {
            return Ok(Vec::new());
        }
        Ok(vec![BookingEvent::SlotHeld { lock_key, at }])
    }

    /// Another booking holds the slot.
    pub(super) fn refuse(&self, held_by: String, at: DateTime<Utc>) -> Decided {
        if self.status != Some(S::Pending) {
            return Err(self.wrong("refused"));
        }
        if self.holds_slot() {
            return Err(BookingError::WrongStatus {
                status: "slot-holding",
                action: "refused",
            });
        }
        Ok(vec![BookingEvent::BookingRefused { held_by, at }])
    }

    /// The calendar event is written.
    pub(super) fn confirm(&self, at: DateTime<Utc>) -> Decided {
        match self.status {
            Some(S::Confirmed) => Ok(Vec::new()),
            Some(S::Pending) if self.holds_slot() => Ok(vec![BookingEvent::BookingConfirmed {
                attempt: self.attempts + 1,
                at,
            }]),
            Some(S::Pending) => Err(BookingError::SlotNotHeld),
            _ => Err(self.wrong("confirmed")),
        }
    }

    /// A calendar write failed; the last allowed attempt abandons the booking.
    pub(super) fn record_write_failure(
        &self,
        error: &str,
        max_attempts: u32,
        at: DateTime<Utc>,
    ) -> Decided {
        if self.status != Some(S::Pending) {
            return Err(self.wrong("given a failed write"));
        }
        let attempt = self.attempts + 1;
        let mut events = vec![BookingEvent::CalendarWriteFailed {
            attempt,
            error: truncate(error),
            at,
        }];
        if attempt >= max_attempts.max(1) {
            events.push(BookingEvent::CalendarWriteAbandoned {
                attempts: attempt,
                at,
            });
        }
        Ok(events)
    }

    /// A lock the booking no longer needs was given back.
    pub(super) fn free_slot(&self, lock_key: String, at: DateTime<Utc>) -> Decided {
        if self.status.is_none() {
            return Err(BookingError::NotFound);
        }
        if !self.held_locks.contains(&lock_key) {
            return Ok(Vec::new());
        }
        if !self.locks_to_free().contains(&lock_key) {
            return Err(BookingError::WrongStatus {
                status: self.status_name(),
                action: "freed of its own slot",
            });
        }
        Ok(vec![BookingEvent::SlotFreed { lock_key, at }])
    }

    /// An operator's retry of an abandoned booking (its slot re-claimed first).
    pub(super) fn retry(&self, by: String, at: DateTime<Utc>) -> Decided {
        if self.status != Some(S::CalendarFailed) {
            return Err(self.wrong("retried"));
        }
        if !self.holds_slot() {
            return Err(BookingError::SlotNotHeld);
        }
        Ok(vec![BookingEvent::BookingRetried { by, at }])
    }

    /// Cancelled by the host or the attendee.
    pub(super) fn cancel(&self, by: Party, at: DateTime<Utc>) -> Decided {
        match self.status {
            Some(S::Pending | S::Confirmed) => Ok(vec![BookingEvent::BookingCancelled { by, at }]),
            Some(S::Cancelled) => Ok(Vec::new()),
            _ => Err(self.wrong("cancelled")),
        }
    }

    /// Moved to another slot whose lock the booking already holds.
    pub(super) fn reschedule(
        &self,
        slot: Slot,
        lock_key: String,
        by: Party,
        at: DateTime<Utc>,
    ) -> Decided {
        if !matches!(self.status, Some(S::Pending | S::Confirmed)) {
            return Err(self.wrong("rescheduled"));
        }
        let Some(previous_slot) = self.slot else {
            return Err(BookingError::NotFound);
        };
        if previous_slot == slot || lock_key == self.lock_key {
            return Err(BookingError::SameSlot);
        }
        if !self.held_locks.contains(&lock_key) {
            return Err(BookingError::SlotNotHeld);
        }
        if slot.end <= slot.start {
            return Err(BookingError::Invalid("slot"));
        }
        Ok(vec![BookingEvent::BookingRescheduled {
            slot,
            lock_key,
            previous_slot,
            previous_lock_key: self.lock_key.clone(),
            by,
            at,
        }])
    }

    /// The calendar event matches the booking again.
    pub(super) fn record_calendar_synced(&self, at: DateTime<Utc>) -> Decided {
        if !self.calendar_out_of_sync {
            return Ok(Vec::new());
        }
        Ok(vec![BookingEvent::CalendarSynced { at }])
    }

    /// The attendee's confirmation e-mail went out.
    pub(super) fn record_confirmation_sent(&self, at: DateTime<Utc>) -> Decided {
        if self.status != Some(S::Confirmed) && self.status != Some(S::Cancelled) {
            return Err(self.wrong("marked as e-mailed"));
        }
        if self.confirmation_sent {
            return Ok(Vec::new());
        }
        Ok(vec![BookingEvent::ConfirmationEmailSent { at }])
    }

    /// Sending the confirmation e-mail failed.
    pub(super) fn record_confirmation_failure(
        &self,
        error: &str,
        retryable: bool,
        at: DateTime<Utc>,
    ) -> Decided {
        if self.status != Some(S::Confirmed) && self.status != Some(S::Cancelled) {
            return Err(self.wrong("given a failed e-mail"));
        }
        if self.confirmation_sent {
            return Ok(Vec::new());
        }
        Ok(vec![BookingEvent::ConfirmationEmailFailed {
            error: truncate(error),
            retryable,
            at,
        }])
    }

    /// Moving or deleting the calendar event failed.
    pub(super) fn record_calendar_sync_failure(&self, error: &str, at: DateTime<Utc>) -> Decided {
        if !self.calendar_out_of_sync {
            return Err(self.wrong("given a failed calendar sync"));
        }
        Ok(vec![BookingEvent::CalendarSyncFailed {
            error: truncate(error),
            at,
        }])
    }
}
