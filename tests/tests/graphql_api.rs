//! The GraphQL API over HTTP with real signed JWTs: keys served as a JWKS by a local OIDC
//! provider, the full command → ledger → projection → query loop, typed error codes, the
//! isolation matrix across tenants and partners, refused tokens, and the committed SDL.

use dezky_api::graphql::sdl;
use dezky_tests::Backend;
use serde_json::{json, Value};

use dezky_tests::graphql_rig::{claims, code, GraphqlApi as Api};

async fn start(backend: Backend) -> Api {
    Api::start(backend).await
}

const CREATE: &str = "mutation($input: CreateTenantInput!) { createTenant(input: $input) { id slug status members { id email role isOwner } } }";

async fn create(api: &Api, token: &str, slug: &str, admin: &str, partner: Option<&str>) -> Value {
    let response = api
        .post(
            Some(token),
            CREATE,
            json!({"input": {"organization": format!("{slug} GmbH"), "slug": slug, "plan": "standard",
                "seats": 5, "firstAdmin": {"email": admin, "displayName": "Admin"}, "partnerId": partner}}),
        )
        .await;
    assert_eq!(response["errors"], Value::Null, "{response}");
    response["data"]["createTenant"].clone()
}

const ADD: &str =
    "mutation($input: AddMemberInput!) { addMember(input: $input) { members { id email role } } }";

async fn add_member(api: &Api, token: &str, tenant: &str, email: &str) -> Value {
    api.post(
        Some(token),
        ADD,
        json!({"input": {"tenantId": tenant, "email": email, "displayName": "M", "role": "MEMBER"}}),
    )
    .await
}

async fn a_tenant_admin_runs_the_whole_loop_and_reads_field_level_diffs(backend: Backend) {
    let api = start(backend).await;
    let tenant = create(&api, &api.operator(), "acme", "ada@acme.eu", None).await;
    let id = tenant["id"].as_str().expect("id").to_owned();
    assert_eq!(tenant["status"], "PENDING_PROVISIONING");
    let admin = api.user("ada@acme.eu");
    let added = add_member(&api, &admin, &id, "bob@acme.eu").await;
    assert_eq!(added["errors"], Value::Null, "{added}");
    let bob = added["data"]["addMember"]["members"]
        .as_array()
        .expect("members")
        .iter()
        .find(|m| m["email"] == "bob@acme.eu")
        .expect("bob")["id"]
        .clone();
    // Read-your-writes: the mutation's answer already shows the change.
    let promoted = api
        .post(
            Some(&admin),
            "mutation($t: ID!, $m: ID!) { changeMemberRole(tenantId: $t, memberId: $m, role: ADMIN) { members { email role } } }",
            json!({"t": id, "m": bob}),
        )
        .await;
    assert!(promoted["data"]["changeMemberRole"]["members"]
        .as_array()
        .expect("members")
        .iter()
        .any(|m| m["email"] == "bob@acme.eu" && m["role"] == "ADMIN"));
    let timeline = api
        .post(
            Some(&admin),
            "query($t: ID!) { tenant(id: $t) { auditTimeline(first: 10, action: \"MemberRoleChanged\") { totalCount nodes { action actorEmail diff } } } }",
            json!({"t": id}),
        )
        .await;
    let nodes = &timeline["data"]["tenant"]["auditTimeline"]["nodes"];
    assert_eq!(nodes[0]["actorEmail"], "ada@acme.eu");
    assert_eq!(
        nodes[0]["diff"],
        json!({"role": {"from": "member", "to": "admin"}})
    );
}

