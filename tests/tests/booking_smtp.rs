//! The SMTP adapter against a real SMTP server (aiosmtpd): a confirmation is accepted with
//! the booking's Message-ID, a refused recipient is a permanent refusal, a deferral and a
//! server that is down are retryable; and a booking confirmed through the flow e-mails its
//! attendee exactly once.

mod booking_common;

use std::sync::Arc;

use booking_common::{flow, now, request, slot_start};
use chrono::Duration;
use dezky_commands::booking::{BookingFlow, BookingSettings, Issuer};
use dezky_commands::ports::booking_mail::{BookingConfirmation, BookingMailer, MailSendError};
use dezky_tests::calendar_fake::FakeCalendar;
use dezky_tests::smtp_server::SmtpServer;
use dezky_tests::{Backend, TestDb};

fn confirmation(email: &str) -> BookingConfirmation {
    BookingConfirmation {
        booking_id: "b-1".into(),
        attendee_name: "Bö Builder".into(),
        attendee_email: email.into(),
        start: slot_start(),
        end: slot_start() + Duration::minutes(30),
        time_zone: "Europe/Berlin".into(),
        manage_url: None,
    }
}

#[tokio::test]
async fn a_confirmation_is_accepted_with_the_bookings_message_id() {
    let server = SmtpServer::start();
    server
        .mailer()
        .send_confirmation(&confirmation("bo@example.eu"))
        .await
        .expect("accepted");
    let messages = server.messages();
    assert_eq!(messages.len(), 1, "{}", server.log());
    assert_eq!(messages[0].to, vec!["bo@example.eu".to_owned()]);
    assert_eq!(messages[0].from, "bookings@dezky.test");
    assert!(
        messages[0]
            .data
            .contains("Message-ID: <booking-b-1@dezky.test>"),
        "{}",
        messages[0].data
    );
    assert!(messages[0]
        .data
        .contains("Subject: Your booking is confirmed"));
}

#[tokio::test]
async fn a_refused_recipient_is_permanent_and_a_deferral_or_outage_is_retryable() {
    let mut server = SmtpServer::start();
    let mailer = server.mailer();
    let refused = mailer
        .send_confirmation(&confirmation("reject-me@example.eu"))
        .await;
    assert!(
        matches!(refused, Err(MailSendError::Rejected(_))),
        "{refused:?}"
    );
    let deferred = mailer
        .send_confirmation(&confirmation("defer-me@example.eu"))
        .await;
    assert!(
        matches!(&deferred, Err(e) if e.is_retryable()),
        "{deferred:?}"
    );
    server.stop();
    let down = mailer
        .send_confirmation(&confirmation("bo@example.eu"))
        .await;
    assert!(
        matches!(down, Err(MailSendError::Unavailable(_))),
        "{down:?}"
    );
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn a_booking_confirmed_through_the_flow_e_mails_its_attendee_once() {
    let server = SmtpServer::start();
    let db = TestDb::create(Backend::Sqlite).await.expect("database");
    let ledger = db.open().await.expect("ledger");
    let calendar = Arc::new(FakeCalendar::new());
    flow(&ledger, calendar.clone(), BookingSettings::default()).await;
    let flow = BookingFlow::new(ledger, calendar, BookingSettings::default())
        .with_mailer(Arc::new(server.mailer()));
    let public = Issuer::public(None);
    flow.book(request(1, slot_start()), &public, now())
        .await
        .expect("booked");
    flow.confirm("booking-1", &public, now())
        .await
        .expect("confirmed");
    flow.confirm("booking-1", &public, now())
        .await
        .expect("still confirmed");
    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].to, vec!["attendee-1@example.eu".to_owned()]);
    assert!(
        flow.booking("booking-1")
            .await
            .expect("booking")
            .confirmation_sent
    );
}
