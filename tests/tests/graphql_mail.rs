//! Aliases and distribution lists over the GraphQL API with real signed JWTs: each mutation's
//! rules and their codes, addresses only on the workspace's own domains, a domain's removal
//! refused while an alias or a list uses it, and nobody outside a workspace reading or
//! changing its addresses.

use dezky_tests::Backend;
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
    /// Creates a workspace (as an operator) whose owner signs in with an outside address (so
    /// has no mailbox), and returns its id and the owner's member id.
    async fn create(&self, slug: &str, owner: &str, partner: Option<&str>) -> (String, String) {
        let response = self
            .post_as(
                &self.operator(),
                "mutation($input: CreateTenantInput!) { createTenant(input: $input) { id members { id } } }",
                json!({"input": {"organization": format!("{slug} GmbH"), "slug": slug,
                    "plan": "standard", "seats": 5,
                    "firstAdmin": {"email": owner, "displayName": "Owner"}, "partnerId": partner}}),
            )
            .await;
        assert_eq!(response["errors"], Value::Null, "{response}");
        let tenant = &response["data"]["createTenant"];
        (
            tenant["id"].as_str().expect("id").to_owned(),
            tenant["members"][0]["id"]
                .as_str()
                .expect("owner")
                .to_owned(),
        )
    }

    /// Adds a member with a mailbox at `email` and returns their id.
    async fn add_member(&self, token: &str, tenant: &str, email: &str) -> String {
        let response = self
            .post_as(
                token,
                "mutation($t: ID!, $e: String!) { addMember(input: {tenantId: $t, email: $e, displayName: \"M\", role: MEMBER}) { members { id email } } }",
                json!({"t": tenant, "e": email}),
            )
            .await;
        assert_eq!(response["errors"], Value::Null, "{response}");
        response["data"]["addMember"]["members"]
            .as_array()
            .expect("members")
            .iter()
            .find(|m| m["email"] == email)
            .and_then(|m| m["id"].as_str())
            .unwrap_or_else(|| panic!("{email} in {response}"))
            .to_owned()
    }

    async fn add_domain(&self, token: &str, tenant: &str, name: &str) {
        let response = self
            .post_as(
                token,
                "mutation($t: ID!, $n: String!) { addDomain(tenantId: $t, name: $n) { name } }",
                json!({"t": tenant, "n": name}),
            )
            .await;
        assert_eq!(response["errors"], Value::Null, "{response}");
    }
}

const ADD_ALIAS: &str = "mutation($t: ID!, $m: ID!, $a: String!) { addAlias(tenantId: $t, memberId: $m, alias: $a) { alias mailboxAddress memberId } }";
const REMOVE_ALIAS: &str = "mutation($t: ID!, $m: ID!, $a: String!) { removeAlias(tenantId: $t, memberId: $m, alias: $a) { id aliases { alias } } }";
const CREATE_LIST: &str = "mutation($t: ID!, $a: String!, $n: String!, $r: [String!]!) { createMailingList(tenantId: $t, address: $a, displayName: $n, recipients: $r) { id address displayName recipients } }";
const SET_RECIPIENTS: &str = "mutation($t: ID!, $l: ID!, $r: [String!]!) { setMailingListRecipients(tenantId: $t, listId: $l, recipients: $r) { id address displayName recipients } }";
const DELETE_LIST: &str = "mutation($t: ID!, $l: ID!) { deleteMailingList(tenantId: $t, listId: $l) { id mailingLists { id } } }";
const REMOVE_DOMAIN: &str =
    "mutation($t: ID!, $n: String!) { removeDomain(tenantId: $t, name: $n) { id domains { name } } }";
const LIST: &str = "query($t: ID!) { tenant(id: $t) { aliases { alias mailboxAddress memberId } mailingLists { id address displayName recipients } } }";

async fn add_alias(api: &Api, token: &str, tenant: &str, member: &str, alias: &str) -> Value {
    api.post_as(
        token,
        ADD_ALIAS,
        json!({"t": tenant, "m": member, "a": alias}),
    )
    .await
}

async fn create_list(
    api: &Api,
    token: &str,
    tenant: &str,
    address: &str,
    recipients: Value,
) -> Value {
    api.post_as(
        token,
        CREATE_LIST,
        json!({"t": tenant, "a": address, "n": "The Team", "r": recipients}),
    )
    .await
}

