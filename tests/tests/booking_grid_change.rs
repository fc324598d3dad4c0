//! A host changes slot length with bookings outstanding: a slot of the new grid that overlaps
//! a booking made on the old grid is refused as taken, whether booked, moved to or retried;
//! slots clear of it stay bookable.

mod booking_common;

use std::sync::Arc;

use booking_common::{availability, flow, now, request, slot_start, HOST, TENANT};
use chrono::Duration;
use dezky_commands::booking::{BookingFlowError, BookingSettings, Issuer};
use dezky_domain::booking::Party;
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
