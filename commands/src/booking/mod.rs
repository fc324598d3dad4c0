//! The booking flow over the ledger and the calendar port: publish availability, list free
//! slots, book (claim the slot lock atomically), confirm (the first calendar write, inline),
//! cancel, reschedule, and the operator's retry; [`processor`] re-drives what is left.
//!
//! Every step is one command on one aggregate and can be repeated: a booking that a crash,
//! a calendar outage or a lost conflict left half way is finished by [`BookingFlow::drive`],
//! which looks only at the booking's state on the ledger. The guarantees:
//!
//! * **One holder per slot**: claims go through the [`SlotLock`] aggregate, whose optimistic
//!   concurrency commits one of any number of concurrent claims; the others are refused with
//!   [`BookingFlowError::SlotTaken`].
//! * **No confirmed booking without its calendar event**: `Confirm` is sent only after the
//!   calendar server acknowledged the create-only write. When the write fails the booking
//!   stays pending with its lock, and the caller of [`BookingFlow::confirm`] hears
//!   [`BookingFlowError::CalendarUnavailable`].
//! * **Locks are given back**: a booking that is abandoned, refused, cancelled or moved frees
//!   the locks it no longer needs ([`Booking::locks_to_free`]).

pub mod processor;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use dezky_domain::booking::{
    bookable_slot, grid_slots, slot_lock_key, Attendee, Availability, Booking, BookingCommand,
    BookingError, BookingHost, BookingHostCommand, BookingHostError, BookingStatus, Party, Slot,
    SlotError, SlotLock, SlotLockCommand, SlotLockError, MAX_SLOT_MINUTES,
};
use dezky_domain::{Actor, EventMetadata};
use tokio::sync::OwnedMutexGuard;

use crate::app::registry::{framework, Cqrs, Registered};
use crate::app::retry::{execute_with_retry, RetryError};
use crate::ports::booking_mail::{BookingConfirmation, BookingMailer, UnconfiguredMailer};
use crate::ports::calendar::{CalendarError, CalendarEvent, CalendarServer};
use crate::Ledger;

/// How often the processor re-drives pending bookings, unless configured otherwise.
pub const DEFAULT_RETRY_INTERVAL_MS: u64 = 2 * 60 * 1_000;
/// Calendar-write attempts before a booking is abandoned, unless configured otherwise.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// The actor recorded on the processor's commands.
pub const BOOKING_PROCESSOR_ACTOR: &str = "dezky:process:booking-retry";
/// The actor recorded on a member of the public's commands.
pub const PUBLIC_ACTOR: &str = "dezky:public";

/// The flow's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BookingSettings {
    /// How long after a failed (or first) calendar write the processor tries again.
    pub retry_interval_ms: u64,
    /// Calendar-write attempts before a booking becomes `calendar_failed`.
    pub max_attempts: u32,
}

impl Default for BookingSettings {
    fn default() -> Self {
        Self {
            retry_interval_ms: DEFAULT_RETRY_INTERVAL_MS,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
    }
}

/// Why a booking operation failed, in the words the API maps to its codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BookingFlowError {
    /// The host or booking does not exist.
    #[error("not found")]
    NotFound,
    /// Another booking holds the slot.
    #[error("the slot is taken")]
    SlotTaken,
    /// The slot is not one the host offers now.
    #[error(transparent)]
    Slot(#[from] SlotError),
    /// The booking refused the command.
    #[error(transparent)]
    Booking(#[from] BookingError),
    /// The host refused the availability.
    #[error(transparent)]
    Host(#[from] BookingHostError),
    /// The calendar write failed; the booking stays pending and is retried.
    #[error("the calendar could not be written: {0}")]
    CalendarUnavailable(String),
    /// The ledger failed or kept conflicting.
    #[error("ledger: {0}")]
    Ledger(String),
}

/// A booking request from a member of the public.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookRequest {
    /// The new booking's id (the caller chooses it, so a retried request is recognisable).
    pub booking_id: String,
    /// The host.
    pub host_id: String,
    /// The slot's start, on the host's grid.
    pub start: DateTime<Utc>,
    /// Who books.
    pub attendee: Attendee,
}

/// Who issues a command, for its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issuer {
    /// The actor.
    pub actor: Actor,
    /// The request's IP, when there is one.
    pub request_ip: Option<String>,
    /// The correlation id shared by one request's commands.
    pub correlation_id: Option<String>,
}

impl Issuer {
    /// A member of the public (no account), from `request_ip`.
    pub fn public(request_ip: Option<String>) -> Self {
        Self {
            actor: Actor {
                subject: PUBLIC_ACTOR.to_owned(),
                email: None,
            },
            request_ip,
            correlation_id: None,
        }
    }

