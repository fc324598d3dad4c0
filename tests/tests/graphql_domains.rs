//! Mail domains over the GraphQL API with real signed JWTs: adding and listing with the DNS
//! records to publish and what DNS answered, the platform apex and the names under it, a
//! domain of another workspace, two workspaces racing for one name, removal refused while a
//! member's address uses the domain (or an alias made a moment ago, while the read models
//! lag: the usage is read from the ledger), and nobody outside a workspace reading or changing
//! its domains.

use cqrs_es::persist::PersistedEventStore;
use cqrs_es::CqrsFramework;
use dezky_commands::LedgerRepository;
use dezky_domain::domains::{
    domain_upcasters, CheckOutcome, Domain, DomainCommand, DomainContext, ExpectedRecord,
    RecordCheck, RecordPurpose, RecordType,
};
use dezky_domain::tenant::Principal;
use dezky_tests::{metadata_for, Backend};
use serde_json::{json, Value};

use dezky_tests::graphql_rig::{code, GraphqlApi};

/// The API with this suite's helpers.
struct Api(GraphqlApi);

impl std::ops::Deref for Api {
    type Target = GraphqlApi;

    fn deref(&self) -> &GraphqlApi {
        &self.0
    }
}

async fn start(backend: Backend) -> Api {
    Api(GraphqlApi::start(backend).await)
}

impl Api {
    /// Creates a workspace (as an operator) and returns its id and its members.
    async fn create(&self, slug: &str, admin: &str, partner: Option<&str>) -> (String, Value) {
        let response = self
            .post_as(
                &self.operator(),
                "mutation($input: CreateTenantInput!) { createTenant(input: $input) { id members { id email } } }",
                json!({"input": {"organization": format!("{slug} GmbH"), "slug": slug,
                    "plan": "standard", "seats": 5,
                    "firstAdmin": {"email": admin, "displayName": "Admin"}, "partnerId": partner}}),
            )
            .await;
        assert_eq!(response["errors"], Value::Null, "{response}");
        let tenant = &response["data"]["createTenant"];
        (
            tenant["id"].as_str().expect("id").to_owned(),
            tenant["members"].clone(),
        )
    }

    /// What the domain framework answers when the platform records provisioning and checks
    /// (the provisioning saga's part, which runs elsewhere).
    fn domains(&self) -> CqrsFramework<Domain, PersistedEventStore<LedgerRepository, Domain>> {
        let store =
            PersistedEventStore::new_event_store(LedgerRepository::new(self.ledger.clone()))
                .with_upcasters(domain_upcasters());
        CqrsFramework::new(store, vec![], ())
    }

    async fn as_platform(&self, tenant: &str, name: &str, command: DomainCommand) {
        self.domains()
            .execute_with_metadata(name, command, metadata_for(tenant).to_map())
            .await
            .expect("platform command");
    }
}

fn system_for(tenant: &str) -> DomainContext {
    DomainContext {
        principal: Principal::system("domain-provisioning"),
        tenant_id: tenant.into(),
        now: "2026-11-28T10:05:00Z".into(),
    }
}

fn expected(name: &str) -> Vec<ExpectedRecord> {
    vec![
        ExpectedRecord {
            purpose: RecordPurpose::Mx,
            name: name.into(),
            record_type: RecordType::Mx,
            value: "10 mail.dezky.eu".into(),
        },
        ExpectedRecord {
            purpose: RecordPurpose::Dmarc,
            name: format!("_dmarc.{name}"),
            record_type: RecordType::Txt,
            value: "v=DMARC1; p=none".into(),
        },
        ExpectedRecord {
            purpose: RecordPurpose::Autodiscovery,
            name: format!("autoconfig.{name}"),
            record_type: RecordType::Cname,
            value: "mail.dezky.eu".into(),
        },
    ]
}

