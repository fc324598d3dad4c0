//! The calendar server port: what booking needs from the server that holds hosts' calendars
//! (CalDAV on Stalwart in production; Radicale in the contract suite).
//!
//! Events are named by their UID, which is the booking id, and stored as `<uid>.ics` in the
//! host's calendar collection, so every operation can be retried, or its unknown outcome
//! reconciled, from what the ledger holds. The rules every implementation keeps (the contract
//! suite in `tests/tests/caldav_contract.rs` checks them against Radicale and the in-memory
//! fake alike):
//!
//! * **Create is create-only and idempotent**: [`CalendarServer::create_event`] never
//!   overwrites; when the resource exists and holds the same UID, the write counts as done
//!   (a retry after a lost answer), when it holds another UID it is
//!   [`CalendarError::Rejected`]. So a booking's event exists at most once.
//! * **Update moves the event** and creates it when it is missing.
//! * **Deletes are idempotent**: deleting what is not there is `Ok`.
//! * **Reads reconcile**: after [`CalendarError::OutcomeUnknown`], [`CalendarServer::event`]
//!   says whether the write took effect.
//! * **A system that is not configured says so** ([`CalendarError::NotConfigured`]); it never
//!   pretends to succeed.

use std::future::Future;

use chrono::{DateTime, Utc};

/// A calendar event as booking writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarEvent {
    /// The iCalendar UID (the booking id); also names the resource (`<uid>.ics`).
    pub uid: String,
    /// The title.
    pub summary: String,
    /// Start, UTC.
    pub start: DateTime<Utc>,
    /// End, UTC.
    pub end: DateTime<Utc>,
    /// The attendee's display name.
    pub attendee_name: String,
    /// The attendee's e-mail address.
    pub attendee_email: String,
}

/// What can go wrong talking to the calendar server. Only [`CalendarError::Unavailable`] and
/// [`CalendarError::OutcomeUnknown`] are worth retrying (the create is idempotent, so an
/// unknown outcome is settled by writing again).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    /// No calendar server is configured; nothing was attempted.
    #[error("the calendar server is not configured")]
    NotConfigured,
    /// The server could not be reached or answered that it cannot serve now (connection
    /// refused, HTTP 5xx, 429); nothing was applied.
    #[error("the calendar server is unavailable: {0}")]
    Unavailable(String),
    /// The request may have been applied: the connection was lost after it was sent, or no
    /// answer came in time.
    #[error("the calendar server's answer was lost; the change may have been applied: {0}")]
    OutcomeUnknown(String),
    /// The server refused the request (HTTP status and its words). Retrying as is will not
    /// help.
    #[error("the calendar server refused the request (HTTP {status}): {detail}")]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The server's answer, shortened.
        detail: String,
    },
    /// The server refused the configured credentials.
    #[error("the calendar server refused the configured credentials")]
    Unauthorized,
    /// The server answered something this client does not understand.
    #[error("unexpected answer from the calendar server: {0}")]
    Protocol(String),
}

impl CalendarError {
    /// Whether the same call may simply be made again.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            CalendarError::Unavailable(_) | CalendarError::OutcomeUnknown(_)
        )
    }
}

/// What booking needs from a calendar server. `calendar` is the host's collection relative to
/// the server's configured base (`alice/bookings/`).
pub trait CalendarServer: Send + Sync {
    /// Writes the event unless its resource exists; `Ok` when the resource already holds this
    /// UID (a repeated write), [`CalendarError::Rejected`] (412) when it holds another.
    fn create_event(
        &self,
        calendar: &str,
        event: &CalendarEvent,
    ) -> impl Future<Output = Result<(), CalendarError>> + Send;

    /// Replaces the event (a reschedule), or creates it when it is missing.
    fn update_event(
        &self,
        calendar: &str,
        event: &CalendarEvent,
    ) -> impl Future<Output = Result<(), CalendarError>> + Send;

    /// Deletes the event; `Ok` when it is not there.
    fn delete_event(
        &self,
        calendar: &str,
        uid: &str,
    ) -> impl Future<Output = Result<(), CalendarError>> + Send;

    /// The event with this UID, or `None`.
    fn event(
        &self,
        calendar: &str,
        uid: &str,
    ) -> impl Future<Output = Result<Option<CalendarEvent>, CalendarError>> + Send;

    /// UIDs of the events overlapping `[from, to)` (a calendar query), each once per
    /// resource holding it, so a duplicate shows up twice.
    fn event_uids(
        &self,
        calendar: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<String>, CalendarError>> + Send;
}
