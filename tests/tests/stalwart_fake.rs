//! The Stalwart fake held to upstream's schema and behaviour: every object, property, type,
//! variant, enum value and default the fake accepts exists in `peers/stalwart-v0.16-schema.json`
//! the same way, and the fake refuses, answers and delays what the real server does.

use dezky_tests::stalwart::schema::{self, Ty, OBJECTS, SCHEMAS, VARIANTS};
use dezky_tests::stalwart::{StalwartFake, ACCOUNT_ID, STALWART_CAPABILITY};
use serde_json::{json, Value};

fn upstream() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/peers/stalwart-v0.16-schema.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("schema copy in tests/peers"))
        .expect("schema is JSON")
}

/// Compares one of the fake's types with upstream's type object; returns what differs.
fn type_mismatch(ty: &Ty, up: &Value, enums: &Value) -> Option<String> {
    let kind = up["type"].as_str().unwrap_or_default();
    let same = match ty {
        Ty::Str(format) => kind == "string" && up["format"] == *format,
        Ty::Bool => kind == "boolean",
        Ty::Num(format) => kind == "number" && up["format"] == *format,
        Ty::DateTime => kind == "utcDateTime",
        Ty::Enum(name, values) => {
            if kind != "enum" || up["enumName"] != *name {
                false
            } else {
                let known: Vec<&str> = enums[*name]
                    .as_array()
                    .map(|list| list.iter().filter_map(|e| e["name"].as_str()).collect())
                    .unwrap_or_default();
                if let Some(missing) = values.iter().find(|v| !known.contains(v)) {
                    return Some(format!("enum {name} has no value {missing}"));
                }
                true
            }
        }
        Ty::Id(object) => kind == "objectId" && up["objectName"] == *object,
        Ty::Set(class) => {
            if kind != "set" {
                false
            } else {
                return type_mismatch(class, &up["class"], enums);
            }
        }
        Ty::List(object) => kind == "objectList" && up["objectName"] == *object,
        Ty::Object(object) => kind == "object" && up["objectName"] == *object,
        Ty::Map(key, value) => {
            if kind != "map" {
                false
            } else {
                return type_mismatch(key, &up["keyClass"], enums)
                    .or_else(|| type_mismatch(value, &up["valueClass"], enums));
            }
        }
    };
    (!same).then(|| format!("fake {ty:?} vs upstream {up}"))
}

