//! Booking against a real calendar server (Radicale with Basic auth): confirmation writes the
//! event, an outage leaves the booking pending until the processor confirms it with the event
//! written exactly once, five failures abandon the booking and free the slot, an operator's
//! retry is refused once someone else took the slot, and cancel/reschedule delete/move the
//! event.

mod booking_common;

use std::sync::Arc;

use booking_common::{flow, later, now, request, slot_start, CALENDAR, HOST};
use chrono::Duration;
use dezky_adapters::caldav::CalDav;
use dezky_commands::booking::processor::BookingProcessor;
use dezky_commands::booking::{load, BookingFlow, BookingFlowError, BookingSettings, Issuer};
use dezky_commands::ports::calendar::CalendarServer;
use dezky_domain::booking::{slot_lock_key, BookingStatus, Party, SlotLock};
use dezky_tests::radicale::Radicale;
use dezky_tests::{Backend, TestDb};

struct Rig {
    radicale: Radicale,
    calendar: Arc<CalDav>,
    flow: Arc<BookingFlow<CalDav>>,
    settings: BookingSettings,
    _db: TestDb,
}

async fn rig() -> Rig {
    let radicale = Radicale::start();
    let calendar = Arc::new(radicale.client());
    calendar
        .ensure_calendar(CALENDAR)
        .await
        .expect("calendar created");
    let db = TestDb::create(Backend::Sqlite).await.expect("database");
    let ledger = db.open().await.expect("ledger");
    let settings = BookingSettings::default();
    let flow = flow(&ledger, calendar.clone(), settings).await;
    Rig {
        radicale,
        calendar,
        flow,
        settings,
        _db: db,
    }
}

impl Rig {
    /// UIDs in the calendar on the suites' day.
    async fn uids(&self) -> Vec<String> {
        self.calendar
            .event_uids(
                CALENDAR,
                slot_start() - Duration::days(1),
                slot_start() + Duration::days(3),
            )
            .await
            .expect("calendar query")
    }

    async fn holder(&self) -> Option<String> {
        load::<SlotLock>(self.flow.ledger(), &slot_lock_key(HOST, slot_start()))
            .await
            .expect("lock")
            .0
            .holder
    }
}

#[tokio::test]
async fn a_confirmed_booking_has_its_event_in_the_hosts_calendar() {
    let rig = rig().await;
    let public = Issuer::public(Some("192.0.2.1".into()));
    rig.flow
        .book(request(1, slot_start()), &public, now())
        .await
        .expect("booked");
    rig.flow
        .confirm("booking-1", &public, now())
        .await
        .expect("confirmed");
    let event = rig
        .calendar
        .event(CALENDAR, "booking-1")
        .await
        .expect("read")
        .expect("written");
    assert_eq!(event.start, slot_start());
    assert_eq!(event.attendee_email, "attendee-1@example.eu");
    assert_eq!(rig.uids().await, vec!["booking-1".to_owned()]);
}

#[tokio::test]
async fn a_calendar_outage_leaves_the_booking_pending_until_the_processor_confirms_it_once() {
    let mut rig = rig().await;
    let public = Issuer::public(None);
    rig.flow
        .book(request(1, slot_start()), &public, now())
        .await
        .expect("booked");

    rig.radicale.stop();
    let answer = rig.flow.confirm("booking-1", &public, now()).await;
    assert!(
        matches!(answer, Err(BookingFlowError::CalendarUnavailable(_))),
        "{answer:?}"
    );
    let booking = rig.flow.booking("booking-1").await.expect("booking");
    assert_eq!(booking.status, Some(BookingStatus::Pending));
    assert_eq!(booking.attempts, 1);
    assert!(booking.last_error.is_some());
    assert_eq!(rig.holder().await.as_deref(), Some("booking-1"));

    // Still down at the next tick: another failed attempt, still pending, lock kept.
    let processor = BookingProcessor::new(rig.flow.clone());
    let t1 = later(now(), rig.settings);
    let report = processor.tick(t1).await.expect("tick");
    assert_eq!((report.driven, report.failed), (1, 1));
    // Not due again before the interval has passed.
    assert_eq!(processor.tick(t1).await.expect("tick").driven, 0);

    rig.radicale.start_again();
    let report = processor.tick(later(t1, rig.settings)).await.expect("tick");
    assert_eq!(report.confirmed, 1);
    let booking = rig.flow.booking("booking-1").await.expect("booking");
    assert_eq!(booking.status, Some(BookingStatus::Confirmed));
    assert_eq!(booking.attempts, 3);
    assert_eq!(rig.uids().await, vec!["booking-1".to_owned()]);
    // A confirmation retried after the fact changes nothing and writes nothing twice.
    rig.flow
        .confirm("booking-1", &public, now())
        .await
        .expect("still confirmed");
    assert_eq!(rig.uids().await, vec!["booking-1".to_owned()]);
}

