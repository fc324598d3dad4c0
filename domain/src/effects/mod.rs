//! The Effect aggregate: one call a saga makes to a system outside the ledger (Stalwart,
//! Authentik, Stripe, CalDAV, S3), recorded on the ledger as intent → attempts → outcome.
//!
//! The aggregate id is the step's **idempotency key**, derived from the triggering event
//! (`{saga}/{step}/{position}`), so a saga that sees its trigger twice intends the effect once,
//! and the key doubles as the external system's idempotency key where it has one (Stripe's
//! `Idempotency-Key`). An auditor reads each effect and its result next to the command that
//! caused it. The rules that keep an effect from being lost or done twice live here:
//!
//! * an attempt starts only when none is in flight and the effect is not finished;
//! * an attempt ends with exactly one outcome: success, failure (retried with exponential
//!   back-off and jitter until the attempt budget is spent, then dead-lettered), or
//!   **unknown** (the request may have been applied: timeout, connection lost after sending);
//! * an unknown outcome is never retried blindly: it must be **reconciled** by reading the
//!   external state back, which settles it as applied (success) or not (retry);
//! * a system that is not configured is recorded as such — never as success — and waits for
//!   an operator's retry, as a dead-lettered effect does.
//!
//! Time and jitter arrive in commands: the domain has no clock and no randomness.

#[cfg(test)]
mod tests;

use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::EventUpcaster;
use cqrs_es::{Aggregate, DomainEvent as CqrsEvent};
use serde::{Deserialize, Serialize};

/// Aggregate type name as stored in the ledger. Never change it.
pub const EFFECT_AGGREGATE_TYPE: &str = "effect";
/// Schema version of every effect event today.
pub const EFFECT_EVENT_VERSION: &str = "1.0";
/// Attempts an effect gets before it is dead-lettered, unless the saga says otherwise.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 8;
/// The first retry's delay.
pub const RETRY_BASE_DELAY_MS: u64 = 2_000;
/// The longest delay between two attempts.
pub const RETRY_MAX_DELAY_MS: u64 = 15 * 60 * 1_000;

/// The delay before retry number `attempt` (1 after the first failure): exponential from
/// [`RETRY_BASE_DELAY_MS`], capped at [`RETRY_MAX_DELAY_MS`], then scaled by the caller's
/// jitter in per mille (500..=1000 gives "equal jitter": between half and all of the delay),
/// so retries of many effects that failed together spread out instead of arriving together.
pub fn retry_delay_ms(attempt: u32, jitter_permille: u32) -> u64 {
    let exponent = attempt.saturating_sub(1).min(30);
    let delay = RETRY_BASE_DELAY_MS
        .saturating_mul(1u64 << exponent)
        .min(RETRY_MAX_DELAY_MS);
    delay.saturating_mul(u64::from(jitter_permille.min(1_000))) / 1_000
}

/// The idempotency key of a saga step triggered by the event at `position`.
pub fn idempotency_key(saga: &str, step: &str, position: u64) -> String {
    format!("{saga}/{step}/{position}")
}

/// Where an effect is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EffectStatus {
    /// Intended; no attempt yet.
    Pending,
    /// An attempt is running.
    InFlight,
    /// The last attempt failed; another is due at `retry_at`.
    Retrying,
    /// The last attempt's outcome is unknown; reconcile before anything else.
    Unknown,
    /// Done.
    Succeeded,
    /// Out of attempts, or refused for good; waits for an operator.
    DeadLettered,
    /// The system is not configured; waits for an operator once it is.
    NotConfigured,
}

/// What an effect is and why it exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EffectIntent {
    /// The saga (`tenant-provisioning`).
    pub saga: String,
    /// The step (`create-service-domain`).
    pub step: String,
    /// The external system (`stalwart`).
    pub system: String,
    /// The tenant it is for, if any (tenant-scoped audit reading).
    pub tenant_id: Option<String>,
    /// The ledger position of the event that triggered it.
    pub trigger_position: u64,
    /// What will be asked of the system, for people reading the record (no secrets).
    pub request: serde_json::Value,
    /// Attempts before dead-lettering.
    pub max_attempts: u32,
}