const ADD: &str = "mutation($t: ID!, $n: String!) { addDomain(tenantId: $t, name: $n) { name status dmarcPolicy addedAt checkedAt records { name } } }";
const RECHECK: &str = "mutation($t: ID!, $n: String!) { recheckDomain(tenantId: $t, name: $n) { name status recheckRequestedAt checkedAt records { purpose name type value optional outcome found } } }";
const DMARC: &str = "mutation($t: ID!, $n: String!, $p: DmarcPolicy!) { setDomainDmarc(tenantId: $t, name: $n, policy: $p) { name dmarcPolicy } }";
const REMOVE: &str = "mutation($t: ID!, $n: String!) { removeDomain(tenantId: $t, name: $n) { id domains { name } } }";
const LIST: &str = "query($t: ID!) { tenant(id: $t) { domainsNeedingAttention domains { name status dmarcPolicy records { purpose outcome found } } } }";

async fn add(api: &Api, token: &str, tenant: &str, name: &str) -> Value {
    api.post_as(token, ADD, json!({"t": tenant, "n": name}))
        .await
}

async fn domains_are_added_listed_with_their_records_and_managed_by_admins(backend: Backend) {
    let api = start(backend).await;
    let (t, _) = api.create("acme", "ada@acme.eu", Some("p-acme")).await;
    let admin = api.user("ada@acme.eu");
    let added = add(&api, &admin, &t, " Acme.EU. ").await;
    assert_eq!(
        added["data"]["addDomain"],
        json!({"name": "acme.eu", "status": "PROVISIONING", "dmarcPolicy": "NONE",
               "addedAt": added["data"]["addDomain"]["addedAt"], "checkedAt": null, "records": []}),
        "{added}"
    );
    // Nothing to check before the mail server holds the domain.
    let early = api
        .post_as(&admin, RECHECK, json!({"t": t, "n": "acme.eu"}))
        .await;
    assert_eq!(code(&early), Some("DOMAIN_NOT_PROVISIONED"), "{early}");

    // The provisioning saga records the zone file's records and a first check.
    api.as_platform(
        &t,
        "acme.eu",
        DomainCommand::RecordProvisioned {
            ctx: system_for(&t),
            expected: expected("acme.eu"),
        },
    )
    .await;
    let checks = expected("acme.eu")
        .into_iter()
        .zip([
            CheckOutcome::Missing,
            CheckOutcome::Ok,
            CheckOutcome::Warning,
        ])
        .map(|(expected, outcome)| RecordCheck {
            found: match outcome {
                CheckOutcome::Missing => vec![],
                CheckOutcome::Ok => vec![expected.value.clone()],
                _ => vec!["192.0.2.10".into()],
            },
            expected,
            outcome,
        })
        .collect();
    api.as_platform(
        &t,
        "acme.eu",
        DomainCommand::RecordDnsCheck {
            ctx: system_for(&t),
            checks,
        },
    )
    .await;
    // A recheck answers after the read models have folded everything so far.
    let rechecked = api
        .post_as(&admin, RECHECK, json!({"t": t, "n": "ACME.eu"}))
        .await;
    let domain = &rechecked["data"]["recheckDomain"];
    assert_eq!(domain["status"], "NEEDS_ATTENTION", "{rechecked}");
    assert!(domain["recheckRequestedAt"].is_string(), "{rechecked}");
    assert_eq!(domain["checkedAt"], "2026-11-28T10:05:00Z");
    assert_eq!(
        domain["records"],
        json!([
            {"purpose": "MX", "name": "acme.eu", "type": "MX", "value": "10 mail.dezky.eu",
             "optional": false, "outcome": "MISSING", "found": []},
            {"purpose": "DMARC", "name": "_dmarc.acme.eu", "type": "TXT",
             "value": "v=DMARC1; p=none", "optional": false, "outcome": "OK",
             "found": ["v=DMARC1; p=none"]},
            {"purpose": "AUTODISCOVERY", "name": "autoconfig.acme.eu", "type": "CNAME",
             "value": "mail.dezky.eu", "optional": true, "outcome": "WARNING",
             "found": ["192.0.2.10"]},
        ]),
        "{rechecked}"
    );

    let dmarc = api
        .post_as(
            &admin,
            DMARC,
            json!({"t": t, "n": "acme.eu", "p": "QUARANTINE"}),
        )
        .await;
    assert_eq!(
        dmarc["data"]["setDomainDmarc"],
        json!({"name": "acme.eu", "dmarcPolicy": "QUARANTINE"}),
        "{dmarc}"
    );
    // The owning partner manages the workspace's domains too.
    let partner = add(&api, &api.partner("p-acme"), &t, "acme-mail.eu").await;
    assert_eq!(partner["errors"], Value::Null, "{partner}");

    // A plain member reads the domains and the count, and changes nothing.
    let added = api
        .post_as(
            &admin,
            "mutation($t: ID!) { addMember(input: {tenantId: $t, email: \"bob@acme.eu\", displayName: \"Bob\", role: MEMBER}) { id } }",
            json!({"t": t}),
        )
        .await;
    assert_eq!(added["errors"], Value::Null, "{added}");
    let member = api.user("bob@acme.eu");
    let listed = api.post_as(&member, LIST, json!({"t": t})).await;
    assert_eq!(
        listed["data"]["tenant"],
        json!({"domainsNeedingAttention": 1, "domains": [
            {"name": "acme-mail.eu", "status": "PROVISIONING", "dmarcPolicy": "NONE", "records": []},
            {"name": "acme.eu", "status": "NEEDS_ATTENTION", "dmarcPolicy": "QUARANTINE", "records": [
                {"purpose": "MX", "outcome": "MISSING", "found": []},
                {"purpose": "DMARC", "outcome": "OK", "found": ["v=DMARC1; p=none"]},
                {"purpose": "AUTODISCOVERY", "outcome": "WARNING", "found": ["192.0.2.10"]},
            ]},
        ]}),
        "{listed}"
    );
    for (what, query, variables) in [
        ("addDomain", ADD, json!({"t": t, "n": "bob.eu"})),
        ("recheckDomain", RECHECK, json!({"t": t, "n": "acme.eu"})),
        (
            "setDomainDmarc",
            DMARC,
            json!({"t": t, "n": "acme.eu", "p": "NONE"}),
        ),
        ("removeDomain", REMOVE, json!({"t": t, "n": "acme-mail.eu"})),
    ] {
        let refused = api.post_as(&member, query, variables).await;
        assert_eq!(code(&refused), Some("FORBIDDEN"), "{what}: {refused}");
    }

    // The platform-wide count is the operators'.
    let platform = "{ domainsNeedingAttention }";
    let counted = api.post_as(&api.operator(), platform, json!({})).await;
    assert_eq!(counted["data"]["domainsNeedingAttention"], 1, "{counted}");
    for token in [admin, member, api.partner("p-acme")] {
        let refused = api.post_as(&token, platform, json!({})).await;
        assert_eq!(code(&refused), Some("FORBIDDEN"), "{refused}");
    }
}