#[tokio::test]
async fn five_failed_writes_abandon_the_booking_and_free_the_slot() {
    let mut rig = rig().await;
    let public = Issuer::public(None);
    rig.flow
        .book(request(1, slot_start()), &public, now())
        .await
        .expect("booked");
    rig.radicale.stop();
    assert!(rig.flow.confirm("booking-1", &public, now()).await.is_err());
    let processor = BookingProcessor::new(rig.flow.clone());
    let mut t = now();
    for _ in 0..4 {
        t = later(t, rig.settings);
        processor.tick(t).await.expect("tick");
    }
    let booking = rig.flow.booking("booking-1").await.expect("booking");
    assert_eq!(booking.status, Some(BookingStatus::CalendarFailed));
    assert_eq!(booking.attempts, 5);
    assert!(booking.held_locks.is_empty());
    assert_eq!(rig.holder().await, None);
    // Terminal: later ticks make no further write attempt; they only keep trying to delete
    // an event the last, unanswered attempt might have left.
    processor.tick(later(t, rig.settings)).await.expect("tick");
    let booking = rig.flow.booking("booking-1").await.expect("booking");
    assert_eq!(booking.status, Some(BookingStatus::CalendarFailed));
    assert_eq!(booking.attempts, 5);
    assert!(booking.calendar_out_of_sync);

    // The slot can be booked again, and that booking is confirmed once the server is back.
    rig.radicale.start_again();
    rig.flow
        .book(request(2, slot_start()), &public, now())
        .await
        .expect("the freed slot is bookable");
    rig.flow
        .confirm("booking-2", &public, now())
        .await
        .expect("confirmed");
    assert_eq!(rig.uids().await, vec!["booking-2".to_owned()]);
}

#[tokio::test]
async fn an_operator_retry_reclaims_a_free_slot_and_is_refused_once_someone_else_took_it() {
    let mut rig = rig().await;
    let public = Issuer::public(None);
    let settings = BookingSettings {
        max_attempts: 1,
        ..rig.settings
    };
    let flow = Arc::new(BookingFlow::new(
        rig.flow.ledger().clone(),
        rig.calendar.clone(),
        settings,
    ));
    let operator = Issuer::processor();

    // Booking 1 fails once with a cap of one: abandoned at once, slot free.
    flow.book(request(1, slot_start()), &public, now())
        .await
        .expect("booked");
    rig.radicale.stop();
    assert!(flow.confirm("booking-1", &public, now()).await.is_err());
    assert_eq!(
        flow.booking("booking-1").await.expect("b").status,
        Some(BookingStatus::CalendarFailed)
    );
    rig.radicale.start_again();

    // A retry while the slot is still free re-claims it and confirms.
    flow.operator_retry("booking-1", &operator, now())
        .await
        .expect("retried");
    assert_eq!(
        flow.booking("booking-1").await.expect("b").status,
        Some(BookingStatus::Confirmed)
    );
    assert_eq!(rig.uids().await, vec!["booking-1".to_owned()]);

    // Booking 3 on another slot fails and is abandoned; booking 4 takes that slot; the retry
    // of booking 3 is refused and changes nothing.
    let other = slot_start() + Duration::hours(1);
    flow.book(request(3, other), &public, now())
        .await
        .expect("booked");
    rig.radicale.stop();
    assert!(flow.confirm("booking-3", &public, now()).await.is_err());
    rig.radicale.start_again();
    flow.book(request(4, other), &public, now())
        .await
        .expect("the freed slot is booked by someone else");
    flow.confirm("booking-4", &public, now())
        .await
        .expect("confirmed");
    assert_eq!(
        flow.operator_retry("booking-3", &operator, now()).await,
        Err(BookingFlowError::SlotTaken)
    );
    let three = flow.booking("booking-3").await.expect("b");
    assert_eq!(three.status, Some(BookingStatus::CalendarFailed));
    assert!(three.held_locks.is_empty());
    assert_eq!(
        rig.calendar
            .event(CALENDAR, "booking-3")
            .await
            .expect("read"),
        None
    );
}

