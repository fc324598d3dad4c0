//! The booking page over GraphQL, through the real router: the public (no token) lists a host's
//! free slots, books one and is refused the same slot with `CONFLICT`; a confirmation whose
//! calendar write fails answers `UNAVAILABLE` and leaves the booking pending; the workspace's
//! admin sees it by state with its attempts and last calendar error and can retry or cancel it;
//! a member cannot; the public calls are rate-limited per real client (the peer, or what a
//! trusted proxy appended to `X-Forwarded-For`, never what the client wrote); and with a real calendar
//! server (Radicale) a confirmed booking has its event, which the attendee's signed link moves
//! and deletes.

use chrono::{Duration, Utc};
use dezky_api::client::PUBLIC_WRITES_PER_MINUTE;
use dezky_api::graphql::booking::{BookingService, LinkKey};
use dezky_commands::booking::BookingSettings;
use dezky_commands::ports::calendar::CalendarServer;
use dezky_tests::graphql_rig::{code, GraphqlApi as Api};
use dezky_tests::radicale::Radicale;
use dezky_tests::Backend;
use serde_json::{json, Value};

const CREATE: &str = "mutation($input: CreateTenantInput!) { createTenant(input: $input) { id } }";
const PUBLISH: &str = "mutation($t: ID!, $a: AvailabilityInput!) { publishBookingAvailability(tenantId: $t, hostId: \"host-1\", availability: $a) }";
const SLOTS: &str = "query($from: String!, $to: String!) { bookingSlots(hostId: \"host-1\", from: $from, to: $to) { start end } }";
const BOOK: &str = "mutation($start: String!) { bookSlot(hostId: \"host-1\", start: $start, name: \"Bo\", email: \"bo@example.eu\") { bookingId status start end manageToken } }";
const CONFIRM: &str = "mutation($b: ID!) { confirmBooking(bookingId: $b) }";
const LIST: &str = "query($t: ID!) { bookings(tenantId: $t, statuses: [PENDING]) { totalCount items { id status calendarWriteAttempts lastCalendarError start } } }";

fn every_day() -> Value {
    let days = ["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"];
    Value::Array(
        days.iter()
            .map(|d| json!({"weekday": d, "startMinute": 0, "endMinute": 1440}))
            .collect(),
    )
}

