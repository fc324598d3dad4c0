//! A small JMAP client (RFC 8620) for Stalwart's management objects: session discovery,
//! Basic auth, one request of method calls, and the mapping of every failure to
//! [`MailError`].

use std::time::Duration;

use dezky_commands::ports::mail::{MailError, RejectionKind};
use dezky_commands::ports::Secret;
use reqwest::{StatusCode, Url};
use serde_json::{json, Map, Value};
use tokio::sync::Mutex;

/// JMAP core.
pub(crate) const CORE_CAPABILITY: &str = "urn:ietf:params:jmap:core";
/// Stalwart's management objects (`x:Domain`, `x:Account`, …).
pub(crate) const STALWART_CAPABILITY: &str = "urn:stalwart:jmap";
/// JMAP for Contacts (RFC 9610): `AddressBook` objects in a user's own account.
pub(crate) const CONTACTS_CAPABILITY: &str = "urn:ietf:params:jmap:contacts";

/// What a session tells the client: where to post and which account holds the objects.
#[derive(Debug, Clone)]
struct Session {
    api_url: Url,
    account_id: String,
}

/// A connection to one Stalwart server.
pub(crate) struct Jmap {
    http: reqwest::Client,
    base: Url,
    user: String,
    secret: Secret,
    timeout: Duration,
    /// Fetched on first use and kept; dropped when the server refuses the credentials, so a
    /// rotated secret or a moved account is picked up.
    session: Mutex<Option<Session>>,
    /// Account ids by address, from earlier look-ups, so an update to a known mailbox is one
    /// request (see `StalwartMail`'s `update_account`).
    pub(crate) account_ids: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

/// Whether a request can change the server; decides how a lost answer is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Only reads: a lost answer means nothing happened, so it is retryable.
    Read,
    /// Writes: a lost answer may follow an applied change.
    Write,
}

impl Jmap {
    pub(crate) fn new(
        http: reqwest::Client,
        base: Url,
        user: String,
        secret: Secret,
        timeout: Duration,
    ) -> Self {
        Self {
            http,
            base,
            user,
            secret,
            timeout,
            session: Mutex::new(None),
            account_ids: std::sync::Mutex::default(),
        }
    }

    async fn session(&self) -> Result<Session, MailError> {
        let mut cached = self.session.lock().await;
        if let Some(session) = cached.as_ref() {
            return Ok(session.clone());
        }
        let url = self
            .base
            .join(".well-known/jmap")
            .map_err(|e| MailError::Protocol(format!("session URL: {e}")))?;
        let response = self
            .http
            .get(url)
            .basic_auth(&self.user, Some(self.secret.expose()))
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| transport(&e, Effect::Read))?;
        let body = read_body(response, Effect::Read).await?;
        let api_url = body["apiUrl"]
            .as_str()
            .ok_or_else(|| MailError::Protocol("the session has no apiUrl".into()))?;
        // The session's URLs name the server's public host (they are written for mail
        // clients), while the management listener is reached where the configuration says:
        // keep the configured origin and take only the path.
        let api_path = self
            .base
            .join(api_url)
            .map_err(|e| MailError::Protocol(format!("apiUrl {api_url:?}: {e}")))?;
        let mut api_url = self.base.clone();
        api_url.set_path(api_path.path());
        let account_id = body["primaryAccounts"][STALWART_CAPABILITY]
            .as_str()
            .map(str::to_owned)
            .or_else(|| {
                body["accounts"]
                    .as_object()?
                    .iter()
                    .find_map(|(id, account)| {
                        account["accountCapabilities"]
                            .get(STALWART_CAPABILITY)
                            .map(|_| id.clone())
                    })
            })
            .ok_or_else(|| {
                MailError::Protocol(format!(
                    "the session offers no account with {STALWART_CAPABILITY}"
                ))
            })?;
        let session = Session {
            api_url,
            account_id,
        };
        *cached = Some(session.clone());
        Ok(session)
    }

    /// Sends `calls` (`[name, arguments, callId]`, `accountId` added to each) as one request
    /// and returns the method responses.
    pub(crate) async fn request(
        &self,
        calls: Vec<(&str, Value, &str)>,
        effect: Effect,
    ) -> Result<Responses, MailError> {
        self.send(None, &[CORE_CAPABILITY, STALWART_CAPABILITY], calls, effect)
            .await
    }

    /// Like [`Jmap::request`], for the data of the user account `account_id` (its address
    /// books) under `using`: the admin acts on the user's behalf, which its `impersonate`
    /// permission allows.
    pub(crate) async fn request_for(
        &self,
        account_id: &str,
        using: &[&str],
        calls: Vec<(&str, Value, &str)>,
        effect: Effect,
    ) -> Result<Responses, MailError> {
        self.send(Some(account_id), using, calls, effect).await
    }

    async fn send(
        &self,
        account_id: Option<&str>,
        using: &[&str],
        calls: Vec<(&str, Value, &str)>,
        effect: Effect,
    ) -> Result<Responses, MailError> {
        let session = self.session().await?;
        let account_id = account_id.unwrap_or(&session.account_id);
        let method_calls: Vec<Value> = calls
            .into_iter()
            .map(|(name, mut args, id)| {
                if let Some(args) = args.as_object_mut() {
                    args.insert("accountId".into(), json!(account_id));
                }
                json!([name, args, id])
            })
            .collect();
        let response = self
            .http
            .post(session.api_url.clone())
            .basic_auth(&self.user, Some(self.secret.expose()))
            .timeout(self.timeout)
            .json(&json!({
                "using": using,
                "methodCalls": method_calls,
            }))
            .send()
            .await
            .map_err(|e| transport(&e, effect))?;
        if response.status() == StatusCode::UNAUTHORIZED {
            *self.session.lock().await = None;
        }
        let body = read_body(response, effect).await?;
        let list = body["methodResponses"]
            .as_array()
            .ok_or_else(|| MailError::Protocol("no methodResponses".into()))?;
        let mut responses = Vec::with_capacity(list.len());
        for entry in list {
            let (Some(name), Some(id)) = (entry[0].as_str(), entry[2].as_str()) else {
                return Err(MailError::Protocol(format!("malformed response {entry}")));
            };
            responses.push((name.to_owned(), entry[1].clone(), id.to_owned()));
        }
        Ok(Responses(responses))
    }
}