    /// The retry processor.
    pub fn processor() -> Self {
        Self {
            actor: Actor {
                subject: BOOKING_PROCESSOR_ACTOR.to_owned(),
                email: None,
            },
            request_ip: None,
            correlation_id: None,
        }
    }
}

/// Builds an attendee's link to manage a booking from its id (the API signs it).
pub type ManageLinks = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// Runs `command` on aggregate `id` under the one retry-on-conflict policy
/// ([`crate::app::retry`]). Still conflicting after its attempts, it gives up with
/// [`BookingFlowError::Ledger`] naming `what`; the aggregate's own refusal is handed to
/// `refused`.
async fn execute_retrying<A, T>(
    cqrs: &Cqrs<A>,
    id: &str,
    command: A::Command,
    metadata: &HashMap<String, String>,
    what: &str,
    ok: T,
    refused: impl Fn(A::Error) -> Result<T, BookingFlowError>,
) -> Result<T, BookingFlowError>
where
    A: Registered,
    A::Command: Clone,
{
    match execute_with_retry(cqrs, id, metadata, || command.clone()).await {
        Ok(()) => Ok(ok),
        Err(RetryError::Refused(e)) => refused(e),
        Err(RetryError::Exhausted { .. }) => {
            Err(BookingFlowError::Ledger(format!("{what} kept conflicting")))
        }
        Err(RetryError::Failed(e)) => Err(ledger_error(e)),
    }
}

fn ledger_error(error: impl std::fmt::Display) -> BookingFlowError {
    BookingFlowError::Ledger(error.to_string())
}

/// One aggregate's state and version, folded through the registry (with its upcasters).
pub async fn load<A>(ledger: &Ledger, id: &str) -> Result<(A, u64), BookingFlowError>
where
    A: Registered + Clone,
{
    let (state, version) = crate::app::registry::load::<A>(ledger, id)
        .await
        .map_err(BookingFlowError::Ledger)?;
    Ok((state, u64::try_from(version).unwrap_or(u64::MAX)))
}

/// What a booking's calendar event says.
pub fn calendar_event(booking_id: &str, booking: &Booking) -> Option<CalendarEvent> {
    let slot = booking.slot?;
    let attendee = booking.attendee.as_ref()?;
    Some(CalendarEvent {
        uid: booking_id.to_owned(),
        summary: format!("Booking with {}", attendee.name),
        start: slot.start,
        end: slot.end,
        attendee_name: attendee.name.clone(),
        attendee_email: attendee.email.clone(),
    })
}

/// The booking flow.
pub struct BookingFlow<C> {
    ledger: Ledger,
    hosts: Cqrs<BookingHost>,
    locks: Cqrs<SlotLock>,
    bookings: Cqrs<Booking>,
    calendar: Arc<C>,
    mailer: Arc<dyn BookingMailer>,
    manage_links: Option<ManageLinks>,
    settings: BookingSettings,
    /// One lock per booking being worked on: in one process, the calendar calls and commands
    /// of one booking never interleave (a delete of a stale event racing a fresh write could
    /// otherwise leave a confirmed booking without its event). Across processes, see ADR 10.
    in_flight: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// The outcome of driving one booking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Driven {
    /// Nothing was due.
    Idle,
    /// The booking was confirmed now.
    Confirmed,
    /// A calendar write failed; the booking stays pending.
    WriteFailed(String),
    /// The attempts are spent; the booking is `calendar_failed` and its lock released.
    Abandoned(String),
    /// The slot was taken; the booking is refused.
    Refused,
    /// Locks were released or the calendar brought in line.
    Tidied,
}

impl<C: CalendarServer> BookingFlow<C> {
    /// The flow over `ledger`, writing to `calendar`.
    pub fn new(ledger: Ledger, calendar: Arc<C>, settings: BookingSettings) -> Self {
        Self {
            hosts: framework(&ledger),
            locks: framework(&ledger),
            bookings: framework(&ledger),
            ledger,
            calendar,
            mailer: Arc::new(UnconfiguredMailer),
            manage_links: None,
            settings,
            in_flight: Mutex::new(HashMap::new()),
        }
    }

    /// Sends attendees' confirmations through `mailer` (without one, each confirmed booking
    /// records that outgoing mail is not configured).
    pub fn with_mailer(mut self, mailer: Arc<dyn BookingMailer>) -> Self {
        self.mailer = mailer;
        self
    }