#[test]
fn every_object_field_type_and_default_the_fake_accepts_is_upstreams() {
    let up = upstream();
    let mut problems = Vec::new();

    for (object, kind, schema_name) in OBJECTS {
        if up["objects"][object]["type"] != *kind {
            problems.push(format!("{object}: not an upstream {kind}"));
        }
        if schema::schema(schema_name).is_none() && schema::variants(schema_name).is_none() {
            problems.push(format!("{object}: the fake has no schema {schema_name}"));
        }
    }

    for fake in SCHEMAS {
        let name = fake.name;
        if up["schemas"][name]["type"] != "single" {
            problems.push(format!("{name}: not a single schema upstream"));
            continue;
        }
        let fields = &up["fields"][name];
        for prop in fake.props {
            let Some(their) = fields["properties"].get(prop.name) else {
                problems.push(format!("{name}.{}: no such upstream field", prop.name));
                continue;
            };
            if let Some(diff) = type_mismatch(&prop.ty, &their["type"], &up["enums"]) {
                problems.push(format!("{name}.{}: {diff}", prop.name));
            }
            let nullable = their["type"]["nullable"].as_bool().unwrap_or(false);
            if nullable != prop.nullable {
                problems.push(format!(
                    "{name}.{}: nullable {nullable} upstream",
                    prop.name
                ));
            }
            if their["update"] != prop.update.as_str() {
                problems.push(format!(
                    "{name}.{}: update {} upstream",
                    prop.name, their["update"]
                ));
            }
            // Upstream's generated validate() requires exactly the non-nullable strings and
            // ids without a default; the fake may not require anything else.
            if prop.required {
                let requirable = matches!(prop.ty, Ty::Str(_) | Ty::Id(_))
                    && !nullable
                    && fields["defaults"].get(prop.name).is_none();
                if !requirable {
                    problems.push(format!(
                        "{name}.{}: required but upstream cannot require it",
                        prop.name
                    ));
                }
            }
            // Nested objects use the types' own validation, so only top-level strings/ids
            // are checked for "must be required" here.
        }
        let defaults: Value = serde_json::from_str(fake.defaults).expect("defaults are JSON");
        for (key, value) in defaults.as_object().expect("defaults object") {
            if fake.prop(key).is_none() {
                problems.push(format!("{name}: default for unknown property {key}"));
            }
            if let Some(theirs) = fields["defaults"].get(key) {
                if theirs != value {
                    problems.push(format!(
                        "{name}.{key}: default {value} vs upstream {theirs}"
                    ));
                }
            }
        }
    }

    for fake in VARIANTS {
        let name = fake.name;
        let theirs = &up["schemas"][name];
        if theirs["type"] != "multiple" {
            problems.push(format!("{name}: not a variant schema upstream"));
            continue;
        }
        for (variant, schema_name) in fake.variants {
            let Some(their) = theirs["variants"]
                .as_array()
                .and_then(|list| list.iter().find(|v| v["name"] == *variant))
            else {
                problems.push(format!("{name}: no variant {variant} upstream"));
                continue;
            };
            if their.get("schemaName").and_then(Value::as_str) != *schema_name {
                problems.push(format!(
                    "{name}/{variant}: schema {schema_name:?} vs upstream {their}"
                ));
            }
            if let Some(schema_name) = schema_name {
                if schema::schema(schema_name).is_none() {
                    problems.push(format!("{name}/{variant}: the fake lacks {schema_name}"));
                }
            }
        }
    }

    // Every nested object type the fake's tables mention is one the fake can check.
    fn nested(ty: &Ty) -> Option<&'static str> {
        match ty {
            Ty::Object(name) | Ty::List(name) => Some(name),
            Ty::Set(inner) => nested(inner),
            Ty::Map(_, value) => nested(value),
            _ => None,
        }
    }
    for fake in SCHEMAS {
        for prop in fake.props {
            if let Some(name) = nested(&prop.ty) {
                if schema::schema(name).is_none() && schema::variants(name).is_none() {
                    problems.push(format!(
                        "{}.{}: the fake cannot check {name}",
                        fake.name, prop.name
                    ));
                }
            }
        }
    }

    assert!(
        problems.is_empty(),
        "the fake disagrees with upstream:\n{}",
        problems.join("\n")
    );
}

/// A minimal JMAP client over reqwest, as the adapter will be.
struct Client {
    http: reqwest::Client,
    url: String,
    user: String,
    secret: String,
}

impl Client {
    fn new(fake: &StalwartFake) -> Self {
        Self {
            http: reqwest::Client::new(),
            url: fake.api_url(),
            user: fake.user.clone(),
            secret: fake.secret.clone(),
        }
    }

    async fn raw(&self, calls: Value) -> reqwest::Result<reqwest::Response> {
        self.http
            .post(&self.url)
            .basic_auth(&self.user, Some(&self.secret))
            .json(&json!({
                "using": ["urn:ietf:params:jmap:core", STALWART_CAPABILITY],
                "methodCalls": calls,
            }))
            .send()
            .await
    }

    /// Runs calls and returns the method responses.
    async fn calls(&self, calls: Value) -> Vec<Value> {
        let response = self.raw(calls).await.expect("request");
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.expect("JSON answer");
        body["methodResponses"]
            .as_array()
            .expect("responses")
            .clone()
    }

    /// Runs one call and returns its response arguments.
    async fn call(&self, name: &str, args: Value) -> Value {
        let responses = self.calls(json!([[name, args, "c0"]])).await;
        responses[0][1].clone()
    }

    async fn create(&self, object: &str, value: Value) -> Result<String, Value> {
        let answer = self
            .call(
                &format!("{object}/set"),
                json!({"accountId": ACCOUNT_ID, "create": {"n": value}}),
            )
            .await;
        match answer["created"]["n"]["id"].as_str() {
            Some(id) => Ok(id.to_owned()),
            None => Err(answer["notCreated"]["n"].clone()),
        }
    }

    async fn destroy(&self, object: &str, id: &str) -> Result<(), Value> {
        let answer = self
            .call(&format!("{object}/set"), json!({"destroy": [id]}))
            .await;
        if answer["destroyed"]
            .as_array()
            .is_some_and(|d| d.contains(&json!(id)))
        {
            Ok(())
        } else {
            Err(answer["notDestroyed"][id].clone())
        }
    }

    async fn get_one(&self, object: &str, id: &str) -> Value {
        let answer = self
            .call(&format!("{object}/get"), json!({"ids": [id]}))
            .await;
        answer["list"][0].clone()
    }

