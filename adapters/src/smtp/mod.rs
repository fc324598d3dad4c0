//! The booking-mail port ([`BookingMailer`]) over SMTP submission (RFC 6409), with `lettre`:
//! Stalwart's submission listener in production, aiosmtpd in the test suite.
//!
//! How the port's promises are kept here:
//!
//! * **Sent means accepted**: `Ok` only after the server answered the message's data with
//!   a 2xx; the booking records the confirmation as sent only then.
//! * **Errors**: a `4xx` (the server defers) and a connection that could not be made are
//!   [`MailSendError::Unavailable`]; a `5xx` is [`MailSendError::Rejected`] (a bad address
//!   stays bad); a timeout is [`MailSendError::OutcomeUnknown`], since the message may have
//!   been taken before the answer was lost.
//! * **Duplicates are recognisable**: the `Message-ID` is derived from the booking id, so a
//!   message sent twice after a lost answer is one message to a mail client.
//!
//! An adapter built with [`SmtpMailer::unconfigured`] answers [`MailSendError::NotConfigured`].

use std::time::Duration;

use dezky_commands::ports::booking_mail::{
    BookingConfirmation, BookingMailer, MailSendError, SendFuture,
};
use dezky_commands::ports::Secret;
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// Default time limit on one SMTP exchange.
pub const DEFAULT_SMTP_TIMEOUT_SECONDS: u64 = 30;

/// How the connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// TLS from the first byte (port 465).
    Tls,
    /// Plain, then upgraded with STARTTLS, which is required (port 587).
    StartTls,
    /// No TLS at all: only for a server on a private network or loopback.
    Plain,
}

/// Where the submission server is and how to sign in to it.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// The server's host name (checked against its certificate under TLS).
    pub host: String,
    /// The port.
    pub port: u16,
    /// Transport security.
    pub security: SmtpSecurity,
    /// The account to authenticate as, if the server wants one.
    pub user: Option<String>,
    /// Its password.
    pub password: Secret,
    /// The sender (`Bookings <bookings@dezky.eu>`).
    pub from: String,
    /// Time limit on one exchange.
    pub timeout_seconds: u64,
}

/// The SMTP adapter.
pub struct SmtpMailer {
    inner: Option<(AsyncSmtpTransport<Tokio1Executor>, Mailbox)>,
}

/// Why an SMTP configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SmtpConfigError {
    /// The sender is not an address.
    #[error("the sender {0:?} is not an e-mail address")]
    From(String),
    /// The TLS set-up failed.
    #[error("SMTP TLS set-up: {0}")]
    Tls(String),
}

impl SmtpMailer {
    /// An adapter for the server in `config`.
    pub fn new(config: SmtpConfig) -> Result<Self, SmtpConfigError> {
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|_| SmtpConfigError::From(config.from.clone()))?;
        let builder = match config.security {
            SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host)
                .map_err(|e| SmtpConfigError::Tls(e.to_string()))?,
            SmtpSecurity::StartTls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host)
                    .map_err(|e| SmtpConfigError::Tls(e.to_string()))?
            }
            SmtpSecurity::Plain => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
            }
        };
        let mut builder = builder
            .port(config.port)
            .timeout(Some(Duration::from_secs(config.timeout_seconds.max(1))));
        if let Some(user) = config.user {
            builder =
                builder.credentials(Credentials::new(user, config.password.expose().to_owned()));
        }
        Ok(Self {
            inner: Some((builder.build(), from)),
        })
    }

    /// An adapter that answers [`MailSendError::NotConfigured`] to everything.
    pub fn unconfigured() -> Self {
        Self { inner: None }
    }
}

