//! Client set-up over HTTP with real signed JWTs: the Apple profile read back with a real
//! plist parser (Python's `plistlib`), autoconfig and autodiscover answers parsed and checked
//! against Thunderbird's `clientConfig` 1.1 and Outlook's POX response, the domains they answer
//! for (a workspace's service domain and its verified domains, nothing else), hostile bodies,
//! the "not configured" answers, and `me.clientSetup`.

use std::collections::BTreeMap;

use cqrs_es::persist::PersistedEventStore;
use cqrs_es::CqrsFramework;
use dezky_api::client_setup::ClientSetupSettings;
use dezky_commands::LedgerRepository;
use dezky_domain::domains::{
    domain_upcasters, CheckOutcome, Domain, DomainCommand, DomainContext, ExpectedRecord,
    RecordCheck, RecordPurpose, RecordType,
};
use dezky_domain::tenant::Principal;
use dezky_tests::graphql_rig::{code, GraphqlApi};
use dezky_tests::{metadata_for, Backend};
use quick_xml::events::Event;
use serde_json::{json, Value};

const MAIL_HOST: &str = "mail.dezky.eu";
const DAV_URL: &str = "https://mail.dezky.eu/dav";
const REQUEST_SCHEMA: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006";
const RESPONSE_SCHEMA: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a";

fn configured() -> ClientSetupSettings {
    ClientSetupSettings::new(Some(MAIL_HOST), Some(DAV_URL)).expect("settings")
}

struct Api(GraphqlApi);

impl std::ops::Deref for Api {
    type Target = GraphqlApi;
    fn deref(&self) -> &GraphqlApi {
        &self.0
    }
}

impl Api {
    async fn start(backend: Backend, settings: ClientSetupSettings) -> Self {
        Self(GraphqlApi::start_with_client_setup(backend, settings).await)
    }

    /// Creates a workspace whose admin is `admin`, and adds `members` (addresses); returns its id.
    async fn workspace(&self, slug: &str, admin: &str, members: &[&str]) -> String {
        let created = self
            .post_as(
                &self.operator(),
                "mutation($input: CreateTenantInput!) { createTenant(input: $input) { id } }",
                json!({"input": {"organization": format!("{slug} GmbH"), "slug": slug,
                    "plan": "standard", "seats": 10,
                    "firstAdmin": {"email": admin, "displayName": "Admin"}}}),
            )
            .await;
        assert_eq!(created["errors"], Value::Null, "{created}");
        let tenant = created["data"]["createTenant"]["id"]
            .as_str()
            .expect("id")
            .to_owned();
        for member in members {
            let added = self
                .post_as(
                    &self.operator(),
                    "mutation($input: AddMemberInput!) { addMember(input: $input) { id } }",
                    json!({"input": {"tenantId": tenant, "email": member,
                        "displayName": "Ann <Tester> & Co", "role": "MEMBER"}}),
                )
                .await;
            assert_eq!(added["errors"], Value::Null, "{added}");
        }
        tenant
    }

    fn domains(&self) -> CqrsFramework<Domain, PersistedEventStore<LedgerRepository, Domain>> {
        let store =
            PersistedEventStore::new_event_store(LedgerRepository::new(self.ledger.clone()))
                .with_upcasters(domain_upcasters());
        CqrsFramework::new(store, vec![], ())
    }