async fn aliases_are_added_on_the_workspaces_domains_and_removed_by_admins(backend: Backend) {
    let api = start(backend).await;
    let (t, owner) = api.create("acme", "ada@outside.eu", Some("p-acme")).await;
    let (other, _) = api.create("other", "olga@outside.eu", None).await;
    let admin = api.user("ada@outside.eu");
    let bob = api.add_member(&admin, &t, "bob@acme.dezky.eu").await;
    let carol = api.add_member(&admin, &t, "carol@acme.dezky.eu").await;

    // On the service domain, in canonical form, delivering to Bob's mailbox.
    let added = add_alias(&api, &admin, &t, &bob, " Sales@ACME.dezky.eu ").await;
    assert_eq!(
        added["data"]["addAlias"],
        json!({"alias": "sales@acme.dezky.eu", "mailboxAddress": "bob@acme.dezky.eu", "memberId": bob}),
        "{added}"
    );
    // Asking again changes nothing and answers the same.
    let again = add_alias(&api, &admin, &t, &bob, "sales@acme.dezky.eu").await;
    assert_eq!(
        again["data"]["addAlias"], added["data"]["addAlias"],
        "{again}"
    );
    // On a domain the workspace added (whatever its DNS state), and by the owning partner.
    api.add_domain(&admin, &t, "Acme.EU").await;
    let on_domain = add_alias(&api, &api.partner("p-acme"), &t, &bob, "info@acme.eu").await;
    assert_eq!(
        on_domain["data"]["addAlias"]["alias"], "info@acme.eu",
        "{on_domain}"
    );

    // Domains that are not this workspace's: outside, another workspace's domain or service
    // domain, the platform's apex.
    api.add_domain(&api.user("olga@outside.eu"), &other, "other.eu")
        .await;
    for alias in [
        "bob@outside.eu",
        "bob@other.eu",
        "bob@other.dezky.eu",
        "bob@dezky.eu",
        "bob@sub.acme.dezky.eu",
    ] {
        let refused = add_alias(&api, &admin, &t, &bob, alias).await;
        assert_eq!(
            code(&refused),
            Some("DOMAIN_NOT_IN_WORKSPACE"),
            "{alias}: {refused}"
        );
        assert!(refused["data"].is_null(), "{alias}: {refused}");
    }
    for (what, member, alias, expected) in [
        (
            "not an address",
            bob.as_str(),
            "sales at acme",
            "INVALID_ADDRESS",
        ),
        (
            "no mailbox",
            owner.as_str(),
            "boss@acme.dezky.eu",
            "MEMBER_HAS_NO_MAILBOX",
        ),
        (
            "Bob's own address",
            bob.as_str(),
            "BOB@acme.dezky.eu",
            "ADDRESS_IN_USE",
        ),
        (
            "Carol's address",
            bob.as_str(),
            "carol@acme.dezky.eu",
            "ADDRESS_IN_USE",
        ),
        (
            "Bob's alias",
            carol.as_str(),
            "Sales@acme.dezky.eu",
            "ADDRESS_IN_USE",
        ),
        ("unknown member", "m-nobody", "x@acme.dezky.eu", "NOT_FOUND"),
    ] {
        let refused = add_alias(&api, &admin, &t, member, alias).await;
        assert_eq!(code(&refused), Some(expected), "{what}: {refused}");
    }

    // Twenty aliases a member, no more.
    for n in 2..20 {
        let added = add_alias(&api, &admin, &t, &bob, &format!("a{n}@acme.eu")).await;
        assert_eq!(added["errors"], Value::Null, "{n}: {added}");
    }
    let full = add_alias(&api, &admin, &t, &bob, "one-more@acme.eu").await;
    assert_eq!(code(&full), Some("TOO_MANY_ALIASES"), "{full}");
    let for_carol = add_alias(&api, &admin, &t, &carol, "one-more@acme.eu").await;
    assert_eq!(for_carol["errors"], Value::Null, "{for_carol}");

    // Bob, a plain member, reads the aliases and changes none.
    let bob_token = api.user("bob@acme.dezky.eu");
    let listed = api.post_as(&bob_token, LIST, json!({"t": t})).await;
    let aliases = listed["data"]["tenant"]["aliases"]
        .as_array()
        .unwrap_or_else(|| panic!("{listed}"));
    assert_eq!(aliases.len(), 21, "{listed}");
    assert_eq!(
        aliases[0],
        json!({"alias": "a10@acme.eu", "mailboxAddress": "bob@acme.dezky.eu", "memberId": bob}),
        "sorted by address: {listed}"
    );
    let refused = add_alias(&api, &bob_token, &t, &bob, "mine@acme.eu").await;
    assert_eq!(code(&refused), Some("FORBIDDEN"), "{refused}");
    let refused = api
        .post_as(
            &bob_token,
            REMOVE_ALIAS,
            json!({"t": t, "m": bob, "a": "sales@acme.dezky.eu"}),
        )
        .await;
    assert_eq!(code(&refused), Some("FORBIDDEN"), "{refused}");

    // Removal answers with the workspace as it now reads; an alias Bob does not have is unknown.
    let removed = api
        .post_as(
            &admin,
            REMOVE_ALIAS,
            json!({"t": t, "m": bob, "a": "SALES@acme.dezky.eu"}),
        )
        .await;
    let left = removed["data"]["removeAlias"]["aliases"]
        .as_array()
        .unwrap_or_else(|| panic!("{removed}"));
    assert_eq!(left.len(), 20, "{removed}");
    assert!(
        !left.iter().any(|a| a["alias"] == "sales@acme.dezky.eu"),
        "{removed}"
    );
    for (member, alias) in [
        (bob.as_str(), "sales@acme.dezky.eu"),
        (carol.as_str(), "info@acme.eu"),
    ] {
        let unknown = api
            .post_as(
                &admin,
                REMOVE_ALIAS,
                json!({"t": t, "m": member, "a": alias}),
            )
            .await;
        assert_eq!(code(&unknown), Some("NOT_FOUND"), "{alias}: {unknown}");
    }
    // Freed, the address can route elsewhere.
    let moved = add_alias(&api, &admin, &t, &carol, "sales@acme.dezky.eu").await;
    assert_eq!(
        moved["data"]["addAlias"]["mailboxAddress"], "carol@acme.dezky.eu",
        "{moved}"
    );
    // A removed member's aliases go with them.
    let removed = api
        .post_as(
            &admin,
            "mutation($t: ID!, $m: ID!) { removeMember(tenantId: $t, memberId: $m) { aliases { alias memberId } } }",
            json!({"t": t, "m": bob}),
        )
        .await;
    assert_eq!(
        removed["data"]["removeMember"]["aliases"],
        json!([
            {"alias": "one-more@acme.eu", "memberId": carol},
            {"alias": "sales@acme.dezky.eu", "memberId": carol},
        ]),
        "{removed}"
    );
}

