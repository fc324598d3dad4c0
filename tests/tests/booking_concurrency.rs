//! Fifty members of the public book one slot at the same moment, on SQLite and PostgreSQL:
//! exactly one gets it, the other 49 are told the slot is taken, and the winner is confirmed.

mod booking_common;

use std::sync::Arc;

use booking_common::{flow, now, request, slot_start, CALENDAR, HOST};
use dezky_commands::booking::{load, BookingFlowError, BookingSettings, Issuer};
use dezky_domain::booking::{slot_lock_key, BookingStatus, SlotLock};
use dezky_tests::calendar_fake::FakeCalendar;
use dezky_tests::{Backend, TestDb};

const CONTENDERS: usize = 50;

async fn fifty_bookings_of_one_slot_make_one_holder(backend: Backend) {
    let db = TestDb::create(backend).await.expect("database");
    let ledger = db.open().await.expect("ledger");
    let calendar = Arc::new(FakeCalendar::new());
    let flow = flow(&ledger, calendar.clone(), BookingSettings::default()).await;

    let barrier = Arc::new(tokio::sync::Barrier::new(CONTENDERS));
    let tasks: Vec<_> = (0..CONTENDERS)
        .map(|n| {
            let flow = flow.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let outcome = flow
                    .book(request(n, slot_start()), &Issuer::public(None), now())
                    .await;
                (n, outcome)
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut taken = 0;
    for task in tasks {
        let (n, outcome) = task.await.expect("task");
        match outcome {
            Ok(()) => winners.push(n),
            Err(BookingFlowError::SlotTaken) => taken += 1,
            Err(other) => panic!("booking {n}: unexpected {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    assert_eq!(taken, CONTENDERS - 1);

    let winner = format!("booking-{}", winners[0]);
    let (lock, _) = load::<SlotLock>(&ledger, &slot_lock_key(HOST, slot_start()))
        .await
        .expect("lock");
    assert_eq!(lock.holder.as_deref(), Some(winner.as_str()));

    flow.confirm(&winner, &Issuer::public(None), now())
        .await
        .expect("the winner is confirmed");
    // Bookings refused by the lock itself (rather than by the look before it) prove that the
    // contenders really raced for the claim.
    let mut raced = 0;
    for n in 0..CONTENDERS {
        let id = format!("booking-{n}");
        match flow.booking(&id).await {
            Ok(b) if id == winner => assert_eq!(b.status, Some(BookingStatus::Confirmed)),
            Ok(b) => {
                assert_eq!(b.status, Some(BookingStatus::Refused), "{id}");
                raced += 1;
            }
            // Refused by the look before the claim: never recorded.
            Err(BookingFlowError::NotFound) => {}
            Err(e) => panic!("{id}: {e:?}"),
        }
    }
    eprintln!("{raced} of {CONTENDERS} bookings lost the race at the lock itself");
    assert!(
        raced > 0,
        "no contender reached the lock: the test did not race"
    );
    let events = calendar.events(CALENDAR);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].uid, winner);
    ledger.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_bookings_of_one_slot_on_sqlite_confirm_exactly_one() {
    fifty_bookings_of_one_slot_make_one_holder(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_bookings_of_one_slot_on_postgres_confirm_exactly_one() {
    fifty_bookings_of_one_slot_make_one_holder(Backend::Postgres).await;
}