/// Commands an effect accepts. `at` is the caller's clock (RFC 3339).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EffectCommand {
    /// Record the intent (idempotent: a second intent with the same content changes nothing).
    Intend {
        /// The intent.
        intent: EffectIntent,
        /// When.
        at: String,
    },
    /// Start an attempt.
    BeginAttempt {
        /// When.
        at: String,
    },
    /// The attempt succeeded.
    Succeed {
        /// The attempt it ends.
        attempt: u32,
        /// What the system answered, for the record (ids, not secrets).
        result: serde_json::Value,
        /// When.
        at: String,
    },
    /// The attempt failed; nothing was applied.
    Fail {
        /// The attempt it ends.
        attempt: u32,
        /// Why.
        error: String,
        /// Whether trying again can help (5xx, refused connection) or not (a validation
        /// refusal).
        retryable: bool,
        /// The retry time, computed by the caller from [`retry_delay_ms`].
        retry_at: String,
        /// When.
        at: String,
    },
    /// The attempt's outcome is unknown (it may have been applied).
    OutcomeUnknown {
        /// The attempt it ends.
        attempt: u32,
        /// Why it is unknown.
        reason: String,
        /// When.
        at: String,
    },
    /// The external state was read back after an unknown outcome.
    Reconcile {
        /// Whether the effect turned out applied.
        applied: bool,
        /// What was found.
        found: serde_json::Value,
        /// If not applied: when to try again.
        retry_at: String,
        /// When.
        at: String,
    },
    /// The system is not configured: record it, do not pretend.
    NotConfigured {
        /// When.
        at: String,
    },
    /// An operator retries a dead-lettered or not-configured effect, with a fresh budget.
    OperatorRetry {
        /// The operator (subject).
        by: String,
        /// When.
        at: String,
    },
}

/// Every stored type name an effect event can have (pinned by a test).
pub const EFFECT_EVENT_TYPES: [&str; 9] = [
    "EffectIntended",
    "EffectAttempted",
    "EffectSucceeded",
    "EffectFailed",
    "EffectOutcomeUnknown",
    "EffectReconciled",
    "EffectDeadLettered",
    "EffectNotConfigured",
    "EffectRetryRequested",
];

/// Events an effect emits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EffectEvent {
    /// A saga intends this effect.
    EffectIntended {
        /// The intent.
        intent: EffectIntent,
        /// When.
        at: String,
    },
    /// An attempt started.
    EffectAttempted {
        /// Its number, from 1.
        attempt: u32,
        /// When.
        at: String,
    },
    /// It succeeded.
    EffectSucceeded {
        /// The attempt.
        attempt: u32,
        /// What the system answered.
        result: serde_json::Value,
        /// When.
        at: String,
    },
    /// An attempt failed; `retry_at` is set when another attempt will follow.
    EffectFailed {
        /// The attempt.
        attempt: u32,
        /// Why.
        error: String,
        /// When the next attempt is due, if one is.
        retry_at: Option<String>,
        /// When.
        at: String,
    },
    /// An attempt's outcome is unknown.
    EffectOutcomeUnknown {
        /// The attempt.
        attempt: u32,
        /// Why.
        reason: String,
        /// When.
        at: String,
    },
    /// The external state was read back after an unknown outcome.
    EffectReconciled {
        /// Whether the effect was found applied.
        applied: bool,
        /// What was found.
        found: serde_json::Value,
        /// When the next attempt is due, if it was not applied.
        retry_at: Option<String>,
        /// When.
        at: String,
    },
    /// No attempts left (or refused for good): an operator must look.
    EffectDeadLettered {
        /// The last error.
        error: String,
        /// When.
        at: String,
    },
    /// The system is not configured.
    EffectNotConfigured {
        /// The system.
        system: String,
        /// When.
        at: String,
    },
    /// An operator asked for another round of attempts.
    EffectRetryRequested {
        /// The operator.
        by: String,
        /// Attempts allowed from now on (in total).
        attempt_budget: u32,
        /// When.
        at: String,
    },
}

