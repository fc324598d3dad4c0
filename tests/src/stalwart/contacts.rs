//! The fake's JMAP for Contacts (RFC 9610) address books: `AddressBook/get` and
//! `AddressBook/set` in a *user's* account, which the admin reaches with its `impersonate`
//! permission by naming the user's account id (the `x:Account` id) as `accountId`.
//!
//! What it keeps from upstream: the `urn:ietf:params:jmap:contacts` capability must be in
//! `using` (else `unknownMethod`); an `accountId` that is not a user account is
//! `accountNotFound`; properties are checked against the `AddressBook` table of
//! [`super::schema`] (walked against upstream's schema), so `isDefault` and `myRights`, which
//! are server-set, are refused with `invalidPatch`; an address book is never made the default
//! on its own — only `onSuccessSetIsDefault` (RFC 9610 §2.3), applied once every create and
//! destroy of the call succeeded, makes one the default and clears the flag elsewhere; an
//! account's address books go with the account. Left out: `/changes`, `/query`, updates
//! (answered `notUpdated` `forbidden`), `shareWith`.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::store::Stored;
use super::validate::{check_fields, object_schema, required, Mode, Refs};

/// JMAP for Contacts.
pub const CONTACTS_CAPABILITY: &str = "urn:ietf:params:jmap:contacts";

/// The address books of every user account, by account id.
#[derive(Debug, Default)]
pub struct AddressBooks {
    by_account: HashMap<String, Vec<Stored>>,
    state: u64,
}

