//! The attendee's confirmation e-mail: sent once the booking is confirmed, never before; a
//! mail outage never undoes a confirmation and is retried by the processor; a deployment
//! without outgoing mail records that, and nothing pretends a message went out.

mod booking_common;

use std::sync::Arc;

use booking_common::{flow, later, now, request, slot_start};
use dezky_commands::booking::processor::BookingProcessor;
use dezky_commands::booking::{BookingFlow, BookingSettings, Issuer};
use dezky_commands::ports::booking_mail::MailSendError;
use dezky_domain::booking::BookingStatus;
use dezky_tests::calendar_fake::FakeCalendar;
use dezky_tests::mailer_fake::FakeMailer;
use dezky_tests::{Backend, TestDb};

struct Rig {
    flow: Arc<BookingFlow<FakeCalendar>>,
    calendar: Arc<FakeCalendar>,
    mailer: Arc<FakeMailer>,
    settings: BookingSettings,
    _db: TestDb,
}

async fn rig(with_mailer: bool) -> Rig {
    let db = TestDb::create(Backend::Sqlite).await.expect("database");
    let ledger = db.open().await.expect("ledger");
    let calendar = Arc::new(FakeCalendar::new());
    let mailer = Arc::new(FakeMailer::new());
    let settings = BookingSettings::default();
    // Publish the host's availability through the shared helper, then rebuild the flow with
    // the mailer (the helper's flow has none).
    flow(&ledger, calendar.clone(), settings).await;
    let mut built = BookingFlow::new(ledger, calendar.clone(), settings).with_manage_links(
        Arc::new(|id: &str| format!("https://book.example.eu/manage?token={id}.sig")),
    );
    if with_mailer {
        built = built.with_mailer(mailer.clone());
    }
    Rig {
        flow: Arc::new(built),
        calendar,
        mailer,
        settings,
        _db: db,
    }
}

#[tokio::test]
async fn the_confirmation_goes_out_once_and_only_after_the_calendar_is_written() {
    let rig = rig(true).await;
    let public = Issuer::public(None);
    rig.flow
        .book(request(1, slot_start()), &public, now())
        .await
        .expect("booked");
    rig.calendar.set_down(true);
    assert!(rig.flow.confirm("booking-1", &public, now()).await.is_err());
    assert!(rig.mailer.sent().is_empty(), "pending: no confirmation yet");

    rig.calendar.set_down(false);
    rig.flow
        .confirm("booking-1", &public, now())
        .await
        .expect("confirmed");
    let sent = rig.mailer.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].attendee_email, "attendee-1@example.eu");
    assert_eq!(sent[0].start, slot_start());
    // In the host's zone, with the attendee's link to cancel or move it.
    assert_eq!(sent[0].time_zone, "Europe/Berlin");
    assert_eq!(
        sent[0].manage_url.as_deref(),
        Some("https://book.example.eu/manage?token=booking-1.sig")
    );
    let booking = rig.flow.booking("booking-1").await.expect("booking");
    assert!(booking.confirmation_sent);
    // Nothing is due any more, and confirming again sends nothing.
    let processor = BookingProcessor::new(rig.flow.clone());
    assert_eq!(
        processor
            .tick(later(now(), rig.settings))
            .await
            .expect("tick")
            .driven,
        0
    );
    rig.flow
        .confirm("booking-1", &public, now())
        .await
        .expect("still confirmed");
    assert_eq!(rig.mailer.sent().len(), 1);
}

#[tokio::test]
async fn a_mail_outage_leaves_the_booking_confirmed_and_the_processor_sends_later() {
    let rig = rig(true).await;
    let public = Issuer::public(None);
    rig.flow
        .book(request(1, slot_start()), &public, now())
        .await
        .expect("booked");
    rig.mailer
        .fail_next([MailSendError::Unavailable("421 try later".into())]);
    rig.flow
        .confirm("booking-1", &public, now())
        .await
        .expect("confirmed regardless of the mail");
    let booking = rig.flow.booking("booking-1").await.expect("booking");
    assert_eq!(booking.status, Some(BookingStatus::Confirmed));
    assert!(!booking.confirmation_sent);
    assert!(rig.mailer.sent().is_empty());

    let processor = BookingProcessor::new(rig.flow.clone());
    let report = processor
        .tick(later(now(), rig.settings))
        .await
        .expect("tick");
    assert_eq!(report.driven, 1);
    assert_eq!(rig.mailer.sent().len(), 1);
    assert!(
        rig.flow
            .booking("booking-1")
            .await
            .expect("booking")
            .confirmation_sent
    );
}

#[tokio::test]
async fn a_refused_message_or_no_mail_server_is_recorded_and_not_retried() {
    for (with_mailer, expected) in [(false, "not configured"), (true, "refused")] {
        let rig = rig(with_mailer).await;
        rig.mailer
            .fail_next([MailSendError::Rejected("550 no such user".into())]);
        let public = Issuer::public(None);
        rig.flow
            .book(request(1, slot_start()), &public, now())
            .await
            .expect("booked");
        rig.flow
            .confirm("booking-1", &public, now())
            .await
            .expect("confirmed");
        let booking = rig.flow.booking("booking-1").await.expect("booking");
        assert!(!booking.confirmation_sent);
        let (error, retryable) = booking.confirmation_error.expect("recorded");
        assert!(error.contains(expected), "{error}");
        assert!(!retryable);
        let processor = BookingProcessor::new(rig.flow.clone());
        assert_eq!(
            processor
                .tick(later(now(), rig.settings))
                .await
                .expect("tick")
                .driven,
            0
        );
        assert!(rig.mailer.sent().is_empty());
    }
}