#[tokio::test]
async fn cancel_deletes_the_event_and_reschedule_moves_it() {
    let rig = rig().await;
    let public = Issuer::public(None);
    for n in [1, 2] {
        let start = slot_start() + Duration::hours(i64::try_from(n).expect("small"));
        rig.flow
            .book(request(n, start), &public, now())
            .await
            .expect("booked");
        rig.flow
            .confirm(&format!("booking-{n}"), &public, now())
            .await
            .expect("confirmed");
    }

    rig.flow
        .cancel("booking-1", Party::Attendee, &public, now())
        .await
        .expect("cancelled");
    assert_eq!(
        rig.calendar
            .event(CALENDAR, "booking-1")
            .await
            .expect("read"),
        None
    );
    // Its slot is free again.
    rig.flow
        .book(
            request(3, slot_start() + Duration::hours(1)),
            &public,
            now(),
        )
        .await
        .expect("the cancelled slot is bookable");

    let new_start = slot_start() + Duration::days(1);
    rig.flow
        .reschedule("booking-2", new_start, Party::Host, &public, now())
        .await
        .expect("rescheduled");
    let moved = rig
        .calendar
        .event(CALENDAR, "booking-2")
        .await
        .expect("read")
        .expect("still there");
    assert_eq!(moved.start, new_start);
    let booking = rig.flow.booking("booking-2").await.expect("b");
    assert_eq!(booking.status, Some(BookingStatus::Confirmed));
    assert!(!booking.calendar_out_of_sync);
    assert_eq!(booking.held_locks, vec![slot_lock_key(HOST, new_start)]);
    // The old slot is free.
    rig.flow
        .book(
            request(4, slot_start() + Duration::hours(2)),
            &public,
            now(),
        )
        .await
        .expect("the old slot is bookable");
}

#[tokio::test]
async fn each_tick_reads_only_the_booking_events_since_the_last_one() {
    let mut rig = rig().await;
    let public = Issuer::public(None);
    rig.flow
        .book(request(1, slot_start()), &public, now())
        .await
        .expect("booked");
    rig.flow
        .confirm("booking-1", &public, now())
        .await
        .expect("confirmed");
    let processor = BookingProcessor::new(rig.flow.clone());
    let t = later(now(), rig.settings);
    let first = processor.tick(t).await.expect("tick");
    assert!(first.events_read > 0, "{first:?}");
    // Nothing new on the ledger: nothing read, nothing driven.
    let idle = processor.tick(t).await.expect("tick");
    assert_eq!((idle.events_read, idle.driven), (0, 0), "{idle:?}");

    // A second booking whose calendar write fails: the next tick reads its events alone and
    // drives it; the settled first booking is not read again.
    rig.flow
        .book(
            request(2, slot_start() + Duration::minutes(30)),
            &public,
            now(),
        )
        .await
        .expect("booked");
    rig.radicale.stop();
    assert!(rig.flow.confirm("booking-2", &public, now()).await.is_err());
    let written = rig
        .flow
        .ledger()
        .aggregate_events(
            dezky_domain::booking::BOOKING_AGGREGATE_TYPE,
            "booking-2",
            0,
        )
        .await
        .expect("events")
        .len();
    let next = processor.tick(t).await.expect("tick");
    assert_eq!(next.events_read, written, "{next:?}");
    assert_eq!((next.driven, next.failed), (1, 1), "{next:?}");
    rig.radicale.start_again();
    let healed = processor.tick(later(t, rig.settings)).await.expect("tick");
    assert_eq!(healed.confirmed, 1, "{healed:?}");
}