    /// Adds `name` to the workspace as its admin; with `verify`, records provisioning and a
    /// DNS check where every record is in place (the sagas' part).
    async fn domain(&self, tenant: &str, admin: &str, name: &str, verify: bool) {
        let added = self
            .post_as(
                &self.user(admin),
                "mutation($t: ID!, $n: String!) { addDomain(tenantId: $t, name: $n) { name } }",
                json!({"t": tenant, "n": name}),
            )
            .await;
        assert_eq!(added["errors"], Value::Null, "{added}");
        if !verify {
            return;
        }
        let ctx = DomainContext {
            principal: Principal::system("domain-provisioning"),
            tenant_id: tenant.into(),
            now: "2026-12-01T10:00:00Z".into(),
        };
        let expected = vec![ExpectedRecord {
            purpose: RecordPurpose::Mx,
            name: name.into(),
            record_type: RecordType::Mx,
            value: format!("10 {MAIL_HOST}"),
        }];
        let checks = expected
            .iter()
            .map(|e| RecordCheck {
                expected: e.clone(),
                outcome: CheckOutcome::Ok,
                found: vec![e.value.clone()],
            })
            .collect();
        for command in [
            DomainCommand::RecordProvisioned {
                ctx: ctx.clone(),
                expected,
            },
            DomainCommand::RecordDnsCheck { ctx, checks },
        ] {
            self.domains()
                .execute_with_metadata(name, command, metadata_for(tenant).to_map())
                .await
                .expect("platform command");
        }
        // Discovery reads the domain read model: wait (bounded) until it has folded the check.
        let mut listed = Value::Null;
        for _ in 0..100 {
            listed = self
                .post_as(
                    &self.user(admin),
                    "query($t: ID!) { tenant(id: $t) { domains { name status } } }",
                    json!({"t": tenant}),
                )
                .await;
            if listed.to_string().contains("\"VERIFIED\"") {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the domain never showed as verified: {listed}");
    }

    async fn profile(&self, token: Option<&str>, address: Option<&str>) -> reqwest::Response {
        let mut url = self.http("/client-setup/apple.mobileconfig");
        if let Some(address) = address {
            url = format!("{url}?address={}", address.replace('@', "%40"));
        }
        let mut request = reqwest::Client::new().get(url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("http")
    }

    async fn autoconfig(&self, path: &str, address: &str) -> reqwest::Response {
        reqwest::Client::new()
            .get(self.http(path))
            .query(&[("emailaddress", address)])
            .send()
            .await
            .expect("http")
    }

    async fn autodiscover(&self, content_type: &str, body: Vec<u8>) -> reqwest::Response {
        reqwest::Client::new()
            .post(self.http("/autodiscover/autodiscover.xml"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("http")
    }
}

async fn error_code(response: reqwest::Response) -> (u16, Option<String>) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("a JSON error body");
    (status, code(&body).map(str::to_owned))
}

/// The profile through Python's `plistlib`, as JSON.
fn plist(document: &str) -> Value {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("profile.mobileconfig");
    std::fs::write(&path, document).expect("write");
    let script = "import json, plistlib, sys\n\
                  with open(sys.argv[1], 'rb') as f:\n    print(json.dumps(plistlib.load(f)))";
    let output = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&path)
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "plistlib refused the profile: {}\n{document}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("json")
}

/// Every element of an XML document by its path of local names (`a/b/c`), with its text and
/// attributes, in document order; panics on anything not well-formed.
fn elements(document: &str) -> Vec<(String, String, BTreeMap<String, String>)> {
    let mut reader = quick_xml::Reader::from_str(document);
    reader.config_mut().trim_text(true);
    let mut path: Vec<String> = Vec::new();
    let mut out: Vec<(String, String, BTreeMap<String, String>)> = Vec::new();
    let mut open: Vec<usize> = Vec::new();
    loop {
        match reader.read_event().expect("well-formed XML") {
            Event::Start(e) => {
                path.push(e.local_name().as_ref().to_owned());
                let attributes = e
                    .attributes()
                    .map(|a| {
                        let a = a.expect("attribute");
                        (a.key.as_ref().to_owned(), a.value.to_string())
                    })
                    .collect();
                out.push((path.join("/"), String::new(), attributes));
                open.push(out.len() - 1);
            }
            Event::Text(t) => {
                if let Some(&i) = open.last() {
                    out[i].1.push_str(&t.xml10_content());
                }
            }
            Event::End(_) => {
                path.pop();
                open.pop();
            }
            Event::Eof => break,
            Event::DocType(_) => panic!("an answer with a DOCTYPE"),
            _ => {}
        }
    }
    assert!(path.is_empty(), "unclosed elements");
    out
}

fn texts(elements: &[(String, String, BTreeMap<String, String>)], path: &str) -> Vec<String> {
    elements
        .iter()
        .filter(|(p, _, _)| p == path)
        .map(|(_, t, _)| t.clone())
        .collect()
}

fn autodiscover_request(address: &str) -> Vec<u8> {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="{REQUEST_SCHEMA}">
  <Request>
    <EMailAddress>{address}</EMailAddress>
    <AcceptableResponseSchema>{RESPONSE_SCHEMA}</AcceptableResponseSchema>
  </Request>
</Autodiscover>"#
    )
    .into_bytes()
}

async fn a_member_downloads_one_profile_for_mail_calendar_and_contacts(backend: Backend) {
    let api = Api::start(backend, configured()).await;
    api.workspace(
        "acme",
        "ada@acme.dezky.eu",
        &["ann@acme.dezky.eu", "bob@acme.dezky.eu"],
    )
    .await;
    let ann = api.user("ann@acme.dezky.eu");

    let first = api.profile(Some(&ann), None).await;
    assert_eq!(first.status().as_u16(), 200);
    assert_eq!(
        first.headers()["content-type"],
        "application/x-apple-aspen-config"
    );
    let document = first.text().await.expect("body");
    let profile = plist(&document);
    assert_eq!(profile["PayloadType"], "Configuration");
    let payloads = profile["PayloadContent"].as_array().expect("payloads");
    let types: Vec<&str> = payloads
        .iter()
        .map(|p| p["PayloadType"].as_str().expect("type"))
        .collect();
    assert_eq!(
        types,
        [
            "com.apple.mail.managed",
            "com.apple.caldav.account",
            "com.apple.carddav.account"
        ]
    );
    let mail = &payloads[0];
    assert_eq!(mail["EmailAddress"], "ann@acme.dezky.eu");
    assert_eq!(mail["EmailAccountName"], "Ann <Tester> & Co");
    assert_eq!(mail["IncomingMailServerHostName"], MAIL_HOST);
    assert_eq!(mail["IncomingMailServerPortNumber"], 993);
    assert_eq!(mail["OutgoingMailServerPortNumber"], 465);
    assert_eq!(mail["IncomingMailServerUseSSL"], true);
    assert_eq!(mail["IncomingMailServerUsername"], "ann@acme.dezky.eu");
    assert_eq!(payloads[1]["CalDAVHostName"], "mail.dezky.eu");
    assert_eq!(payloads[1]["CalDAVPort"], 443);
    assert_eq!(
        payloads[1]["CalDAVPrincipalURL"],
        "/dav/cal/ann@acme.dezky.eu/"
    );
    assert_eq!(
        payloads[2]["CardDAVPrincipalURL"],
        "/dav/card/ann@acme.dezky.eu/"
    );
    // No password anywhere: not as a key, not as a value.
    fn keys(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    out.push(k.clone());
                    keys(v, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|v| keys(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    keys(&profile, &mut all);
    let password_keys: Vec<&String> = all
        .iter()
        .filter(|k| k.contains("Password") && *k != "OutgoingPasswordSameAsIncomingPassword")
        .collect();
    assert!(password_keys.is_empty(), "{password_keys:?}");

    // A second download names the same identifiers: reinstalling replaces.
    let again = plist(
        &api.profile(Some(&ann), Some("Ann@ACME.dezky.eu"))
            .await
            .text()
            .await
            .expect("body"),
    );
    let ids = |p: &Value| -> Vec<Value> {
        let mut ids = vec![p["PayloadIdentifier"].clone(), p["PayloadUUID"].clone()];
        for payload in p["PayloadContent"].as_array().expect("payloads") {
            ids.push(payload["PayloadIdentifier"].clone());
            ids.push(payload["PayloadUUID"].clone());
        }
        ids
    };
    assert_eq!(ids(&profile), ids(&again));
    let mut distinct = ids(&profile);
    distinct.sort_by_key(|v| v.to_string());
    distinct.dedup();
    assert_eq!(distinct.len(), 8, "every payload has its own identifiers");
    // Another member's profile has other identifiers.
    let bob = plist(
        &api.profile(Some(&api.user("bob@acme.dezky.eu")), None)
            .await
            .text()
            .await
            .expect("body"),
    );
    assert_ne!(bob["PayloadUUID"], profile["PayloadUUID"]);
    assert_ne!(bob["PayloadIdentifier"], profile["PayloadIdentifier"]);
    // The workspace's first admin signs in with an address the workspace created no mailbox
    // for: there is nothing to set up, and the answer says so.
    let (status, code_) = error_code(
        api.profile(Some(&api.user("ada@acme.dezky.eu")), None)
            .await,
    )
    .await;
    assert_eq!((status, code_.as_deref()), (404, Some("NOT_FOUND")));
}

#[tokio::test]
async fn a_member_downloads_one_profile_for_mail_calendar_and_contacts_on_sqlite() {
    a_member_downloads_one_profile_for_mail_calendar_and_contacts(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_member_downloads_one_profile_for_mail_calendar_and_contacts_on_postgres() {
    a_member_downloads_one_profile_for_mail_calendar_and_contacts(Backend::Postgres).await;
}

#[tokio::test]
async fn nobody_gets_a_profile_for_an_address_that_is_not_theirs() {
    let api = Api::start(Backend::Sqlite, configured()).await;
    api.workspace("acme", "ada@acme.dezky.eu", &["ann@acme.dezky.eu"])
        .await;
    api.workspace("globex", "gus@globex.dezky.eu", &["bob@globex.dezky.eu"])
        .await;
    let ann = api.user("ann@acme.dezky.eu");

    // Another workspace's address, a colleague's, one nobody has: the same refusal.
    for address in [
        "bob@globex.dezky.eu",
        "ada@acme.dezky.eu",
        "nobody@acme.dezky.eu",
        "x@unknown.example",
    ] {
        let (status, code_) = error_code(api.profile(Some(&ann), Some(address)).await).await;
        assert_eq!(
            (status, code_.as_deref()),
            (403, Some("FORBIDDEN")),
            "{address}"
        );
    }
    // An operator's standing is not someone else's mailbox.
    let (status, code_) = error_code(
        api.profile(Some(&api.operator()), Some("ann@acme.dezky.eu"))
            .await,
    )
    .await;
    assert_eq!((status, code_.as_deref()), (403, Some("FORBIDDEN")));
    // No token, or a forged one.
    let (status, code_) = error_code(api.profile(None, Some("ann@acme.dezky.eu")).await).await;
    assert_eq!((status, code_.as_deref()), (401, Some("UNAUTHENTICATED")));
    let (status, code_) = error_code(
        api.profile(Some("not-a-jwt"), Some("ann@acme.dezky.eu"))
            .await,
    )
    .await;
    assert_eq!((status, code_.as_deref()), (401, Some("UNAUTHENTICATED")));
    // Not an address at all.
    let (status, refused) = error_code(api.profile(Some(&ann), Some("<script>")).await).await;
    assert_eq!((status, refused.as_deref()), (400, Some("VALIDATION")));

    // The same rule in GraphQL.
    let other = api
        .post_as(
            &ann,
            "{ me { clientSetup(address: \"bob@globex.dezky.eu\") { address } } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&other), Some("FORBIDDEN"), "{other}");
}

#[tokio::test]
async fn me_client_setup_names_the_servers_and_the_profile() {
    let api = Api::start(Backend::Sqlite, configured()).await;
    api.workspace("acme", "ada@acme.dezky.eu", &["ann@acme.dezky.eu"])
        .await;
    let response = api
        .post_as(
            &api.user("ann@acme.dezky.eu"),
            "{ me { clientSetup { address mobileconfigUrl imap { host port } smtp { host port } caldavUrl carddavUrl } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        response["data"]["me"]["clientSetup"],
        json!({
            "address": "ann@acme.dezky.eu",
            "mobileconfigUrl": "/client-setup/apple.mobileconfig?address=ann%40acme.dezky.eu",
            "imap": {"host": MAIL_HOST, "port": 993},
            "smtp": {"host": MAIL_HOST, "port": 465},
            "caldavUrl": "https://mail.dezky.eu/dav/cal/ann@acme.dezky.eu/",
            "carddavUrl": "https://mail.dezky.eu/dav/card/ann@acme.dezky.eu/",
        }),
        "{response}"
    );
}

#[tokio::test]
async fn without_a_mail_host_everything_says_not_configured() {
    let api = Api::start(Backend::Sqlite, ClientSetupSettings::default()).await;
    api.workspace("acme", "ada@acme.dezky.eu", &["ann@acme.dezky.eu"])
        .await;
    let ann = api.user("ann@acme.dezky.eu");
    let (status, code_) = error_code(api.profile(Some(&ann), None).await).await;
    assert_eq!((status, code_.as_deref()), (503, Some("NOT_CONFIGURED")));
    let (status, code_) = error_code(
        api.autoconfig("/mail/config-v1.1.xml", "ann@acme.dezky.eu")
            .await,
    )
    .await;
    assert_eq!((status, code_.as_deref()), (503, Some("NOT_CONFIGURED")));
    let (status, code_) = error_code(
        api.autodiscover("text/xml", autodiscover_request("ann@acme.dezky.eu"))
            .await,
    )
    .await;
    assert_eq!((status, code_.as_deref()), (503, Some("NOT_CONFIGURED")));
    let response = api
        .post_as(
            &ann,
            "{ me { clientSetup { address mobileconfigUrl imap { host } smtp { host } caldavUrl carddavUrl } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        response["data"]["me"]["clientSetup"],
        json!({"address": "ann@acme.dezky.eu", "mobileconfigUrl": null, "imap": null,
               "smtp": null, "caldavUrl": null, "carddavUrl": null}),
        "{response}"
    );
}

#[tokio::test]
async fn settings_that_name_no_host_are_refused() {
    assert!(ClientSetupSettings::new(Some("not a host!"), None).is_err());
    assert!(ClientSetupSettings::new(None, Some("ftp://mail.example.eu/dav")).is_err());
    assert!(ClientSetupSettings::new(None, Some("/dav")).is_err());
    assert_eq!(
        ClientSetupSettings::new(Some(" "), Some("")).expect("blank is unset"),
        ClientSetupSettings::default()
    );
}

fn check_client_config(document: &str, domain: &str) {
    let found = elements(document);
    assert_eq!(found[0].0, "clientConfig");
    assert_eq!(found[0].2.get("version").map(String::as_str), Some("1.1"));
    assert_eq!(
        found
            .iter()
            .find(|(p, _, _)| p == "clientConfig/emailProvider")
            .and_then(|(_, _, a)| a.get("id"))
            .map(String::as_str),
        Some(domain)
    );
    assert_eq!(texts(&found, "clientConfig/emailProvider/domain"), [domain]);
    let incoming = "clientConfig/emailProvider/incomingServer";
    let outgoing = "clientConfig/emailProvider/outgoingServer";
    let kind = |path: &str| {
        found
            .iter()
            .find(|(p, _, _)| p == path)
            .and_then(|(_, _, a)| a.get("type").cloned())
    };
    assert_eq!(kind(incoming).as_deref(), Some("imap"));
    assert_eq!(kind(outgoing).as_deref(), Some("smtp"));
    for (server, port) in [(incoming, "993"), (outgoing, "465")] {
        assert_eq!(texts(&found, &format!("{server}/hostname")), [MAIL_HOST]);
        assert_eq!(texts(&found, &format!("{server}/port")), [port]);
        assert_eq!(texts(&found, &format!("{server}/socketType")), ["SSL"]);
        assert_eq!(
            texts(&found, &format!("{server}/username")),
            ["%EMAILADDRESS%"]
        );
        assert_eq!(
            texts(&found, &format!("{server}/authentication")),
            ["password-cleartext"]
        );
    }
}

#[tokio::test]
async fn autoconfig_answers_for_the_service_domain_and_verified_domains_only() {
    let api = Api::start(Backend::Sqlite, configured()).await;
    let acme = api.workspace("acme", "ada@acme.dezky.eu", &[]).await;
    api.domain(&acme, "ada@acme.dezky.eu", "acme.example", true)
        .await;
    api.domain(&acme, "ada@acme.dezky.eu", "pending.example", false)
        .await;
    for path in [
        "/mail/config-v1.1.xml",
        "/.well-known/autoconfig/mail/config-v1.1.xml",
    ] {
        for (address, domain) in [
            ("ann@acme.dezky.eu", "acme.dezky.eu"),
            ("Ann@ACME.example", "acme.example"),
        ] {
            let response = api.autoconfig(path, address).await;
            assert_eq!(response.status().as_u16(), 200, "{path} {address}");
            check_client_config(&response.text().await.expect("body"), domain);
        }
        // Unverified, unknown, a workspace that does not exist, the platform apex: the same
        // bare 404.
        let mut bodies = Vec::new();
        for address in [
            "ann@pending.example",
            "ann@unknown.example",
            "ann@nosuch.dezky.eu",
            "ann@dezky.eu",
            "ann@deeper.acme.dezky.eu",
        ] {
            let response = api.autoconfig(path, address).await;
            assert_eq!(response.status().as_u16(), 404, "{path} {address}");
            bodies.push(response.text().await.expect("body"));
        }
        bodies.dedup();
        assert_eq!(bodies.len(), 1, "the 404s differ: {bodies:?}");
        let (status, code_) = error_code(api.autoconfig(path, "no-at-sign").await).await;
        assert_eq!((status, code_.as_deref()), (400, Some("BAD_REQUEST")));
    }
}

#[tokio::test]
async fn autodiscover_answers_outlook_and_refuses_hostile_bodies() {
    let api = Api::start(Backend::Sqlite, configured()).await;
    let acme = api.workspace("acme", "ada@acme.dezky.eu", &[]).await;
    api.domain(&acme, "ada@acme.dezky.eu", "acme.example", true)
        .await;

    for address in ["ann@acme.example", "ann@acme.dezky.eu"] {
        let response = api
            .autodiscover("text/xml; charset=utf-8", autodiscover_request(address))
            .await;
        assert_eq!(response.status().as_u16(), 200, "{address}");
        let found = elements(&response.text().await.expect("body"));
        assert_eq!(found[0].0, "Autodiscover");
        assert_eq!(
            found[0].2.get("xmlns").map(String::as_str),
            Some("http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006")
        );
        assert_eq!(
            found[1].2.get("xmlns").map(String::as_str),
            Some(RESPONSE_SCHEMA)
        );
        let account = "Autodiscover/Response/Account";
        assert_eq!(texts(&found, &format!("{account}/AccountType")), ["email"]);
        assert_eq!(texts(&found, &format!("{account}/Action")), ["settings"]);
        let protocol = format!("{account}/Protocol");
        assert_eq!(texts(&found, &format!("{protocol}/Type")), ["IMAP", "SMTP"]);
        assert_eq!(
            texts(&found, &format!("{protocol}/Server")),
            [MAIL_HOST, MAIL_HOST]
        );
        assert_eq!(texts(&found, &format!("{protocol}/Port")), ["993", "465"]);
        assert_eq!(
            texts(&found, &format!("{protocol}/LoginName")),
            [address, address]
        );
        assert_eq!(texts(&found, &format!("{protocol}/SSL")), ["on", "on"]);
    }
    let (status, code_) = error_code(
        api.autodiscover("text/xml", autodiscover_request("ann@unknown.example"))
            .await,
    )
    .await;
    assert_eq!((status, code_.as_deref()), (404, Some("NOT_FOUND")));

    let bomb = format!(
        r#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<Autodiscover xmlns="{REQUEST_SCHEMA}"><Request><EMailAddress>&lol3;@acme.example</EMailAddress></Request></Autodiscover>"#
    );
    let external = format!(
        r#"<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><Autodiscover xmlns="{REQUEST_SCHEMA}"><Request><EMailAddress>&x;</EMailAddress></Request></Autodiscover>"#
    );
    let hostile: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("text/xml", bomb.into_bytes(), 400, "BAD_REQUEST"),
        ("text/xml", external.into_bytes(), 400, "BAD_REQUEST"),
        ("text/xml", b"<Autodiscover".to_vec(), 400, "BAD_REQUEST"),
        ("text/xml", b"not xml at all".to_vec(), 400, "BAD_REQUEST"),
        (
            "text/xml",
            vec![b'a'; 10 * 1024 * 1024],
            413,
            "PAYLOAD_TOO_LARGE",
        ),
        (
            "application/json",
            autodiscover_request("ann@acme.example"),
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
    ];
    for (content_type, body, status, expected) in hostile {
        let (got, code_) = error_code(api.autodiscover(content_type, body).await).await;
        assert_eq!((got, code_.as_deref()), (status, Some(expected)));
    }
    // Still serving.
    let response = api
        .autodiscover("text/xml", autodiscover_request("ann@acme.example"))
        .await;
    assert_eq!(response.status().as_u16(), 200);
}