#[tokio::test]
async fn aliases_are_added_on_the_workspaces_domains_and_removed_by_admins_on_sqlite() {
    aliases_are_added_on_the_workspaces_domains_and_removed_by_admins(Backend::Sqlite).await;
}

#[tokio::test]
async fn aliases_are_added_on_the_workspaces_domains_and_removed_by_admins_on_postgres() {
    aliases_are_added_on_the_workspaces_domains_and_removed_by_admins(Backend::Postgres).await;
}

async fn distribution_lists_are_created_readdressed_and_deleted_by_admins(backend: Backend) {
    let api = start(backend).await;
    let (t, _) = api.create("acme", "ada@outside.eu", None).await;
    let admin = api.user("ada@outside.eu");
    let bob = api.add_member(&admin, &t, "bob@acme.dezky.eu").await;

    let created = create_list(
        &api,
        &admin,
        &t,
        "Team@ACME.dezky.eu",
        json!([
            "bob@acme.dezky.eu",
            "Friend@Elsewhere.eu",
            "BOB@acme.dezky.eu"
        ]),
    )
    .await;
    let list = &created["data"]["createMailingList"];
    let list_id = list["id"].as_str().unwrap_or_else(|| panic!("{created}"));
    assert_eq!(
        list,
        &json!({"id": list_id, "address": "team@acme.dezky.eu", "displayName": "The Team",
                "recipients": ["bob@acme.dezky.eu", "friend@elsewhere.eu"]}),
        "{created}"
    );

    let too_many: Vec<String> = (0..501).map(|n| format!("r{n}@elsewhere.eu")).collect();
    for (what, address, recipients, expected) in [
        (
            "outside domain",
            "team@outside.eu",
            json!(["bob@acme.dezky.eu"]),
            "DOMAIN_NOT_IN_WORKSPACE",
        ),
        (
            "not an address",
            "team",
            json!(["bob@acme.dezky.eu"]),
            "INVALID_ADDRESS",
        ),
        (
            "bad recipient",
            "all@acme.dezky.eu",
            json!(["bob@acme.dezky.eu", "bob"]),
            "INVALID_ADDRESS",
        ),
        (
            "no recipients",
            "all@acme.dezky.eu",
            json!([]),
            "RECIPIENTS_OUT_OF_RANGE",
        ),
        (
            "501 recipients",
            "all@acme.dezky.eu",
            json!(too_many),
            "RECIPIENTS_OUT_OF_RANGE",
        ),
        (
            "a member's address",
            "bob@acme.dezky.eu",
            json!(["x@elsewhere.eu"]),
            "ADDRESS_IN_USE",
        ),
        (
            "a list's address",
            "TEAM@acme.dezky.eu",
            json!(["x@elsewhere.eu"]),
            "ADDRESS_IN_USE",
        ),
        (
            "itself",
            "all@acme.dezky.eu",
            json!(["All@acme.dezky.eu"]),
            "LIST_INCLUDES_ITSELF",
        ),
    ] {
        let refused = create_list(&api, &admin, &t, address, recipients).await;
        assert_eq!(code(&refused), Some(expected), "{what}: {refused}");
    }
    let blank = api
        .post_as(
            &admin,
            CREATE_LIST,
            json!({"t": t, "a": "all@acme.dezky.eu", "n": "  ", "r": ["bob@acme.dezky.eu"]}),
        )
        .await;
    assert_eq!(code(&blank), Some("VALIDATION"), "{blank}");
    // An alias cannot take a list's address either.
    let refused = add_alias(&api, &admin, &t, &bob, "Team@acme.dezky.eu").await;
    assert_eq!(code(&refused), Some("ADDRESS_IN_USE"), "{refused}");

    let set = api
        .post_as(
            &admin,
            SET_RECIPIENTS,
            json!({"t": t, "l": list_id, "r": ["Outside@elsewhere.eu", "bob@acme.dezky.eu"]}),
        )
        .await;
    assert_eq!(
        set["data"]["setMailingListRecipients"]["recipients"],
        json!(["outside@elsewhere.eu", "bob@acme.dezky.eu"]),
        "{set}"
    );
    for (what, list, recipients, expected) in [
        (
            "unknown list",
            "l-nope",
            json!(["bob@acme.dezky.eu"]),
            "NOT_FOUND",
        ),
        (
            "no recipients",
            list_id,
            json!([]),
            "RECIPIENTS_OUT_OF_RANGE",
        ),
        (
            "itself",
            list_id,
            json!(["team@acme.dezky.eu"]),
            "LIST_INCLUDES_ITSELF",
        ),
    ] {
        let refused = api
            .post_as(
                &admin,
                SET_RECIPIENTS,
                json!({"t": t, "l": list, "r": recipients}),
            )
            .await;
        assert_eq!(code(&refused), Some(expected), "{what}: {refused}");
    }

    // Bob reads the lists and changes none.
    let bob_token = api.user("bob@acme.dezky.eu");
    let listed = api.post_as(&bob_token, LIST, json!({"t": t})).await;
    assert_eq!(
        listed["data"]["tenant"]["mailingLists"],
        json!([{"id": list_id, "address": "team@acme.dezky.eu", "displayName": "The Team",
                "recipients": ["outside@elsewhere.eu", "bob@acme.dezky.eu"]}]),
        "{listed}"
    );
    for (what, query, variables) in [
        (
            "createMailingList",
            CREATE_LIST,
            json!({"t": t, "a": "bob-list@acme.dezky.eu", "n": "Bob", "r": ["x@elsewhere.eu"]}),
        ),
        (
            "setMailingListRecipients",
            SET_RECIPIENTS,
            json!({"t": t, "l": list_id, "r": ["x@elsewhere.eu"]}),
        ),
        (
            "deleteMailingList",
            DELETE_LIST,
            json!({"t": t, "l": list_id}),
        ),
    ] {
        let refused = api.post_as(&bob_token, query, variables).await;
        assert_eq!(code(&refused), Some("FORBIDDEN"), "{what}: {refused}");
    }

    let deleted = api
        .post_as(&admin, DELETE_LIST, json!({"t": t, "l": list_id}))
        .await;
    assert_eq!(
        deleted["data"]["deleteMailingList"],
        json!({"id": t, "mailingLists": []}),
        "{deleted}"
    );
    let again = api
        .post_as(&admin, DELETE_LIST, json!({"t": t, "l": list_id}))
        .await;
    assert_eq!(code(&again), Some("NOT_FOUND"), "{again}");
    // Deleted, its address is free again.
    let reused = create_list(
        &api,
        &admin,
        &t,
        "team@acme.dezky.eu",
        json!(["x@elsewhere.eu"]),
    )
    .await;
    assert_eq!(reused["errors"], Value::Null, "{reused}");
    assert_ne!(
        reused["data"]["createMailingList"]["id"], list_id,
        "a new list gets a new id: {reused}"
    );
}