    async fn domain(&self, name: &str) -> String {
        self.create("x:Domain", json!({"name": name}))
            .await
            .expect("domain created")
    }
}

#[tokio::test]
async fn session_and_auth() {
    let fake = StalwartFake::start().await.expect("fake starts");
    let http = reqwest::Client::new();
    let session = format!("{}/.well-known/jmap", fake.base_url);

    let anonymous = http.get(&session).send().await.expect("request");
    assert_eq!(anonymous.status(), 401);
    assert!(anonymous.headers().contains_key("www-authenticate"));
    let wrong = http
        .get(&session)
        .basic_auth("admin", Some("nope"))
        .send()
        .await
        .expect("request");
    assert_eq!(wrong.status(), 401);
    let api = http
        .post(fake.api_url())
        .json(&json!({"using": [], "methodCalls": []}))
        .send()
        .await
        .expect("request");
    assert_eq!(api.status(), 401);

    let bearer = http
        .get(&session)
        .bearer_auth(&fake.secret)
        .send()
        .await
        .expect("request");
    assert_eq!(bearer.status(), 200);
    let body: Value = http
        .get(&session)
        .basic_auth(&fake.user, Some(&fake.secret))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("JSON");
    assert_eq!(body["primaryAccounts"][STALWART_CAPABILITY], ACCOUNT_ID);
    assert!(body["accounts"][ACCOUNT_ID]["accountCapabilities"][STALWART_CAPABILITY].is_object());
    assert!(body["apiUrl"]
        .as_str()
        .is_some_and(|u| u.ends_with("/jmap/")));
}

#[tokio::test]
async fn method_level_errors() {
    let fake = StalwartFake::start().await.expect("fake starts");
    let client = Client::new(&fake);
    let answers = client
        .calls(json!([
            ["x:Alias/get", {}, "a"],
            ["x:Domain/get", [], "b"],
            ["x:Domain/get", {"accountId": "zz"}, "c"],
            ["x:Domain/query", {"filter": {"recipients": "x"}}, "d"],
        ]))
        .await;
    assert_eq!(answers[0][0], "error");
    assert_eq!(
        answers[0][1]["type"], "unknownMethod",
        "there is no x:Alias object"
    );
    assert_eq!(answers[1][1]["type"], "invalidArguments");
    assert_eq!(answers[2][1]["type"], "accountNotFound");
    assert_eq!(answers[3][1]["type"], "unsupportedFilter");

    // Without the management capability in `using`, the x: methods do not exist.
    let body: Value = reqwest::Client::new()
        .post(fake.api_url())
        .bearer_auth(&fake.secret)
        .json(&json!({"using": ["urn:ietf:params:jmap:core"], "methodCalls": [["x:Domain/get", {}, "0"]]}))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("JSON");
    assert_eq!(body["methodResponses"][0][1]["type"], "unknownMethod");
}

#[tokio::test]
async fn duplicate_domain_is_a_primary_key_violation() {
    let fake = StalwartFake::start().await.expect("fake starts");
    let client = Client::new(&fake);
    let first = client.domain("acme.test").await;
    let error = client
        .create("x:Domain", json!({"name": "acme.test"}))
        .await
        .expect_err("refused");
    assert_eq!(error["type"], "primaryKeyViolation");
    assert_eq!(error["properties"], json!(["name"]));
    assert_eq!(error["objectId"]["id"], first.as_str());
    // A name that is another domain's alias is taken too.
    client
        .create(
            "x:Domain",
            json!({"name": "beta.test", "aliases": {"beta-alias.test": true}}),
        )
        .await
        .expect("created");
    let error = client
        .create("x:Domain", json!({"name": "beta-alias.test"}))
        .await
        .expect_err("refused");
    assert_eq!(error["type"], "primaryKeyViolation");
    assert_eq!(fake.domains().len(), 2);
}