impl CqrsEvent for EffectEvent {
    fn event_type(&self) -> String {
        match self {
            EffectEvent::EffectIntended { .. } => "EffectIntended",
            EffectEvent::EffectAttempted { .. } => "EffectAttempted",
            EffectEvent::EffectSucceeded { .. } => "EffectSucceeded",
            EffectEvent::EffectFailed { .. } => "EffectFailed",
            EffectEvent::EffectOutcomeUnknown { .. } => "EffectOutcomeUnknown",
            EffectEvent::EffectReconciled { .. } => "EffectReconciled",
            EffectEvent::EffectDeadLettered { .. } => "EffectDeadLettered",
            EffectEvent::EffectNotConfigured { .. } => "EffectNotConfigured",
            EffectEvent::EffectRetryRequested { .. } => "EffectRetryRequested",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        EFFECT_EVENT_VERSION.to_owned()
    }
}

/// Why an effect refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EffectError {
    /// Anything but an intent before the intent.
    #[error("the effect was never intended")]
    NotIntended,
    /// A second intent that differs from the first (two sagas derived one key).
    #[error("the idempotency key is already used by a different intent")]
    KeyReused,
    /// An intent allowing no attempt at all.
    #[error("an effect needs at least one attempt")]
    NoAttempts,
    /// A command that does not fit the effect's state.
    #[error("the effect is {status:?}; {action} is not possible now")]
    InvalidState {
        /// Where it is.
        status: EffectStatus,
        /// What was asked.
        action: &'static str,
    },
    /// An outcome for another attempt than the one in flight.
    #[error("attempt {given} is not the attempt in flight ({current})")]
    WrongAttempt {
        /// The attempt named.
        given: u32,
        /// The attempt in flight.
        current: u32,
    },
}

/// An effect, folded from its events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Effect {
    /// The intent, once recorded.
    pub intent: Option<EffectIntent>,
    /// Where it is.
    pub status: Option<EffectStatus>,
    /// Attempts made.
    pub attempts: u32,
    /// Attempts allowed in total (the intent's, raised by operator retries).
    pub attempt_budget: u32,
    /// When the next attempt is due, while retrying.
    pub retry_at: Option<String>,
    /// The last error or unknown-outcome reason.
    pub last_error: Option<String>,
}

impl Effect {
    fn state(&self, action: &'static str, allowed: &[EffectStatus]) -> Result<(), EffectError> {
        let status = self.status.ok_or(EffectError::NotIntended)?;
        if allowed.contains(&status) {
            Ok(())
        } else {
            Err(EffectError::InvalidState { status, action })
        }
    }

    fn in_flight(&self, attempt: u32) -> Result<(), EffectError> {
        if attempt == self.attempts {
            Ok(())
        } else {
            Err(EffectError::WrongAttempt {
                given: attempt,
                current: self.attempts,
            })
        }
    }