/// A transport failure: nothing sent is retryable; something sent may have been applied.
fn transport(error: &reqwest::Error, effect: Effect) -> MailError {
    let text = error_chain(error);
    if error.is_connect() || effect == Effect::Read {
        MailError::Unavailable(text)
    } else {
        MailError::OutcomeUnknown(text)
    }
}

/// An error with its sources, because reqwest's own message hides the cause ("error sending
/// request") that tells an operator what happened.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Reads a JSON answer, mapping HTTP statuses to errors.
async fn read_body(response: reqwest::Response, effect: Effect) -> Result<Value, MailError> {
    let status = response.status();
    let bytes = response.bytes().await;
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        return Err(MailError::Unauthorized);
    }
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        // Stalwart answers 5xx before it runs any method call.
        return Err(MailError::Unavailable(format!("HTTP {status}")));
    }
    let bytes = bytes.map_err(|e| transport(&e, effect))?;
    if !status.is_success() {
        return Err(MailError::Protocol(format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&bytes)
        )));
    }
    serde_json::from_slice(&bytes).map_err(|e| MailError::Protocol(format!("not JSON: {e}")))
}

/// The method responses of one request.
pub(crate) struct Responses(Vec<(String, Value, String)>);

impl Responses {
    /// The arguments of the response to call `id`; a method-level error becomes a
    /// [`MailError`].
    pub(crate) fn get(&self, id: &str) -> Result<&Value, MailError> {
        let (name, args, _) = self
            .0
            .iter()
            .find(|(_, _, call)| call == id)
            .ok_or_else(|| MailError::Protocol(format!("no response to call {id}")))?;
        if name != "error" {
            return Ok(args);
        }
        let kind = args["type"].as_str().unwrap_or_default();
        let detail = format!("method error {args}");
        // RFC 8620 §3.6.2: a method that fails has changed nothing, except for
        // serverPartialFail.
        Err(match kind {
            "serverUnavailable" | "serverFail" => MailError::Unavailable(detail),
            "serverPartialFail" => MailError::OutcomeUnknown(detail),
            _ => MailError::Protocol(detail),
        })
    }

    /// The `ids` of a `/query` response.
    pub(crate) fn ids(&self, id: &str) -> Result<Vec<String>, MailError> {
        let args = self.get(id)?;
        args["ids"]
            .as_array()
            .and_then(|ids| ids.iter().map(|i| i.as_str().map(str::to_owned)).collect())
            .ok_or_else(|| MailError::Protocol(format!("query {id} without ids: {args}")))
    }

    /// The `list` of a `/get` response.
    pub(crate) fn list(&self, id: &str) -> Result<Vec<Map<String, Value>>, MailError> {
        let args = self.get(id)?;
        args["list"]
            .as_array()
            .and_then(|list| list.iter().map(|o| o.as_object().cloned()).collect())
            .ok_or_else(|| MailError::Protocol(format!("get {id} without list: {args}")))
    }