async fn workspace(api: &Api) -> String {
    let created = api
        .post(
            Some(&api.operator()),
            CREATE,
            json!({"input": {"organization": "Acme GmbH", "slug": "acme", "plan": "standard",
                "seats": 5, "firstAdmin": {"email": "ada@acme.eu", "displayName": "Ada"}}}),
        )
        .await;
    assert_eq!(created["errors"], Value::Null, "{created}");
    created["data"]["createTenant"]["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

async fn public_booking_and_admin_views(backend: Backend) {
    let api = Api::start(backend).await;
    let tenant = workspace(&api).await;
    let admin = api.user("ada@acme.eu");
    let published = api
        .post(
            Some(&admin),
            PUBLISH,
            json!({"t": tenant, "a": {"timeZone": "Europe/Berlin", "workingHours": every_day(),
                "slotMinutes": 30, "bufferMinutes": 15, "horizonDays": 14, "calendar": "host-1/"}}),
        )
        .await;
    assert_eq!(
        published["data"]["publishBookingAvailability"], true,
        "{published}"
    );

    // The public, without a token.
    let from = Utc::now() + Duration::days(1);
    let slots = api
        .post(
            None,
            SLOTS,
            json!({"from": from.to_rfc3339(), "to": (from + Duration::days(1)).to_rfc3339()}),
        )
        .await;
    let list = slots["data"]["bookingSlots"]
        .as_array()
        .expect("slots")
        .clone();
    assert!(list.len() >= 24, "{slots}");
    let start = list[0]["start"].as_str().expect("start").to_owned();

    let booked = api.post(None, BOOK, json!({"start": start})).await;
    assert_eq!(booked["errors"], Value::Null, "{booked}");
    assert_eq!(booked["data"]["bookSlot"]["status"], "PENDING");
    let booking_id = booked["data"]["bookSlot"]["bookingId"]
        .as_str()
        .expect("id")
        .to_owned();
    let again = api.post(None, BOOK, json!({"start": start})).await;
    assert_eq!(code(&again), Some("CONFLICT"), "{again}");
    let off_grid = api
        .post(
            None,
            BOOK,
            json!({"start": (from + Duration::minutes(7)).to_rfc3339()}),
        )
        .await;
    assert_eq!(code(&off_grid), Some("VALIDATION"), "{off_grid}");

    // No calendar server is configured here: the confirmation cannot be written, so it is
    // refused as unavailable and the booking stays pending; never confirmed without its event.
    let confirmed = api.post(None, CONFIRM, json!({"b": booking_id})).await;
    assert_eq!(code(&confirmed), Some("UNAVAILABLE"), "{confirmed}");

    // The taken slot is gone from the public list.
    let slots = api
        .post(
            None,
            SLOTS,
            json!({"from": from.to_rfc3339(), "to": (from + Duration::days(1)).to_rfc3339()}),
        )
        .await;
    assert!(!slots["data"]["bookingSlots"]
        .as_array()
        .expect("slots")
        .iter()
        .any(|s| s["start"] == start.as_str()));

    // The admin sees it pending with its attempt and error.
    let pending = api.post(Some(&admin), LIST, json!({"t": tenant})).await;
    let items = &pending["data"]["bookings"]["items"];
    assert_eq!(pending["data"]["bookings"]["totalCount"], 1, "{pending}");
    assert_eq!(items[0]["id"], booking_id.as_str());
    assert_eq!(items[0]["calendarWriteAttempts"], 1);
    assert!(items[0]["lastCalendarError"]
        .as_str()
        .is_some_and(|e| e.contains("not configured")));

    // A retry drives it again (and fails again, still pending); a cancel frees the slot.
    let retried = api
        .post(
            Some(&admin),
            "mutation($t: ID!, $b: ID!) { retryBooking(tenantId: $t, bookingId: $b) { status calendarWriteAttempts } }",
            json!({"t": tenant, "b": booking_id}),
        )
        .await;
    assert_eq!(
        retried["data"]["retryBooking"]["status"], "PENDING",
        "{retried}"
    );
    assert_eq!(retried["data"]["retryBooking"]["calendarWriteAttempts"], 2);
    let cancelled = api
        .post(
            Some(&admin),
            "mutation($t: ID!, $b: ID!) { cancelBooking(tenantId: $t, bookingId: $b) { status } }",
            json!({"t": tenant, "b": booking_id}),
        )
        .await;
    assert_eq!(
        cancelled["data"]["cancelBooking"]["status"], "CANCELLED",
        "{cancelled}"
    );
    let rebooked = api.post(None, BOOK, json!({"start": start})).await;
    assert_eq!(rebooked["errors"], Value::Null, "{rebooked}");

    // A member of the workspace is not an admin: no list, no retry.
    let added = api
        .post(
            Some(&admin),
            "mutation($input: AddMemberInput!) { addMember(input: $input) { id } }",
            json!({"input": {"tenantId": tenant, "email": "bob@acme.eu", "displayName": "Bob", "role": "MEMBER"}}),
        )
        .await;
    assert_eq!(added["errors"], Value::Null, "{added}");
    let member = api
        .post(Some(&api.user("bob@acme.eu")), LIST, json!({"t": tenant}))
        .await;
    assert_eq!(code(&member), Some("FORBIDDEN"), "{member}");
    assert!(member["data"].is_null() || member["data"]["bookings"].is_null());
}

#[tokio::test]
async fn the_public_books_and_the_admin_sees_bookings_by_state_on_sqlite() {
    public_booking_and_admin_views(Backend::Sqlite).await;
}

#[tokio::test]
async fn the_public_books_and_the_admin_sees_bookings_by_state_on_postgres() {
    public_booking_and_admin_views(Backend::Postgres).await;
}

/// Sends a public write from the local address `from` with `X-Forwarded-For: forwarded`.
async fn confirm_from(api: &Api, from: &str, forwarded: Option<&str>) -> Value {
    let client = reqwest::Client::builder()
        .local_address(from.parse::<std::net::IpAddr>().expect("address"))
        .build()
        .expect("client");
    let mut request = client
        .post(&api.url)
        .json(&json!({"query": CONFIRM, "variables": {"b": "no-such-booking"}}));
    if let Some(forwarded) = forwarded {
        request = request.header("x-forwarded-for", forwarded);
    }
    request
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json")
}

const BUDGET: u32 = PUBLIC_WRITES_PER_MINUTE.get();

#[tokio::test]
async fn rotating_x_forwarded_for_from_an_untrusted_peer_does_not_multiply_the_limit() {
    let api = Api::start(Backend::Sqlite).await;
    for n in 0..BUDGET {
        let forged = format!("198.51.100.{n}");
        let response = confirm_from(&api, "127.0.0.2", Some(&forged)).await;
        assert_eq!(code(&response), Some("NOT_FOUND"), "{response}");
    }
    let limited = confirm_from(&api, "127.0.0.2", Some("203.0.113.99")).await;
    assert_eq!(code(&limited), Some("RATE_LIMITED"), "{limited}");
    let limited = confirm_from(&api, "127.0.0.2", None).await;
    assert_eq!(code(&limited), Some("RATE_LIMITED"), "{limited}");
    // Another peer (another client without any header) is not locked out by the first.
    let other = confirm_from(&api, "127.0.0.3", None).await;
    assert_eq!(code(&other), Some("NOT_FOUND"), "{other}");
}

#[tokio::test]
async fn two_clients_behind_a_trusted_proxy_get_separate_budgets() {
    // The proxy is 127.0.0.4; the clients are what it appends.
    let api = Api::start_behind_proxies(Backend::Sqlite, "127.0.0.4").await;
    for _ in 0..BUDGET {
        let response = confirm_from(&api, "127.0.0.4", Some("198.51.100.7")).await;
        assert_eq!(code(&response), Some("NOT_FOUND"), "{response}");
    }
    let limited = confirm_from(&api, "127.0.0.4", Some("198.51.100.7")).await;
    assert_eq!(code(&limited), Some("RATE_LIMITED"), "{limited}");
    // A value the client forged to the left of what the proxy appended changes nothing.
    let forged = confirm_from(&api, "127.0.0.4", Some("10.9.8.7, 198.51.100.7")).await;
    assert_eq!(code(&forged), Some("RATE_LIMITED"), "{forged}");
    // The other client behind the same proxy has its own budget.
    let other = confirm_from(&api, "127.0.0.4", Some("198.51.100.8")).await;
    assert_eq!(code(&other), Some("NOT_FOUND"), "{other}");
}

#[tokio::test]
async fn with_a_calendar_the_booking_is_confirmed_with_its_event_and_the_attendee_link_moves_and_cancels_it(
) {
    let radicale = Radicale::start();
    let calendar = radicale.client();
    calendar
        .ensure_calendar("host-1/")
        .await
        .expect("calendar created");
    let api = Api::start_with_booking(Backend::Sqlite, |ledger| {
        BookingService::new(
            ledger.clone(),
            radicale.client(),
            BookingSettings::default(),
        )
        .with_links(LinkKey::new(b"a test secret of thirty-two bytes"))
    })
    .await;
    let tenant = workspace(&api).await;
    let admin = api.user("ada@acme.eu");
    let published = api
        .post(
            Some(&admin),
            PUBLISH,
            json!({"t": tenant, "a": {"timeZone": "America/New_York", "workingHours": every_day(),
                "slotMinutes": 60, "bufferMinutes": 0, "horizonDays": 14, "calendar": "host-1/"}}),
        )
        .await;
    assert_eq!(published["errors"], Value::Null, "{published}");
    let from = Utc::now() + Duration::days(1);
    let slots = api
        .post(
            None,
            SLOTS,
            json!({"from": from.to_rfc3339(), "to": (from + Duration::days(1)).to_rfc3339()}),
        )
        .await;
    let list = slots["data"]["bookingSlots"]
        .as_array()
        .expect("slots")
        .clone();
    let (first, later) = (
        list[0]["start"].as_str().expect("start").to_owned(),
        list[3]["start"].as_str().expect("start").to_owned(),
    );

    let booked = api.post(None, BOOK, json!({"start": first})).await;
    let receipt = &booked["data"]["bookSlot"];
    let booking_id = receipt["bookingId"].as_str().expect("id").to_owned();
    let token = receipt["manageToken"].as_str().expect("a link").to_owned();
    let confirmed = api.post(None, CONFIRM, json!({"b": booking_id})).await;
    assert_eq!(
        confirmed["data"]["confirmBooking"], "CONFIRMED",
        "{confirmed}"
    );
    let event = calendar
        .event("host-1/", &booking_id)
        .await
        .expect("read")
        .expect("the confirmed booking's event");
    assert_eq!(
        event
            .start
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        first
    );

    // A link for another booking (or altered) is refused.
    let forged = token.replacen(&booking_id, "someone-else", 1);
    let refused = api
        .post(
            None,
            "mutation($t: String!) { cancelBookingWithLink(token: $t) }",
            json!({"t": forged}),
        )
        .await;
    assert_eq!(code(&refused), Some("FORBIDDEN"), "{refused}");

    let moved = api
        .post(
            None,
            "mutation($t: String!, $s: String!) { rescheduleBookingWithLink(token: $t, start: $s) { start } }",
            json!({"t": token, "s": later}),
        )
        .await;
    assert_eq!(
        moved["data"]["rescheduleBookingWithLink"]["start"],
        later.as_str(),
        "{moved}"
    );
    let event = calendar
        .event("host-1/", &booking_id)
        .await
        .expect("read")
        .expect("still there");
    assert_eq!(
        event
            .start
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        later
    );

    let cancelled = api
        .post(
            None,
            "mutation($t: String!) { cancelBookingWithLink(token: $t) }",
            json!({"t": token}),
        )
        .await;
    assert_eq!(
        cancelled["data"]["cancelBookingWithLink"], "CANCELLED",
        "{cancelled}"
    );
    assert_eq!(
        calendar.event("host-1/", &booking_id).await.expect("read"),
        None
    );
    let listed = api
        .post(
            Some(&admin),
            "query($t: ID!) { bookings(tenantId: $t, statuses: [CANCELLED]) { totalCount } }",
            json!({"t": tenant}),
        )
        .await;
    assert_eq!(listed["data"]["bookings"]["totalCount"], 1, "{listed}");
}
