//! Input hygiene at the GraphQL edge: a member's address must be on the workspace's own
//! domains or outside (never another workspace's or the platform's: `ADDRESS_NOT_OURS`), and
//! only a hosted address shows a mailbox; names and one-line fields refuse line breaks, NUL
//! and direction overrides (`INVALID_CHARACTERS`), the attendee's name of a public booking
//! included, so nothing of the kind reaches a calendar event or an e-mail header.

use dezky_tests::graphql_rig::{code, GraphqlApi as Api, APEX};
use dezky_tests::Backend;
use serde_json::{json, Value};

const CREATE: &str = "mutation($input: CreateTenantInput!) { createTenant(input: $input) { id } }";
const ADD: &str = "mutation($t: ID!, $e: String!, $n: String!) { addMember(input: {tenantId: $t, email: $e, displayName: $n, role: MEMBER}) { members { email hasMailbox } } }";

async fn workspace(api: &Api, slug: &str, admin: &str) -> String {
    let created = api
        .post_as(
            &api.operator(),
            CREATE,
            json!({"input": {"organization": format!("{slug} GmbH"), "slug": slug, "plan": "standard",
                "seats": 5, "firstAdmin": {"email": admin, "displayName": "Admin"}}}),
        )
        .await;
    assert_eq!(created["errors"], Value::Null, "{created}");
    created["data"]["createTenant"]["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

async fn add(api: &Api, token: &str, tenant: &str, email: &str, name: &str) -> Value {
    api.post_as(token, ADD, json!({"t": tenant, "e": email, "n": name}))
        .await
}

fn has_mailbox(response: &Value, email: &str) -> Option<bool> {
    response["data"]["addMember"]["members"]
        .as_array()?
        .iter()
        .find(|m| m["email"] == email)?["hasMailbox"]
        .as_bool()
}

async fn a_members_address_must_be_the_workspaces_or_outside(backend: Backend) {
    let api = Api::start(backend).await;
    let alpha = workspace(&api, "alpha", "ada@alpha.example").await;
    let beta = workspace(&api, "beta", "kate@beta.example").await;
    let added = api
        .post_as(
            &api.operator(),
            "mutation($t: ID!) { addDomain(tenantId: $t, name: \"beta.example\") { name } }",
            json!({"t": beta}),
        )
        .await;
    assert_eq!(added["errors"], Value::Null, "{added}");
    let ada = api.user("ada@alpha.example");

    // Another workspace's domain, the platform's apex, another workspace's service domain.
    for address in [
        "x@beta.example".to_owned(),
        format!("x@{APEX}"),
        format!("x@beta.{APEX}"),
    ] {
        let refused = add(&api, &ada, &alpha, &address, "X").await;
        assert_eq!(
            code(&refused),
            Some("ADDRESS_NOT_OURS"),
            "{address}: {refused}"
        );
        // The message says nothing about whose domain it is.
        let message = refused["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(
            !message.contains("beta GmbH") && !message.contains(&beta),
            "{message}"
        );
    }

    // The workspace's own service domain: a mailbox.
    let own = format!("bob@alpha.{APEX}");
    let hosted = add(&api, &ada, &alpha, &own, "Bob").await;
    assert_eq!(has_mailbox(&hosted, &own), Some(true), "{hosted}");

    // An outside address: a member without a mailbox, since no mailbox will be made.
    let outside = add(&api, &ada, &alpha, "carol@gmail.example", "Carol").await;
    assert_eq!(
        has_mailbox(&outside, "carol@gmail.example"),
        Some(false),
        "{outside}"
    );

    // Nothing was appended for the refused ones: alpha has its admin, Bob and Carol.
    let members = api
        .post_as(
            &ada,
            "query($t: ID!) { tenant(id: $t) { memberCount } }",
            json!({"t": alpha}),
        )
        .await;
    assert_eq!(members["data"]["tenant"]["memberCount"], 3, "{members}");
}

async fn names_refuse_line_breaks_nul_and_direction_overrides(backend: Backend) {
    let api = Api::start(backend).await;
    let alpha = workspace(&api, "alpha", "ada@alpha.example").await;
    let ada = api.user("ada@alpha.example");
    let member = format!("eve@alpha.{APEX}");
    for name in [
        "Eve\r\nBcc: all@x.example",
        "Eve\u{0}",
        "Eve \u{202E}gpj.exe",
    ] {
        let refused = add(&api, &ada, &alpha, &member, name).await;
        assert_eq!(
            code(&refused),
            Some("INVALID_CHARACTERS"),
            "{name:?}: {refused}"
        );
    }
    let created = api
        .post_as(
            &api.operator(),
            CREATE,
            json!({"input": {"organization": "Evil\nCorp", "slug": "evil", "plan": "standard",
                "seats": 5, "firstAdmin": {"email": "e@evil.example", "displayName": "E"}}}),
        )
        .await;
    assert_eq!(code(&created), Some("INVALID_CHARACTERS"), "{created}");
    let branded = api
        .post_as(
            &ada,
            "mutation($t: ID!) { updateBranding(tenantId: $t, input: {productName: \"Mail\\u2066\"}) { id } }",
            json!({"t": alpha}),
        )
        .await;
    assert_eq!(code(&branded), Some("INVALID_CHARACTERS"), "{branded}");
}

async fn a_booking_attendees_name_with_a_line_break_is_refused(backend: Backend) {
    let api = Api::start(backend).await;
    let tenant = workspace(&api, "acme", "ada@acme.eu").await;
    let admin = api.user("ada@acme.eu");
    let days: Vec<Value> = ["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"]
        .iter()
        .map(|d| json!({"weekday": d, "startMinute": 0, "endMinute": 1440}))
        .collect();
    let published = api
        .post_as(
            &admin,
            "mutation($t: ID!, $a: AvailabilityInput!) { publishBookingAvailability(tenantId: $t, hostId: \"host-1\", availability: $a) }",
            json!({"t": tenant, "a": {"timeZone": "Europe/Berlin", "workingHours": days,
                "slotMinutes": 30, "bufferMinutes": 0, "horizonDays": 14, "calendar": "host-1/"}}),
        )
        .await;
    assert_eq!(published["errors"], Value::Null, "{published}");
    let start = (chrono::Utc::now() + chrono::Duration::days(2))
        .date_naive()
        .and_hms_opt(10, 0, 0)
        .expect("a time")
        .and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let booked = api
        .post(
            None,
            "mutation($s: String!, $n: String!) { bookSlot(hostId: \"host-1\", start: $s, name: $n, email: \"bo@example.eu\") { bookingId } }",
            json!({"s": start, "n": "Bo\r\nX-Injected: yes"}),
        )
        .await;
    assert_eq!(code(&booked), Some("INVALID_CHARACTERS"), "{booked}");
}

mod on_sqlite {
    use super::*;

    #[tokio::test]
    async fn a_members_address_must_be_the_workspaces_or_outside() {
        super::a_members_address_must_be_the_workspaces_or_outside(Backend::Sqlite).await;
    }

    #[tokio::test]
    async fn names_refuse_line_breaks_nul_and_direction_overrides() {
        super::names_refuse_line_breaks_nul_and_direction_overrides(Backend::Sqlite).await;
    }

    #[tokio::test]
    async fn a_booking_attendees_name_with_a_line_break_is_refused() {
        super::a_booking_attendees_name_with_a_line_break_is_refused(Backend::Sqlite).await;
    }
}

mod on_postgres {
    use super::*;

    #[tokio::test]
    async fn a_members_address_must_be_the_workspaces_or_outside() {
        super::a_members_address_must_be_the_workspaces_or_outside(Backend::Postgres).await;
    }
}
