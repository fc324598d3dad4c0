//! What the booking suites share: a host with Berlin office hours, fixed instants, and a flow
//! over a ledger and any calendar server.

#![allow(dead_code)]

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use dezky_commands::booking::{BookRequest, BookingFlow, BookingSettings, Issuer};
use dezky_commands::ports::calendar::CalendarServer;
use dezky_commands::Ledger;
use dezky_domain::booking::{Attendee, Availability, Weekday, WorkingHours};

/// The tenant of the host.
pub const TENANT: &str = "tenant-1";
/// The host.
pub const HOST: &str = "host-1";
/// The host's calendar collection.
pub const CALENDAR: &str = "host-1/";

/// An instant from RFC 3339.
pub fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("test instant")
        .with_timezone(&Utc)
}

/// "Now" for the suites: Tuesday 2026-12-01, 08:00 UTC.
pub fn now() -> DateTime<Utc> {
    at("2026-12-01T08:00:00Z")
}

/// Wednesday 09:00 in Berlin (08:00 UTC): the slot the suites fight over.
pub fn slot_start() -> DateTime<Utc> {
    at("2026-12-02T08:00:00Z")
}

/// Berlin office hours, Monday to Friday 09:00–17:00, 30-minute slots, no buffer.
pub fn availability() -> Availability {
    Availability {
        time_zone: "Europe/Berlin".into(),
        working_hours: [
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
        ]
        .into_iter()
        .map(|weekday| WorkingHours {
            weekday,
            start_minute: 9 * 60,
            end_minute: 17 * 60,
        })
        .collect(),
        slot_minutes: 30,
        buffer_minutes: 0,
        horizon_days: 30,
        calendar: CALENDAR.into(),
    }
}

/// The n-th attendee.
pub fn attendee(n: usize) -> Attendee {
    Attendee {
        name: format!("Attendee {n}"),
        email: format!("attendee-{n}@example.eu"),
    }
}

/// A request for `start` by attendee `n`, booking id `booking-{n}`.
pub fn request(n: usize, start: DateTime<Utc>) -> BookRequest {
    BookRequest {
        booking_id: format!("booking-{n}"),
        host_id: HOST.into(),
        start,
        attendee: attendee(n),
    }
}

/// A flow with `settings` whose host has published [`availability`].
pub async fn flow<C: CalendarServer>(
    ledger: &Ledger,
    calendar: Arc<C>,
    settings: BookingSettings,
) -> Arc<BookingFlow<C>> {
    let flow = Arc::new(BookingFlow::new(ledger.clone(), calendar, settings));
    flow.publish_availability(HOST, TENANT, availability(), &Issuer::processor(), now())
        .await
        .expect("availability published");
    flow
}

/// The processor's "later": one retry interval after `t`.
pub fn later(t: DateTime<Utc>, settings: BookingSettings) -> DateTime<Utc> {
    t + Duration::milliseconds(i64::try_from(settings.retry_interval_ms).unwrap_or(i64::MAX))
}
