//! Sagas: process managers that turn events into effects in systems outside the ledger, and
//! the worker that performs those effects.
//!
//! A saga never calls an external system itself. It follows the ledger like every process
//! manager and, for each step an event calls for, **intends** an effect: an
//! [`Effect`](dezky_domain::effects::Effect) aggregate whose id is the step's idempotency key
//! (`{saga}/{step}/{trigger position}`), so seeing the trigger twice intends it once. The
//! [`worker::EffectWorker`] finds due effects and drives each through intent → attempt →
//! outcome on the ledger; a saga's next step follows from the outcome's event (or from the
//! domain event a success leads to). So every effect and its result sit on the ledger next to
//! the command that caused it, and a crash anywhere loses nothing: progress is the ledger.

pub mod domain_provisioning;
pub mod mailboxes;
pub mod rechecks;
pub mod request;
pub mod tenant_provisioning;
pub mod worker;

use std::collections::HashMap;

use cqrs_es::AggregateError;
use dezky_domain::effects::{
    Effect, EffectCommand, EffectError, EffectEvent, EffectIntent, DEFAULT_MAX_ATTEMPTS,
    EFFECT_AGGREGATE_TYPE,
};
use dezky_domain::{Actor, EventMetadata};

use crate::app::registry::{self, Registered};
use crate::app::retry::{execute_with_retry, RetryError};
use crate::encoding::{format_timestamp, EventRecord};
use crate::process::ProcessError;
use crate::Ledger;

pub use request::{DnsRequest, MailRequest, Request};

/// A command framework over the ledger.
pub type LedgerCqrs<A> = registry::Cqrs<A>;

/// A command framework for `A` over `ledger`, with its registered upcasters.
pub fn framework<A: Registered>(ledger: &Ledger) -> LedgerCqrs<A> {
    registry::framework(ledger)
}

/// The current state of aggregate `id`.
pub async fn load<A: Registered + Clone>(ledger: &Ledger, id: &str) -> Result<A, String> {
    registry::load::<A>(ledger, id)
        .await
        .map(|(state, _)| state)
}

/// The current time as the ledger writes it.
pub fn now() -> String {
    format_timestamp(chrono::Utc::now())
}

/// Metadata for a command a saga issues because of `cause`: the saga as the actor, the cause's
/// correlation id carried over and its position as the causation, so the audit trail links an
/// effect to the request that led to it.
pub fn caused_by(
    cause: &EventRecord,
    actor: &str,
    tenant_id: Option<&str>,
) -> HashMap<String, String> {
    let origin = serde_json::from_str::<HashMap<String, String>>(&cause.metadata)
        .ok()
        .and_then(|map| EventMetadata::from_map(&map).ok())
        .unwrap_or_default();
    EventMetadata {
        actor: Some(Actor {
            subject: actor.to_owned(),
            email: None,
        }),
        tenant_id: tenant_id.map(str::to_owned).or(origin.tenant_id),
        correlation_id: origin.correlation_id,
        causation_id: Some(format!("position:{}", cause.position)),
        occurred_at: Some(now()),
        request_ip: None,
    }
    .to_map()
}

/// What every saga is configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SagaConfig {
    /// The platform's own domain (the apex): service domains live under it, and it is never
    /// torn down.
    pub platform_domain: String,
    /// Attempts each new effect gets before it is dead-lettered.
    pub max_attempts: u32,
    /// How long a verified domain goes between scheduled DNS rechecks.
    pub recheck_verified: std::time::Duration,
    /// How long a domain still verifying or needing attention goes between rechecks (someone
    /// is probably fixing its DNS right now).
    pub recheck_unverified: std::time::Duration,
}

/// Verified domains are rechecked daily.
pub const RECHECK_VERIFIED: std::time::Duration = std::time::Duration::from_secs(24 * 3_600);
/// Domains not verified yet are rechecked hourly.
pub const RECHECK_UNVERIFIED: std::time::Duration = std::time::Duration::from_secs(3_600);

impl SagaConfig {
    /// The defaults for `platform_domain`.
    pub fn new(platform_domain: impl Into<String>) -> Self {
        Self {
            platform_domain: platform_domain.into(),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            recheck_verified: RECHECK_VERIFIED,
            recheck_unverified: RECHECK_UNVERIFIED,
        }
    }
}

/// The effects framework, with the helpers sagas share.
pub struct Effects {
    cqrs: LedgerCqrs<Effect>,
    ledger: Ledger,
    max_attempts: u32,
}

impl Effects {
    /// Effects over `ledger` with [`DEFAULT_MAX_ATTEMPTS`].
    pub fn new(ledger: &Ledger) -> Self {
        Self::with_max_attempts(ledger, DEFAULT_MAX_ATTEMPTS)
    }