    /// Puts the attendee's cancel/reschedule link (`link(booking id)`, a signed URL the API
    /// builds) into each confirmation.
    pub fn with_manage_links(mut self, link: ManageLinks) -> Self {
        self.manage_links = Some(link);
        self
    }

    /// Sends the booking's confirmation and records the outcome on the booking.
    async fn send_confirmation(
        &self,
        booking_id: &str,
        booking: &Booking,
        metadata: &HashMap<String, String>,
        now: DateTime<Utc>,
    ) -> Result<(), BookingFlowError> {
        let (Some(slot), Some(attendee)) = (booking.slot, booking.attendee.as_ref()) else {
            return Err(BookingFlowError::NotFound);
        };
        // The host's current zone: a host who moved zones wants the new one shown.
        let time_zone = match self.host(&booking.host_id).await {
            Ok((_, availability)) => availability.time_zone,
            Err(BookingFlowError::NotFound) => "UTC".to_owned(),
            Err(e) => return Err(e),
        };
        let confirmation = BookingConfirmation {
            booking_id: booking_id.to_owned(),
            attendee_name: attendee.name.clone(),
            attendee_email: attendee.email.clone(),
            start: slot.start,
            end: slot.end,
            time_zone,
            manage_url: self.manage_links.as_ref().map(|link| link(booking_id)),
        };
        let command = match self.mailer.send_confirmation(&confirmation).await {
            Ok(()) => BookingCommand::RecordConfirmationSent { at: now },
            Err(error) => BookingCommand::RecordConfirmationFailure {
                retryable: error.is_retryable(),
                error: error.to_string(),
                at: now,
            },
        };
        self.on_booking(booking_id, command, metadata).await
    }

    /// Waits for, and holds, the booking's in-process lock.
    async fn guard(&self, booking_id: &str) -> OwnedMutexGuard<()> {
        let lock = {
            let mut map = self
                .in_flight
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // Forget locks nobody holds or waits for, so the map stays as small as the work.
            map.retain(|_, lock| Arc::strong_count(lock) > 1);
            map.entry(booking_id.to_owned()).or_default().clone()
        };
        lock.lock_owned().await
    }

    /// The ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The limits.
    pub fn settings(&self) -> BookingSettings {
        self.settings
    }

    fn metadata(
        &self,
        issuer: &Issuer,
        tenant_id: &str,
        at: DateTime<Utc>,
    ) -> HashMap<String, String> {
        EventMetadata {
            actor: Some(issuer.actor.clone()),
            tenant_id: (!tenant_id.is_empty()).then(|| tenant_id.to_owned()),
            request_ip: issuer.request_ip.clone(),
            correlation_id: issuer.correlation_id.clone(),
            causation_id: None,
            occurred_at: Some(crate::encoding::format_timestamp(at)),
        }
        .to_map()
    }

    /// Runs a booking command, deciding it again when a concurrent writer got there first.
    async fn on_booking(
        &self,
        booking_id: &str,
        command: BookingCommand,
        metadata: &HashMap<String, String>,
    ) -> Result<(), BookingFlowError> {
        execute_retrying(
            &self.bookings,
            booking_id,
            command,
            metadata,
            "the booking",
            (),
            |e| Err(e.into()),
        )
        .await
    }

    /// Claims `lock_key` for `booking_id`: `Ok(None)` when held, `Ok(Some(holder))` when
    /// another booking holds it.
    async fn claim(
        &self,
        lock_key: &str,
        booking_id: &str,
        metadata: &HashMap<String, String>,
    ) -> Result<Option<String>, BookingFlowError> {
        let command = SlotLockCommand::Claim {
            booking_id: booking_id.to_owned(),
        };
        execute_retrying(
            &self.locks,
            lock_key,
            command,
            metadata,
            "the slot lock",
            None,
            |e| match e {
                SlotLockError::Taken { by } => Ok(Some(by)),
                other => Err(ledger_error(other)),
            },
        )
        .await
    }

    async fn release(
        &self,
        lock_key: &str,
        booking_id: &str,
        metadata: &HashMap<String, String>,
    ) -> Result<(), BookingFlowError> {
        let command = SlotLockCommand::Release {
            booking_id: booking_id.to_owned(),
        };
        execute_retrying(
            &self.locks,
            lock_key,
            command,
            metadata,
            "the slot lock",
            (),
            |e| Err(ledger_error(e)),
        )
        .await
    }

    /// The booking's state on the ledger.
    pub async fn booking(&self, booking_id: &str) -> Result<Booking, BookingFlowError> {
        let (booking, _) = load::<Booking>(&self.ledger, booking_id).await?;
        if booking.status.is_none() {
            return Err(BookingFlowError::NotFound);
        }
        Ok(booking)
    }

