//! The calendar port's contract, held against a real Radicale 3.9 (Basic auth, over HTTP) and
//! against the in-memory fake the booking simulation uses, so the fake cannot drift from the
//! real protocol's behaviour.

use chrono::{DateTime, Duration, Utc};
use dezky_commands::ports::calendar::{CalendarError, CalendarEvent, CalendarServer};
use dezky_tests::calendar_fake::FakeCalendar;
use dezky_tests::radicale::Radicale;

const CALENDAR: &str = "host-1/";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("test instant")
        .with_timezone(&Utc)
}

fn event(uid: &str, start: &str) -> CalendarEvent {
    let start = at(start);
    CalendarEvent {
        uid: uid.into(),
        summary: "Intro call, with Bö; 30 min".into(),
        start,
        end: start + Duration::minutes(30),
        attendee_name: "Bö Builder".into(),
        attendee_email: "bo@example.eu".into(),
    }
}

fn day() -> (DateTime<Utc>, DateTime<Utc>) {
    (at("2026-12-01T00:00:00Z"), at("2026-12-02T00:00:00Z"))
}

/// Everything both implementations must do alike.
async fn contract(server: &impl CalendarServer) {
    let (from, to) = day();
    let first = event("4b1c9a0e-booking-1", "2026-12-01T09:00:00Z");

    // A missing event reads as None, and deleting it is fine.
    assert_eq!(server.event(CALENDAR, &first.uid).await, Ok(None));
    assert_eq!(server.delete_event(CALENDAR, &first.uid).await, Ok(()));

    // Create, read back, and a repeated create is done without a second copy.
    server
        .create_event(CALENDAR, &first)
        .await
        .expect("created");
    assert_eq!(
        server.event(CALENDAR, &first.uid).await,
        Ok(Some(first.clone()))
    );
    server
        .create_event(CALENDAR, &first)
        .await
        .expect("a repeated create counts as written");
    assert_eq!(
        server.event_uids(CALENDAR, from, to).await,
        Ok(vec![first.uid.clone()])
    );

    // A repeated create never overwrites: the stored event stays as first written.
    let mut changed = first.clone();
    changed.summary = "something else".into();
    server.create_event(CALENDAR, &changed).await.expect("done");
    assert_eq!(
        server
            .event(CALENDAR, &first.uid)
            .await
            .map(|e| e.map(|e| e.summary)),
        Ok(Some(first.summary.clone()))
    );

    // A move changes the time; the listing follows it.
    let moved = event(&first.uid, "2026-12-03T10:00:00Z");
    server.update_event(CALENDAR, &moved).await.expect("moved");
    assert_eq!(
        server.event(CALENDAR, &first.uid).await,
        Ok(Some(moved.clone()))
    );
    assert_eq!(server.event_uids(CALENDAR, from, to).await, Ok(vec![]));
    assert_eq!(
        server
            .event_uids(
                CALENDAR,
                at("2026-12-03T00:00:00Z"),
                at("2026-12-04T00:00:00Z")
            )
            .await,
        Ok(vec![first.uid.clone()])
    );

    // Updating a missing event creates it.
    let second = event("4b1c9a0e-booking-2", "2026-12-01T11:00:00Z");
    server
        .update_event(CALENDAR, &second)
        .await
        .expect("created by update");
    assert_eq!(
        server.event_uids(CALENDAR, from, to).await,
        Ok(vec![second.uid.clone()])
    );

    // Delete, and delete again.
    server
        .delete_event(CALENDAR, &first.uid)
        .await
        .expect("deleted");
    server
        .delete_event(CALENDAR, &first.uid)
        .await
        .expect("deleted again");
    assert_eq!(server.event(CALENDAR, &first.uid).await, Ok(None));
}

#[tokio::test]
async fn radicale_keeps_the_calendar_contract() {
    let radicale = Radicale::start();
    let client = radicale.client();
    client
        .ensure_calendar(CALENDAR)
        .await
        .expect("calendar created");
    client
        .ensure_calendar(CALENDAR)
        .await
        .expect("an existing calendar is fine");
    contract(&client).await;
}

#[tokio::test]
async fn the_fake_keeps_the_calendar_contract() {
    contract(&FakeCalendar::new()).await;
}

#[tokio::test]
async fn radicale_refuses_a_wrong_password_as_unauthorized() {
    let radicale = Radicale::start();
    radicale
        .client()
        .ensure_calendar(CALENDAR)
        .await
        .expect("calendar created");
    let wrong = radicale.client_with_password("not-the-password");
    assert_eq!(
        wrong
            .create_event(CALENDAR, &event("u-1", "2026-12-01T09:00:00Z"))
            .await,
        Err(CalendarError::Unauthorized)
    );
}

#[tokio::test]
async fn a_stopped_radicale_is_unavailable_and_its_events_survive_the_restart() {
    let mut radicale = Radicale::start();
    let client = radicale.client();
    client
        .ensure_calendar(CALENDAR)
        .await
        .expect("calendar created");
    let kept = event("u-kept", "2026-12-01T09:00:00Z");
    client.create_event(CALENDAR, &kept).await.expect("created");

    radicale.stop();
    let down = client
        .create_event(CALENDAR, &event("u-2", "2026-12-01T10:00:00Z"))
        .await;
    assert!(
        matches!(down, Err(CalendarError::Unavailable(_))),
        "{down:?}"
    );

    radicale.start_again();
    assert_eq!(client.event(CALENDAR, "u-kept").await, Ok(Some(kept)));
}

#[tokio::test]
async fn a_calendar_that_does_not_exist_refuses_the_write() {
    let radicale = Radicale::start();
    let outcome = radicale
        .client()
        .create_event("no-such-calendar/", &event("u-1", "2026-12-01T09:00:00Z"))
        .await;
    assert!(
        matches!(outcome, Err(CalendarError::Rejected { .. })),
        "{outcome:?}\n{}",
        radicale.log()
    );
}