    /// Effects over `ledger` whose new intents allow `max_attempts`.
    pub fn with_max_attempts(ledger: &Ledger, max_attempts: u32) -> Self {
        Self {
            cqrs: framework(ledger),
            ledger: ledger.clone(),
            max_attempts: max_attempts.max(1),
        }
    }

    /// The effect `key` as it stands.
    pub async fn load(&self, key: &str) -> Result<Effect, String> {
        load::<Effect>(&self.ledger, key).await
    }

    /// Runs `command` on effect `key`, retrying races with other writers (the one policy,
    /// [`crate::app::retry`]).
    pub async fn execute(
        &self,
        key: &str,
        command: EffectCommand,
        metadata: HashMap<String, String>,
    ) -> Result<(), AggregateError<EffectError>> {
        execute_with_retry(&self.cqrs, key, &metadata, || command.clone())
            .await
            .map_err(RetryError::into_aggregate)
    }

    /// Intends the step `saga`/`step` triggered by `cause`: idempotent (a repeat with the same
    /// content changes nothing, and a repeat whose content differs — configuration changed
    /// between two runs — keeps the first intent, which is what was promised).
    pub async fn intend(
        &self,
        cause: &EventRecord,
        saga: &'static str,
        step: &'static str,
        tenant_id: Option<&str>,
        request: &Request,
    ) -> Result<String, ProcessError> {
        let key = dezky_domain::effects::idempotency_key(saga, step, cause.position);
        self.intend_as(key, cause, saga, step, tenant_id, request)
            .await
    }

    /// Like [`Effects::intend`], for a step one trigger calls for several times (a purge
    /// deletes every mailbox): `subject` tells the effects apart in their keys.
    pub async fn intend_keyed(
        &self,
        cause: &EventRecord,
        saga: &'static str,
        step: &'static str,
        subject: &str,
        tenant_id: Option<&str>,
        request: &Request,
    ) -> Result<String, ProcessError> {
        let key = format!(
            "{}/{subject}",
            dezky_domain::effects::idempotency_key(saga, step, cause.position)
        );
        self.intend_as(key, cause, saga, step, tenant_id, request)
            .await
    }

    async fn intend_as(
        &self,
        key: String,
        cause: &EventRecord,
        saga: &'static str,
        step: &'static str,
        tenant_id: Option<&str>,
        request: &Request,
    ) -> Result<String, ProcessError> {
        let intent = EffectIntent {
            saga: saga.to_owned(),
            step: step.to_owned(),
            system: request.system().to_owned(),
            tenant_id: tenant_id.map(str::to_owned),
            trigger_position: cause.position,
            request: request.to_value(),
            max_attempts: self.max_attempts,
        };
        let actor = format!("dezky:saga:{saga}");
        match self
            .execute(
                &key,
                EffectCommand::Intend { intent, at: now() },
                caused_by(cause, &actor, tenant_id),
            )
            .await
        {
            Ok(()) | Err(AggregateError::UserError(EffectError::KeyReused)) => Ok(key),
            Err(error) => Err(ProcessError::Command {
                process: saga,
                position: cause.position,
                reason: error.to_string(),
            }),
        }
    }
}

/// A succeeded effect, as a saga's next step sees it.
#[derive(Debug, Clone)]
pub struct Succeeded {
    /// The effect's key.
    pub key: String,
    /// Its intent.
    pub intent: EffectIntent,
    /// What the system answered (or what reading back found).
    pub result: serde_json::Value,
}

/// When `event` is the success of a step of `saga` (an attempt that succeeded, or an unknown
/// outcome that reading back found applied), the effect with its intent.
pub async fn succeeded(
    effects: &Effects,
    event: &EventRecord,
    saga: &str,
) -> Result<Option<Succeeded>, ProcessError> {
    if event.aggregate_type != EFFECT_AGGREGATE_TYPE
        || !event.aggregate_id.starts_with(saga)
        || !event.aggregate_id[saga.len()..].starts_with('/')
    {
        return Ok(None);
    }
    let result = match serde_json::from_str::<EffectEvent>(&event.payload) {
        Ok(EffectEvent::EffectSucceeded { result, .. }) => result,
        Ok(EffectEvent::EffectReconciled {
            applied: true,
            found,
            ..
        }) => found,
        Ok(_) | Err(_) => return Ok(None),
    };
    let effect =
        effects
            .load(&event.aggregate_id)
            .await
            .map_err(|reason| ProcessError::Command {
                process: "saga",
                position: event.position,
                reason,
            })?;
    Ok(effect.intent.map(|intent| Succeeded {
        key: event.aggregate_id.clone(),
        intent,
        result,
    }))
}