    /// The host's current availability and tenant.
    pub async fn host(&self, host_id: &str) -> Result<(String, Availability), BookingFlowError> {
        let (host, _) = load::<BookingHost>(&self.ledger, host_id).await?;
        match (host.tenant_id, host.availability) {
            (Some(tenant), Some(availability)) => Ok((tenant, availability)),
            _ => Err(BookingFlowError::NotFound),
        }
    }

    /// A booking other than `booking_id` holding a slot that overlaps `slot` on any grid the
    /// host has published (bookings made before a change of slot length keep their old
    /// grid's locks). The lock of `slot` itself is left to the claim.
    pub async fn overlapping_holder(
        &self,
        host_id: &str,
        slot: Slot,
        booking_id: &str,
    ) -> Result<Option<String>, BookingFlowError> {
        let (host, _) = load::<BookingHost>(&self.ledger, host_id).await?;
        let own = slot_lock_key(host_id, slot.start);
        let reach = chrono::Duration::minutes(i64::from(MAX_SLOT_MINUTES));
        let mut checked = std::collections::BTreeSet::new();
        for grid in host.grids() {
            // Invalid old grids cannot have been booked; nothing to check there.
            let Ok(slots) = grid_slots(grid, slot.start - reach, slot.end) else {
                continue;
            };
            for other in slots.into_iter().filter(|o| o.overlaps(&slot)) {
                let key = slot_lock_key(host_id, other.start);
                if key == own || !checked.insert(key.clone()) {
                    continue;
                }
                match self.holder(&key).await? {
                    Some(holder) if holder != booking_id => return Ok(Some(holder)),
                    _ => {}
                }
            }
        }
        Ok(None)
    }

    /// Run right after this booking claimed `lock_key` for `slot`: the holder of an
    /// overlapping slot on another grid, if any, in which case the claim is given back (the
    /// booking does not list the lock yet, or lists it as one to free).
    ///
    /// Why after and not only before: two bookings on two grids (one read the host before a
    /// change of slot length, one after) claim two different locks, and each could check the
    /// other's lock before it was claimed. Claiming first and checking second makes them a
    /// store-then-load pair over the ledger, which serializes writes: whichever claim came
    /// second sees the first, so at most one keeps its slot (in a close race both may give
    /// up, which is safe: both attendees are told the slot is taken).
    async fn claimed_without_overlap(
        &self,
        host_id: &str,
        slot: Slot,
        lock_key: &str,
        booking_id: &str,
        metadata: &HashMap<String, String>,
    ) -> Result<Option<String>, BookingFlowError> {
        let Some(holder) = self.overlapping_holder(host_id, slot, booking_id).await? else {
            return Ok(None);
        };
        self.release(lock_key, booking_id, metadata).await?;
        Ok(Some(holder))
    }

    /// The booking holding the lock `lock_key`, if any.
    pub async fn holder(&self, lock_key: &str) -> Result<Option<String>, BookingFlowError> {
        let (lock, _) = load::<SlotLock>(&self.ledger, lock_key).await?;
        Ok(lock.holder)
    }

    /// Publishes a host's availability.
    pub async fn publish_availability(
        &self,
        host_id: &str,
        tenant_id: &str,
        availability: Availability,
        issuer: &Issuer,
        at: DateTime<Utc>,
    ) -> Result<(), BookingFlowError> {
        let command = BookingHostCommand::Publish {
            tenant_id: tenant_id.to_owned(),
            availability,
        };
        let metadata = self.metadata(issuer, tenant_id, at);
        // Two saves at once (two portal tabs): decided again on what the other wrote, so the
        // last save wins as with any settings form, instead of failing with a conflict.
        execute_retrying(
            &self.hosts,
            host_id,
            command,
            &metadata,
            "the host's availability",
            (),
            |e| Err(e.into()),
        )
        .await
    }

