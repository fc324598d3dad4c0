//! The fake's state and its JMAP methods: `/get`, `/set` and `/query` on the objects of
//! [`super::schema::OBJECTS`], with Stalwart's referential rules (foreign keys, primary keys,
//! linked objects) and the DKIM management task that runs after a domain is created.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::schema::{Ty, OBJECTS};
use super::validate::{
    check_prop, invalid_patch, invalid_properties, is_domain_name, is_empty, is_local_part,
    object_schema, required, Mode, Refs, SetError,
};
use super::zone::{pem_body, pseudo_bytes, zone_file};
use base64::Engine;

/// What a password looks like on the way out; writing it back keeps the stored secret.
pub const MASKED_PASSWORD: &str = "****";

/// One stored object.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Server-assigned id.
    pub id: String,
    /// The object as stored (secrets in clear, computed fields absent).
    pub value: Map<String, Value>,
}

/// Everything the fake holds.
#[derive(Debug)]
pub struct State {
    next_id: u64,
    state: u64,
    objects: HashMap<&'static str, Vec<Stored>>,
    settings: Map<String, Value>,
    /// Domains whose DKIM task has not run yet, with the polls seen since it was scheduled.
    pending: Vec<(String, u32)>,
    /// Polls (`x:Domain` or `x:DkimSignature` reads) after which a pending task completes.
    pub dkim_after_polls: Option<u32>,
    /// Users' address books (JMAP for Contacts).
    pub address_books: super::contacts::AddressBooks,
}

impl State {
    /// Empty, with SystemSettings at upstream's defaults and `hostname` as default host.
    pub fn new(hostname: &str, dkim_after_polls: Option<u32>) -> Self {
        let schema = object_schema("x:SystemSettings", None).expect("settings schema");
        // Through the checker, so nested defaults (a mail exchanger's hostname) are filled.
        let mut settings = super::validate::check_fields(
            schema,
            &Map::new(),
            "",
            Mode::Client,
            &Refs(&HashMap::new()),
        )
        .expect("defaults pass the fake's own checks");
        settings.insert("defaultHostname".into(), Value::String(hostname.to_owned()));
        Self {
            next_id: 0,
            state: 1,
            objects: OBJECTS
                .iter()
                .map(|(name, _, _)| (*name, Vec::new()))
                .collect(),
            settings,
            pending: Vec::new(),
            dkim_after_polls,
            address_books: super::contacts::AddressBooks::default(),
        }
    }

    /// The JMAP state string of the registry.
    pub fn state_string(&self) -> String {
        self.state.to_string()
    }

    /// Stored objects of one type, in creation order.
    pub fn list(&self, object: &str) -> Vec<Stored> {
        self.objects.get(object).cloned().unwrap_or_default()
    }

    /// The SystemSettings singleton as stored.
    pub fn settings(&self) -> Map<String, Value> {
        self.settings.clone()
    }

    /// Domains whose DKIM keys have not been generated yet.
    pub fn pending_tasks(&self) -> usize {
        self.pending.len()
    }

    /// Runs every pending DKIM task now.
    pub fn complete_pending_tasks(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        for (domain_id, _) in pending {
            self.run_dkim_task(&domain_id);
        }
    }

    fn new_id(&mut self) -> String {
        self.next_id += 1;
        // Upstream ids are opaque short strings; one counter across all types keeps an
        // account id from ever equalling a domain id, so a swapped id is caught.
        let alphabet = b"abcdefghijklmnopqrstuvwxyz234567";
        let mut n = self.next_id;
        let mut out = Vec::new();
        loop {
            out.push(alphabet[(n % 32) as usize]);
            n /= 32;
            if n == 0 {
                break;
            }
        }
        out.reverse();
        String::from_utf8(out).expect("ascii")
    }

    fn find(&self, object: &str, id: &str) -> Option<&Stored> {
        self.objects.get(object)?.iter().find(|s| s.id == id)
    }

    fn poll(&mut self) {
        let Some(limit) = self.dkim_after_polls else {
            return;
        };
        let mut due = Vec::new();
        for (domain_id, polls) in &mut self.pending {
            *polls += 1;
            if *polls >= limit {
                due.push(domain_id.clone());
            }
        }
        self.pending.retain(|(id, _)| !due.contains(id));
        for domain_id in due {
            self.run_dkim_task(&domain_id);
        }
    }