#[tokio::test]
async fn bad_fields_are_refused_as_upstream_refuses_them() {
    let fake = StalwartFake::start().await.expect("fake starts");
    let client = Client::new(&fake);
    let cases = [
        (
            json!({"name": "a.test", "colour": "red"}),
            "invalidPatch",
            "colour",
        ),
        (
            json!({"name": "a.test", "dnsZoneFile": "x"}),
            "invalidPatch",
            "dnsZoneFile",
        ),
        (
            json!({"name": "a.test", "createdAt": "2026-01-01T00:00:00Z"}),
            "invalidPatch",
            "createdAt",
        ),
        (
            json!({"name": "a.test", "isEnabled": "yes"}),
            "invalidPatch",
            "isEnabled",
        ),
        (
            json!({"name": "a.test", "aliases": ["b.test"]}),
            "invalidPatch",
            "aliases",
        ),
        (
            json!({"name": "a.test", "dkimManagement": {"@type": "Sometimes"}}),
            "invalidPatch",
            "dkimManagement/@type",
        ),
        (
            json!({"name": "a.test", "dkimManagement": {"@type": "Automatic", "algorithms": {"Dkim1Dsa": true}}}),
            "invalidPatch",
            "dkimManagement/algorithms",
        ),
        (json!({"name": "not a domain"}), "invalidPatch", "name"),
        (json!({"name": "site.example"}), "invalidPatch", "name"),
    ];
    for (value, kind, property) in cases {
        let error = client
            .create("x:Domain", value.clone())
            .await
            .expect_err("refused");
        assert_eq!(error["type"], kind, "{value}");
        assert_eq!(error["properties"], json!([property]), "{value}");
    }
    let error = client
        .create("x:Domain", json!({"description": "no name"}))
        .await
        .expect_err("refused");
    assert_eq!(error["type"], "validationFailed");
    assert_eq!(
        error["validationErrors"],
        json!([{"type": "Required", "property": "name"}])
    );
    let error = client
        .create("x:Account", json!({"name": "x"}))
        .await
        .expect_err("refused");
    assert_eq!(
        error["type"], "invalidProperties",
        "an account needs its @type"
    );
    assert!(fake.domains().is_empty());

    let id = client.domain("good.test").await;
    let answer = client
        .call(
            "x:Domain/set",
            json!({"update": {id.clone(): {"dnsZoneFile": "x"}}}),
        )
        .await;
    assert_eq!(answer["notUpdated"][&id]["type"], "invalidPatch");
    let answer = client
        .call(
            "x:Domain/set",
            json!({"update": {"nope": {"isEnabled": false}}}),
        )
        .await;
    assert_eq!(answer["notUpdated"]["nope"]["type"], "notFound");
}

