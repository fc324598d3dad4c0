//! Booking: the public books a host's slot; the slot is locked atomically, the calendar event
//! is written to the host's CalDAV calendar, and a slot is never double-booked.
//!
//! # Aggregates
//!
//! * [`BookingHost`] (id = host id): the availability a host published (working hours per
//!   weekday, slot length, buffer, time zone, horizon, calendar collection). Slot generation
//!   is pure ([`free_slots`], [`bookable_slot`]).
//! * [`SlotLock`] (id = [`slot_lock_key`] = `{host}/{slot start UTC}`): which booking holds a
//!   slot. The ledger's optimistic concurrency makes concurrent claims of one slot produce
//!   exactly one holder.
//! * [`Booking`] (id = booking id): pending → confirmed | calendar_failed | cancelled, with
//!   calendar-write attempts, the last calendar error and the locks it holds.
//!
//! # Why the lock key is the slot grid
//!
//! A host's slots of one availability never overlap (windows of a weekday do not overlap and
//! slots step by slot + buffer in absolute time), so locking the slot's start is enough for
//! two bookings of one host never to overlap, with one aggregate per booking to claim — one
//! command, atomic. Locking every fine grid cell a booking covers would also survive a change
//! of slot length, but it needs several claims per booking, which are not atomic together and
//! leave half-claimed cells after a crash. The price of the simpler key: when a host
//! republishes availability with a different grid, a new slot can overlap a booking made on
//! the old grid. The host remembers its earlier grids ([`BookingHost::grids`]) and the command
//! side refuses a slot that overlaps a held slot lock of any of them; ADR 10 records that this
//! check, unlike the lock, is not atomic against bookings racing the availability change.
//!
//! # Order of steps (driven by `dezky_commands::booking`)
//!
//! 1. [`BookingCommand::Request`] records the pending booking;
//! 2. [`SlotLockCommand::Claim`] for its key, then [`BookingCommand::HoldSlot`] (or
//!    [`BookingCommand::Refuse`] when another booking holds it);
//! 3. the calendar write, then [`BookingCommand::Confirm`] or
//!    [`BookingCommand::RecordWriteFailure`] (which abandons the booking at the attempt cap);
//! 4. a booking that no longer needs a lock it holds ([`Booking::locks_to_free`]) has it
//!    released ([`SlotLockCommand::Release`], then [`BookingCommand::FreeSlot`]).
//!
//! Every step is repeatable, so a crash between two of them is finished by the retry
//! processor, never double-applied.

mod aggregate;
mod availability;
mod host;
mod slot_lock;

pub use aggregate::{
    booking_upcasters, Attendee, Booking, BookingCommand, BookingError, BookingEvent,
    BookingStatus, Party, BOOKING_AGGREGATE_TYPE, MAX_CALENDAR_ERROR_CHARS,
};
pub use availability::{
    bookable_slot, free_slots, grid_slots, slot_lock_key, Availability, AvailabilityError, Slot,
    SlotError, Weekday, WorkingHours, MAX_BUFFER_MINUTES, MAX_HORIZON_DAYS, MAX_QUERY_DAYS,
    MAX_SLOT_MINUTES, MAX_WINDOWS, MINUTES_PER_DAY, MIN_SLOT_MINUTES,
};
pub use host::{
    booking_host_upcasters, BookingHost, BookingHostCommand, BookingHostError, BookingHostEvent,
    BOOKING_HOST_AGGREGATE_TYPE, MAX_REMEMBERED_GRIDS,
};
pub use slot_lock::{
    slot_lock_upcasters, SlotLock, SlotLockCommand, SlotLockError, SlotLockEvent,
    SLOT_LOCK_AGGREGATE_TYPE,
};
