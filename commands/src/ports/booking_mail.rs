//! The outgoing-mail port for booking: the attendee's confirmation e-mail (SMTP submission to
//! Stalwart in production).
//!
//! Sending is at least once: the booking records `ConfirmationEmailSent` only after the mail
//! server accepted the message, and a failure that another attempt may fix is retried by the
//! booking processor. After [`MailSendError::OutcomeUnknown`] the attendee may get the message
//! twice, which is the lesser evil against never getting it. A system that is not configured
//! says so ([`MailSendError::NotConfigured`]) and is recorded as such, never as sent.

use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Utc};

/// A booking confirmation to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingConfirmation {
    /// The booking (also the message's idempotency reference).
    pub booking_id: String,
    /// The attendee's name.
    pub attendee_name: String,
    /// The attendee's address.
    pub attendee_email: String,
    /// Start, UTC.
    pub start: DateTime<Utc>,
    /// End, UTC.
    pub end: DateTime<Utc>,
    /// The host's IANA time zone, to show the time as the host published it.
    pub time_zone: String,
    /// The attendee's link to cancel or move the booking, when links are issued.
    pub manage_url: Option<String>,
}

/// Why a message was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailSendError {
    /// No outgoing mail server is configured; nothing was attempted.
    #[error("outgoing mail is not configured")]
    NotConfigured,
    /// The server could not be reached or deferred the message (4xx); nothing was sent.
    #[error("the mail server is unavailable: {0}")]
    Unavailable(String),
    /// The connection was lost after the message was handed over.
    #[error("the mail server's answer was lost; the message may have been sent: {0}")]
    OutcomeUnknown(String),
    /// The server refused the message for good (5xx: a bad address, a policy).
    #[error("the mail server refused the message: {0}")]
    Rejected(String),
}

impl MailSendError {
    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            MailSendError::Unavailable(_) | MailSendError::OutcomeUnknown(_)
        )
    }
}

/// The future a [`BookingMailer`] returns (boxed, so the flow can hold any mailer).
pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<(), MailSendError>> + Send + 'a>>;

/// Sends booking e-mails.
pub trait BookingMailer: Send + Sync {
    /// Sends the attendee's confirmation.
    fn send_confirmation<'a>(&'a self, confirmation: &'a BookingConfirmation) -> SendFuture<'a>;
}

/// The mailer of a deployment without outgoing mail: every message is
/// [`MailSendError::NotConfigured`].
#[derive(Debug, Clone, Copy, Default)]
pub struct UnconfiguredMailer;

impl BookingMailer for UnconfiguredMailer {
    fn send_confirmation<'a>(&'a self, _confirmation: &'a BookingConfirmation) -> SendFuture<'a> {
        Box::pin(async { Err(MailSendError::NotConfigured) })
    }
}