#[tokio::test]
async fn distribution_lists_are_created_readdressed_and_deleted_by_admins_on_sqlite() {
    distribution_lists_are_created_readdressed_and_deleted_by_admins(Backend::Sqlite).await;
}

#[tokio::test]
async fn distribution_lists_are_created_readdressed_and_deleted_by_admins_on_postgres() {
    distribution_lists_are_created_readdressed_and_deleted_by_admins(Backend::Postgres).await;
}

async fn a_domain_is_not_removed_while_an_alias_or_a_list_uses_it(backend: Backend) {
    let api = start(backend).await;
    // Nobody's own address is at acme.eu: the owner's is outside, Bob's on the service domain.
    let (t, _) = api.create("acme", "ada@outside.eu", None).await;
    let admin = api.user("ada@outside.eu");
    let bob = api.add_member(&admin, &t, "bob@acme.dezky.eu").await;
    api.add_domain(&admin, &t, "acme.eu").await;
    let added = add_alias(&api, &admin, &t, &bob, "info@acme.eu").await;
    assert_eq!(added["errors"], Value::Null, "{added}");
    let usage = |refused: &Value| refused["errors"][0]["extensions"]["usage"].clone();

    let refused = api
        .post_as(&admin, REMOVE_DOMAIN, json!({"t": t, "n": "acme.eu"}))
        .await;
    assert_eq!(code(&refused), Some("DOMAIN_IN_USE"), "{refused}");
    assert_eq!(
        usage(&refused),
        json!({"mailboxes": 0, "aliases": 1, "lists": 0}),
        "{refused}"
    );
    let created = create_list(
        &api,
        &admin,
        &t,
        "all@ACME.eu",
        json!(["bob@acme.dezky.eu"]),
    )
    .await;
    let list_id = created["data"]["createMailingList"]["id"].clone();
    let refused = api
        .post_as(&admin, REMOVE_DOMAIN, json!({"t": t, "n": "ACME.eu."}))
        .await;
    assert_eq!(
        usage(&refused),
        json!({"mailboxes": 0, "aliases": 1, "lists": 1}),
        "{refused}"
    );
    let removed = api
        .post_as(
            &admin,
            REMOVE_ALIAS,
            json!({"t": t, "m": bob, "a": "info@acme.eu"}),
        )
        .await;
    assert_eq!(removed["errors"], Value::Null, "{removed}");
    let refused = api
        .post_as(&admin, REMOVE_DOMAIN, json!({"t": t, "n": "acme.eu"}))
        .await;
    assert_eq!(
        usage(&refused),
        json!({"mailboxes": 0, "aliases": 0, "lists": 1}),
        "{refused}"
    );
    let deleted = api
        .post_as(&admin, DELETE_LIST, json!({"t": t, "l": list_id}))
        .await;
    assert_eq!(deleted["errors"], Value::Null, "{deleted}");
    let gone = api
        .post_as(&admin, REMOVE_DOMAIN, json!({"t": t, "n": "acme.eu"}))
        .await;
    assert_eq!(
        gone["data"]["removeDomain"],
        json!({"id": t, "domains": []}),
        "{gone}"
    );
    // Gone from the workspace, the domain takes no new addresses.
    let refused = add_alias(&api, &admin, &t, &bob, "info@acme.eu").await;
    assert_eq!(code(&refused), Some("DOMAIN_NOT_IN_WORKSPACE"), "{refused}");
}