#[tokio::test]
async fn dkim_keys_appear_only_after_the_task_has_run() {
    let fake = StalwartFake::builder()
        .dkim_after_polls(None)
        .start()
        .await
        .expect("fake starts");
    let client = Client::new(&fake);
    let id = client.domain("later.test").await;
    assert_eq!(fake.pending_tasks(), 1);
    for _ in 0..3 {
        let query = client
            .call("x:DkimSignature/query", json!({"filter": {"domainId": id}}))
            .await;
        assert_eq!(query["ids"], json!([]));
        let zone = client.get_one("x:Domain", &id).await["dnsZoneFile"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(!zone.contains("_domainkey"), "{zone}");
    }
    fake.complete_pending_tasks();
    let query = client
        .call("x:DkimSignature/query", json!({"filter": {"domainId": id}}))
        .await;
    assert_eq!(
        query["ids"].as_array().map(Vec::len),
        Some(2),
        "Ed25519 and RSA by default"
    );
    let keys = client
        .call("x:DkimSignature/get", json!({"ids": query["ids"]}))
        .await;
    for key in keys["list"].as_array().expect("list") {
        assert_eq!(key["domainId"], id.as_str());
        assert!(key["publicKey"]
            .as_str()
            .is_some_and(|k| k.contains("BEGIN PUBLIC KEY")));
        assert_eq!(key["privateKey"]["secret"], "****");
        assert!(key["selector"]
            .as_str()
            .is_some_and(|s| s.starts_with("v1-")));
    }
    let zone = client.get_one("x:Domain", &id).await["dnsZoneFile"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        zone.contains("._domainkey.later.test. IN TXT \"v=DKIM1; k=ed25519; h=sha256; p="),
        "{zone}"
    );
}

#[tokio::test]
async fn dkim_keys_appear_after_two_polls_by_default() {
    let fake = StalwartFake::start().await.expect("fake starts");
    let client = Client::new(&fake);
    let id = client.domain("polled.test").await;
    let first = client
        .call("x:DkimSignature/query", json!({"filter": {"domainId": id}}))
        .await;
    assert_eq!(first["ids"], json!([]));
    let second = client
        .call("x:DkimSignature/query", json!({"filter": {"domainId": id}}))
        .await;
    assert_eq!(second["ids"].as_array().map(Vec::len), Some(2));
    assert_eq!(fake.pending_tasks(), 0);
    // Manual DKIM schedules nothing.
    client
        .create(
            "x:Domain",
            json!({"name": "manual.test", "dkimManagement": {"@type": "Manual"}}),
        )
        .await
        .expect("created");
    assert_eq!(fake.pending_tasks(), 0);
}

#[tokio::test]
async fn zone_file_holds_the_records_stalwart_publishes() {
    let fake = StalwartFake::builder()
        .hostname("mail.dezky.test")
        .start()
        .await
        .expect("fake starts");
    let client = Client::new(&fake);
    let id = client.domain("zone.test").await;
    fake.complete_pending_tasks();
    let zone = client.get_one("x:Domain", &id).await["dnsZoneFile"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    for line in [
        "zone.test. IN MX 10 mail.dezky.test.",
        "zone.test. IN TXT \"v=spf1 mx -all\"",
        "_dmarc.zone.test. IN TXT \"v=DMARC1; p=reject; rua=mailto:postmaster@zone.test\"",
        "_imaps._tcp.zone.test. IN SRV 0 1 993 mail.dezky.test.",
        "_submissions._tcp.zone.test. IN SRV 0 1 465 mail.dezky.test.",
        "_pop3s._tcp.zone.test. IN SRV 0 1 995 mail.dezky.test.",
        "_jmap._tcp.zone.test. IN SRV 0 1 443 mail.dezky.test.",
        "_caldavs._tcp.zone.test. IN SRV 0 1 443 mail.dezky.test.",
        "_smtp._tls.zone.test. IN TXT \"v=TLSRPTv1; rua=mailto:postmaster@zone.test\"",
        "autoconfig.zone.test. IN CNAME mail.dezky.test.",
        "autodiscover.zone.test. IN CNAME mail.dezky.test.",
    ] {
        assert!(
            zone.lines().any(|l| l == line),
            "missing {line:?} in\n{zone}"
        );
    }
    // Cleartext services are not advertised unless SystemSettings says so.
    assert!(
        !zone.contains("_imap._tcp") && !zone.contains("_submission._tcp"),
        "{zone}"
    );
    // An RSA key is longer than one TXT string: BIND's parenthesised, multi-line form.
    let rsa = zone
        .lines()
        .position(|l| l.contains("._domainkey.zone.test. IN TXT ("))
        .expect("multi-line RSA DKIM record");
    let lines: Vec<&str> = zone.lines().collect();
    assert!(lines[rsa + 1]
        .trim_start()
        .starts_with("\"v=DKIM1; k=rsa; h=sha256; p="));
    assert!(lines[rsa + 2..].contains(&")"));
    assert!(
        !zone.to_lowercase().contains("verification"),
        "Stalwart has no ownership record"
    );

    // SystemSettings drives the targets.
    let answer = client
        .call(
            "x:SystemSettings/set",
            json!({"update": {"singleton": {"defaultHostname": "mx.zone.test", "services/imap": {"cleartext": true}}}}),
        )
        .await;
    assert!(
        answer["updated"]
            .as_object()
            .is_some_and(|u| u.contains_key("singleton")),
        "{answer}"
    );
    let zone = client.get_one("x:Domain", &id).await["dnsZoneFile"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(zone.contains("zone.test. IN MX 10 mx.zone.test."), "{zone}");
    assert!(
        zone.contains("mx.zone.test. IN TXT \"v=spf1 a -all\""),
        "{zone}"
    );
    assert!(
        zone.contains("_imap._tcp.zone.test. IN SRV 0 1 143 mx.zone.test."),
        "{zone}"
    );
}

#[tokio::test]
async fn accounts_aliases_and_lists_keep_addresses_on_known_domains() {
    let fake = StalwartFake::start().await.expect("fake starts");
    let client = Client::new(&fake);
    let domain = client.domain("corp.test").await;

    let error = client
        .create(
            "x:Account",
            json!({"@type": "User", "name": "ann", "domainId": domain,
                   "aliases": {"0": {"name": "sales", "domainId": "nowhere"}}}),
        )
        .await
        .expect_err("refused");
    assert_eq!(
        error["type"], "invalidForeignKey",
        "alias on an unknown domain"
    );
    let error = client
        .create(
            "x:Account",
            json!({"@type": "User", "name": "ann", "domainId": "nowhere"}),
        )
        .await
        .expect_err("refused");
    assert_eq!(error["type"], "invalidForeignKey");
    let error = client
        .create(
            "x:Account",
            json!({"@type": "User", "name": "ann", "domainId": domain, "aliases": [{"name": "a"}]}),
        )
        .await
        .expect_err("refused");
    assert_eq!(
        error["type"], "invalidPatch",
        "lists are objects keyed by index"
    );

    let group = client
        .create(
            "x:Account",
            json!({"@type": "Group", "name": "team", "domainId": domain}),
        )
        .await
        .expect("group");
    let ann = client
        .create(
            "x:Account",
            json!({"@type": "User", "name": "Ann", "domainId": domain, "description": "Ann A.",
                   "credentials": {"0": {"@type": "Password", "secret": "s3cret-Passw0rd"}},
                   "aliases": {"0": {"name": "sales", "domainId": domain}},
                   "memberGroupIds": {group.clone(): true}}),
        )
        .await
        .expect("user");
    let read = client.get_one("x:Account", &ann).await;
    assert_eq!(read["emailAddress"], "ann@corp.test");
    assert_eq!(read["credentials"]["0"]["secret"], "****");
    assert_eq!(read["credentials"]["0"]["credentialId"], "0");
    assert_eq!(read["aliases"]["0"]["enabled"], true);

    // Freeze through permissions; the password stays as it was.
    let answer = client
        .call(
            "x:Account/set",
            json!({"update": {ann.clone(): {"permissions": {"@type": "Replace", "disabledPermissions": {"authenticate": true}}}}}),
        )
        .await;
    assert!(
        answer["updated"]
            .as_object()
            .is_some_and(|u| u.contains_key(&ann)),
        "{answer}"
    );
    let stored = fake
        .accounts()
        .into_iter()
        .find(|a| a.id == ann)
        .expect("stored");
    assert_eq!(
        stored.value["credentials"]["0"]["secret"],
        "s3cret-Passw0rd"
    );
    assert_eq!(stored.value["permissions"]["@type"], "Replace");
    let answer = client
        .call(
            "x:Account/set",
            json!({"update": {ann.clone(): {"credentials/0/secret": "n3w-Passw0rd"}}}),
        )
        .await;
    assert!(answer["updated"].is_object(), "{answer}");
    let stored = fake
        .accounts()
        .into_iter()
        .find(|a| a.id == ann)
        .expect("stored");
    assert_eq!(stored.value["credentials"]["0"]["secret"], "n3w-Passw0rd");

    let answer = client
        .call(
            "x:Account/set",
            json!({"update": {ann.clone(): {"@type": "Group"}}}),
        )
        .await;
    assert_eq!(answer["notUpdated"][&ann]["type"], "invalidProperties");

    // One address, one owner: accounts, aliases and lists share it.
    let error = client
        .create(
            "x:MailingList",
            json!({"name": "sales", "domainId": domain}),
        )
        .await
        .expect_err("refused");
    assert_eq!(error["type"], "primaryKeyViolation");
    assert_eq!(error["objectId"]["id"], ann.as_str());
    let error = client
        .create(
            "x:MailingList",
            json!({"name": "all", "domainId": domain, "recipients": {"not-an-address": true}}),
        )
        .await
        .expect_err("refused");
    assert_eq!(error["type"], "invalidPatch");
    let list = client
        .create(
            "x:MailingList",
            json!({"name": "all", "domainId": domain, "recipients": {"ann@corp.test": true, "ext@else.test": true}}),
        )
        .await
        .expect("list");
    let read = client.get_one("x:MailingList", &list).await;
    assert_eq!(read["emailAddress"], "all@corp.test");
    assert_eq!(
        read["recipients"],
        json!({"ann@corp.test": true, "ext@else.test": true})
    );

    let users = client
        .call(
            "x:Account/query",
            json!({"filter": {"@type": "User", "domainId": domain}}),
        )
        .await;
    assert_eq!(users["ids"], json!([ann]));
    let by_name = client
        .call("x:Account/query", json!({"filter": {"name": "team"}}))
        .await;
    assert_eq!(by_name["ids"], json!([group]));

    // A group with members is linked from them.
    let error = client
        .destroy("x:Account", &group)
        .await
        .expect_err("refused");
    assert_eq!(error["type"], "objectIsLinked");
}

#[tokio::test]
async fn a_domain_in_use_cannot_be_destroyed() {
    let fake = StalwartFake::start().await.expect("fake starts");
    let client = Client::new(&fake);
    let domain = client.domain("busy.test").await;
    let other = client.domain("other.test").await;
    fake.complete_pending_tasks();
    let user = client
        .create(
            "x:Account",
            json!({"@type": "User", "name": "bob", "domainId": other,
                   "aliases": {"0": {"name": "bob", "domainId": domain}}}),
        )
        .await
        .expect("user");
    let list = client
        .create("x:MailingList", json!({"name": "team", "domainId": domain}))
        .await
        .expect("list");

    let error = client
        .destroy("x:Domain", &domain)
        .await
        .expect_err("refused");
    assert_eq!(error["type"], "objectIsLinked");
    let linked: Vec<&str> = error["linkedObjects"]
        .as_array()
        .expect("linked")
        .iter()
        .filter_map(|o| o["object"].as_str())
        .collect();
    assert!(
        linked.contains(&"Account")
            && linked.contains(&"MailingList")
            && linked.contains(&"DkimSignature"),
        "{error}"
    );

    client
        .destroy("x:Account", &user)
        .await
        .expect("user destroyed");
    client
        .destroy("x:MailingList", &list)
        .await
        .expect("list destroyed");
    // The DKIM signatures hold the domain too: a teardown removes them first.
    let error = client
        .destroy("x:Domain", &domain)
        .await
        .expect_err("refused");
    assert_eq!(error["type"], "objectIsLinked");
    let keys = client
        .call(
            "x:DkimSignature/query",
            json!({"filter": {"domainId": domain}}),
        )
        .await;
    let answer = client
        .call("x:DkimSignature/set", json!({"destroy": keys["ids"]}))
        .await;
    assert_eq!(answer["destroyed"], keys["ids"]);
    client
        .destroy("x:Domain", &domain)
        .await
        .expect("domain destroyed");
    assert_eq!(
        client
            .destroy("x:Domain", &domain)
            .await
            .expect_err("refused")["type"],
        "notFound"
    );
    assert_eq!(fake.domains().len(), 1);
}

#[tokio::test]
async fn back_references_and_creation_ids_chain_calls() {
    let fake = StalwartFake::start().await.expect("fake starts");
    let client = Client::new(&fake);
    let answers = client
        .calls(json!([
            ["x:Domain/set", {"create": {"d": {"name": "chain.test"}}}, "0"],
            ["x:Account/set", {"create": {"u": {"@type": "User", "name": "cy", "domainId": "#d"}}}, "1"],
            ["x:Account/query", {"filter": {"name": "cy"}}, "2"],
            ["x:Account/get", {"#ids": {"resultOf": "2", "name": "x:Account/query", "path": "/ids"}, "properties": ["emailAddress"]}, "3"],
        ]))
        .await;
    assert_eq!(
        answers[3][1]["list"][0]["emailAddress"], "cy@chain.test",
        "{answers:?}"
    );
    assert!(
        answers[3][1]["list"][0].get("name").is_none(),
        "properties filter the answer"
    );
}

#[tokio::test]
async fn system_settings_is_a_singleton() {
    let fake = StalwartFake::start().await.expect("fake starts");
    let client = Client::new(&fake);
    let settings = client.get_one("x:SystemSettings", "singleton").await;
    assert_eq!(settings["id"], "singleton");
    assert_eq!(
        settings["mailExchangers"],
        json!({"0": {"hostname": null, "priority": 10}})
    );
    let answer = client
        .call("x:SystemSettings/set", json!({"destroy": ["singleton"]}))
        .await;
    assert_eq!(answer["notDestroyed"]["singleton"]["type"], "singleton");
    let answer = client
        .call(
            "x:SystemSettings/set",
            json!({"update": {"singleton": {"defaultDomainId": "missing"}}}),
        )
        .await;
    assert_eq!(
        answer["notUpdated"]["singleton"]["type"],
        "invalidForeignKey"
    );
}

#[tokio::test]
async fn injected_faults_fail_or_lose_the_answer() {
    let fake = StalwartFake::start().await.expect("fake starts");
    let client = Client::new(&fake);

    fake.fail_next(2, 503);
    for _ in 0..2 {
        let response = client
            .raw(json!([["x:Domain/set", {"create": {"d": {"name": "fail.test"}}}, "0"]]))
            .await
            .expect("answer");
        assert_eq!(response.status(), 503);
    }
    assert!(fake.domains().is_empty(), "a failed call changes nothing");
    fake.fail_next(1, 500);
    let response = client.raw(json!([])).await.expect("answer");
    assert_eq!(response.status(), 500);

    fake.drop_after_apply_next(1);
    let outcome = match client
        .raw(json!([["x:Domain/set", {"create": {"d": {"name": "lost.test"}}}, "0"]]))
        .await
    {
        Ok(response) => response.bytes().await.map(|_| ()),
        Err(error) => Err(error),
    };
    assert!(outcome.is_err(), "the client never sees an answer");
    assert_eq!(fake.domains().len(), 1, "but the request was applied");
    // A retry finds it already there, as it would on the real server.
    let error = client
        .create("x:Domain", json!({"name": "lost.test"}))
        .await
        .expect_err("refused");
    assert_eq!(error["type"], "primaryKeyViolation");
}

/// A call in a user's account under JMAP for Contacts.
async fn contacts_call(fake: &StalwartFake, using: &[&str], name: &str, args: Value) -> Value {
    let response = reqwest::Client::new()
        .post(fake.api_url())
        .basic_auth(&fake.user, Some(&fake.secret))
        .json(&json!({"using": using, "methodCalls": [[name, args, "c0"]]}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("JSON answer");
    body["methodResponses"][0].clone()
}

#[tokio::test]
async fn address_books_live_in_the_users_account_and_only_the_server_sets_the_default() {
    const CONTACTS: &str = "urn:ietf:params:jmap:contacts";
    const CORE: &str = "urn:ietf:params:jmap:core";
    let fake = StalwartFake::start().await.expect("fake starts");
    let client = Client::new(&fake);
    let domain = client.domain("acme.test").await;
    let user = client
        .create(
            "x:Account",
            json!({"@type": "User", "name": "ann", "domainId": domain}),
        )
        .await
        .expect("user created");

    // Without the capability, in the admin's own account, in no account: refused.
    let without = contacts_call(
        &fake,
        &[CORE, STALWART_CAPABILITY],
        "AddressBook/get",
        json!({"accountId": user}),
    )
    .await;
    assert_eq!(without[1]["type"], "unknownMethod", "{without}");
    for account in [ACCOUNT_ID, "nobody", domain.as_str()] {
        let answer = contacts_call(
            &fake,
            &[CORE, CONTACTS],
            "AddressBook/get",
            json!({"accountId": account}),
        )
        .await;
        assert_eq!(answer[1]["type"], "accountNotFound", "{account}: {answer}");
    }

    // isDefault and myRights are server-set; a name is required.
    for (value, expected) in [
        (json!({"name": "x", "isDefault": true}), "invalidPatch"),
        (
            json!({"name": "x", "myRights": {"mayRead": true}}),
            "invalidPatch",
        ),
        (json!({"name": "x", "colour": "red"}), "invalidPatch"),
        (json!({"description": "no name"}), "validationFailed"),
    ] {
        let answer = contacts_call(
            &fake,
            &[CORE, CONTACTS],
            "AddressBook/set",
            json!({"accountId": user, "create": {"b": value}}),
        )
        .await;
        assert_eq!(
            answer[1]["notCreated"]["b"]["type"], expected,
            "{value}: {answer}"
        );
    }
    assert!(fake.address_books("ann@acme.test").is_empty());

    // A plain create is not the default; onSuccessSetIsDefault makes it so.
    let plain = contacts_call(
        &fake,
        &[CORE, CONTACTS],
        "AddressBook/set",
        json!({"accountId": user, "create": {"b": {"name": "Work"}}}),
    )
    .await;
    let work = plain[1]["created"]["b"]["id"]
        .as_str()
        .expect("created")
        .to_owned();
    let listed = contacts_call(
        &fake,
        &[CORE, CONTACTS],
        "AddressBook/get",
        json!({"accountId": user, "ids": null}),
    )
    .await;
    assert_eq!(listed[1]["list"][0]["isDefault"], false, "{listed}");
    let second = contacts_call(
        &fake,
        &[CORE, CONTACTS],
        "AddressBook/set",
        json!({"accountId": user, "create": {"c": {"name": "Contacts"}},
               "onSuccessSetIsDefault": "#c"}),
    )
    .await;
    let contacts = second[1]["created"]["c"]["id"]
        .as_str()
        .expect("created")
        .to_owned();
    let books = fake.address_books("ann@acme.test");
    let default: Vec<&str> = books
        .iter()
        .filter(|b| b.value["isDefault"] == true)
        .map(|b| b.id.as_str())
        .collect();
    assert_eq!(default, [contacts.as_str()]);
    assert_ne!(work, contacts);

    // The account's address books go with it.
    client.destroy("x:Account", &user).await.expect("destroyed");
    assert!(fake.address_books("ann@acme.test").is_empty());
}