    /// Upstream's `dkim_management` task: one signature per configured algorithm, selector
    /// from the template, public key derived from the new private key.
    fn run_dkim_task(&mut self, domain_id: &str) {
        let Some(domain) = self.find("x:Domain", domain_id).cloned() else {
            return; // upstream: "Domain not found", a permanent task failure
        };
        let management = domain
            .value
            .get("dkimManagement")
            .cloned()
            .unwrap_or_default();
        if management.get("@type").and_then(Value::as_str) != Some("Automatic") {
            return;
        }
        let template = management
            .get("selectorTemplate")
            .and_then(Value::as_str)
            .unwrap_or("v{version}-{algorithm}-{date-%Y%m%d}")
            .to_owned();
        let algorithms: Vec<String> = management
            .get("algorithms")
            .and_then(Value::as_object)
            .map(|a| a.keys().cloned().collect())
            .unwrap_or_default();
        let now = chrono::Utc::now();
        let domain_name = domain
            .value
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        for algorithm in algorithms {
            let (version, algo, der_len) = match algorithm.as_str() {
                "Dkim1Ed25519Sha256" => ("1", "ed25519", 44),
                "Dkim1RsaSha256" => ("1", "rsa", 294),
                "Dkim2Ed25519Sha256" => ("2", "ed25519", 44),
                _ => ("2", "rsa", 294),
            };
            let selector = template
                .replace("{version}", version)
                .replace("{algorithm}", algo)
                .replace("{hash}", "sha256")
                .replace("{epoch}", &now.timestamp().to_string())
                .replace("{random}", "k3y5eed0")
                .replace("{date-%Y%m%d}", &now.format("%Y%m%d").to_string());
            let der = pseudo_bytes(&format!("{domain_name}/{selector}/{algorithm}"), der_len);
            let body = base64::engine::general_purpose::STANDARD.encode(der);
            let pem = format!(
                "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
                body.as_bytes()
                    .chunks(64)
                    .map(|c| String::from_utf8_lossy(c).into_owned())
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            let id = self.new_id();
            let value = json!({
                "@type": algorithm,
                "domainId": domain_id,
                "selector": selector,
                "privateKey": {"@type": "Text", "secret": format!("private:{}", pem_body(&pem))},
                "publicKey": pem,
                "stage": "active",
                "nextTransitionAt": null,
                "createdAt": now.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            });
            let Value::Object(value) = value else {
                unreachable!()
            };
            self.insert("x:DkimSignature", id, value);
        }
    }

    fn insert(&mut self, object: &'static str, id: String, value: Map<String, Value>) {
        self.objects
            .get_mut(object)
            .expect("known object")
            .push(Stored { id, value });
        self.state += 1;
    }

    /// Runs one method call; returns the response's name and arguments.
    pub fn call(
        &mut self,
        name: &str,
        args: &Value,
        using: &[String],
        created: &mut HashMap<String, String>,
    ) -> (String, Value) {
        let error = |kind: &str, description: &str| {
            (
                "error".to_owned(),
                json!({"type": kind, "description": description}),
            )
        };
        if name == "Core/echo" {
            return (name.to_owned(), args.clone());
        }
        let Some((object, method)) = name.split_once('/') else {
            return error("unknownMethod", "Unknown method");
        };
        if object == "AddressBook" {
            return self.address_book_call(name, method, args, using, created);
        }
        let Some(&(object, _, _)) = OBJECTS.iter().find(|(o, _, _)| *o == object) else {
            return error("unknownMethod", &format!("Unknown method {name}"));
        };
        if !using.iter().any(|u| u == super::STALWART_CAPABILITY) {
            return error(
                "unknownMethod",
                "The urn:stalwart:jmap capability is not in 'using'",
            );
        }
        let Some(args) = args.as_object() else {
            return error("invalidArguments", "Arguments must be an object");
        };
        if let Some(account) = args.get("accountId") {
            if account.as_str() != Some(super::ACCOUNT_ID) {
                return error("accountNotFound", "Account not found");
            }
        }
        let result = match method {
            "get" => self.get(object, args),
            "set" => self.set(object, args, created),
            "query" if object != "x:SystemSettings" => self.query(object, args),
            "changes" => Err((
                "cannotCalculateChanges",
                "The fake keeps no change log".to_owned(),
            )),
            _ => Err(("unknownMethod", format!("Unknown method {name}"))),
        };
        match result {
            Ok(value) => (name.to_owned(), value),
            Err((kind, description)) => error(kind, &description),
        }
    }

    /// `AddressBook/get` and `/set` in the user account named by `accountId`.
    fn address_book_call(
        &mut self,
        name: &str,
        method: &str,
        args: &Value,
        using: &[String],
        created: &mut HashMap<String, String>,
    ) -> (String, Value) {
        let error = |kind: &str, description: &str| {
            (
                "error".to_owned(),
                json!({"type": kind, "description": description}),
            )
        };
        if !using
            .iter()
            .any(|u| u == super::contacts::CONTACTS_CAPABILITY)
        {
            return error(
                "unknownMethod",
                "The urn:ietf:params:jmap:contacts capability is not in 'using'",
            );
        }
        let Some(args) = args.as_object() else {
            return error("invalidArguments", "Arguments must be an object");
        };
        let account = args
            .get("accountId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let is_user = self
            .find("x:Account", &account)
            .is_some_and(|a| a.value.get("@type").and_then(Value::as_str) == Some("User"));
        if !is_user {
            return error("accountNotFound", "Account not found");
        }
        let result = match method {
            "get" => self.address_books.get(&account, args),
            "set" => {
                let mut books = std::mem::take(&mut self.address_books);
                let result = books.set(&account, args, created, &mut || self.new_id());
                self.address_books = books;
                result
            }
            _ => Err(("unknownMethod", format!("Unknown method {name}"))),
        };
        match result {
            Ok(value) => (name.to_owned(), value),
            Err((kind, description)) => error(kind, &description),
        }
    }

    fn view(&self, object: &str, stored: &Stored) -> Map<String, Value> {
        let mut value = stored.value.clone();
        value.insert("id".into(), Value::String(stored.id.clone()));
        match object {
            "x:Domain" => {
                let dkim = self.objects["x:DkimSignature"]
                    .iter()
                    .filter(|s| s.value.get("domainId") == Some(&Value::String(stored.id.clone())))
                    .map(|s| &s.value)
                    .collect::<Vec<_>>();
                value.insert(
                    "dnsZoneFile".into(),
                    Value::String(zone_file(&stored.value, &dkim, &self.settings)),
                );
            }
            "x:Account" | "x:MailingList" => {
                if let Some(address) = self.address_of(&stored.value) {
                    value.insert("emailAddress".into(), Value::String(address));
                }
                if let Some(Value::Object(credentials)) = value.get_mut("credentials") {
                    for credential in credentials.values_mut() {
                        if let Some(secret) = credential.get_mut("secret") {
                            *secret = Value::String(MASKED_PASSWORD.into());
                        }
                    }
                }
            }
            "x:DkimSignature" => {
                if let Some(secret) = value
                    .get_mut("privateKey")
                    .and_then(|k| k.get_mut("secret"))
                {
                    *secret = Value::String(MASKED_PASSWORD.into());
                }
            }
            _ => {}
        }
        value
    }

    fn address_of(&self, value: &Map<String, Value>) -> Option<String> {
        let name = value.get("name")?.as_str()?;
        let domain = self.find("x:Domain", value.get("domainId")?.as_str()?)?;
        Some(format!("{name}@{}", domain.value.get("name")?.as_str()?))
    }

    fn get(
        &mut self,
        object: &str,
        args: &Map<String, Value>,
    ) -> Result<Value, (&'static str, String)> {
        if matches!(object, "x:Domain" | "x:DkimSignature") {
            self.poll();
        }
        let properties: Option<Vec<String>> = match args.get("properties") {
            None | Some(Value::Null) => None,
            Some(Value::Array(list)) => Some(
                list.iter()
                    .map(|p| p.as_str().map(str::to_owned))
                    .collect::<Option<_>>()
                    .ok_or(("invalidArguments", "properties must be strings".to_owned()))?,
            ),
            _ => return Err(("invalidArguments", "properties must be an array".into())),
        };
        let all: Vec<(String, Map<String, Value>)> = if object == "x:SystemSettings" {
            let mut value = self.settings.clone();
            value.insert("id".into(), Value::String("singleton".into()));
            vec![("singleton".into(), value)]
        } else {
            self.objects[object]
                .iter()
                .map(|s| (s.id.clone(), self.view(object, s)))
                .collect()
        };
        let (list, not_found): (Vec<_>, Vec<_>) = match args.get("ids") {
            None | Some(Value::Null) => (all.into_iter().map(|(_, v)| v).collect(), vec![]),
            Some(Value::Array(ids)) => {
                let mut list = Vec::new();
                let mut missing = Vec::new();
                for id in ids {
                    let id = id
                        .as_str()
                        .ok_or(("invalidArguments", "ids must be strings".to_owned()))?;
                    match all.iter().find(|(i, _)| i == id) {
                        Some((_, value)) => list.push(value.clone()),
                        None => missing.push(Value::String(id.to_owned())),
                    }
                }
                (list, missing)
            }
            _ => return Err(("invalidArguments", "ids must be an array or null".into())),
        };
        let list: Vec<Value> = list
            .into_iter()
            .map(|mut value| {
                if let Some(properties) = &properties {
                    value.retain(|k, _| k == "id" || properties.iter().any(|p| p == k));
                }
                Value::Object(value)
            })
            .collect();
        Ok(json!({
            "accountId": super::ACCOUNT_ID,
            "state": self.state_string(),
            "list": list,
            "notFound": not_found,
        }))
    }

    fn query(
        &mut self,
        object: &str,
        args: &Map<String, Value>,
    ) -> Result<Value, (&'static str, String)> {
        if matches!(object, "x:Domain" | "x:DkimSignature") {
            self.poll();
        }
        // The filters each object's list in the schema offers, plus `domainId` where the
        // object has a foreign key to its domain (upstream indexes it).
        let allowed: &[&str] = match object {
            "x:Domain" => &["text", "name", "memberTenantId"],
            "x:Account" => &[
                "text",
                "name",
                "domainId",
                "memberGroupIds",
                "memberTenantId",
                "@type",
            ],
            "x:MailingList" => &["text", "name", "domainId", "memberTenantId"],
            _ => &["domainId", "memberTenantId"],
        };
        let filter = match args.get("filter") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(filter)) => filter.clone(),
            _ => return Err(("invalidArguments", "filter must be an object".into())),
        };
        if let Some(key) = filter.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err((
                "unsupportedFilter",
                format!("Unsupported filter property {key}"),
            ));
        }
        let mut ids = Vec::new();
        for stored in &self.objects[object] {
            let view = self.view(object, stored);
            let keep = filter.iter().all(|(key, want)| match key.as_str() {
                "text" => {
                    let needle = want.as_str().unwrap_or_default().to_lowercase();
                    ["name", "emailAddress", "description"].iter().any(|f| {
                        view.get(*f)
                            .and_then(Value::as_str)
                            .is_some_and(|v| v.to_lowercase().contains(&needle))
                    })
                }
                "memberGroupIds" => view
                    .get("memberGroupIds")
                    .and_then(Value::as_object)
                    .zip(want.as_str())
                    .is_some_and(|(set, id)| set.contains_key(id)),
                "memberTenantId" => view.get(key).unwrap_or(&Value::Null) == want,
                _ => view.get(key) == Some(want),
            });
            if keep {
                ids.push(Value::String(stored.id.clone()));
            }
        }
        let total = ids.len();
        let position = args.get("position").and_then(Value::as_u64).unwrap_or(0) as usize;
        let limit = args
            .get("limit")
            .and_then(Value::as_u64)
            .map(|l| l as usize);
        let page: Vec<Value> = ids
            .into_iter()
            .skip(position)
            .take(limit.unwrap_or(usize::MAX))
            .collect();
        Ok(json!({
            "accountId": super::ACCOUNT_ID,
            "queryState": self.state_string(),
            "canCalculateChanges": false,
            "position": position,
            "ids": page,
            "total": total,
        }))
    }

    fn set(
        &mut self,
        object: &'static str,
        args: &Map<String, Value>,
        created_refs: &mut HashMap<String, String>,
    ) -> Result<Value, (&'static str, String)> {
        if let Some(state) = args.get("ifInState").and_then(Value::as_str) {
            if state != self.state_string() {
                return Err(("stateMismatch", "State mismatch".into()));
            }
        }
        let old_state = self.state_string();
        let destroy: Vec<String> = match args.get("destroy") {
            None | Some(Value::Null) => vec![],
            Some(Value::Array(ids)) => ids
                .iter()
                .map(|i| i.as_str().map(str::to_owned))
                .collect::<Option<_>>()
                .ok_or(("invalidArguments", "destroy must list ids".to_owned()))?,
            _ => return Err(("invalidArguments", "destroy must be an array".into())),
        };
        let collect = |key: &str| -> Result<Map<String, Value>, (&'static str, String)> {
            match args.get(key) {
                None | Some(Value::Null) => Ok(Map::new()),
                Some(Value::Object(map)) => Ok(map.clone()),
                _ => Err(("invalidArguments", format!("{key} must be an object"))),
            }
        };
        let create = collect("create")?;
        let update = collect("update")?;

        let mut created = Map::new();
        let mut not_created = Map::new();
        for (client_id, value) in create {
            match self.create(object, &value, created_refs) {
                Ok((id, extra)) => {
                    created_refs.insert(client_id.clone(), id.clone());
                    let mut answer = extra;
                    answer.insert("id".into(), Value::String(id));
                    created.insert(client_id, Value::Object(answer));
                }
                Err(error) => {
                    not_created.insert(client_id, error);
                }
            }
        }

        let mut updated = Map::new();
        let mut not_updated = Map::new();
        for (id, patch) in update {
            let result = if object != "x:SystemSettings" && destroy.contains(&id) {
                Err(json!({"type": "willDestroy"}))
            } else {
                self.update(object, &id, &patch, created_refs)
            };
            match result {
                Ok(()) => {
                    updated.insert(id, Value::Null);
                }
                Err(error) => {
                    not_updated.insert(id, error);
                }
            }
        }

        let mut destroyed = Vec::new();
        let mut not_destroyed = Map::new();
        for id in destroy {
            match self.destroy(object, &id) {
                Ok(()) => destroyed.push(Value::String(id)),
                Err(error) => {
                    not_destroyed.insert(id, error);
                }
            }
        }

        let none_if_empty = |map: Map<String, Value>| {
            if map.is_empty() {
                Value::Null
            } else {
                Value::Object(map)
            }
        };
        Ok(json!({
            "accountId": super::ACCOUNT_ID,
            "oldState": old_state,
            "newState": self.state_string(),
            "created": none_if_empty(created),
            "updated": none_if_empty(updated),
            "destroyed": if destroyed.is_empty() { Value::Null } else { Value::Array(destroyed) },
            "notCreated": none_if_empty(not_created),
            "notUpdated": none_if_empty(not_updated),
            "notDestroyed": none_if_empty(not_destroyed),
        }))
    }

    fn create(
        &mut self,
        object: &'static str,
        value: &Value,
        refs: &HashMap<String, String>,
    ) -> Result<(String, Map<String, Value>), SetError> {
        if object == "x:SystemSettings" {
            // Upstream turns a create on a singleton into an update of it.
            self.update(object, "singleton", value, refs)?;
            return Ok(("singleton".into(), Map::new()));
        }
        let input = value
            .as_object()
            .ok_or_else(|| invalid_patch("", "Invalid object"))?;
        let tag = input.get("@type").and_then(Value::as_str);
        let has_variants = super::schema::variants(object).is_some();
        if has_variants && tag.is_none() {
            return Err(invalid_properties("@type", "Missing object type"));
        }
        let schema = object_schema(object, tag)
            .ok_or_else(|| invalid_patch("@type", &format!("Invalid type for {object}")))?;
        let mut stored =
            super::validate::check_fields(schema, input, "", Mode::Client, &Refs(refs))?;
        if let Some(tag) = tag {
            stored.insert("@type".into(), Value::String(tag.to_owned()));
        }
        let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
        if schema.prop("createdAt").is_some() {
            stored.insert("createdAt".into(), Value::String(now));
        }
        self.finish(object, None, &mut stored)?;

        let id = self.new_id();
        let mut extra = Map::new();
        if object == "x:DkimSignature" {
            let der = pseudo_bytes(&id, 44);
            let body = base64::engine::general_purpose::STANDARD.encode(der);
            let pem = format!("-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n");
            stored.insert("publicKey".into(), Value::String(pem));
        }
        if let Some(created_at) = stored.get("createdAt") {
            extra.insert("createdAt".into(), created_at.clone());
        }
        let schedules_dkim = object == "x:Domain"
            && stored.get("dkimManagement").and_then(|m| m.get("@type"))
                == Some(&json!("Automatic"));
        self.insert(object, id.clone(), stored);
        if schedules_dkim {
            self.pending.push((id.clone(), 0));
        }
        Ok((id, extra))
    }

    fn update(
        &mut self,
        object: &'static str,
        id: &str,
        patch: &Value,
        refs: &HashMap<String, String>,
    ) -> Result<(), SetError> {
        let patch = patch
            .as_object()
            .ok_or_else(|| invalid_patch("", "Invalid patch"))?;
        let current = if object == "x:SystemSettings" {
            if id != "singleton" {
                return Err(json!({"type": "notFound"}));
            }
            self.settings.clone()
        } else {
            self.find(object, id)
                .ok_or_else(|| json!({"type": "notFound"}))?
                .value
                .clone()
        };
        let tag = current
            .get("@type")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let schema = object_schema(object, tag.as_deref()).expect("stored objects have a schema");
        let mut next = current.clone();
        for (key, value) in patch {
            let mut segments = key.split('/');
            let first = segments.next().unwrap_or_default();
            let rest: Vec<&str> = segments.collect();
            if first == "@type" {
                if value.as_str() != tag.as_deref() {
                    return Err(invalid_properties(
                        "@type",
                        "Cannot change the type of an existing object.",
                    ));
                }
                continue;
            }
            if first == "id" {
                return Err(invalid_patch(key, "Cannot modify server set property"));
            }
            let prop = schema
                .prop(first)
                .ok_or_else(|| invalid_patch(key, "Invalid property"))?;
            match prop.update {
                super::schema::Update::ServerSet => {
                    return Err(invalid_patch(key, "Cannot modify server set property"))
                }
                super::schema::Update::Immutable => {
                    return Err(invalid_patch(key, "Cannot modify read-only property"))
                }
                super::schema::Update::Mutable => {}
            }
            let checked = if rest.is_empty() {
                check_prop(prop, value, first, Mode::Client, &Refs(refs))?
            } else {
                let mut whole = current.get(first).cloned().unwrap_or(json!({}));
                set_pointer(&mut whole, &rest, value.clone(), prop.ty)
                    .map_err(|message| invalid_patch(key, message))?;
                check_prop(prop, &whole, first, Mode::Recheck, &Refs(refs))?
            };
            next.insert(first.to_owned(), checked);
        }
        keep_masked_secrets(&current, &mut next);
        self.finish(object, Some(id), &mut next)?;

        let turns_on_dkim = object == "x:Domain"
            && current.get("dkimManagement").and_then(|m| m.get("@type"))
                != Some(&json!("Automatic"))
            && next.get("dkimManagement").and_then(|m| m.get("@type")) == Some(&json!("Automatic"));
        if object == "x:SystemSettings" {
            self.settings = next;
        } else if let Some(stored) = self
            .objects
            .get_mut(object)
            .and_then(|list| list.iter_mut().find(|s| s.id == id))
        {
            stored.value = next;
        }
        self.state += 1;
        if turns_on_dkim {
            self.pending.push((id.to_owned(), 0));
        }
        Ok(())
    }

    /// Required fields, value rules, foreign keys and primary keys of a created or updated
    /// object (`id` is `None` on create).
    fn finish(
        &self,
        object: &str,
        id: Option<&str>,
        value: &mut Map<String, Value>,
    ) -> Result<(), SetError> {
        let tag = value.get("@type").and_then(Value::as_str);
        let schema = object_schema(object, tag).expect("schema");
        for prop in schema.props.iter().filter(|p| p.required) {
            if is_empty(value.get(prop.name)) {
                return Err(required(prop.name));
            }
        }
        let others = |kind: &'static str| {
            self.objects[kind]
                .iter()
                .filter(move |s| Some(s.id.as_str()) != id || kind != object)
        };
        let foreign = |kind: &str, target: &Value, what: &str| -> Result<(), SetError> {
            let target = target.as_str().unwrap_or_default();
            if self.find(kind, target).is_some() {
                Ok(())
            } else {
                Err(json!({
                    "type": "invalidForeignKey",
                    "objectId": {"object": what, "id": target},
                }))
            }
        };
        match object {
            "x:Domain" => {
                let name = value["name"].as_str().unwrap_or_default().to_owned();
                if !is_domain_name(&name) {
                    return Err(invalid_patch("name", "Invalid domain name"));
                }
                let aliases: Vec<String> = value["aliases"]
                    .as_object()
                    .map(|a| a.keys().cloned().collect())
                    .unwrap_or_default();
                if let Some(bad) = aliases.iter().find(|a| !is_domain_name(a)) {
                    return Err(invalid_patch(
                        &format!("aliases/{bad}"),
                        "Invalid domain name",
                    ));
                }
                for other in others("x:Domain") {
                    let other_names: Vec<&str> = std::iter::once(other.value["name"].as_str())
                        .flatten()
                        .chain(
                            other.value["aliases"]
                                .as_object()
                                .into_iter()
                                .flat_map(|a| a.keys().map(String::as_str)),
                        )
                        .collect();
                    let conflict = |property: &str| {
                        json!({
                            "type": "primaryKeyViolation",
                            "properties": [property],
                            "objectId": {"object": "Domain", "id": other.id},
                        })
                    };
                    if other_names.contains(&name.as_str()) {
                        return Err(conflict("name"));
                    }
                    if aliases.iter().any(|a| other_names.contains(&a.as_str())) {
                        return Err(conflict("aliases"));
                    }
                }
            }
            "x:Account" | "x:MailingList" => {
                let name = value["name"].as_str().unwrap_or_default().to_lowercase();
                if !is_local_part(&name) {
                    return Err(invalid_patch("name", "Invalid email local part"));
                }
                value.insert("name".into(), Value::String(name.clone()));
                foreign("x:Domain", &value["domainId"], "Domain")?;
                if let Some(credentials) =
                    value.get_mut("credentials").and_then(Value::as_object_mut)
                {
                    // Upstream numbers credentials itself; a new one gets the next number.
                    let mut next = credentials
                        .values()
                        .filter_map(|c| c.get("credentialId")?.as_str()?.parse::<u64>().ok())
                        .max()
                        .map_or(0, |max| max + 1);
                    for credential in credentials.values_mut() {
                        if credential.get("credentialId").is_none() {
                            credential["credentialId"] = Value::String(next.to_string());
                            next += 1;
                        }
                    }
                }
                let mut addresses = vec![(
                    name,
                    value["domainId"].as_str().unwrap_or_default().to_owned(),
                )];
                if let Some(aliases) = value.get_mut("aliases").and_then(Value::as_object_mut) {
                    for alias in aliases.values_mut() {
                        let local = alias["name"].as_str().unwrap_or_default().to_lowercase();
                        if !is_local_part(&local) {
                            return Err(invalid_patch("aliases", "Invalid email local part"));
                        }
                        alias["name"] = Value::String(local.clone());
                        foreign("x:Domain", &alias["domainId"], "Domain")?;
                        addresses.push((
                            local,
                            alias["domainId"].as_str().unwrap_or_default().to_owned(),
                        ));
                    }
                }
                for group in value
                    .get("memberGroupIds")
                    .and_then(Value::as_object)
                    .map(|g| g.keys().cloned().collect::<Vec<_>>())
                    .unwrap_or_default()
                {
                    let is_group = self
                        .find("x:Account", &group)
                        .is_some_and(|g| g.value["@type"] == "Group");
                    if !is_group {
                        return Err(json!({
                            "type": "invalidForeignKey",
                            "objectId": {"object": "Account", "id": group},
                        }));
                    }
                }
                // Upstream keeps one global (local part, domain) key across accounts, mailing
                // lists and every alias of either.
                for kind in ["x:Account", "x:MailingList"] {
                    for other in others(kind) {
                        let mut taken = vec![(
                            other.value["name"].as_str(),
                            other.value["domainId"].as_str(),
                        )];
                        if let Some(aliases) = other.value["aliases"].as_object() {
                            taken.extend(
                                aliases
                                    .values()
                                    .map(|a| (a["name"].as_str(), a["domainId"].as_str())),
                            );
                        }
                        if addresses
                            .iter()
                            .any(|(l, d)| taken.contains(&(Some(l.as_str()), Some(d.as_str()))))
                        {
                            return Err(json!({
                                "type": "primaryKeyViolation",
                                "properties": ["email"],
                                "objectId": {"object": &kind[2..], "id": other.id},
                            }));
                        }
                    }
                }
            }
            "x:DkimSignature" => foreign("x:Domain", &value["domainId"], "Domain")?,
            "x:SystemSettings" => {
                if let Some(domain) = value.get("defaultDomainId") {
                    foreign("x:Domain", domain, "Domain")?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn destroy(&mut self, object: &str, id: &str) -> Result<(), SetError> {
        if object == "x:SystemSettings" {
            return Err(json!({"type": "singleton"}));
        }
        if self.find(object, id).is_none() {
            return Err(json!({"type": "notFound"}));
        }
        let target = Value::String(id.to_owned());
        let mut linked = Vec::new();
        if object == "x:Domain" {
            for kind in ["x:Account", "x:MailingList", "x:DkimSignature"] {
                for other in &self.objects[kind] {
                    let via_alias = other
                        .value
                        .get("aliases")
                        .and_then(Value::as_object)
                        .is_some_and(|a| {
                            a.values()
                                .any(|alias| alias.get("domainId") == Some(&target))
                        });
                    if other.value.get("domainId") == Some(&target) || via_alias {
                        linked.push(json!({"object": &kind[2..], "id": other.id}));
                    }
                }
            }
            if self.settings.get("defaultDomainId") == Some(&target) {
                linked.push(json!({"object": "SystemSettings", "id": "singleton"}));
            }
        }
        if object == "x:Account" {
            for other in &self.objects["x:Account"] {
                if other
                    .value
                    .get("memberGroupIds")
                    .and_then(Value::as_object)
                    .is_some_and(|g| g.contains_key(id))
                {
                    linked.push(json!({"object": "Account", "id": other.id}));
                }
            }
        }
        if !linked.is_empty() {
            return Err(json!({
                "type": "objectIsLinked",
                "objectId": {"object": &object[2..], "id": id},
                "linkedObjects": linked,
            }));
        }
        if let Some(list) = self.objects.get_mut(object) {
            list.retain(|s| s.id != id);
        }
        if object == "x:Account" {
            self.address_books.remove_account(id);
        }
        self.pending.retain(|(domain, _)| domain != id);
        self.state += 1;
        Ok(())
    }
}

/// Writes `value` at `path` inside a collection property (`null` removes the entry).
fn set_pointer(whole: &mut Value, path: &[&str], value: Value, ty: Ty) -> Result<(), &'static str> {
    if !matches!(ty, Ty::Set(_) | Ty::List(_) | Ty::Map(_, _) | Ty::Object(_)) {
        return Err("Invalid JSON Pointer path");
    }
    let mut node = whole;
    for (i, segment) in path.iter().enumerate() {
        let map = node.as_object_mut().ok_or("Invalid JSON Pointer path")?;
        if i + 1 == path.len() {
            if value.is_null() {
                map.remove(*segment);
            } else {
                map.insert((*segment).to_owned(), value);
            }
            return Ok(());
        }
        node = map.get_mut(*segment).ok_or("Invalid JSON Pointer path")?;
    }
    Ok(())
}

/// A credential written back with the masked secret keeps the stored one, as upstream does.
fn keep_masked_secrets(current: &Map<String, Value>, next: &mut Map<String, Value>) {
    let (Some(Value::Object(old)), Some(Value::Object(new))) =
        (current.get("credentials"), next.get_mut("credentials"))
    else {
        return;
    };
    for (key, credential) in new.iter_mut() {
        if credential.get("secret") == Some(&json!(MASKED_PASSWORD)) {
            if let Some(secret) = old.get(key).and_then(|c| c.get("secret")) {
                credential["secret"] = secret.clone();
            }
        }
    }
}