#[tokio::test]
async fn a_domain_is_not_removed_while_an_alias_or_a_list_uses_it_on_sqlite() {
    a_domain_is_not_removed_while_an_alias_or_a_list_uses_it(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_domain_is_not_removed_while_an_alias_or_a_list_uses_it_on_postgres() {
    a_domain_is_not_removed_while_an_alias_or_a_list_uses_it(Backend::Postgres).await;
}

/// Every mail field and mutation aimed at workspace A by someone with no standing there, and
/// B's admin naming A's member or list on B's own behalf.
async fn nobody_outside_a_workspace_reads_or_changes_its_addresses(backend: Backend) {
    let api = start(backend).await;
    let (a, _) = api
        .create("alpha", "admin@outside-a.eu", Some("p-alpha"))
        .await;
    let (b, _) = api
        .create("bravo", "admin@outside-b.eu", Some("p-bravo"))
        .await;
    let a_admin = api.user("admin@outside-a.eu");
    let b_admin = api.user("admin@outside-b.eu");
    let a_bob = api.add_member(&a_admin, &a, "bob@alpha.dezky.eu").await;
    api.add_member(&b_admin, &b, "member@bravo.dezky.eu").await;
    let added = add_alias(&api, &a_admin, &a, &a_bob, "sales@alpha.dezky.eu").await;
    assert_eq!(added["errors"], Value::Null, "{added}");
    let created = create_list(
        &api,
        &a_admin,
        &a,
        "team@alpha.dezky.eu",
        json!(["x@elsewhere.eu"]),
    )
    .await;
    let a_list = created["data"]["createMailingList"]["id"].clone();
    let before = api.post_as(&a_admin, LIST, json!({"t": a})).await;
    assert_eq!(before["errors"], Value::Null, "{before}");

    let outsiders = [
        ("admin of another tenant", b_admin.clone()),
        (
            "member of another tenant",
            api.user("member@bravo.dezky.eu"),
        ),
        ("staff of another partner", api.partner("p-bravo")),
        ("a user of no tenant", api.user("stranger@example.eu")),
    ];
    let attempts = [
        ("aliases", "query($t: ID!) { tenant(id: $t) { aliases { alias } } }"),
        ("mailingLists", "query($t: ID!) { tenant(id: $t) { mailingLists { address } } }"),
        ("addAlias", "mutation($t: ID!, $m: ID!) { addAlias(tenantId: $t, memberId: $m, alias: \"evil@alpha.dezky.eu\") { alias } }"),
        ("removeAlias", "mutation($t: ID!, $m: ID!) { removeAlias(tenantId: $t, memberId: $m, alias: \"sales@alpha.dezky.eu\") { id } }"),
        ("createMailingList", "mutation($t: ID!) { createMailingList(tenantId: $t, address: \"evil@alpha.dezky.eu\", displayName: \"Evil\", recipients: [\"x@evil.eu\"]) { id } }"),
        ("setMailingListRecipients", "mutation($t: ID!, $l: ID!) { setMailingListRecipients(tenantId: $t, listId: $l, recipients: [\"x@evil.eu\"]) { id } }"),
        ("deleteMailingList", "mutation($t: ID!, $l: ID!) { deleteMailingList(tenantId: $t, listId: $l) { id } }"),
    ];
    for (who, token) in &outsiders {
        for (what, query) in attempts {
            let response = api
                .post_as(token, query, json!({"t": a, "m": a_bob, "l": a_list}))
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
    }
    // B's admin, acting in B, cannot reach A's member or list by id, nor use A's domains.
    let foreign_member = add_alias(&api, &b_admin, &b, &a_bob, "bob@bravo.dezky.eu").await;
    assert_eq!(code(&foreign_member), Some("NOT_FOUND"), "{foreign_member}");
    for (what, query, variables) in [
        (
            "setMailingListRecipients",
            SET_RECIPIENTS,
            json!({"t": b, "l": a_list, "r": ["x@evil.eu"]}),
        ),
        (
            "deleteMailingList",
            DELETE_LIST,
            json!({"t": b, "l": a_list}),
        ),
    ] {
        let refused = api.post_as(&b_admin, query, variables).await;
        assert_eq!(code(&refused), Some("NOT_FOUND"), "{what}: {refused}");
    }
    let foreign_domain =
        create_list(&api, &b_admin, &b, "x@alpha.dezky.eu", json!(["x@evil.eu"])).await;
    assert_eq!(
        code(&foreign_domain),
        Some("DOMAIN_NOT_IN_WORKSPACE"),
        "{foreign_domain}"
    );
    // Nothing changed in A.
    let after = api.post_as(&a_admin, LIST, json!({"t": a})).await;
    assert_eq!(after, before);
}

#[tokio::test]
async fn nobody_outside_a_workspace_reads_or_changes_its_addresses_on_sqlite() {
    nobody_outside_a_workspace_reads_or_changes_its_addresses(Backend::Sqlite).await;
}

#[tokio::test]
async fn nobody_outside_a_workspace_reads_or_changes_its_addresses_on_postgres() {
    nobody_outside_a_workspace_reads_or_changes_its_addresses(Backend::Postgres).await;
}
