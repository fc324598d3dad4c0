//! Checks a client's JSON against the fake's property tables the way Stalwart's registry
//! patcher does: an unknown property, a server-set property, a value of the wrong type or a
//! collection sent as an array is an `invalidPatch` naming the JSON pointer; a required field
//! left empty is a `validationFailed` with `Required`.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::schema::{schema, variants, Prop, Schema, Ty, Update};

/// A JMAP SetError object, ready to go into `notCreated`/`notUpdated`/`notDestroyed`.
pub type SetError = Value;

/// `invalidPatch` for the property at `path`, as upstream's `PatchError` serializes.
pub fn invalid_patch(path: &str, message: &str) -> SetError {
    json!({"type": "invalidPatch", "description": message, "properties": [path]})
}

/// `validationFailed` with one `Required` entry.
pub fn required(property: &str) -> SetError {
    json!({
        "type": "validationFailed",
        "validationErrors": [{"type": "Required", "property": property}],
    })
}

/// `invalidProperties` naming `property`.
pub fn invalid_properties(property: &str, description: &str) -> SetError {
    json!({"type": "invalidProperties", "description": description, "properties": [property]})
}

/// Whether a nested server-set field already stored may stay in the value being checked
/// (re-checking a property after a JSON-pointer patch) or is the client's and so refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The client wrote the whole value.
    Client,
    /// A stored value with a patch applied inside it.
    Recheck,
}

/// Resolves `#creationId` references to ids created earlier in the same request.
pub struct Refs<'a>(pub &'a HashMap<String, String>);

impl Refs<'_> {
    fn resolve(&self, value: &str, path: &str) -> Result<String, SetError> {
        match value.strip_prefix('#') {
            Some(creation_id) => self
                .0
                .get(creation_id)
                .cloned()
                .ok_or_else(|| invalid_patch(path, "Unresolved creation id reference")),
            None => Ok(value.to_owned()),
        }
    }
}

/// Checks every property of `object` against `schema` and fills the schema's defaults;
/// `@type` is left to the caller.
pub fn check_fields(
    schema: &Schema,
    object: &Map<String, Value>,
    path: &str,
    mode: Mode,
    refs: &Refs<'_>,
) -> Result<Map<String, Value>, SetError> {
    let mut out = Map::new();
    for (key, value) in object {
        if key == "@type" {
            continue;
        }
        let here = join(path, key);
        let Some(prop) = schema.prop(key) else {
            return Err(invalid_patch(&here, "Invalid property"));
        };
        if prop.update == Update::ServerSet {
            if mode == Mode::Recheck {
                out.insert(key.clone(), value.clone());
                continue;
            }
            return Err(invalid_patch(&here, "Cannot modify server set property"));
        }
        out.insert(key.clone(), check_prop(prop, value, &here, mode, refs)?);
    }
    let defaults: Map<String, Value> =
        serde_json::from_str(schema.defaults).expect("fake schema defaults are JSON");
    for (key, value) in defaults {
        if !out.contains_key(&key) {
            let prop = schema.prop(&key).expect("a default names a property");
            let value = check_prop(prop, &value, &join(path, &key), Mode::Client, refs)?;
            out.insert(key, value);
        }
    }
    if !path.is_empty() {
        for prop in schema.props.iter().filter(|p| p.required) {
            if is_empty(out.get(prop.name)) {
                return Err(required(&join(path, prop.name)));
            }
        }
    }
    Ok(out)
}

/// Checks one property's value.
pub fn check_prop(
    prop: &Prop,
    value: &Value,
    path: &str,
    mode: Mode,
    refs: &Refs<'_>,
) -> Result<Value, SetError> {
    if value.is_null() {
        return if prop.nullable {
            Ok(Value::Null)
        } else {
            Err(invalid_patch(path, "Invalid value for property."))
        };
    }
    check(&prop.ty, value, path, mode, refs)
}

