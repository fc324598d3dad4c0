//! Identity confusion from outside, with real tokens signed by the trusted issuer's key (served
//! as a JWKS): look-alike and padded addresses, a `sub` that is someone's address, unverified
//! addresses, an array `iss`, and an address that moved after linking. None of them gains
//! another member's access, on reads or on writes; each attack sits beside a control that
//! shows the same request succeeding for the real member.

use dezky_tests::graphql_rig::{claims, code, GraphqlApi as Api, ISSUER};
use dezky_tests::Backend;
use serde_json::{json, Map, Value};

/// Kate's address as the operator typed it when creating her workspace.
const KATE: &str = "Kate@beta.example";

const READ: &str = "query($t: ID!) { tenant(id: $t) { billingInfo { company } } }";
const WRITE: &str =
    "mutation($t: ID!) { updateBranding(tenantId: $t, input: {productName: \"pwned\"}) { id } }";

async fn beta(api: &Api) -> String {
    let response = api
        .post_as(
            &api.operator(),
            "mutation($input: CreateTenantInput!) { createTenant(input: $input) { id } }",
            json!({"input": {"organization": "Beta AG", "slug": "beta", "plan": "standard",
                "seats": 5, "firstAdmin": {"email": KATE, "displayName": "Kate"}}}),
        )
        .await;
    assert_eq!(response["errors"], Value::Null, "{response}");
    response["data"]["createTenant"]["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

/// Whether `token` may read Kate's workspace's billing details and change its branding:
/// `(read code, write code)`, `None` meaning allowed.
async fn access(api: &Api, token: &str, tenant: &str) -> (Option<String>, Option<String>) {
    let read = api.post_as(token, READ, json!({"t": tenant})).await;
    let write = api.post_as(token, WRITE, json!({"t": tenant})).await;
    (
        code(&read).map(str::to_owned),
        code(&write).map(str::to_owned),
    )
}

fn forbidden() -> (Option<String>, Option<String>) {
    (Some("FORBIDDEN".into()), Some("FORBIDDEN".into()))
}

fn with(subject: &str, email: Option<&str>, verified: Option<Value>) -> Map<String, Value> {
    let mut c = claims(subject, email.unwrap_or(""));
    match email {
        Some(_) => {}
        None => {
            c.remove("email");
        }
    }
    match verified {
        Some(value) => {
            c.insert("email_verified".into(), value);
        }
        None => {
            c.remove("email_verified");
        }
    }
    c
}

async fn no_look_alike_padded_or_unverified_address_and_no_subject_stands_for_a_member(
    backend: Backend,
) {
    let api = Api::start(backend).await;
    let tenant = beta(&api).await;

    // Control: Kate herself, with the verified address she was created with.
    let kate = api.token(&with("kate-sub", Some(KATE), Some(json!(true))));
    assert_eq!(access(&api, &kate, &tenant).await, (None, None));

    let attacks: Vec<(&str, Map<String, Value>)> = vec![
        (
            "Kelvin sign for K",
            with("eve-1", Some("\u{212A}ate@beta.example"), Some(json!(true))),
        ),
        (
            "Kelvin sign in the domain",
            with("eve-2", Some("Kate@beta.e\u{212A}ample"), Some(json!(true))),
        ),
        (
            "fullwidth letter",
            with("eve-3", Some("Ｋate@beta.example"), Some(json!(true))),
        ),
        (
            "upper-cased local part",
            with("eve-4", Some("KATE@beta.example"), Some(json!(true))),
        ),
        (
            "padded with spaces",
            with("eve-5", Some(" Kate@beta.example "), Some(json!(true))),
        ),
        (
            "trailing newline",
            with("eve-6", Some("Kate@beta.example\n"), Some(json!(true))),
        ),
        ("sub is her address, no email", with(KATE, None, None)),
        (
            "sub is her address, another verified email",
            with(KATE, Some("eve@evil.example"), Some(json!(true))),
        ),
        (
            "email_verified false",
            with("eve-7", Some(KATE), Some(json!(false))),
        ),
        (
            "email_verified as the string \"true\"",
            with("eve-8", Some(KATE), Some(json!("true"))),
        ),
        ("email_verified missing", with("eve-9", Some(KATE), None)),
    ];
    for (name, claims) in attacks {
        let token = api.token(&claims);
        assert_eq!(access(&api, &token, &tenant).await, forbidden(), "{name}");
    }

    // An iss given as an array holding the trusted issuer is not that issuer.
    let mut array_iss = with("kate-sub", Some(KATE), Some(json!(true)));
    array_iss.insert("iss".into(), json!([ISSUER]));
    let token = api.token(&array_iss);
    assert_eq!(
        access(&api, &token, &tenant).await,
        (
            Some("UNAUTHENTICATED".into()),
            Some("UNAUTHENTICATED".into())
        )
    );
}

async fn once_linked_a_member_is_their_subject_and_their_address_no_longer_counts(
    backend: Backend,
) {
    let api = Api::start(backend).await;
    let tenant = beta(&api).await;
    let kate = api.token(&with("kate-sub", Some(KATE), Some(json!(true))));
    let detail = api
        .post_as(
            &kate,
            "query($t: ID!) { tenant(id: $t) { members { id email } } }",
            json!({"t": tenant}),
        )
        .await;
    let member = detail["data"]["tenant"]["members"][0]["id"]
        .as_str()
        .expect("Kate's member id")
        .to_owned();

    // Kate links her own account (the explicit step), with the subject of her own token.
    let linked = api
        .post_as(
            &kate,
            "mutation($t: ID!, $m: ID!) { linkMemberSubject(tenantId: $t, memberId: $m, subject: \"kate-sub\") { id } }",
            json!({"t": tenant, "m": member}),
        )
        .await;
    assert_eq!(linked["errors"], Value::Null, "{linked}");

    // Another account that now carries her exact, verified address: nothing.
    let other = api.token(&with("someone-else", Some(KATE), Some(json!(true))));
    assert_eq!(access(&api, &other, &tenant).await, forbidden());

    // Kate, whose address changed at the identity provider: still Kate.
    let moved = api.token(&with(
        "kate-sub",
        Some("kate.new@elsewhere.example"),
        Some(json!(true)),
    ));
    assert_eq!(access(&api, &moved, &tenant).await, (None, None));

    // And without any e-mail claim at all.
    let bare = api.token(&with("kate-sub", None, None));
    assert_eq!(access(&api, &bare, &tenant).await, (None, None));
}

mod on_sqlite {
    use super::*;

    #[tokio::test]
    async fn no_look_alike_padded_or_unverified_address_and_no_subject_stands_for_a_member() {
        super::no_look_alike_padded_or_unverified_address_and_no_subject_stands_for_a_member(
            Backend::Sqlite,
        )
        .await;
    }

    #[tokio::test]
    async fn once_linked_a_member_is_their_subject_and_their_address_no_longer_counts() {
        super::once_linked_a_member_is_their_subject_and_their_address_no_longer_counts(
            Backend::Sqlite,
        )
        .await;
    }
}

mod on_postgres {
    use super::*;

    #[tokio::test]
    async fn no_look_alike_padded_or_unverified_address_and_no_subject_stands_for_a_member() {
        super::no_look_alike_padded_or_unverified_address_and_no_subject_stands_for_a_member(
            Backend::Postgres,
        )
        .await;
    }

    #[tokio::test]
    async fn once_linked_a_member_is_their_subject_and_their_address_no_longer_counts() {
        super::once_linked_a_member_is_their_subject_and_their_address_no_longer_counts(
            Backend::Postgres,
        )
        .await;
    }
}

async fn a_person_lists_their_own_workspaces_with_their_role_in_each(backend: Backend) {
    let api = Api::start(backend).await;
    let beta = beta(&api).await;
    let create = |slug: &'static str, admin: &'static str| {
        let api = &api;
        async move {
            let response = api
                .post_as(
                    &api.operator(),
                    "mutation($input: CreateTenantInput!) { createTenant(input: $input) { id } }",
                    json!({"input": {"organization": format!("{slug} AG"), "slug": slug,
                        "plan": "standard", "seats": 5,
                        "firstAdmin": {"email": admin, "displayName": "Admin"}}}),
                )
                .await;
            response["data"]["createTenant"]["id"]
                .as_str()
                .expect("id")
                .to_owned()
        }
    };
    let alpha = create("alpha", "ada@alpha.example").await;
    let _gamma = create("gamma", "gil@gamma.example").await;
    // Kate, beta's owner, is also a plain member of alpha (an outside address there).
    let added = api
        .post_as(
            &api.user("ada@alpha.example"),
            "mutation($t: ID!) { addMember(input: {tenantId: $t, email: \"Kate@beta.example\", displayName: \"Kate\", role: MEMBER}) { id } }",
            json!({"t": alpha}),
        )
        .await;
    assert_eq!(added["errors"], Value::Null, "{added}");

    let query = "{ me { workspaces { tenant { id slug } role isOwner } } }";
    let kate = api.token(&with("kate-sub", Some(KATE), Some(json!(true))));
    let mine = api.post_as(&kate, query, json!({})).await;
    assert_eq!(
        mine["data"]["me"]["workspaces"],
        {
            let mut expected = vec![
                json!({"tenant": {"id": alpha, "slug": "alpha"}, "role": "MEMBER", "isOwner": false}),
                json!({"tenant": {"id": beta, "slug": "beta"}, "role": "ADMIN", "isOwner": true}),
            ];
            expected.sort_by_key(|w| w["tenant"]["id"].as_str().unwrap_or_default().to_owned());
            Value::Array(expected)
        },
        "{mine}"
    );
    // A look-alike of her address lists nothing.
    let eve = api.token(&with("eve", Some("KATE@beta.example"), Some(json!(true))));
    let none = api.post_as(&eve, query, json!({})).await;
    assert_eq!(none["data"]["me"]["workspaces"], json!([]), "{none}");
}

#[tokio::test]
async fn a_person_lists_their_own_workspaces_with_their_role_in_each_on_sqlite() {
    a_person_lists_their_own_workspaces_with_their_role_in_each(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_person_lists_their_own_workspaces_with_their_role_in_each_on_postgres() {
    a_person_lists_their_own_workspaces_with_their_role_in_each(Backend::Postgres).await;
}