    /// The server id of the object created as `creation_id` by `/set` call `id`.
    pub(crate) fn created(&self, id: &str, creation_id: &str) -> Result<String, MailError> {
        let args = self.get(id)?;
        if let Some(created) = args["created"][creation_id]["id"].as_str() {
            return Ok(created.to_owned());
        }
        Err(match args["notCreated"].get(creation_id) {
            Some(error) => set_error(error),
            None => MailError::Protocol(format!("{creation_id} neither created nor not: {args}")),
        })
    }

    /// Whether `/set` call `id` updated `object`.
    pub(crate) fn updated(&self, id: &str, object: &str) -> Result<(), MailError> {
        let args = self.get(id)?;
        if args["updated"]
            .as_object()
            .is_some_and(|u| u.contains_key(object))
        {
            return Ok(());
        }
        Err(match args["notUpdated"].get(object) {
            Some(error) => set_error(error),
            None => MailError::Protocol(format!("{object} neither updated nor not: {args}")),
        })
    }

    /// Whether `/set` call `id` destroyed `object`; one already gone counts as destroyed.
    pub(crate) fn destroyed(&self, id: &str, object: &str) -> Result<(), MailError> {
        let args = self.get(id)?;
        if args["destroyed"]
            .as_array()
            .is_some_and(|d| d.iter().any(|i| i == object))
        {
            return Ok(());
        }
        match args["notDestroyed"].get(object) {
            Some(error) if error["type"] == "notFound" => Ok(()),
            Some(error) => Err(set_error(error)),
            None => Err(MailError::Protocol(format!(
                "{object} neither destroyed nor not: {args}"
            ))),
        }
    }
}

/// A JMAP SetError as Stalwart's registry writes it → the port's error.
pub(crate) fn set_error(error: &Value) -> MailError {
    let kind = error["type"].as_str().unwrap_or_default();
    let detail = error.to_string();
    let rejected = |kind| MailError::Rejected {
        kind,
        detail: detail.clone(),
    };
    match kind {
        "primaryKeyViolation" => MailError::Conflict(detail),
        "objectIsLinked" => MailError::InUse(detail),
        "invalidPatch" | "validationFailed" | "invalidProperties" | "tooLarge" => {
            rejected(RejectionKind::InvalidValue)
        }
        "invalidForeignKey" => rejected(RejectionKind::UnknownReference),
        "notFound" => rejected(RejectionKind::NotFound),
        _ => rejected(RejectionKind::Other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_set_error_stalwart_returns_has_a_typed_error() {
        let cases = [
            (
                json!({"type": "invalidPatch", "properties": ["name"]}),
                "rejected InvalidValue",
            ),
            (
                json!({"type": "validationFailed", "validationErrors": []}),
                "rejected InvalidValue",
            ),
            (
                json!({"type": "invalidProperties", "properties": ["@type"]}),
                "rejected InvalidValue",
            ),
            (
                json!({"type": "invalidForeignKey", "objectId": {"object": "Domain", "id": "x"}}),
                "rejected UnknownReference",
            ),
            (json!({"type": "notFound"}), "rejected NotFound"),
            (json!({"type": "singleton"}), "rejected Other"),
            (json!({"type": "primaryKeyViolation"}), "conflict"),
            (json!({"type": "objectIsLinked"}), "in use"),
        ];
        for (error, expected) in cases {
            let got = match set_error(&error) {
                MailError::Rejected { kind, detail } => {
                    assert!(detail.contains(error["type"].as_str().unwrap_or("?")));
                    format!("rejected {kind:?}")
                }
                MailError::Conflict(_) => "conflict".into(),
                MailError::InUse(_) => "in use".into(),
                other => format!("{other:?}"),
            };
            assert_eq!(got, expected, "{error}");
        }
    }

    #[test]
    fn method_errors_say_whether_anything_changed() {
        let responses = Responses(vec![
            ("error".into(), json!({"type": "serverFail"}), "a".into()),
            (
                "error".into(),
                json!({"type": "serverPartialFail"}),
                "b".into(),
            ),
            ("error".into(), json!({"type": "unknownMethod"}), "c".into()),
        ]);
        assert!(matches!(responses.get("a"), Err(MailError::Unavailable(_))));
        assert!(matches!(
            responses.get("b"),
            Err(MailError::OutcomeUnknown(_))
        ));
        assert!(matches!(responses.get("c"), Err(MailError::Protocol(_))));
        assert!(matches!(responses.get("d"), Err(MailError::Protocol(_))));
    }
}