#[tokio::test]
async fn domains_are_added_listed_with_their_records_and_managed_by_admins_on_sqlite() {
    domains_are_added_listed_with_their_records_and_managed_by_admins(Backend::Sqlite).await;
}

#[tokio::test]
async fn domains_are_added_listed_with_their_records_and_managed_by_admins_on_postgres() {
    domains_are_added_listed_with_their_records_and_managed_by_admins(Backend::Postgres).await;
}

async fn the_apex_is_the_platform_tenants_and_names_under_it_nobodys(backend: Backend) {
    let api = start(backend).await;
    let operator = api.operator();
    let (acme, _) = api.create("acme", "ada@acme.eu", None).await;
    let (platform, _) = api.create("dezky-ops", "root@dezky.eu", None).await;
    let set = api
        .post_as(
            &operator,
            "mutation($t: ID!) { setPlatformTenant(tenantId: $t) { isPlatformTenant } }",
            json!({"t": platform}),
        )
        .await;
    assert_eq!(set["errors"], Value::Null, "{set}");
    let admin = api.user("ada@acme.eu");
    for (name, expected) in [
        ("dezky.eu", "PLATFORM_DOMAIN_RESERVED"),
        ("DEZKY.eu.", "PLATFORM_DOMAIN_RESERVED"),
        ("acme.dezky.eu", "PLATFORM_SUBDOMAIN_RESERVED"),
        ("not a domain", "INVALID_DOMAIN"),
        ("localhost", "INVALID_DOMAIN"),
    ] {
        let refused = add(&api, &admin, &acme, name).await;
        assert_eq!(code(&refused), Some(expected), "{name}: {refused}");
        assert!(refused["data"].is_null(), "{name}: {refused}");
    }
    // Operators act for a workspace and are held to the same rules.
    let refused = add(&api, &operator, &acme, "dezky.eu").await;
    assert_eq!(
        code(&refused),
        Some("PLATFORM_DOMAIN_RESERVED"),
        "{refused}"
    );
    // The platform tenant takes the apex, but no name under it either.
    let apex = add(&api, &operator, &platform, "dezky.eu").await;
    assert_eq!(apex["data"]["addDomain"]["name"], "dezky.eu", "{apex}");
    let under = add(&api, &operator, &platform, "mail.dezky.eu").await;
    assert_eq!(code(&under), Some("PLATFORM_SUBDOMAIN_RESERVED"), "{under}");
}

