//! The bookings read model: the admin list by state with attempts and the last calendar
//! error, tenant-scoped; a host's taken slots; and a rebuild equal to the live build.

mod booking_common;

use std::sync::Arc;

use booking_common::{flow, now, request, slot_start, HOST, TENANT};
use chrono::Duration;
use dezky_commands::booking::{BookingSettings, Issuer};
use dezky_domain::booking::{BookingStatus, Party};
use dezky_projections::bookings::{
    booking, held_slots, list_bookings, taken_slots, BookingFilter, BookingRow, Bookings,
};
use dezky_projections::tenants::PageRequest;
use dezky_projections::ProjectionRunner;
use dezky_tests::calendar_fake::FakeCalendar;
use dezky_tests::{Backend, TestDb};

async fn all(db: &dezky_commands::store::Db, statuses: Vec<BookingStatus>) -> Vec<BookingRow> {
    list_bookings(
        db,
        &BookingFilter {
            tenant_id: TENANT.into(),
            statuses,
            host_id: None,
        },
        &PageRequest::first(100),
    )
    .await
    .expect("list")
    .items
}

async fn read_model_follows_bookings(backend: Backend) {
    let db = TestDb::create(backend).await.expect("database");
    let ledger = db.open().await.expect("ledger");
    let calendar = Arc::new(FakeCalendar::new());
    let flow = flow(&ledger, calendar.clone(), BookingSettings::default()).await;
    let public = Issuer::public(None);
    let at = |h: i64| slot_start() + Duration::hours(h);

    // 1 confirmed; 2 pending after a failed write; 3 cancelled; 4 moved; 5 refused (slot of 1).
    for (n, h) in [(1, 0), (2, 1), (3, 2), (4, 3)] {
        flow.book(request(n, at(h)), &public, now())
            .await
            .expect("booked");
    }
    flow.confirm("booking-1", &public, now())
        .await
        .expect("confirmed");
    calendar.set_down(true);
    assert!(flow.confirm("booking-2", &public, now()).await.is_err());
    calendar.set_down(false);
    flow.confirm("booking-3", &public, now())
        .await
        .expect("confirmed");
    flow.cancel("booking-3", Party::Host, &public, now())
        .await
        .expect("cancelled");
    flow.confirm("booking-4", &public, now())
        .await
        .expect("confirmed");
    flow.reschedule("booking-4", at(4), Party::Attendee, &public, now())
        .await
        .expect("moved");
    // Booking 5 asks for booking 1's slot: refused.
    let refused = flow.book(request(5, at(0)), &public, now()).await;
    assert!(refused.is_err());

    let runner = ProjectionRunner::new(ledger.clone(), Bookings::new())
        .await
        .expect("runner");
    runner.catch_up().await.expect("caught up");
    let rows = all(ledger.db(), vec![]).await;
    let by_id = |id: &str| rows.iter().find(|r| r.booking_id == id).cloned();

    let two = by_id("booking-2").expect("row");
    assert_eq!(two.status, BookingStatus::Pending);
    assert_eq!(two.attempts, 1);
    assert!(two.last_error.is_some_and(|e| e.contains("unavailable")));
    assert_eq!(
        by_id("booking-1").map(|r| r.status),
        Some(BookingStatus::Confirmed)
    );
    assert_eq!(
        by_id("booking-3").map(|r| (r.status, r.calendar_out_of_sync)),
        Some((BookingStatus::Cancelled, false))
    );
    let four = by_id("booking-4").expect("row");
    assert_eq!(four.slot_start, "2026-12-02T12:00:00Z");
    assert!(!four.calendar_out_of_sync);
    // Every row agrees with its aggregate.
    for row in &rows {
        let aggregate = flow.booking(&row.booking_id).await.expect("booking");
        assert_eq!(Some(row.status), aggregate.status, "{}", row.booking_id);
        assert_eq!(row.attempts, aggregate.attempts, "{}", row.booking_id);
        assert_eq!(
            row.calendar_out_of_sync, aggregate.calendar_out_of_sync,
            "{}",
            row.booking_id
        );
    }

    // By state, as the admin list filters.
    let pending = all(ledger.db(), vec![BookingStatus::Pending]).await;
    assert_eq!(
        pending
            .iter()
            .map(|r| r.booking_id.as_str())
            .collect::<Vec<_>>(),
        vec!["booking-2"]
    );
    // Another tenant sees none of them, even by id.
    let other = list_bookings(
        ledger.db(),
        &BookingFilter {
            tenant_id: "tenant-2".into(),
            statuses: vec![],
            host_id: None,
        },
        &PageRequest::first(10),
    )
    .await
    .expect("list");
    assert_eq!(other.total_count, 0);
    assert_eq!(
        booking(ledger.db(), "tenant-2", "booking-1")
            .await
            .expect("read"),
        None
    );

    // The host's taken slots: the confirmed, the pending and the moved booking's new slot.
    let taken = taken_slots(ledger.db(), HOST, at(-1), at(24))
        .await
        .expect("taken");
    assert_eq!(taken, vec![at(0), at(1), at(4)]);
    // The same as intervals, found by overlap: a range starting inside booking 1's slot
    // still sees it.
    let held = held_slots(ledger.db(), HOST, at(0) + Duration::minutes(10), at(2))
        .await
        .expect("held");
    assert_eq!(
        held.iter().map(|s| s.start).collect::<Vec<_>>(),
        vec![at(0), at(1)]
    );

    // A rebuild from the ledger is the live model.
    let rebuilt = ProjectionRunner::new(ledger.clone(), Bookings::with_version(2))
        .await
        .expect("runner");
    rebuilt.catch_up().await.expect("caught up");
    dezky_projections::builds::switch_live(ledger.db(), Bookings::NAME, 2)
        .await
        .expect("switched");
    assert_eq!(all(ledger.db(), vec![]).await, rows);
    ledger.close().await;
}

#[tokio::test]
async fn the_bookings_read_model_follows_the_ledger_on_sqlite() {
    read_model_follows_bookings(Backend::Sqlite).await;
}

#[tokio::test]
async fn the_bookings_read_model_follows_the_ledger_on_postgres() {
    read_model_follows_bookings(Backend::Postgres).await;
}
