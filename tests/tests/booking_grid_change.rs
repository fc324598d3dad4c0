//! A host changes slot length with bookings outstanding: a slot of the new grid that overlaps
//! a booking made on the old grid is refused as taken, whether booked, moved to or retried;
//! slots clear of it stay bookable; and a booking on the old grid whose claim was interrupted
//! by the change cannot take a slot that overlaps one booked on the new grid meanwhile.

mod booking_common;

use std::sync::Arc;

use booking_common::{
    attendee, availability, flow, now, request, slot_start, CALENDAR, HOST, TENANT,
};
use chrono::Duration;
use cqrs_es::persist::PersistedEventStore;
use cqrs_es::CqrsFramework;
use dezky_commands::booking::{BookingFlowError, BookingSettings, Driven, Issuer};
use dezky_commands::LedgerRepository;
use dezky_domain::booking::{slot_lock_key, Booking, BookingCommand, BookingStatus, Party, Slot};
use dezky_tests::calendar_fake::FakeCalendar;
use dezky_tests::{Backend, TestDb};

#[tokio::test]
async fn a_new_grid_cannot_overlap_a_booking_made_on_the_old_one() {
    let db = TestDb::create(Backend::Sqlite).await.expect("database");
    let ledger = db.open().await.expect("ledger");
    let calendar = Arc::new(FakeCalendar::new());
    let flow = flow(&ledger, calendar, BookingSettings::default()).await;
    let public = Issuer::public(None);
    let at = |minutes: i64| slot_start() + Duration::minutes(minutes);

    // Old grid: 30-minute slots from 09:00 Berlin (08:00 UTC). Booked: 09:30–10:00.
    flow.book(request(1, at(30)), &public, now())
        .await
        .expect("booked");
    flow.confirm("booking-1", &public, now())
        .await
        .expect("confirmed");

    // New grid: 45-minute slots from 09:00: 09:00–09:45 and 09:45–10:30 overlap booking 1.
    let mut longer = availability();
    longer.slot_minutes = 45;
    flow.publish_availability(HOST, TENANT, longer, &Issuer::processor(), now())
        .await
        .expect("republished");
    for start in [at(0), at(45)] {
        assert_eq!(
            flow.book(request(2, start), &public, now()).await,
            Err(BookingFlowError::SlotTaken),
            "{start}"
        );
    }
    flow.book(request(3, at(90)), &public, now())
        .await
        .expect("10:30 is clear of booking 1");
    assert_eq!(
        flow.reschedule("booking-3", at(45), Party::Attendee, &public, now())
            .await,
        Err(BookingFlowError::SlotTaken)
    );

    // Once booking 1 is cancelled its time is free on the new grid.
    flow.cancel("booking-1", Party::Host, &public, now())
        .await
        .expect("cancelled");
    flow.book(request(4, at(0)), &public, now())
        .await
        .expect("free again");
    ledger.close().await;
}

/// Two grids, two locks: booking 1 was requested on the 30-minute grid and stopped before its
/// claim (a crash, or simply a slow request); the host moved to 45-minute slots and booking 2
/// took 09:45–10:30, which overlaps booking 1's 09:30–10:00 but has another lock. When
/// booking 1 is driven on, its claim succeeds (nobody holds its lock) and only the check after
/// the claim can see booking 2: it must be refused and its lock given back.
#[tokio::test]
async fn an_interrupted_claim_on_the_old_grid_loses_to_an_overlap_booked_on_the_new_one() {
    let db = TestDb::create(Backend::Sqlite).await.expect("database");
    let ledger = db.open().await.expect("ledger");
    let calendar = Arc::new(FakeCalendar::new());
    let flow = flow(&ledger, calendar.clone(), BookingSettings::default()).await;
    let public = Issuer::public(None);
    let at = |minutes: i64| slot_start() + Duration::minutes(minutes);

    // Booking 1 as `book` records it just before the claim.
    let old_slot = Slot {
        start: at(30),
        end: at(60),
    };
    let bookings: CqrsFramework<Booking, PersistedEventStore<LedgerRepository, Booking>> =
        CqrsFramework::new(
            PersistedEventStore::new_event_store(LedgerRepository::new(ledger.clone())),
            vec![],
            (),
        );
    bookings
        .execute(
            "booking-1",
            BookingCommand::Request {
                tenant_id: TENANT.into(),
                host_id: HOST.into(),
                calendar: CALENDAR.into(),
                slot: old_slot,
                lock_key: slot_lock_key(HOST, old_slot.start),
                attendee: attendee(1),
                at: now(),
            },
        )
        .await
        .expect("requested");

    let mut longer = availability();
    longer.slot_minutes = 45;
    flow.publish_availability(HOST, TENANT, longer, &Issuer::processor(), now())
        .await
        .expect("republished");
    flow.book(request(2, at(45)), &public, now())
        .await
        .expect("09:45 is free: booking 1 holds no lock yet");
    flow.confirm("booking-2", &public, now())
        .await
        .expect("confirmed");

    assert_eq!(
        flow.drive("booking-1", &Issuer::processor(), now()).await,
        Ok(Driven::Refused)
    );
    let first = flow.booking("booking-1").await.expect("booking 1");
    assert_eq!(first.status, Some(BookingStatus::Refused));
    assert!(first.held_locks.is_empty(), "{:?}", first.held_locks);
    assert_eq!(
        flow.holder(&slot_lock_key(HOST, old_slot.start)).await,
        Ok(None),
        "the claim was given back"
    );
    assert_eq!(
        calendar
            .events(CALENDAR)
            .into_iter()
            .map(|e| e.uid)
            .collect::<Vec<_>>(),
        vec!["booking-2".to_owned()],
        "only the booking on the new grid has an event"
    );
    ledger.close().await;
}