#[tokio::test]
async fn a_tenant_admin_runs_the_whole_loop_and_reads_field_level_diffs_on_sqlite() {
    a_tenant_admin_runs_the_whole_loop_and_reads_field_level_diffs(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_tenant_admin_runs_the_whole_loop_and_reads_field_level_diffs_on_postgres() {
    a_tenant_admin_runs_the_whole_loop_and_reads_field_level_diffs(Backend::Postgres).await;
}

/// Every read and write aimed at tenant A by someone with no standing there.
async fn nobody_from_another_tenant_or_partner_reads_or_changes_a_tenant(backend: Backend) {
    let api = start(backend).await;
    let operator = api.operator();
    let a = create(&api, &operator, "alpha", "admin@alpha.eu", Some("p-alpha")).await;
    let b = create(&api, &operator, "bravo", "admin@bravo.eu", Some("p-bravo")).await;
    let a_id = a["id"].as_str().expect("id").to_owned();
    let a_owner = a["members"][0]["id"].clone();
    let b_id = b["id"].as_str().expect("id").to_owned();
    let b_admin = api.user("admin@bravo.eu");
    assert_eq!(
        code(&add_member(&api, &b_admin, &b_id, "member@bravo.eu").await),
        None
    );
    let outsiders = [
        ("admin of another tenant", b_admin),
        ("member of another tenant", api.user("member@bravo.eu")),
        ("staff of another partner", api.partner("p-bravo")),
        ("a user of no tenant", api.user("stranger@example.eu")),
    ];
    let reads = [
        (
            "tenant by id",
            "query($t: ID!) { tenant(id: $t) { id slug } }",
        ),
        (
            "members",
            "query($t: ID!) { tenant(id: $t) { members { email } } }",
        ),
        (
            "audit",
            "query($t: ID!) { tenant(id: $t) { auditTimeline(first: 5) { totalCount } } }",
        ),
        (
            "billingInfo",
            "query($t: ID!) { tenant(id: $t) { billingInfo { company } } }",
        ),
        (
            "branding",
            "query($t: ID!) { tenant(id: $t) { branding { productName } } }",
        ),
        (
            "securityPolicy",
            "query($t: ID!) { tenant(id: $t) { securityPolicy { mfaMode } } }",
        ),
        ("projections", "{ projections { name build } }"),
        ("sagaEffects", "{ sagaEffects { totalCount } }"),
        (
            "domains",
            "query($t: ID!) { tenant(id: $t) { domains { name } } }",
        ),
        (
            "domainsNeedingAttention",
            "query($t: ID!) { tenant(id: $t) { domainsNeedingAttention } }",
        ),
        (
            "platform domainsNeedingAttention",
            "{ domainsNeedingAttention }",
        ),
        (
            "aliases",
            "query($t: ID!) { tenant(id: $t) { aliases { alias } } }",
        ),
        (
            "mailingLists",
            "query($t: ID!) { tenant(id: $t) { mailingLists { address } } }",
        ),
        (
            "bookings",
            "query($t: ID!) { bookings(tenantId: $t) { totalCount } }",
        ),
    ];
    let writes = [
        ("addMember", "mutation($t: ID!) { addMember(input: {tenantId: $t, email: \"x@evil.eu\", displayName: \"X\", role: ADMIN}) { id } }"),
        ("changeMemberRole", "mutation($t: ID!, $m: ID!) { changeMemberRole(tenantId: $t, memberId: $m, role: MEMBER) { id } }"),
        ("transferOwnership", "mutation($t: ID!, $m: ID!) { transferOwnership(tenantId: $t, memberId: $m) { id } }"),
        ("suspendMember", "mutation($t: ID!, $m: ID!) { suspendMember(tenantId: $t, memberId: $m) { id } }"),
        ("resumeMember", "mutation($t: ID!, $m: ID!) { resumeMember(tenantId: $t, memberId: $m) { id } }"),
        ("removeMember", "mutation($t: ID!, $m: ID!) { removeMember(tenantId: $t, memberId: $m) { id } }"),
        ("suspendTenant", "mutation($t: ID!) { suspendTenant(tenantId: $t) { id } }"),
        ("resumeTenant", "mutation($t: ID!) { resumeTenant(tenantId: $t) { id } }"),
        ("softDeleteTenant", "mutation($t: ID!) { softDeleteTenant(tenantId: $t) { id } }"),
        ("purgeTenant", "mutation($t: ID!) { purgeTenant(tenantId: $t) { id } }"),
        ("setPlatformTenant", "mutation($t: ID!) { setPlatformTenant(tenantId: $t) { id } }"),
        ("updateBillingInfo", "mutation($t: ID!) { updateBillingInfo(tenantId: $t, input: {company: \"Evil\"}) { id } }"),
        ("updateBranding", "mutation($t: ID!) { updateBranding(tenantId: $t, input: {productName: \"Evil\"}) { id } }"),
        ("updateSecurityPolicy", "mutation($t: ID!) { updateSecurityPolicy(tenantId: $t, input: {mfaMode: OFF}) { id } }"),
        ("inviteAdmin", "mutation($t: ID!) { inviteAdmin(input: {tenantId: $t, email: \"x@evil.eu\", displayName: \"X\"}) { id } }"),
        ("forceLogout", "mutation($t: ID!, $m: ID!) { forceLogout(tenantId: $t, memberId: $m) { id } }"),
        ("resetPassword", "mutation($t: ID!, $m: ID!) { resetPassword(tenantId: $t, memberId: $m) { id } }"),
        ("rebuildProjection", "mutation { rebuildProjection(name: \"tenants\") { build } }"),
        ("retrySagaEffect", "mutation { retrySagaEffect(key: \"saga/step/1\") { key } }"),
        ("linkMemberSubject", "mutation($t: ID!, $m: ID!) { linkMemberSubject(tenantId: $t, memberId: $m, subject: \"evil\") { id } }"),
        ("addDomain", "mutation($t: ID!) { addDomain(tenantId: $t, name: \"evil.eu\") { name } }"),
        ("recheckDomain", "mutation($t: ID!) { recheckDomain(tenantId: $t, name: \"alpha.eu\") { name } }"),
        ("setDomainDmarc", "mutation($t: ID!) { setDomainDmarc(tenantId: $t, name: \"alpha.eu\", policy: REJECT) { name } }"),
        ("removeDomain", "mutation($t: ID!) { removeDomain(tenantId: $t, name: \"alpha.eu\") { id } }"),
        ("addAlias", "mutation($t: ID!, $m: ID!) { addAlias(tenantId: $t, memberId: $m, alias: \"evil@alpha.dezky.eu\") { alias } }"),
        ("removeAlias", "mutation($t: ID!, $m: ID!) { removeAlias(tenantId: $t, memberId: $m, alias: \"sales@alpha.dezky.eu\") { id } }"),
        ("createMailingList", "mutation($t: ID!) { createMailingList(tenantId: $t, address: \"evil@alpha.dezky.eu\", displayName: \"Evil\", recipients: [\"x@evil.eu\"]) { id } }"),
        ("setMailingListRecipients", "mutation($t: ID!) { setMailingListRecipients(tenantId: $t, listId: \"l-1\", recipients: [\"x@evil.eu\"]) { id } }"),
        ("deleteMailingList", "mutation($t: ID!) { deleteMailingList(tenantId: $t, listId: \"l-1\") { id } }"),
        ("publishBookingAvailability", "mutation($t: ID!) { publishBookingAvailability(tenantId: $t, hostId: \"h-evil\", availability: {timeZone: \"UTC\", workingHours: [], slotMinutes: 30, bufferMinutes: 0, horizonDays: 7, calendar: \"evil/\"}) }"),
        ("cancelBooking", "mutation($t: ID!) { cancelBooking(tenantId: $t, bookingId: \"b-1\") { id } }"),
        ("retryBooking", "mutation($t: ID!) { retryBooking(tenantId: $t, bookingId: \"b-1\") { id } }"),
    ];
    // The matrix covers every mutation but `createTenant` (which acts on no existing tenant and
    // is checked below) and the public booking page's (no token, no tenant; see
    // tests/tests/booking_graphql.rs): adding a mutation without adding it here fails this test.
    let public = [
        "bookSlot",
        "confirmBooking",
        "cancelBookingWithLink",
        "rescheduleBookingWithLink",
    ];
    let schema = api
        .post(
            Some(&operator),
            "{ __schema { mutationType { fields { name } } } }",
            json!({}),
        )
        .await;
    let mut uncovered: Vec<String> = schema["data"]["__schema"]["mutationType"]["fields"]
        .as_array()
        .expect("mutation fields")
        .iter()
        .filter_map(|f| f["name"].as_str())
        .filter(|name| {
            *name != "createTenant"
                && !public.contains(name)
                && !writes.iter().any(|(w, _)| w == name)
        })
        .map(str::to_owned)
        .collect();
    uncovered.sort();
    assert!(
        uncovered.is_empty(),
        "mutations missing from the isolation matrix: {uncovered:?}"
    );
    for (who, token) in &outsiders {
        for (what, query) in reads.iter().chain(writes.iter()) {
            let response = api
                .post(Some(token), query, json!({"t": a_id, "m": a_owner}))
                .await;
            assert_eq!(
                code(&response),
                Some("FORBIDDEN"),
                "{who} / {what}: {response}"
            );
            let data = &response["data"];
            assert!(
                data.is_null()
                    || data
                        .as_object()
                        .is_some_and(|o| o.values().all(Value::is_null)),
                "{who} / {what} got data: {response}"
            );
        }
        let foreign = api
            .post(
                Some(token),
                CREATE,
                json!({"input": {"organization": "Evil", "slug": "evil-twin", "plan": "standard",
                    "seats": 1, "firstAdmin": {"email": "x@evil.eu", "displayName": "X"},
                    "partnerId": "p-alpha"}}),
            )
            .await;
        assert_eq!(
            code(&foreign),
            Some("FORBIDDEN"),
            "{who} / createTenant: {foreign}"
        );
        let by_slug = api
            .post(Some(token), "{ tenant(slug: \"alpha\") { id } }", json!({}))
            .await;
        assert_eq!(code(&by_slug), Some("FORBIDDEN"), "{who}: {by_slug}");
    }
    // A partner's directory holds its own tenants only; a plain user has no directory.
    let mine = api
        .post(
            Some(&api.partner("p-bravo")),
            "{ tenants(first: 10) { totalCount nodes { slug } } }",
            json!({}),
        )
        .await;
    assert_eq!(mine["data"]["tenants"]["nodes"], json!([{"slug": "bravo"}]));
    let none = api
        .post(
            Some(&api.user("member@bravo.eu")),
            "{ tenants(first: 10) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&none), Some("FORBIDDEN"));
    // A tenant's plain member reads the tenant but not its audit timeline.
    let member = api.user("member@bravo.eu");
    let own = api
        .post(
            Some(&member),
            "query($t: ID!) { tenant(id: $t) { slug } }",
            json!({"t": b_id}),
        )
        .await;
    assert_eq!(own["data"]["tenant"]["slug"], "bravo");
    let audit = api
        .post(
            Some(&member),
            "query($t: ID!) { tenant(id: $t) { auditTimeline(first: 5) { totalCount } } }",
            json!({"t": b_id}),
        )
        .await;
    assert_eq!(code(&audit), Some("FORBIDDEN"));
    // The owning partner may act on its tenant.
    let deleted = api
        .post(
            Some(&api.partner("p-alpha")),
            "mutation($t: ID!) { softDeleteTenant(tenantId: $t) { status } }",
            json!({"t": a_id}),
        )
        .await;
    assert_eq!(
        deleted["data"]["softDeleteTenant"]["status"], "SOFT_DELETED",
        "{deleted}"
    );
}

#[tokio::test]
async fn nobody_from_another_tenant_or_partner_reads_or_changes_a_tenant_on_sqlite() {
    nobody_from_another_tenant_or_partner_reads_or_changes_a_tenant(Backend::Sqlite).await;
}

#[tokio::test]
async fn nobody_from_another_tenant_or_partner_reads_or_changes_a_tenant_on_postgres() {
    nobody_from_another_tenant_or_partner_reads_or_changes_a_tenant(Backend::Postgres).await;
}

#[tokio::test]
async fn forged_expired_and_misdirected_tokens_are_unauthenticated() {
    let api = start(Backend::Sqlite).await;
    let query = "{ me { subject } }";
    let base = claims("u-1", "u@example.eu");
    let with = |key: &str, value: Value| {
        let mut c = base.clone();
        c.insert(key.into(), value);
        c
    };
    let now = chrono::Utc::now().timestamp();
    let mut cases: Vec<(&str, String)> = vec![
        ("expired", api.token(&with("exp", (now - 3_600).into()))),
        (
            "wrong issuer",
            api.token(&with("iss", "https://evil.example/".into())),
        ),
        (
            "wrong audience",
            api.token(&with("aud", "someone-else".into())),
        ),
        (
            "unknown kid",
            api.sign(&json!({"alg": "ES256", "kid": "nope"}), &base),
        ),
    ];
    let valid = api.token(&base);
    let parts: Vec<&str> = valid.split('.').collect();
    let forged_claims = with("sub", "admin".into());
    let forged_payload = base64_url(&serde_json::to_vec(&forged_claims).expect("json"));
    cases.push((
        "tampered signature",
        format!("{}.{}.{}", parts[0], forged_payload, parts[2]),
    ));
    cases.push((
        "alg none",
        format!("{}.{}.", base64_url(br#"{"alg":"none"}"#), parts[1]),
    ));
    cases.push(("not a JWT", "garbage".into()));
    for (what, token) in cases {
        let response = api.post(Some(&token), query, json!({})).await;
        assert_eq!(
            code(&response),
            Some("UNAUTHENTICATED"),
            "{what}: {response}"
        );
        assert_eq!(response["data"], Value::Null, "{what}");
    }
    let ok = api.post(Some(&valid), query, json!({})).await;
    assert_eq!(ok["data"]["me"]["subject"], "u-1", "{ok}");
    let anonymous = api.post(None, query, json!({})).await;
    assert_eq!(code(&anonymous), Some("UNAUTHENTICATED"));
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn bad_input_gets_typed_errors_never_internals() {
    let api = start(Backend::Sqlite).await;
    let operator = api.operator();
    let pages = [0, 101, -1];
    for first in pages {
        let response = api
            .post(
                Some(&operator),
                "query($f: Int) { tenants(first: $f) { totalCount } }",
                json!({"f": first}),
            )
            .await;
        assert_eq!(
            code(&response),
            Some("VALIDATION"),
            "first={first}: {response}"
        );
    }
    let cursor = api
        .post(
            Some(&operator),
            "{ tenants(first: 5, after: \"not-a-cursor\") { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&cursor), Some("VALIDATION"));
    create(&api, &operator, "taken", "a@taken.eu", None).await;
    let dup = api
        .post(Some(&operator), CREATE, json!({"input": {"organization": "X", "slug": "taken", "plan": "p", "seats": 1, "firstAdmin": {"email": "b@x.eu", "displayName": "B"}}}))
        .await;
    assert_eq!(code(&dup), Some("CONFLICT"));
    let bad_slug = api
        .post(Some(&operator), CREATE, json!({"input": {"organization": "X", "slug": "No Spaces", "plan": "p", "seats": 1, "firstAdmin": {"email": "b@x.eu", "displayName": "B"}}}))
        .await;
    assert_eq!(code(&bad_slug), Some("VALIDATION"));
    // Depth is bounded: a query nested past the limit is refused before it runs (and before
    // its unknown fields are looked up); tests/tests/hostile_queries.rs has the other limits.
    let too_deep = format!("{{{} x{} }}", " a {".repeat(11), " }".repeat(11));
    let refused = api.post(Some(&operator), &too_deep, json!({})).await;
    assert_eq!(code(&refused), Some("QUERY_TOO_DEEP"), "{refused}");
    assert!(refused["data"].is_null(), "{refused}");
}

#[test]
fn the_committed_sdl_matches_the_schema() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../api/schema.graphql");
    let current = sdl();
    if std::env::var_os("DEZKY_UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &current).expect("write the SDL");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        committed, current,
        "api/schema.graphql drifted from the schema; run DEZKY_UPDATE_SCHEMA=1 cargo test -p dezky-tests --test graphql_api and commit it"
    );
}

fn member_id(tenant: &Value, email: &str) -> Value {
    tenant["members"]
        .as_array()
        .expect("members")
        .iter()
        .find(|m| m["email"] == email)
        .unwrap_or_else(|| panic!("no member {email} in {tenant}"))["id"]
        .clone()
}

async fn settings_are_read_and_changed_by_admins_with_diffs_of_only_what_changed(backend: Backend) {
    let api = start(backend).await;
    let tenant = create(&api, &api.operator(), "acme", "ada@acme.eu", None).await;
    let t = tenant["id"].clone();
    let admin = api.user("ada@acme.eu");
    assert_eq!(
        code(&add_member(&api, &admin, t.as_str().expect("id"), "bob@acme.eu").await),
        None
    );
    let billing = api
        .post(
            Some(&admin),
            "mutation($t: ID!) { updateBillingInfo(tenantId: $t, input: {company: \"Acme GmbH\", vatId: \"de 123 456 789\", country: \"de\", contactEmail: \"  \"}) { billingInfo { company vatId country contactEmail } } }",
            json!({"t": t}),
        )
        .await;
    assert_eq!(
        billing["data"]["updateBillingInfo"]["billingInfo"],
        json!({"company": "Acme GmbH", "vatId": "DE123456789", "country": "DE", "contactEmail": null}),
        "a blank contact e-mail means not set: {billing}"
    );
    let bad_email = api
        .post(
            Some(&admin),
            "mutation($t: ID!) { updateBillingInfo(tenantId: $t, input: {contactEmail: \"not-an-address\"}) { id } }",
            json!({"t": t}),
        )
        .await;
    assert_eq!(code(&bad_email), Some("VALIDATION"), "{bad_email}");
    let branding = api
        .post(
            Some(&admin),
            "mutation($t: ID!) { updateBranding(tenantId: $t, input: {productName: \"Acme Work\", accentColour: \"#1d4ed8\", setEmailTemplates: [{key: \"invitation\", subject: \"Welcome\", body: \"Hello {{name}}\"}]}) { branding { productName accentColour accentTextColour accentContrastRatio emailTemplates { key subject } } } }",
            json!({"t": t}),
        )
        .await;
    assert_eq!(
        branding["data"]["updateBranding"]["branding"],
        json!({"productName": "Acme Work", "accentColour": "#1D4ED8", "accentTextColour": "#FFFFFF",
               "accentContrastRatio": 6.7, "emailTemplates": [{"key": "invitation", "subject": "Welcome"}]}),
        "{branding}"
    );
    let unknown_template = api
        .post(
            Some(&admin),
            "mutation($t: ID!) { updateBranding(tenantId: $t, input: {removeEmailTemplates: [\"newsletter\"]}) { id } }",
            json!({"t": t}),
        )
        .await;
    assert_eq!(
        code(&unknown_template),
        Some("VALIDATION"),
        "{unknown_template}"
    );
    let policy = api
        .post(
            Some(&admin),
            "mutation($t: ID!) { updateSecurityPolicy(tenantId: $t, input: {mfaMode: REQUIRED, ipAllowlist: [\"192.0.2.7\"]}) { securityPolicy { mfaMode ipAllowlist sessionIdleMinutes } } }",
            json!({"t": t}),
        )
        .await;
    let policy = &policy["data"]["updateSecurityPolicy"]["securityPolicy"];
    assert_eq!(policy["mfaMode"], "REQUIRED");
    assert_eq!(policy["ipAllowlist"], json!(["192.0.2.7/32"]));
    // The audit timeline shows only the fields the command changed.
    let timeline = api
        .post(
            Some(&admin),
            "query($t: ID!) { tenant(id: $t) { auditTimeline(first: 5, action: \"SecurityPolicyUpdated\") { nodes { diff } } } }",
            json!({"t": t}),
        )
        .await;
    let diff = &timeline["data"]["tenant"]["auditTimeline"]["nodes"][0]["diff"];
    let mut fields: Vec<&str> = diff
        .as_object()
        .unwrap_or_else(|| panic!("diff in {timeline}"))
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, ["ip_allowlist", "mfa_mode"], "{timeline}");
    // A plain member sees the branding (the portal shows it) but not billing or security.
    let member = api.user("bob@acme.eu");
    let seen = api
        .post(
            Some(&member),
            "query($t: ID!) { tenant(id: $t) { branding { productName } } }",
            json!({"t": t}),
        )
        .await;
    assert_eq!(
        seen["data"]["tenant"]["branding"]["productName"],
        "Acme Work"
    );
    for field in ["billingInfo { company }", "securityPolicy { mfaMode }"] {
        let refused = api
            .post(
                Some(&member),
                &format!("query($t: ID!) {{ tenant(id: $t) {{ {field} }} }}"),
                json!({"t": t}),
            )
            .await;
        assert_eq!(code(&refused), Some("FORBIDDEN"), "{field}: {refused}");
    }
    let change = api
        .post(
            Some(&member),
            "mutation($t: ID!) { updateBranding(tenantId: $t, input: {productName: \"Mine\"}) { id } }",
            json!({"t": t}),
        )
        .await;
    assert_eq!(code(&change), Some("FORBIDDEN"), "{change}");
}

#[tokio::test]
async fn settings_are_read_and_changed_by_admins_with_diffs_of_only_what_changed_on_sqlite() {
    settings_are_read_and_changed_by_admins_with_diffs_of_only_what_changed(Backend::Sqlite).await;
}

#[tokio::test]
async fn settings_are_read_and_changed_by_admins_with_diffs_of_only_what_changed_on_postgres() {
    settings_are_read_and_changed_by_admins_with_diffs_of_only_what_changed(Backend::Postgres)
        .await;
}

async fn a_purged_tenants_slug_is_free_again_and_only_operators_purge(backend: Backend) {
    let api = start(backend).await;
    let operator = api.operator();
    let tenant = create(&api, &operator, "gone", "ada@gone.eu", Some("p-gone")).await;
    let t = tenant["id"].clone();
    let purge = "mutation($t: ID!) { purgeTenant(tenantId: $t) { status } }";
    // Purge needs a soft-deleted tenant.
    let early = api.post(Some(&operator), purge, json!({"t": t})).await;
    assert_eq!(code(&early), Some("CONFLICT"), "{early}");
    let deleted = api
        .post(
            Some(&api.partner("p-gone")),
            "mutation($t: ID!) { softDeleteTenant(tenantId: $t) { status } }",
            json!({"t": t}),
        )
        .await;
    assert_eq!(
        deleted["data"]["softDeleteTenant"]["status"], "SOFT_DELETED",
        "{deleted}"
    );
    // While soft-deleted the slug stays taken.
    let twin = api
        .post(
            Some(&operator),
            CREATE,
            json!({"input": {"organization": "Twin", "slug": "gone", "plan": "standard", "seats": 1,
                "firstAdmin": {"email": "x@twin.eu", "displayName": "X"}}}),
        )
        .await;
    assert_eq!(code(&twin), Some("CONFLICT"), "{twin}");
    // The owning partner and the tenant's own admin may not purge; an operator may.
    for token in [api.partner("p-gone"), api.user("ada@gone.eu")] {
        let refused = api.post(Some(&token), purge, json!({"t": t})).await;
        assert_eq!(code(&refused), Some("FORBIDDEN"), "{refused}");
    }
    let purged = api.post(Some(&operator), purge, json!({"t": t})).await;
    assert_eq!(
        purged["data"]["purgeTenant"]["status"], "PURGED",
        "{purged}"
    );
    // The mutation answered after the slug was released: a new tenant can take it at once.
    let reborn = create(&api, &operator, "gone", "new@gone.eu", None).await;
    assert_ne!(reborn["id"], t);
    let by_slug = api
        .post(
            Some(&operator),
            "{ tenant(slug: \"gone\") { id status } }",
            json!({}),
        )
        .await;
    assert_eq!(by_slug["data"]["tenant"]["id"], reborn["id"], "{by_slug}");
    assert_eq!(by_slug["data"]["tenant"]["status"], "PENDING_PROVISIONING");
    // The purged tenant's settings are gone with it.
    let settings = api
        .post(
            Some(&operator),
            "query($t: ID!) { tenant(id: $t) { billingInfo { company } } }",
            json!({"t": t}),
        )
        .await;
    assert_eq!(code(&settings), Some("NOT_FOUND"), "{settings}");
}

#[tokio::test]
async fn a_purged_tenants_slug_is_free_again_and_only_operators_purge_on_sqlite() {
    a_purged_tenants_slug_is_free_again_and_only_operators_purge(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_purged_tenants_slug_is_free_again_and_only_operators_purge_on_postgres() {
    a_purged_tenants_slug_is_free_again_and_only_operators_purge(Backend::Postgres).await;
}

async fn the_platform_flag_moves_atomically_and_only_operators_move_it(backend: Backend) {
    let api = start(backend).await;
    let operator = api.operator();
    let a = create(&api, &operator, "platform-a", "ada@a.eu", None).await;
    let b = create(&api, &operator, "platform-b", "bob@b.eu", None).await;
    let set = "mutation($t: ID!) { setPlatformTenant(tenantId: $t) { isPlatformTenant } }";
    // A tenant admin cannot make their own tenant the platform tenant.
    let own = api
        .post(Some(&api.user("ada@a.eu")), set, json!({"t": a["id"]}))
        .await;
    assert_eq!(code(&own), Some("FORBIDDEN"), "{own}");
    for (holder, other) in [(&a, &b), (&b, &a)] {
        let moved = api
            .post(Some(&operator), set, json!({"t": holder["id"]}))
            .await;
        assert_eq!(
            moved["data"]["setPlatformTenant"]["isPlatformTenant"], true,
            "{moved}"
        );
        let flags = api
            .post(
                Some(&operator),
                "{ tenants(first: 10) { nodes { slug isPlatformTenant } } }",
                json!({}),
            )
            .await;
        let holders: Vec<&Value> = flags["data"]["tenants"]["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .filter(|n| n["isPlatformTenant"] == true)
            .map(|n| &n["slug"])
            .collect();
        assert_eq!(
            holders,
            [&holder["slug"]],
            "exactly one holder, not {}",
            other["slug"]
        );
    }
}

#[tokio::test]
async fn the_platform_flag_moves_atomically_and_only_operators_move_it_on_sqlite() {
    the_platform_flag_moves_atomically_and_only_operators_move_it(Backend::Sqlite).await;
}

#[tokio::test]
async fn the_platform_flag_moves_atomically_and_only_operators_move_it_on_postgres() {
    the_platform_flag_moves_atomically_and_only_operators_move_it(Backend::Postgres).await;
}

async fn admins_manage_sessions_and_members_link_only_themselves(backend: Backend) {
    let api = start(backend).await;
    let tenant = create(&api, &api.operator(), "sessions", "ada@sessions.eu", None).await;
    let t = tenant["id"].clone();
    let ada = member_id(&tenant, "ada@sessions.eu");
    let admin = api.user("ada@sessions.eu");
    let added = add_member(&api, &admin, t.as_str().expect("id"), "bob@sessions.eu").await;
    let bob = member_id(&added["data"]["addMember"], "bob@sessions.eu");
    let invited = api
        .post(
            Some(&admin),
            "mutation($t: ID!) { inviteAdmin(input: {tenantId: $t, email: \"cfo@outside.eu\", displayName: \"CFO\"}) { members { email role hasMailbox } } }",
            json!({"t": t}),
        )
        .await;
    assert!(
        invited["data"]["inviteAdmin"]["members"]
            .as_array()
            .expect("members")
            .contains(&json!({"email": "cfo@outside.eu", "role": "ADMIN", "hasMailbox": false})),
        "{invited}"
    );
    for mutation in ["forceLogout", "resetPassword"] {
        let query = format!(
            "mutation($t: ID!, $m: ID!) {{ {mutation}(tenantId: $t, memberId: $m) {{ id }} }}"
        );
        let done = api
            .post(Some(&admin), &query, json!({"t": t, "m": bob}))
            .await;
        assert_eq!(done["errors"], Value::Null, "{mutation}: {done}");
        // A member cannot do it to an admin.
        let member = api
            .post(
                Some(&api.user("bob@sessions.eu")),
                &query,
                json!({"t": t, "m": ada}),
            )
            .await;
        assert_eq!(
            code(&member),
            Some("FORBIDDEN"),
            "{mutation} by a member: {member}"
        );
    }
    // Logging oneself out by force is refused (sign out instead).
    let own = api
        .post(
            Some(&admin),
            "mutation($t: ID!, $m: ID!) { forceLogout(tenantId: $t, memberId: $m) { id } }",
            json!({"t": t, "m": ada}),
        )
        .await;
    assert_eq!(code(&own), Some("FORBIDDEN"), "{own}");
    let timeline = api
        .post(
            Some(&admin),
            "query($t: ID!) { tenant(id: $t) { auditTimeline(first: 10, action: \"MemberLogoutRequested\") { totalCount } } }",
            json!({"t": t}),
        )
        .await;
    assert_eq!(
        timeline["data"]["tenant"]["auditTimeline"]["totalCount"], 1,
        "{timeline}"
    );
    // A member links their own account to their own subject, and no other.
    let bob_token = api.user("bob@sessions.eu");
    let link = "mutation($t: ID!, $m: ID!, $s: String!) { linkMemberSubject(tenantId: $t, memberId: $m, subject: $s) { id } }";
    let foreign = api
        .post(
            Some(&bob_token),
            link,
            json!({"t": t, "m": bob, "s": "someone-else"}),
        )
        .await;
    assert_eq!(code(&foreign), Some("FORBIDDEN"), "{foreign}");
    let linked = api
        .post(
            Some(&bob_token),
            link,
            json!({"t": t, "m": bob, "s": "sub-bob@sessions.eu"}),
        )
        .await;
    assert_eq!(linked["errors"], Value::Null, "{linked}");
}

#[tokio::test]
async fn admins_manage_sessions_and_members_link_only_themselves_on_sqlite() {
    admins_manage_sessions_and_members_link_only_themselves(Backend::Sqlite).await;
}

#[tokio::test]
async fn admins_manage_sessions_and_members_link_only_themselves_on_postgres() {
    admins_manage_sessions_and_members_link_only_themselves(Backend::Postgres).await;
}

async fn an_operator_lists_saga_effects_and_retries_a_dead_lettered_one(backend: Backend) {
    use dezky_domain::effects::{EffectCommand, EffectIntent};
    let api = start(backend).await;
    let operator = api.operator();
    let list = "{ sagaEffects { totalCount items { key saga step status attempts lastError } } }";
    let empty = api.post(Some(&operator), list, json!({})).await;
    assert_eq!(empty["data"]["sagaEffects"]["totalCount"], 0, "{empty}");
    // An effect refused for good by its system: dead-lettered after one attempt.
    let effects = dezky_commands::saga::Effects::new(&api.ledger);
    let key = "mailbox/create/7";
    let at = || "2026-11-29T10:00:00Z".to_owned();
    for command in [
        EffectCommand::Intend {
            intent: EffectIntent {
                saga: "mailbox".into(),
                step: "create".into(),
                system: "stalwart".into(),
                tenant_id: None,
                trigger_position: 7,
                request: json!({"op": "ensure_account", "address": "ada@acme.eu"}),
                max_attempts: 3,
            },
            at: at(),
        },
        EffectCommand::BeginAttempt { at: at() },
        EffectCommand::Fail {
            attempt: 1,
            error: "the mail server refused the change".into(),
            retryable: false,
            retry_at: at(),
            at: at(),
        },
    ] {
        effects
            .execute(key, command, Default::default())
            .await
            .expect("effect command");
    }
    let mut listed = json!(null);
    for _ in 0..100 {
        listed = api.post(Some(&operator), list, json!({})).await;
        if listed["data"]["sagaEffects"]["items"][0]["status"] == "DEAD_LETTERED" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        listed["data"]["sagaEffects"]["items"][0],
        json!({"key": key, "saga": "mailbox", "step": "create", "status": "DEAD_LETTERED",
               "attempts": 1, "lastError": "the mail server refused the change"}),
        "{listed}"
    );
    let retry = "mutation($k: ID!) { retrySagaEffect(key: $k) { key status attempts } }";
    let retried = api.post(Some(&operator), retry, json!({"k": key})).await;
    assert_eq!(
        retried["data"]["retrySagaEffect"],
        json!({"key": key, "status": "RETRYING", "attempts": 1}),
        "{retried}"
    );
    let again = api.post(Some(&operator), retry, json!({"k": key})).await;
    assert_eq!(code(&again), Some("CONFLICT"), "{again}");
    let unknown = api
        .post(Some(&operator), retry, json!({"k": "no/such/1"}))
        .await;
    assert_eq!(code(&unknown), Some("NOT_FOUND"), "{unknown}");
    let member = api.user("ada@acme.eu");
    let refused = api.post(Some(&member), list, json!({})).await;
    assert_eq!(code(&refused), Some("FORBIDDEN"), "{refused}");
}

#[tokio::test]
async fn an_operator_lists_saga_effects_and_retries_a_dead_lettered_one_on_sqlite() {
    an_operator_lists_saga_effects_and_retries_a_dead_lettered_one(Backend::Sqlite).await;
}

#[tokio::test]
async fn an_operator_lists_saga_effects_and_retries_a_dead_lettered_one_on_postgres() {
    an_operator_lists_saga_effects_and_retries_a_dead_lettered_one(Backend::Postgres).await;
}

async fn an_operator_sees_projection_builds_and_triggers_a_rebuild(backend: Backend) {
    let api = start(backend).await;
    let operator = api.operator();
    create(&api, &operator, "acme", "ada@acme.eu", None).await;
    let status = "{ projections { name build schemaVersion status position lag } }";
    let before = api.post(Some(&operator), status, json!({})).await;
    let builds = before["data"]["projections"].as_array().expect("builds");
    let mut names: Vec<&str> = builds.iter().filter_map(|b| b["name"].as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "audit",
            "bookings",
            "domains",
            "mail_addresses",
            "saga_effects",
            "tenant_settings",
            "tenants"
        ],
        "{before}"
    );
    assert!(builds
        .iter()
        .all(|b| b["status"] == "LIVE" && b["build"] == 1));
    let rebuild = "mutation($n: String!) { rebuildProjection(name: $n) { name build status } }";
    let started = api
        .post(Some(&operator), rebuild, json!({"n": "tenants"}))
        .await;
    assert_eq!(
        started["data"]["rebuildProjection"],
        json!({"name": "tenants", "build": 2, "status": "BUILDING"}),
        "{started}"
    );
    // Asking again while it builds joins the same build.
    let again = api
        .post(Some(&operator), rebuild, json!({"n": "tenants"}))
        .await;
    let build = &again["data"]["rebuildProjection"];
    assert!(build["build"] == 2 || build["status"] == "LIVE", "{again}");
    let unknown = api
        .post(Some(&operator), rebuild, json!({"n": "nope"}))
        .await;
    assert_eq!(code(&unknown), Some("NOT_FOUND"), "{unknown}");
    // Every read model the server runs can be rebuilt by name (one registry for both).
    let bookings = api
        .post(Some(&operator), rebuild, json!({"n": "bookings"}))
        .await;
    assert_eq!(
        bookings["data"]["rebuildProjection"]["name"], "bookings",
        "{bookings}"
    );
    // The serving instance builds it and switches; queries keep answering throughout.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let now = api.post(Some(&operator), status, json!({})).await;
        let live = now["data"]["projections"]
            .as_array()
            .expect("builds")
            .iter()
            .any(|b| b["name"] == "tenants" && b["build"] == 2 && b["status"] == "LIVE");
        let read = api
            .post(
                Some(&operator),
                "{ tenants(first: 5) { totalCount } }",
                json!({}),
            )
            .await;
        assert_eq!(read["data"]["tenants"]["totalCount"], 1, "{read}");
        if live {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the rebuild never switched: {now}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_operator_sees_projection_builds_and_triggers_a_rebuild_on_sqlite() {
    an_operator_sees_projection_builds_and_triggers_a_rebuild(Backend::Sqlite).await;
}

#[tokio::test]
async fn an_operator_sees_projection_builds_and_triggers_a_rebuild_on_postgres() {
    an_operator_sees_projection_builds_and_triggers_a_rebuild(Backend::Postgres).await;
}