/// Checks a value against a type and returns it as the server stores it.
pub fn check(
    ty: &Ty,
    value: &Value,
    path: &str,
    mode: Mode,
    refs: &Refs<'_>,
) -> Result<Value, SetError> {
    match ty {
        Ty::Str(format) => {
            let text = value
                .as_str()
                .filter(|s| !s.is_empty())
                .ok_or_else(|| invalid_patch(path, "Invalid value for property."))?;
            if *format == "emailAddress" && !is_email(text) {
                return Err(invalid_patch(path, "Invalid email address"));
            }
            Ok(Value::String(text.to_owned()))
        }
        Ty::Bool => value.as_bool().map(Value::Bool).ok_or_else(|| {
            invalid_patch(
                path,
                "Invalid value for boolean property (expected true or false)",
            )
        }),
        Ty::Num(_) => value.as_u64().map(Value::from).ok_or_else(|| {
            invalid_patch(
                path,
                "Invalid value for unsigned integer property (expected non-negative integer)",
            )
        }),
        Ty::DateTime => value
            .as_str()
            .filter(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok())
            .map(|s| Value::String(s.to_owned()))
            .ok_or_else(|| invalid_patch(path, "Invalid UTC date time")),
        Ty::Enum(name, values) => value
            .as_str()
            .filter(|s| values.contains(s))
            .map(|s| Value::String(s.to_owned()))
            .ok_or_else(|| {
                invalid_patch(
                    path,
                    &format!("Invalid value {value} for enum type {name}."),
                )
            }),
        Ty::Id(_) => {
            let id = value
                .as_str()
                .filter(|s| !s.is_empty())
                .ok_or_else(|| invalid_patch(path, "Invalid object id"))?;
            Ok(Value::String(refs.resolve(id, path)?))
        }
        Ty::Set(class) => {
            let items = as_collection(value, path)?;
            let mut out = Map::new();
            for (key, flag) in items {
                if flag != &Value::Bool(true) {
                    return Err(invalid_patch(path, "Invalid value for object property"));
                }
                let key = check(class, &Value::String(key.clone()), path, mode, refs)?;
                out.insert(
                    key.as_str().unwrap_or_default().to_owned(),
                    Value::Bool(true),
                );
            }
            Ok(Value::Object(out))
        }
        Ty::List(object) => {
            let items = as_collection(value, path)?;
            let mut indexed = Vec::new();
            for (key, item) in items {
                let index: u64 = key
                    .parse()
                    .map_err(|_| invalid_patch(path, "Invalid key for object property"))?;
                indexed.push((index, key, item));
            }
            indexed.sort_by_key(|(index, _, _)| *index);
            let mut out = Map::new();
            // Upstream stores a list and serializes it with fresh indexes 0, 1, …
            for (position, (_, key, item)) in indexed.into_iter().enumerate() {
                let checked = check(&Ty::Object(object), item, &join(path, key), mode, refs)?;
                out.insert(position.to_string(), checked);
            }
            Ok(Value::Object(out))
        }
        Ty::Object(name) => {
            let object = value
                .as_object()
                .ok_or_else(|| invalid_patch(path, "Invalid value for object property"))?;
            if let Some(variants) = variants(name) {
                let here = join(path, "@type");
                let tag = object
                    .get("@type")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid_patch(&here, "Missing @type"))?;
                let Some((_, variant_schema)) = variants
                    .variants
                    .iter()
                    .find(|(variant, _)| *variant == tag)
                else {
                    return Err(invalid_patch(
                        &here,
                        &format!(
                            "Invalid value \"{tag}\" for {name} (or not modelled by the fake)"
                        ),
                    ));
                };
                let mut out = match variant_schema {
                    Some(schema_name) => {
                        let schema = schema(schema_name).expect("variant schema is in the table");
                        check_fields(schema, object, path, mode, refs)?
                    }
                    None => {
                        if let Some(key) = object.keys().find(|k| *k != "@type") {
                            return Err(invalid_patch(&join(path, key), "Invalid property"));
                        }
                        Map::new()
                    }
                };
                out.insert("@type".into(), Value::String(tag.to_owned()));
                Ok(Value::Object(out))
            } else {
                let schema = schema(name).expect("object schema is in the table");
                if object.contains_key("@type") {
                    return Err(invalid_patch(&join(path, "@type"), "Invalid property"));
                }
                Ok(Value::Object(check_fields(
                    schema, object, path, mode, refs,
                )?))
            }
        }
        Ty::Map(key_ty, value_ty) => {
            let items = as_collection(value, path)?;
            let mut out = Map::new();
            for (key, item) in items {
                check(key_ty, &Value::String(key.clone()), path, mode, refs)?;
                out.insert(
                    key.clone(),
                    check(value_ty, item, &join(path, key), mode, refs)?,
                );
            }
            Ok(Value::Object(out))
        }
    }
}

fn as_collection<'v>(value: &'v Value, path: &str) -> Result<&'v Map<String, Value>, SetError> {
    // Upstream's collections are JSON objects; an array is refused.
    value
        .as_object()
        .ok_or_else(|| invalid_patch(path, "Invalid value for object property"))
}

/// `a/b` from a path and a key, JSON-pointer style.
pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}/{key}")
    }
}

/// Absent, `null` or the empty string.
pub fn is_empty(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        _ => false,
    }
}

/// A plausible `local@domain.tld`.
pub fn is_email(text: &str) -> bool {
    match text.split_once('@') {
        Some((local, domain)) => is_local_part(local) && is_domain_name(domain),
        None => false,
    }
}

/// What upstream's email-local-part validator lets through.
pub fn is_local_part(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && !text.starts_with('.')
        && !text.ends_with('.')
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-+".contains(c))
}

/// A lower-case DNS name with at least two labels whose top-level label is not one that the
/// public suffix list lacks (upstream accepts PSL TLDs plus `test`, `localhost`, `local`,
/// `internal`; `.example` and `.invalid` are refused there too).
pub fn is_domain_name(text: &str) -> bool {
    let labels: Vec<&str> = text.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
        && !matches!(labels.last(), Some(&("example" | "invalid")))
}

/// The stored schema behind an object: the single schema, or the variant's.
pub fn object_schema(object: &str, tag: Option<&str>) -> Option<&'static Schema> {
    if let Some(variants) = variants(object) {
        let tag = tag?;
        let (_, name) = variants.variants.iter().find(|(v, _)| *v == tag)?;
        schema((*name)?)
    } else {
        schema(object)
    }
}