#[tokio::test]
async fn the_apex_is_the_platform_tenants_and_names_under_it_nobodys_on_sqlite() {
    the_apex_is_the_platform_tenants_and_names_under_it_nobodys(Backend::Sqlite).await;
}

#[tokio::test]
async fn the_apex_is_the_platform_tenants_and_names_under_it_nobodys_on_postgres() {
    the_apex_is_the_platform_tenants_and_names_under_it_nobodys(Backend::Postgres).await;
}

/// Tenant A's domain, asked for by tenant B's admin on B's own behalf: taken for an add,
/// unknown for everything else (whose it is stays A's business).
async fn a_domain_of_another_workspace_is_taken_and_otherwise_unknown(backend: Backend) {
    let api = start(backend).await;
    let (a, _) = api.create("alpha", "admin@alpha.eu", None).await;
    let (b, _) = api.create("bravo", "admin@bravo.eu", None).await;
    let a_admin = api.user("admin@alpha.eu");
    let b_admin = api.user("admin@bravo.eu");
    let added = add(&api, &a_admin, &a, "alpha.eu").await;
    assert_eq!(added["errors"], Value::Null, "{added}");
    let again = add(&api, &a_admin, &a, "ALPHA.eu").await;
    assert_eq!(code(&again), Some("DOMAIN_ALREADY_ADDED"), "{again}");
    let taken = add(&api, &b_admin, &b, "alpha.eu").await;
    assert_eq!(code(&taken), Some("DOMAIN_TAKEN"), "{taken}");
    assert!(
        !taken.to_string().contains(&a),
        "the owner is not named: {taken}"
    );
    for (what, query, variables) in [
        ("recheckDomain", RECHECK, json!({"t": b, "n": "alpha.eu"})),
        (
            "setDomainDmarc",
            DMARC,
            json!({"t": b, "n": "alpha.eu", "p": "REJECT"}),
        ),
        ("removeDomain", REMOVE, json!({"t": b, "n": "alpha.eu"})),
    ] {
        let refused = api.post_as(&b_admin, query, variables).await;
        assert_eq!(code(&refused), Some("NOT_FOUND"), "{what}: {refused}");
    }
    let listed = api.post_as(&a_admin, LIST, json!({"t": a})).await;
    assert_eq!(
        listed["data"]["tenant"]["domains"][0]["dmarcPolicy"], "NONE",
        "{listed}"
    );
    let unknown = api
        .post_as(&a_admin, RECHECK, json!({"t": a, "n": "never-added.eu"}))
        .await;
    assert_eq!(code(&unknown), Some("NOT_FOUND"), "{unknown}");
}