/// The message for a confirmation.
pub fn confirmation_message(
    from: &Mailbox,
    confirmation: &BookingConfirmation,
) -> Result<Message, MailSendError> {
    let to: Mailbox = format!(
        "{} <{}>",
        confirmation
            .attendee_name
            .replace(['"', '<', '>', '\r', '\n'], ""),
        confirmation.attendee_email
    )
    .parse()
    .map_err(|_| {
        MailSendError::Rejected(format!(
            "{:?} is not an e-mail address",
            confirmation.attendee_email
        ))
    })?;
    let domain = from.email.domain().to_owned();
    // As the host published it; an unknown zone (never stored: availability is validated)
    // would fall back to UTC rather than fail the message.
    let zone: chrono_tz::Tz = confirmation.time_zone.parse().unwrap_or(chrono_tz::UTC);
    let (start, end) = (
        confirmation.start.with_timezone(&zone),
        confirmation.end.with_timezone(&zone),
    );
    let manage = confirmation
        .manage_url
        .as_ref()
        .map(|url| format!("To cancel or move it: {url}\n\n"))
        .unwrap_or_default();
    let body = format!(
        "Hello {name},\n\nyour booking is confirmed:\n\n  {day}, {from} to {to} ({zone})\n  \
         ({utc} UTC)\n\n{manage}Booking reference: {id}\n",
        name = confirmation.attendee_name,
        day = start.format("%A %-d %B %Y"),
        from = start.format("%H:%M"),
        to = end.format("%H:%M"),
        utc = confirmation.start.format("%Y-%m-%d %H:%M"),
        id = confirmation.booking_id,
    );
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject("Your booking is confirmed")
        .message_id(Some(format!(
            "<booking-{}@{domain}>",
            confirmation.booking_id
        )))
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|e| MailSendError::Rejected(e.to_string()))
}

fn send_error(error: &lettre::transport::smtp::Error) -> MailSendError {
    let text = error.to_string();
    if error.is_permanent() {
        MailSendError::Rejected(text)
    } else if error.is_timeout() {
        MailSendError::OutcomeUnknown(text)
    } else {
        MailSendError::Unavailable(text)
    }
}

impl BookingMailer for SmtpMailer {
    fn send_confirmation<'a>(&'a self, confirmation: &'a BookingConfirmation) -> SendFuture<'a> {
        Box::pin(async move {
            let Some((transport, from)) = &self.inner else {
                return Err(MailSendError::NotConfigured);
            };
            let message = confirmation_message(from, confirmation)?;
            transport
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| send_error(&e))
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    fn confirmation(name: &str, email: &str) -> BookingConfirmation {
        BookingConfirmation {
            booking_id: "b-1".into(),
            attendee_name: name.into(),
            attendee_email: email.into(),
            start: Utc
                .with_ymd_and_hms(2026, 12, 2, 8, 0, 0)
                .single()
                .expect("time"),
            end: Utc
                .with_ymd_and_hms(2026, 12, 2, 8, 30, 0)
                .single()
                .expect("time"),
            time_zone: "Europe/Berlin".into(),
            manage_url: Some("https://book.example.eu/manage?token=b-1.sig".into()),
        }
    }

    #[test]
    fn the_message_names_the_slot_and_carries_a_message_id_of_the_booking() {
        let from: Mailbox = "Bookings <bookings@dezky.eu>".parse().expect("mailbox");
        let message = confirmation_message(&from, &confirmation("Bo <evil>", "bo@example.eu"))
            .expect("message");
        let text = String::from_utf8(message.formatted()).expect("utf-8");
        assert!(
            text.contains("Message-ID: <booking-b-1@dezky.eu>"),
            "{text}"
        );
        assert!(
            text.contains("Wednesday 2 December 2026, 09:00 to 09:30 (Europe/Berlin)"),
            "{text}"
        );
        assert!(text.contains("(2026-12-02 08:00 UTC)"), "{text}");
        assert!(
            text.contains("To cancel or move it: https://book.example.eu/manage?token=b-1.sig"),
            "{text}"
        );
        assert!(text.contains("To: \"Bo evil\" <bo@example.eu>"), "{text}");
    }

    #[test]
    fn a_malformed_attendee_address_is_refused_for_good() {
        let from: Mailbox = "bookings@dezky.eu".parse().expect("mailbox");
        let refused = confirmation_message(&from, &confirmation("Bo", "not an address"));
        assert!(matches!(refused, Err(MailSendError::Rejected(_))));
    }

    #[tokio::test]
    async fn an_unconfigured_mailer_says_so() {
        let outcome = SmtpMailer::unconfigured()
            .send_confirmation(&confirmation("Bo", "bo@example.eu"))
            .await;
        assert_eq!(outcome, Err(MailSendError::NotConfigured));
    }
}
