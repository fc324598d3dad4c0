//! Typed event metadata: who did what, for which tenant, from where, and why.
//!
//! cqrs-es carries metadata as a `HashMap<String, String>`; this module is the one place that
//! knows the keys, so the ledger, the audit timeline and the exporters all read the same names.

use std::collections::HashMap;

/// Metadata key: the OIDC subject of the acting user or service.
pub const KEY_ACTOR_SUBJECT: &str = "actor_subject";
/// Metadata key: the e-mail address of the acting user, when known.
pub const KEY_ACTOR_EMAIL: &str = "actor_email";
/// Metadata key: the tenant the event belongs to (indexed by the ledger for tenant exports).
pub const KEY_TENANT_ID: &str = "tenant_id";
/// Metadata key: the IP address the request came from.
pub const KEY_REQUEST_IP: &str = "request_ip";
/// Metadata key: the id shared by every event caused by one request or saga run.
pub const KEY_CORRELATION_ID: &str = "correlation_id";
/// Metadata key: the id of the command or event that directly caused this one.
pub const KEY_CAUSATION_ID: &str = "causation_id";
/// Metadata key: when the command was issued (RFC 3339, UTC), as stated by the caller.
pub const KEY_OCCURRED_AT: &str = "occurred_at";

/// The acting principal of a command.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Actor {
    /// Stable subject identifier (the OIDC `sub`, or `system:<name>` for processors).
    pub subject: String,
    /// E-mail address, when the principal is a person.
    pub email: Option<String>,
}

/// Metadata stored with every event of a command.
///
/// Every field is optional at this level because external audit events (Authentik, Stalwart)
/// may lack some of them; the API layer fills all it knows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventMetadata {
    /// Who issued the command.
    pub actor: Option<Actor>,
    /// The tenant the events belong to.
    pub tenant_id: Option<String>,
    /// The client's IP address.
    pub request_ip: Option<String>,
    /// Correlation id shared by everything one request caused.
    pub correlation_id: Option<String>,
    /// Id of the direct cause.
    pub causation_id: Option<String>,
    /// Time the command was issued, RFC 3339 UTC.
    pub occurred_at: Option<String>,
}

/// Metadata that cannot be read back into [`EventMetadata`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MetadataError {
    /// An actor e-mail without a subject: every actor must be identifiable.
    #[error("metadata has an actor e-mail but no actor subject")]
    EmailWithoutSubject,
}

impl EventMetadata {
    /// Encodes the metadata as the string map cqrs-es carries. Absent fields are left out
    /// rather than stored empty, so "not set" and "empty" cannot be confused.
    pub fn to_map(&self) -> HashMap<String, String> {
        let mut map = HashMap::new();
        let mut put = |key: &str, value: &Option<String>| {
            if let Some(value) = value {
                map.insert(key.to_owned(), value.clone());
            }
        };
        if let Some(actor) = &self.actor {
            put(KEY_ACTOR_SUBJECT, &Some(actor.subject.clone()));
            put(KEY_ACTOR_EMAIL, &actor.email);
        }
        put(KEY_TENANT_ID, &self.tenant_id);
        put(KEY_REQUEST_IP, &self.request_ip);
        put(KEY_CORRELATION_ID, &self.correlation_id);
        put(KEY_CAUSATION_ID, &self.causation_id);
        put(KEY_OCCURRED_AT, &self.occurred_at);
        map
    }

    /// Reads metadata back from the cqrs-es string map. Unknown keys are ignored so that
    /// newer writers can add keys without breaking older readers.
    pub fn from_map(map: &HashMap<String, String>) -> Result<Self, MetadataError> {
        let get = |key: &str| map.get(key).cloned();
        let actor = match (get(KEY_ACTOR_SUBJECT), get(KEY_ACTOR_EMAIL)) {
            (Some(subject), email) => Some(Actor { subject, email }),
            (None, Some(_)) => return Err(MetadataError::EmailWithoutSubject),
            (None, None) => None,
        };
        Ok(Self {
            actor,
            tenant_id: get(KEY_TENANT_ID),
            request_ip: get(KEY_REQUEST_IP),
            correlation_id: get(KEY_CORRELATION_ID),
            causation_id: get(KEY_CAUSATION_ID),
            occurred_at: get(KEY_OCCURRED_AT),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_survives_the_string_map_round_trip() {
        let metadata = EventMetadata {
            actor: Some(Actor {
                subject: "user-1".into(),
                email: Some("ada@example.eu".into()),
            }),
            tenant_id: Some("t-1".into()),
            request_ip: Some("192.0.2.7".into()),
            correlation_id: Some("corr".into()),
            causation_id: None,
            occurred_at: Some("2026-11-28T10:00:00Z".into()),
        };
        let map = metadata.to_map();
        assert!(
            !map.contains_key(KEY_CAUSATION_ID),
            "absent fields are not stored"
        );
        assert_eq!(EventMetadata::from_map(&map), Ok(metadata));
    }

    #[test]
    fn an_actor_email_without_a_subject_is_refused() {
        let map = HashMap::from([(KEY_ACTOR_EMAIL.to_owned(), "x@example.eu".to_owned())]);
        assert_eq!(
            EventMetadata::from_map(&map),
            Err(MetadataError::EmailWithoutSubject)
        );
    }
}
