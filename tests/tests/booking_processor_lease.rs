//! The booking processor as `dezky serve` runs it: two instances, one lease holder; the holder
//! confirms a booking whose first calendar write failed once the calendar is back; on shutdown
//! the lease is given up at once.

mod booking_common;

use std::sync::Arc;
use std::time::Duration;

use booking_common::{request, CALENDAR};
use chrono::Utc;
use dezky_api::booking::{run, BOOKING_PROCESSOR_LEASE};
use dezky_commands::booking::{BookingFlow, BookingSettings, Issuer};
use dezky_commands::lease::acquire as acquire_lease;
use dezky_domain::booking::BookingStatus;
use dezky_tests::calendar_fake::FakeCalendar;
use dezky_tests::{Backend, TestDb};
use tokio::sync::watch;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_instance_holds_the_lease_and_confirms_what_the_calendar_outage_left_pending() {
    let db = TestDb::create(Backend::Postgres).await.expect("database");
    let ledger = db.open().await.expect("ledger");
    let calendar = Arc::new(FakeCalendar::new());
    let settings = BookingSettings {
        retry_interval_ms: 200,
        max_attempts: 1_000,
    };
    // Real time here: the runner ticks with the clock.
    let now = Utc::now();
    let flow = booking_common::flow(&ledger, calendar.clone(), settings).await;
    let start = {
        let slots = flow
            .slots(
                booking_common::HOST,
                now,
                now + chrono::Duration::days(7),
                now,
            )
            .await
            .expect("slots");
        slots[0].0.start
    };
    flow.book(request(1, start), &Issuer::public(None), now)
        .await
        .expect("booked");
    calendar.set_down(true);
    assert!(flow
        .confirm("booking-1", &Issuer::public(None), now)
        .await
        .is_err());

    let (stop, shutdown) = watch::channel(false);
    let instances: Vec<_> = ["instance-a", "instance-b"]
        .into_iter()
        .map(|holder| {
            let flow = Arc::new(BookingFlow::new(ledger.clone(), calendar.clone(), settings));
            tokio::spawn(run(flow, holder.to_owned(), shutdown.clone()))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !acquire_lease(ledger.db(), BOOKING_PROCESSOR_LEASE, "intruder")
            .await
            .expect("lease"),
        "one of the instances holds the lease"
    );

    calendar.set_down(false);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let booking = flow.booking("booking-1").await.expect("booking");
        if booking.status == Some(BookingStatus::Confirmed) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not confirmed in time: {booking:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(calendar.events(CALENDAR).len(), 1);

    stop.send(true).expect("stop");
    for instance in instances {
        instance.await.expect("instance");
    }
    assert!(
        acquire_lease(ledger.db(), BOOKING_PROCESSOR_LEASE, "intruder")
            .await
            .expect("lease"),
        "the lease was given up on shutdown"
    );
    ledger.close().await;
}