#[tokio::test]
async fn a_domain_of_another_workspace_is_taken_and_otherwise_unknown_on_sqlite() {
    a_domain_of_another_workspace_is_taken_and_otherwise_unknown(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_domain_of_another_workspace_is_taken_and_otherwise_unknown_on_postgres() {
    a_domain_of_another_workspace_is_taken_and_otherwise_unknown(Backend::Postgres).await;
}

/// Rounds of two workspaces adding one name at the same moment.
const RACE_ROUNDS: usize = 6;

async fn two_workspaces_adding_one_domain_at_once_yield_one_owner(backend: Backend) {
    let api = start(backend).await;
    let (a, _) = api.create("alpha", "admin@alpha.eu", None).await;
    let (b, _) = api.create("bravo", "admin@bravo.eu", None).await;
    let a_admin = api.user("admin@alpha.eu");
    let b_admin = api.user("admin@bravo.eu");
    for round in 0..RACE_ROUNDS {
        let name = format!("race-{round}.eu");
        let (first, second) = tokio::join!(
            add(&api, &a_admin, &a, &name),
            add(&api, &b_admin, &b, &name)
        );
        let outcomes = [(&a, &first), (&b, &second)];
        let winners: Vec<&String> = outcomes
            .iter()
            .filter(|(_, r)| r["errors"].is_null())
            .map(|(t, _)| *t)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {first} / {second}");
        let loser = outcomes
            .iter()
            .find(|(_, r)| !r["errors"].is_null())
            .map(|(_, r)| *r)
            .expect("a loser");
        assert_eq!(code(loser), Some("DOMAIN_TAKEN"), "round {round}: {loser}");
        // The read model agrees: the name is the winner's alone.
        let winner = winners[0];
        let (winner_token, loser_tenant, loser_token) = if winner == &a {
            (&a_admin, &b, &b_admin)
        } else {
            (&b_admin, &a, &a_admin)
        };
        let theirs = api.post_as(winner_token, LIST, json!({"t": winner})).await;
        assert!(
            theirs["data"]["tenant"]["domains"]
                .as_array()
                .expect("domains")
                .iter()
                .any(|d| d["name"] == name.as_str()),
            "{theirs}"
        );
        let mine = api
            .post_as(loser_token, LIST, json!({"t": loser_tenant}))
            .await;
        assert!(
            !mine["data"]["tenant"]["domains"]
                .as_array()
                .expect("domains")
                .iter()
                .any(|d| d["name"] == name.as_str()),
            "{mine}"
        );
    }
}

#[tokio::test]
async fn two_workspaces_adding_one_domain_at_once_yield_one_owner_on_sqlite() {
    two_workspaces_adding_one_domain_at_once_yield_one_owner(Backend::Sqlite).await;
}

#[tokio::test]
async fn two_workspaces_adding_one_domain_at_once_yield_one_owner_on_postgres() {
    two_workspaces_adding_one_domain_at_once_yield_one_owner(Backend::Postgres).await;
}

async fn a_domain_in_use_by_a_member_is_not_removed_until_the_member_is_gone(backend: Backend) {
    let api = start(backend).await;
    // The owner signs in with an outside address, so only Bob uses the domain.
    let (t, _) = api.create("acme", "ada@outside.eu", None).await;
    let admin = api.user("ada@outside.eu");
    let added = add(&api, &admin, &t, "acme.eu").await;
    assert_eq!(added["errors"], Value::Null, "{added}");
    let bob = api
        .post_as(
            &admin,
            "mutation($t: ID!) { addMember(input: {tenantId: $t, email: \"Bob@ACME.eu\", displayName: \"Bob\", role: MEMBER}) { members { id email } } }",
            json!({"t": t}),
        )
        .await;
    let bob_id = bob["data"]["addMember"]["members"]
        .as_array()
        .expect("members")
        .iter()
        .find(|m| {
            m["email"]
                .as_str()
                .is_some_and(|e| e.eq_ignore_ascii_case("bob@acme.eu"))
        })
        .unwrap_or_else(|| panic!("bob in {bob}"))["id"]
        .clone();
    let refused = api
        .post_as(&admin, REMOVE, json!({"t": t, "n": "acme.eu"}))
        .await;
    assert_eq!(code(&refused), Some("DOMAIN_IN_USE"), "{refused}");
    assert_eq!(
        refused["errors"][0]["extensions"]["usage"],
        json!({"mailboxes": 1, "aliases": 0, "lists": 0}),
        "{refused}"
    );
    let removed = api
        .post_as(
            &admin,
            "mutation($t: ID!, $m: ID!) { removeMember(tenantId: $t, memberId: $m) { id } }",
            json!({"t": t, "m": bob_id}),
        )
        .await;
    assert_eq!(removed["errors"], Value::Null, "{removed}");
    let gone = api
        .post_as(&admin, REMOVE, json!({"t": t, "n": "acme.eu"}))
        .await;
    assert_eq!(
        gone["data"]["removeDomain"],
        json!({"id": t, "domains": []}),
        "{gone}"
    );
    // Removed, the name is free again, for this workspace or any other.
    let (other, _) = api.create("other", "admin@other.eu", None).await;
    let again = add(&api, &api.user("admin@other.eu"), &other, "acme.eu").await;
    assert_eq!(again["data"]["addDomain"]["name"], "acme.eu", "{again}");
}

#[tokio::test]
async fn a_domain_in_use_by_a_member_is_not_removed_until_the_member_is_gone_on_sqlite() {
    a_domain_in_use_by_a_member_is_not_removed_until_the_member_is_gone(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_domain_in_use_by_a_member_is_not_removed_until_the_member_is_gone_on_postgres() {
    a_domain_in_use_by_a_member_is_not_removed_until_the_member_is_gone(Backend::Postgres).await;
}

/// Every domain field and mutation aimed at workspace A by someone with no standing there.
async fn nobody_outside_a_workspace_reads_or_changes_its_domains(backend: Backend) {
    let api = start(backend).await;
    let (a, _) = api.create("alpha", "admin@alpha.eu", Some("p-alpha")).await;
    let (b, _) = api.create("bravo", "admin@bravo.eu", Some("p-bravo")).await;
    let a_admin = api.user("admin@alpha.eu");
    let added = add(&api, &a_admin, &a, "alpha.eu").await;
    assert_eq!(added["errors"], Value::Null, "{added}");
    let member = api
        .post_as(
            &api.user("admin@bravo.eu"),
            "mutation($t: ID!) { addMember(input: {tenantId: $t, email: \"member@bravo.eu\", displayName: \"M\", role: MEMBER}) { id } }",
            json!({"t": b}),
        )
        .await;
    assert_eq!(member["errors"], Value::Null, "{member}");
    let outsiders = [
        ("admin of another tenant", api.user("admin@bravo.eu")),
        ("member of another tenant", api.user("member@bravo.eu")),
        ("staff of another partner", api.partner("p-bravo")),
        ("a user of no tenant", api.user("stranger@example.eu")),
    ];
    let attempts = [
        (
            "domains",
            "query($t: ID!) { tenant(id: $t) { domains { name } } }",
        ),
        (
            "domainsNeedingAttention",
            "query($t: ID!) { tenant(id: $t) { domainsNeedingAttention } }",
        ),
        ("platform domainsNeedingAttention", "{ domainsNeedingAttention }"),
        (
            "addDomain",
            "mutation($t: ID!) { addDomain(tenantId: $t, name: \"evil.eu\") { name } }",
        ),
        (
            "recheckDomain",
            "mutation($t: ID!) { recheckDomain(tenantId: $t, name: \"alpha.eu\") { name } }",
        ),
        (
            "setDomainDmarc",
            "mutation($t: ID!) { setDomainDmarc(tenantId: $t, name: \"alpha.eu\", policy: NONE) { name } }",
        ),
        (
            "removeDomain",
            "mutation($t: ID!) { removeDomain(tenantId: $t, name: \"alpha.eu\") { id } }",
        ),
    ];
    for (who, token) in &outsiders {
        for (what, query) in attempts {
            let response = api.post_as(token, query, json!({"t": a})).await;
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
    }
    // Nothing changed: A's domain is still there, as it was.
    let listed = api.post_as(&a_admin, LIST, json!({"t": a})).await;
    assert_eq!(
        listed["data"]["tenant"]["domains"],
        json!([{"name": "alpha.eu", "status": "PROVISIONING", "dmarcPolicy": "NONE", "records": []}]),
        "{listed}"
    );
}

#[tokio::test]
async fn nobody_outside_a_workspace_reads_or_changes_its_domains_on_sqlite() {
    nobody_outside_a_workspace_reads_or_changes_its_domains(Backend::Sqlite).await;
}

#[tokio::test]
async fn nobody_outside_a_workspace_reads_or_changes_its_domains_on_postgres() {
    nobody_outside_a_workspace_reads_or_changes_its_domains(Backend::Postgres).await;
}

async fn a_domain_used_by_an_alias_made_a_moment_ago_is_not_removed_while_the_read_models_lag(
    backend: Backend,
) {
    use dezky_domain::tenant::{TenantAction, TenantCommand};
    use dezky_tests::{operator_context, tenant_cqrs};

    let api = start(backend).await;
    let (tenant, _) = api.create("acme", "ada@acme.example", None).await;
    let ada = api.user("ada@acme.example");
    let added = api
        .post_as(
            &ada,
            "mutation($t: ID!) { addDomain(tenantId: $t, name: \"acme.example\") { name } }",
            json!({"t": tenant}),
        )
        .await;
    assert_eq!(added["errors"], Value::Null, "{added}");
    let bob = api
        .post_as(
            &ada,
            "mutation($t: ID!) { addMember(input: {tenantId: $t, email: \"bob@acme.dezky.eu\", displayName: \"Bob\", role: MEMBER}) { members { id email } } }",
            json!({"t": tenant}),
        )
        .await;
    let bob_id = bob["data"]["addMember"]["members"]
        .as_array()
        .expect("members")
        .iter()
        .find(|m| m["email"] == "bob@acme.dezky.eu")
        .expect("bob")["id"]
        .as_str()
        .expect("id")
        .to_owned();

    // From here the read models stand still; the alias exists only on the ledger.
    api.stop_read_models();
    tenant_cqrs(&api.ledger)
        .execute_with_metadata(
            &tenant,
            TenantCommand::new(
                operator_context(),
                TenantAction::AddAlias {
                    member_id: bob_id,
                    alias: "sales@acme.example".into(),
                },
            ),
            metadata_for(&tenant).to_map(),
        )
        .await
        .expect("alias");

    let removed = api
        .post_as(
            &ada,
            "mutation($t: ID!) { removeDomain(tenantId: $t, name: \"acme.example\") { id } }",
            json!({"t": tenant}),
        )
        .await;
    assert_eq!(code(&removed), Some("DOMAIN_IN_USE"), "{removed}");
}

#[tokio::test]
async fn a_domain_used_by_an_alias_made_a_moment_ago_is_not_removed_while_the_read_models_lag_on_sqlite(
) {
    a_domain_used_by_an_alias_made_a_moment_ago_is_not_removed_while_the_read_models_lag(
        Backend::Sqlite,
    )
    .await;
}

#[tokio::test]
async fn a_domain_used_by_an_alias_made_a_moment_ago_is_not_removed_while_the_read_models_lag_on_postgres(
) {
    a_domain_used_by_an_alias_made_a_moment_ago_is_not_removed_while_the_read_models_lag(
        Backend::Postgres,
    )
    .await;
}