    /// The host's slots starting in `[from, to)` that can be booked at `now`, each with
    /// whether a booking holds it. The lock is the authority on "held"; a read model can
    /// answer faster, this answers exactly.
    pub async fn slots(
        &self,
        host_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<(Slot, bool)>, BookingFlowError> {
        let (_, availability) = self.host(host_id).await?;
        let horizon = availability.horizon_end(now);
        let mut slots = Vec::new();
        for slot in grid_slots(&availability, from, to)? {
            if slot.start <= now || slot.start > horizon {
                continue;
            }
            let held = self
                .holder(&slot_lock_key(host_id, slot.start))
                .await?
                .is_some();
            slots.push((slot, held));
        }
        Ok(slots)
    }

    /// Books a slot: records the pending booking, then claims its lock. The slot is the
    /// booking's when this returns `Ok`; [`BookingFlowError::SlotTaken`] when another booking
    /// holds it (this one is then recorded as refused).
    pub async fn book(
        &self,
        request: BookRequest,
        issuer: &Issuer,
        now: DateTime<Utc>,
    ) -> Result<(), BookingFlowError> {
        let _guard = self.guard(&request.booking_id).await;
        let (tenant_id, availability) = self.host(&request.host_id).await?;
        let slot = bookable_slot(&availability, request.start, now)?;
        let lock_key = slot_lock_key(&request.host_id, slot.start);
        let metadata = self.metadata(issuer, &tenant_id, now);
        // A cheap look first: a slot that is visibly held is refused without a booking on the
        // ledger. The claim below is what decides; this only spares the log.
        if self.holder(&lock_key).await?.is_some() {
            return Err(BookingFlowError::SlotTaken);
        }
        if self
            .overlapping_holder(&request.host_id, slot, &request.booking_id)
            .await?
            .is_some()
        {
            return Err(BookingFlowError::SlotTaken);
        }
        self.on_booking(
            &request.booking_id,
            BookingCommand::Request {
                tenant_id,
                host_id: request.host_id.clone(),
                calendar: availability.calendar,
                slot,
                lock_key: lock_key.clone(),
                attendee: request.attendee,
                at: now,
            },
            &metadata,
        )
        .await?;
        self.take_slot(
            &request.booking_id,
            &request.host_id,
            slot,
            &lock_key,
            &metadata,
            now,
        )
        .await
    }

    /// Claims the booking's lock and records the outcome on the booking.
    ///
    /// The claim makes one holder per lock; slots of different grids (the host changed the
    /// slot length or start) have different locks, so an overlap is checked again **after**
    /// the claim ([`Self::claimed_without_overlap`]).
    async fn take_slot(
        &self,
        booking_id: &str,
        host_id: &str,
        slot: Slot,
        lock_key: &str,
        metadata: &HashMap<String, String>,
        now: DateTime<Utc>,
    ) -> Result<(), BookingFlowError> {
        let mut outcome = self.claim(lock_key, booking_id, metadata).await?;
        if outcome.is_none() {
            if let Some(holder) = self
                .claimed_without_overlap(host_id, slot, lock_key, booking_id, metadata)
                .await?
            {
                outcome = Some(holder);
            }
        }
        match outcome {
            None => {
                self.on_booking(
                    booking_id,
                    BookingCommand::HoldSlot {
                        lock_key: lock_key.to_owned(),
                        at: now,
                    },
                    metadata,
                )
                .await?;
                // Cancelled by another process between the request and the claim: the lock
                // goes straight back.
                let booking = self.booking(booking_id).await?;
                if booking.status != Some(BookingStatus::Pending) {
                    self.free_locks(booking_id, &booking, metadata, now).await?;
                    return Err(BookingError::WrongStatus {
                        status: booking.status.map_or("unrequested", BookingStatus::as_str),
                        action: "given its slot",
                    }
                    .into());
                }
                Ok(())
            }
            Some(holder) => {
                self.on_booking(
                    booking_id,
                    BookingCommand::Refuse {
                        held_by: holder,
                        at: now,
                    },
                    metadata,
                )
                .await?;
                Err(BookingFlowError::SlotTaken)
            }
        }
    }

    /// The public confirmation: the first calendar write, inline. `Ok` once the booking is
    /// confirmed; [`BookingFlowError::CalendarUnavailable`] when the write failed (the booking
    /// stays pending with its lock, and the processor retries it).
    pub async fn confirm(
        &self,
        booking_id: &str,
        issuer: &Issuer,
        now: DateTime<Utc>,
    ) -> Result<(), BookingFlowError> {
        let booking = self.booking(booking_id).await?;
        match booking.status {
            Some(BookingStatus::Confirmed) => return Ok(()),
            Some(BookingStatus::Pending) => {}
            Some(BookingStatus::Refused) => return Err(BookingFlowError::SlotTaken),
            _ => {
                return Err(BookingError::WrongStatus {
                    status: booking.status.map_or("unrequested", BookingStatus::as_str),
                    action: "confirmed",
                }
                .into())
            }
        }
        let _guard = self.guard(booking_id).await;
        match self.drive_locked(booking_id, issuer, now).await? {
            Driven::Confirmed | Driven::Idle | Driven::Tidied => {
                let after = self.booking(booking_id).await?;
                if after.status == Some(BookingStatus::Confirmed) {
                    Ok(())
                } else {
                    Err(BookingFlowError::CalendarUnavailable(
                        after.last_error.unwrap_or_default(),
                    ))
                }
            }
            Driven::WriteFailed(error) | Driven::Abandoned(error) => {
                Err(BookingFlowError::CalendarUnavailable(error))
            }
            Driven::Refused => Err(BookingFlowError::SlotTaken),
        }
    }

    /// Does whatever the booking's state calls for now: give back locks it no longer needs,
    /// claim its lock if a crash interrupted the booking, write its calendar event and
    /// confirm it (or record the failure, abandoning at the cap), and move or delete its event
    /// after a reschedule or cancellation. Safe to call at any time, any number of times.
    pub async fn drive(
        &self,
        booking_id: &str,
        issuer: &Issuer,
        now: DateTime<Utc>,
    ) -> Result<Driven, BookingFlowError> {
        let _guard = self.guard(booking_id).await;
        self.drive_locked(booking_id, issuer, now).await
    }

    async fn drive_locked(
        &self,
        booking_id: &str,
        issuer: &Issuer,
        now: DateTime<Utc>,
    ) -> Result<Driven, BookingFlowError> {
        let booking = self.booking(booking_id).await?;
        let metadata = self.metadata(issuer, &booking.tenant_id, now);
        let mut outcome = Driven::Idle;
        if booking.calendar_out_of_sync {
            let failure = self
                .sync_calendar(booking_id, &booking, &metadata, now)
                .await?;
            if let Some(error) = failure {
                if booking.status == Some(BookingStatus::Pending) {
                    // A stale event that could not be removed would be taken for this
                    // booking's write: this attempt fails, and counts as one.
                    return self
                        .record_failure(booking_id, &error, &metadata, now)
                        .await;
                }
            }
            outcome = Driven::Tidied;
        }
        if self
            .free_locks(booking_id, &booking, &metadata, now)
            .await?
        {
            outcome = Driven::Tidied;
        }
        if booking.confirmation_due(self.settings.max_attempts) {
            self.send_confirmation(booking_id, &booking, &metadata, now)
                .await?;
            outcome = Driven::Tidied;
        }
        if booking.status != Some(BookingStatus::Pending) {
            return Ok(outcome);
        }
        if !booking.holds_slot() {
            let Some(slot) = booking.slot else {
                return Err(BookingFlowError::NotFound);
            };
            match self
                .take_slot(
                    booking_id,
                    &booking.host_id,
                    slot,
                    &booking.lock_key,
                    &metadata,
                    now,
                )
                .await
            {
                Ok(()) => {}
                Err(BookingFlowError::SlotTaken) => return Ok(Driven::Refused),
                Err(e) => return Err(e),
            }
        }
        let Some(event) = calendar_event(booking_id, &booking) else {
            return Err(BookingFlowError::NotFound);
        };
        match self.calendar.create_event(&booking.calendar, &event).await {
            Ok(()) => {
                self.confirm_written(booking_id, &booking, &metadata, now)
                    .await
            }
            Err(error) => {
                self.record_failure(booking_id, &error, &metadata, now)
                    .await
            }
        }
    }

    async fn confirm_written(
        &self,
        booking_id: &str,
        written: &Booking,
        metadata: &HashMap<String, String>,
        now: DateTime<Utc>,
    ) -> Result<Driven, BookingFlowError> {
        match self
            .on_booking(booking_id, BookingCommand::Confirm { at: now }, metadata)
            .await
        {
            Ok(()) => {
                // The slot is the attendee's and the event is written: tell them. A failure
                // here is recorded and retried; it never undoes the confirmation.
                let confirmed = self.booking(booking_id).await?;
                if confirmed.confirmation_due(self.settings.max_attempts) {
                    self.send_confirmation(booking_id, &confirmed, metadata, now)
                        .await?;
                }
                Ok(Driven::Confirmed)
            }
            Err(BookingFlowError::Booking(BookingError::WrongStatus { .. })) => {
                // Another process cancelled the booking while the event was written: the
                // event must not outlive it. (Only a cancellation is final; an abandoned
                // booking may still be retried, and its retry reuses the event.)
                let now_state = self.booking(booking_id).await?;
                if now_state.status == Some(BookingStatus::Cancelled) {
                    let _ = self
                        .calendar
                        .delete_event(&written.calendar, booking_id)
                        .await;
                }
                Ok(Driven::Idle)
            }
            Err(e) => Err(e),
        }
    }

    async fn record_failure(
        &self,
        booking_id: &str,
        error: &CalendarError,
        metadata: &HashMap<String, String>,
        now: DateTime<Utc>,
    ) -> Result<Driven, BookingFlowError> {
        let text = error.to_string();
        let recorded = self
            .on_booking(
                booking_id,
                BookingCommand::RecordWriteFailure {
                    error: text.clone(),
                    max_attempts: self.settings.max_attempts,
                    at: now,
                },
                metadata,
            )
            .await;
        match recorded {
            Ok(()) => {}
            // Confirmed or cancelled meanwhile by another driver: this failure is moot.
            Err(BookingFlowError::Booking(BookingError::WrongStatus { .. })) => {
                return Ok(Driven::Idle)
            }
            Err(e) => return Err(e),
        }
        let after = self.booking(booking_id).await?;
        if after.status == Some(BookingStatus::CalendarFailed) {
            self.free_locks(booking_id, &after, metadata, now).await?;
            // The last attempt may have landed with its answer lost: delete the event now;
            // if that fails too, the booking says so and the processor deletes it later.
            self.sync_calendar(booking_id, &after, metadata, now)
                .await?;
            return Ok(Driven::Abandoned(text));
        }
        Ok(Driven::WriteFailed(text))
    }

    /// Releases the locks the booking no longer needs; `true` if there were any.
    async fn free_locks(
        &self,
        booking_id: &str,
        booking: &Booking,
        metadata: &HashMap<String, String>,
        now: DateTime<Utc>,
    ) -> Result<bool, BookingFlowError> {
        let stale = booking.locks_to_free();
        for lock_key in &stale {
            self.release(lock_key, booking_id, metadata).await?;
            self.on_booking(
                booking_id,
                BookingCommand::FreeSlot {
                    lock_key: lock_key.clone(),
                    at: now,
                },
                metadata,
            )
            .await?;
        }
        Ok(!stale.is_empty())
    }

    /// Moves (confirmed) or deletes (otherwise) the booking's event; the calendar's error when
    /// that failed (recorded on the booking).
    async fn sync_calendar(
        &self,
        booking_id: &str,
        booking: &Booking,
        metadata: &HashMap<String, String>,
        now: DateTime<Utc>,
    ) -> Result<Option<CalendarError>, BookingFlowError> {
        let outcome = match booking.status {
            Some(BookingStatus::Confirmed) => match calendar_event(booking_id, booking) {
                Some(event) => self.calendar.update_event(&booking.calendar, &event).await,
                None => return Err(BookingFlowError::NotFound),
            },
            _ => {
                self.calendar
                    .delete_event(&booking.calendar, booking_id)
                    .await
            }
        };
        let (command, failure) = match outcome {
            Ok(()) => (BookingCommand::RecordCalendarSynced { at: now }, None),
            Err(error) => (
                BookingCommand::RecordCalendarSyncFailure {
                    error: error.to_string(),
                    at: now,
                },
                Some(error),
            ),
        };
        self.on_booking(booking_id, command, metadata).await?;
        Ok(failure)
    }

    /// Cancels a booking (the attendee through their signed link, the host from the portal)
    /// and gives its slot back; the calendar event is deleted now or by the processor.
    pub async fn cancel(
        &self,
        booking_id: &str,
        by: Party,
        issuer: &Issuer,
        now: DateTime<Utc>,
    ) -> Result<(), BookingFlowError> {
        let _guard = self.guard(booking_id).await;
        let booking = self.booking(booking_id).await?;
        let metadata = self.metadata(issuer, &booking.tenant_id, now);
        self.on_booking(
            booking_id,
            BookingCommand::Cancel { by, at: now },
            &metadata,
        )
        .await?;
        // A calendar outage must not keep the cancellation from being answered: what is left
        // is on the booking and the processor finishes it.
        match self.drive_locked(booking_id, issuer, now).await {
            Ok(_) | Err(BookingFlowError::CalendarUnavailable(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Moves a pending or confirmed booking to another free slot of its host: claims the new
    /// slot's lock, records the move, then releases the old lock and moves the event.
    pub async fn reschedule(
        &self,
        booking_id: &str,
        start: DateTime<Utc>,
        by: Party,
        issuer: &Issuer,
        now: DateTime<Utc>,
    ) -> Result<(), BookingFlowError> {
        let _guard = self.guard(booking_id).await;
        let booking = self.booking(booking_id).await?;
        let (_, availability) = self.host(&booking.host_id).await?;
        let slot = bookable_slot(&availability, start, now)?;
        let lock_key = slot_lock_key(&booking.host_id, slot.start);
        if lock_key == booking.lock_key {
            return Err(BookingError::SameSlot.into());
        }
        if self
            .overlapping_holder(&booking.host_id, slot, booking_id)
            .await?
            .is_some()
        {
            return Err(BookingFlowError::SlotTaken);
        }
        let metadata = self.metadata(issuer, &booking.tenant_id, now);
        // The intent goes on the booking before the claim, so a crash after the claim leaves
        // a lock the booking knows it must give back.
        self.on_booking(
            booking_id,
            BookingCommand::HoldSlot {
                lock_key: lock_key.clone(),
                at: now,
            },
            &metadata,
        )
        .await?;
        // Claimed, then checked again for an overlap on another grid (see
        // [`Self::claimed_without_overlap`]); the booking lists the new lock as one it is
        // moving to, so freeing its locks gives it back either way.
        let taken = match self.claim(&lock_key, booking_id, &metadata).await? {
            Some(holder) => Some(holder),
            None => {
                self.overlapping_holder(&booking.host_id, slot, booking_id)
                    .await?
            }
        };
        if taken.is_some() {
            let booking = self.booking(booking_id).await?;
            self.free_locks(booking_id, &booking, &metadata, now)
                .await?;
            return Err(BookingFlowError::SlotTaken);
        }
        let moved = self
            .on_booking(
                booking_id,
                BookingCommand::Reschedule {
                    slot,
                    lock_key: lock_key.clone(),
                    by,
                    at: now,
                },
                &metadata,
            )
            .await;
        if let Err(error) = moved {
            // The booking cannot move: give the new slot back at once.
            let booking = self.booking(booking_id).await?;
            self.free_locks(booking_id, &booking, &metadata, now)
                .await?;
            return Err(error);
        }
        match self.drive_locked(booking_id, issuer, now).await {
            Ok(_) | Err(BookingFlowError::CalendarUnavailable(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// An operator's retry of a `calendar_failed` booking: re-claims its slot (refused with
    /// [`BookingFlowError::SlotTaken`] when someone else booked it meanwhile), puts it back to
    /// pending with fresh attempts and writes the calendar at once. A pending booking is simply
    /// driven now.
    pub async fn operator_retry(
        &self,
        booking_id: &str,
        issuer: &Issuer,
        now: DateTime<Utc>,
    ) -> Result<Driven, BookingFlowError> {
        let _guard = self.guard(booking_id).await;
        let booking = self.booking(booking_id).await?;
        let metadata = self.metadata(issuer, &booking.tenant_id, now);
        if booking.status == Some(BookingStatus::CalendarFailed) {
            if let Some(slot) = booking.slot {
                if self
                    .overlapping_holder(&booking.host_id, slot, booking_id)
                    .await?
                    .is_some()
                {
                    return Err(BookingFlowError::SlotTaken);
                }
            }
            if !booking.holds_slot() {
                // Intent first, then the claim: a crash in between leaves a lock the
                // abandoned booking gives back, never one nobody knows about.
                self.on_booking(
                    booking_id,
                    BookingCommand::HoldSlot {
                        lock_key: booking.lock_key.clone(),
                        at: now,
                    },
                    &metadata,
                )
                .await?;
            }
            // Always claimed, even when the booking already lists the lock: an intent left by
            // an interrupted retry is not a claim.
            let mut taken = self.claim(&booking.lock_key, booking_id, &metadata).await?;
            if taken.is_none() {
                if let Some(slot) = booking.slot {
                    // Checked again after the claim: see [`Self::claimed_without_overlap`].
                    taken = self
                        .overlapping_holder(&booking.host_id, slot, booking_id)
                        .await?;
                }
            }
            if taken.is_some() {
                // Someone else booked the slot meanwhile: refuse, and take the intent back
                // (the release is a no-op on a lock another booking holds).
                let booking = self.booking(booking_id).await?;
                self.free_locks(booking_id, &booking, &metadata, now)
                    .await?;
                return Err(BookingFlowError::SlotTaken);
            }
            self.on_booking(
                booking_id,
                BookingCommand::Retry {
                    by: issuer.actor.subject.clone(),
                    at: now,
                },
                &metadata,
            )
            .await?;
        } else if booking.status != Some(BookingStatus::Pending) {
            return Err(BookingError::WrongStatus {
                status: booking.status.map_or("unrequested", BookingStatus::as_str),
                action: "retried",
            }
            .into());
        }
        self.drive_locked(booking_id, issuer, now).await
    }
}