type MethodResult = Result<Value, (&'static str, String)>;

impl AddressBooks {
    /// The address books of `account_id`, in creation order.
    pub fn of(&self, account_id: &str) -> Vec<Stored> {
        self.by_account.get(account_id).cloned().unwrap_or_default()
    }

    /// Drops an account's address books (the account is gone).
    pub fn remove_account(&mut self, account_id: &str) {
        if self.by_account.remove(account_id).is_some() {
            self.state += 1;
        }
    }

    fn view(stored: &Stored) -> Value {
        let mut value = stored.value.clone();
        value.insert("id".into(), Value::String(stored.id.clone()));
        // Upstream fills the caller's rights; the owner (impersonated) may do everything.
        value.insert(
            "myRights".into(),
            json!({"mayRead": true, "mayWrite": true, "mayShare": true, "mayDelete": true}),
        );
        Value::Object(value)
    }

    /// `AddressBook/get` in `account_id`.
    pub fn get(&self, account_id: &str, args: &Map<String, Value>) -> MethodResult {
        let books = self.of(account_id);
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
        let (found, not_found): (Vec<&Stored>, Vec<Value>) = match args.get("ids") {
            None | Some(Value::Null) => (books.iter().collect(), vec![]),
            Some(Value::Array(ids)) => {
                let mut found = Vec::new();
                let mut missing = Vec::new();
                for id in ids {
                    let id = id
                        .as_str()
                        .ok_or(("invalidArguments", "ids must be strings".to_owned()))?;
                    match books.iter().find(|b| b.id == id) {
                        Some(book) => found.push(book),
                        None => missing.push(Value::String(id.to_owned())),
                    }
                }
                (found, missing)
            }
            _ => return Err(("invalidArguments", "ids must be an array or null".into())),
        };
        let list: Vec<Value> = found
            .into_iter()
            .map(|book| {
                let mut value = Self::view(book);
                if let (Some(properties), Some(map)) = (&properties, value.as_object_mut()) {
                    map.retain(|k, _| k == "id" || properties.iter().any(|p| p == k));
                }
                value
            })
            .collect();
        Ok(json!({
            "accountId": account_id,
            "state": self.state.to_string(),
            "list": list,
            "notFound": not_found,
        }))
    }

    /// `AddressBook/set` in `account_id`; `new_id` hands out server ids.
    pub fn set(
        &mut self,
        account_id: &str,
        args: &Map<String, Value>,
        created_refs: &mut HashMap<String, String>,
        new_id: &mut dyn FnMut() -> String,
    ) -> MethodResult {
        let schema = object_schema("AddressBook", None).expect("AddressBook schema");
        let old_state = self.state.to_string();
        let object = |key: &str| -> Result<Map<String, Value>, (&'static str, String)> {
            match args.get(key) {
                None | Some(Value::Null) => Ok(Map::new()),
                Some(Value::Object(map)) => Ok(map.clone()),
                _ => Err(("invalidArguments", format!("{key} must be an object"))),
            }
        };
        let create = object("create")?;
        let update = object("update")?;
        let destroy: Vec<String> = match args.get("destroy") {
            None | Some(Value::Null) => vec![],
            Some(Value::Array(ids)) => ids
                .iter()
                .map(|i| i.as_str().map(str::to_owned))
                .collect::<Option<_>>()
                .ok_or(("invalidArguments", "destroy must list ids".to_owned()))?,
            _ => return Err(("invalidArguments", "destroy must be an array".into())),
        };
        let mut created = Map::new();
        let mut not_created = Map::new();
        for (client_id, value) in create {
            let Some(value) = value.as_object() else {
                not_created.insert(
                    client_id,
                    json!({"type": "invalidProperties", "description": "not an object"}),
                );
                continue;
            };
            let checked = check_fields(schema, value, "", Mode::Client, &Refs(&HashMap::new()))
                .and_then(|mut fields| {
                    if fields
                        .get("name")
                        .and_then(Value::as_str)
                        .is_none_or(str::is_empty)
                    {
                        return Err(required("name"));
                    }
                    fields.insert("isDefault".into(), Value::Bool(false));
                    Ok(fields)
                });
            match checked {
                Ok(fields) => {
                    let id = new_id();
                    self.by_account
                        .entry(account_id.to_owned())
                        .or_default()
                        .push(Stored {
                            id: id.clone(),
                            value: fields,
                        });
                    self.state += 1;
                    created_refs.insert(client_id.clone(), id.clone());
                    created.insert(client_id, json!({"id": id, "isDefault": false}));
                }
                Err(error) => {
                    not_created.insert(client_id, error);
                }
            }
        }
        let mut not_updated = Map::new();
        for id in update.keys() {
            not_updated.insert(
                id.clone(),
                json!({"type": "forbidden", "description": "the fake does not update address books"}),
            );
        }
        let mut destroyed = Vec::new();
        let mut not_destroyed = Map::new();
        for id in destroy {
            let books = self.by_account.entry(account_id.to_owned()).or_default();
            if books.iter().any(|b| b.id == id) {
                books.retain(|b| b.id != id);
                self.state += 1;
                destroyed.push(Value::String(id));
            } else {
                not_destroyed.insert(id, json!({"type": "notFound"}));
            }
        }
        // RFC 9610 §2.3: only when everything else in the call succeeded.
        if not_created.is_empty() && not_destroyed.is_empty() {
            if let Some(target) = args.get("onSuccessSetIsDefault").and_then(Value::as_str) {
                let target = match target.strip_prefix('#') {
                    Some(creation_id) => created_refs.get(creation_id).cloned(),
                    None => Some(target.to_owned()),
                };
                let books = self.by_account.entry(account_id.to_owned()).or_default();
                if let Some(target) = target.filter(|t| books.iter().any(|b| b.id == *t)) {
                    for book in books.iter_mut() {
                        book.value
                            .insert("isDefault".into(), Value::Bool(book.id == target));
                    }
                    self.state += 1;
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
            "accountId": account_id,
            "oldState": old_state,
            "newState": self.state.to_string(),
            "created": none_if_empty(created),
            "updated": Value::Null,
            "destroyed": if destroyed.is_empty() { Value::Null } else { Value::Array(destroyed) },
            "notCreated": none_if_empty(not_created),
            "notUpdated": none_if_empty(not_updated),
            "notDestroyed": none_if_empty(not_destroyed),
        }))
    }
}