    /// Decides a command. Pure.
    pub fn decide(&self, command: EffectCommand) -> Result<Vec<EffectEvent>, EffectError> {
        use EffectStatus as S;
        match command {
            EffectCommand::Intend { intent, at } => match &self.intent {
                Some(existing) if *existing == intent => Ok(Vec::new()),
                Some(_) => Err(EffectError::KeyReused),
                None if intent.max_attempts == 0 => Err(EffectError::NoAttempts),
                None => Ok(vec![EffectEvent::EffectIntended { intent, at }]),
            },
            EffectCommand::BeginAttempt { at } => {
                self.state("starting an attempt", &[S::Pending, S::Retrying])?;
                Ok(vec![EffectEvent::EffectAttempted {
                    attempt: self.attempts + 1,
                    at,
                }])
            }
            EffectCommand::Succeed {
                attempt,
                result,
                at,
            } => {
                self.state("recording success", &[S::InFlight])?;
                self.in_flight(attempt)?;
                Ok(vec![EffectEvent::EffectSucceeded {
                    attempt,
                    result,
                    at,
                }])
            }
            EffectCommand::Fail {
                attempt,
                error,
                retryable,
                retry_at,
                at,
            } => {
                self.state("recording a failure", &[S::InFlight])?;
                self.in_flight(attempt)?;
                if retryable && attempt < self.attempt_budget {
                    return Ok(vec![EffectEvent::EffectFailed {
                        attempt,
                        error,
                        retry_at: Some(retry_at),
                        at,
                    }]);
                }
                Ok(vec![
                    EffectEvent::EffectFailed {
                        attempt,
                        error: error.clone(),
                        retry_at: None,
                        at: at.clone(),
                    },
                    EffectEvent::EffectDeadLettered { error, at },
                ])
            }
            EffectCommand::OutcomeUnknown {
                attempt,
                reason,
                at,
            } => {
                self.state("recording an unknown outcome", &[S::InFlight])?;
                self.in_flight(attempt)?;
                Ok(vec![EffectEvent::EffectOutcomeUnknown {
                    attempt,
                    reason,
                    at,
                }])
            }
            EffectCommand::Reconcile {
                applied,
                found,
                retry_at,
                at,
            } => {
                self.state("reconciling", &[S::Unknown])?;
                if applied {
                    return Ok(vec![EffectEvent::EffectReconciled {
                        applied,
                        found,
                        retry_at: None,
                        at,
                    }]);
                }
                let mut events = vec![EffectEvent::EffectReconciled {
                    applied,
                    found,
                    retry_at: (self.attempts < self.attempt_budget).then(|| retry_at.clone()),
                    at: at.clone(),
                }];
                if self.attempts >= self.attempt_budget {
                    events.push(EffectEvent::EffectDeadLettered {
                        error: self
                            .last_error
                            .clone()
                            .unwrap_or_else(|| "outcome unknown, found not applied".into()),
                        at,
                    });
                }
                Ok(events)
            }
            EffectCommand::NotConfigured { at } => {
                self.state(
                    "recording a missing configuration",
                    &[S::Pending, S::Retrying, S::InFlight],
                )?;
                let system = self
                    .intent
                    .as_ref()
                    .map(|i| i.system.clone())
                    .unwrap_or_default();
                Ok(vec![EffectEvent::EffectNotConfigured { system, at }])
            }
            EffectCommand::OperatorRetry { by, at } => {
                self.state("retrying by hand", &[S::DeadLettered, S::NotConfigured])?;
                let per_round = self.intent.as_ref().map_or(1, |i| i.max_attempts);
                Ok(vec![EffectEvent::EffectRetryRequested {
                    by,
                    attempt_budget: self.attempts + per_round,
                    at,
                }])
            }
        }
    }
}

impl Aggregate for Effect {
    const TYPE: &'static str = EFFECT_AGGREGATE_TYPE;
    type Command = EffectCommand;
    type Event = EffectEvent;
    type Error = EffectError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            EffectEvent::EffectIntended { intent, .. } => {
                self.attempt_budget = intent.max_attempts;
                self.intent = Some(intent);
                self.status = Some(EffectStatus::Pending);
            }
            EffectEvent::EffectAttempted { attempt, .. } => {
                self.attempts = attempt;
                self.retry_at = None;
                self.status = Some(EffectStatus::InFlight);
            }
            EffectEvent::EffectSucceeded { .. } => self.status = Some(EffectStatus::Succeeded),
            EffectEvent::EffectFailed {
                error, retry_at, ..
            } => {
                self.last_error = Some(error);
                self.status = Some(EffectStatus::Retrying);
                self.retry_at = retry_at;
            }
            EffectEvent::EffectOutcomeUnknown { reason, .. } => {
                self.last_error = Some(reason);
                self.status = Some(EffectStatus::Unknown);
            }
            EffectEvent::EffectReconciled {
                applied, retry_at, ..
            } => {
                self.status = Some(if applied {
                    EffectStatus::Succeeded
                } else {
                    EffectStatus::Retrying
                });
                self.retry_at = retry_at;
            }
            EffectEvent::EffectDeadLettered { error, .. } => {
                self.last_error = Some(error);
                self.retry_at = None;
                self.status = Some(EffectStatus::DeadLettered);
            }
            EffectEvent::EffectNotConfigured { system, .. } => {
                self.last_error = Some(format!("{system} is not configured"));
                self.status = Some(EffectStatus::NotConfigured);
            }
            EffectEvent::EffectRetryRequested { attempt_budget, .. } => {
                self.attempt_budget = attempt_budget;
                self.retry_at = None;
                self.status = Some(EffectStatus::Retrying);
            }
        }
    }
}

/// The upcasters an effect event store must be built with (none yet).
pub fn effect_upcasters() -> Vec<Box<dyn EventUpcaster>> {
    Vec::new()
}
