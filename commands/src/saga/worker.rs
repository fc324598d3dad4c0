//! The effect worker: finds effects that are due and drives each one step — an attempt and
//! its outcome, or the reconciliation of an unknown outcome — recording every step on the
//! ledger before and after the external call.
//!
//! One worker runs per deployment (it holds a lease; another instance takes over when the
//! holder dies). Because of that, an effect the worker finds **in flight** while it is not
//! running it was left by a worker that stopped mid-call: the call may or may not have reached
//! the system, so it is recorded as an unknown outcome and reconciled by reading back — never
//! sent again blindly.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use cqrs_es::AggregateError;
use dezky_domain::effects::{retry_delay_ms, Effect, EffectCommand, EffectError, EffectStatus};
use tokio::sync::watch;

use super::request::{Outcome, ReadBack, Request, Systems};
use super::{now, Effects};
use crate::encoding::format_timestamp;
use crate::ports::dns::DnsCheck;
use crate::ports::mail::MailServer;
use crate::Ledger;

/// The actor on the commands the worker records.
pub const WORKER_ACTOR: &str = "dezky:saga-worker";
/// Effects read from the queue per round.
pub const DUE_PER_ROUND: usize = 64;
/// How often the worker looks for due effects when nothing wakes it sooner (retries come due
/// with time, not with new events).
pub const WORKER_POLL_MS: u64 = 500;
/// How long an effect whose outcome is still unknown waits before the next read-back, after a
/// read-back that could not reach the system.
pub const RECONCILE_RETRY_MS: u64 = 2_000;

/// Where the worker finds due effects, and the lease that makes it the only one.
pub trait EffectQueue: Send + Sync {
    /// Keys of effects that may need the worker at `now` (RFC 3339): pending, retrying with
    /// `retry_at <= now`, unknown, in flight. Stale entries are fine: the worker re-reads each
    /// effect from the ledger before acting.
    fn due(
        &self,
        now: &str,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<String>, String>> + Send;

    /// Takes or renews the worker lease for `holder`; true when `holder` holds it.
    fn hold_lease(&self, holder: &str) -> impl Future<Output = Result<bool, String>> + Send;

    /// Gives the lease up (on shutdown).
    fn release_lease(&self, holder: &str) -> impl Future<Output = ()> + Send;
}

/// What driving one effect did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Driven {
    /// Nothing was due (finished, waiting for its retry time or for an operator).
    Idle,
    /// An attempt ran; the effect is now in this status.
    Attempted(EffectStatus),
    /// An unknown outcome was reconciled (or marked unknown and reconciled).
    Reconciled(EffectStatus),
    /// Reading back failed; the outcome stays unknown.
    StillUnknown,
}

/// The worker.
pub struct EffectWorker<M, D, Q> {
    ledger: Ledger,
    systems: Arc<Systems<M, D>>,
    queue: Q,
    effects: Effects,
    holder: String,
    /// Effects whose read-back could not reach the system, and when to read again.
    unreachable: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
}

fn not_before(effect: &Effect, at: &str) -> bool {
    effect.retry_at.as_deref().is_none_or(|due| due <= at)
}

fn jitter_permille() -> u32 {
    use rand_core::RngCore;
    500 + rand_core::OsRng.next_u32() % 501
}

fn retry_at(attempt: u32) -> String {
    let delay = retry_delay_ms(attempt, jitter_permille());
    let delay = chrono::Duration::milliseconds(i64::try_from(delay).unwrap_or(i64::MAX));
    format_timestamp(chrono::Utc::now() + delay)
}

impl<M: MailServer, D: DnsCheck, Q: EffectQueue> EffectWorker<M, D, Q> {
    /// A worker over `ledger` reaching `systems`, finding work in `queue`, holding the lease
    /// as `holder`.
    pub fn new(ledger: Ledger, systems: Systems<M, D>, queue: Q, holder: String) -> Self {
        Self {
            effects: Effects::new(&ledger),
            ledger,
            systems: Arc::new(systems),
            queue,
            holder,
            unreachable: std::sync::Mutex::default(),
        }
    }

    fn metadata(&self, effect: &Effect) -> std::collections::HashMap<String, String> {
        dezky_domain::EventMetadata {
            actor: Some(dezky_domain::Actor {
                subject: WORKER_ACTOR.to_owned(),
                email: None,
            }),
            tenant_id: effect.intent.as_ref().and_then(|i| i.tenant_id.clone()),
            causation_id: effect
                .intent
                .as_ref()
                .map(|i| format!("position:{}", i.trigger_position)),
            occurred_at: Some(now()),
            ..Default::default()
        }
        .to_map()
    }

    async fn record(
        &self,
        key: &str,
        effect: &Effect,
        command: EffectCommand,
    ) -> Result<(), String> {
        match self
            .effects
            .execute(key, command, self.metadata(effect))
            .await
        {
            Ok(()) => Ok(()),
            Err(AggregateError::UserError(e)) => Err(e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Drives effect `key` one step, if it is due. Errors are the ledger's (the effect is
    /// left as the ledger says and found again next round).
    pub async fn drive(&self, key: &str) -> Result<Driven, String> {
        let effect = self.effects.load(key).await?;
        let Some(intent) = effect.intent.clone() else {
            return Ok(Driven::Idle);
        };
        let at = now();
        match effect.status {
            Some(EffectStatus::Pending) => self.attempt(key, &effect, &intent).await,
            Some(EffectStatus::Retrying) if not_before(&effect, &at) => {
                self.attempt(key, &effect, &intent).await
            }
            Some(EffectStatus::InFlight) => {
                // Left by a worker that stopped mid-call (this one runs effects one at a time
                // and is not running it): the call's fate is unknown.
                let reason = format!(
                    "the worker stopped during attempt {}; reading the result back",
                    effect.attempts
                );
                self.record(
                    key,
                    &effect,
                    EffectCommand::OutcomeUnknown {
                        attempt: effect.attempts,
                        reason,
                        at,
                    },
                )
                .await?;
                let effect = self.effects.load(key).await?;
                self.reconcile(key, &effect, &intent).await
            }
            Some(EffectStatus::Unknown) => self.reconcile(key, &effect, &intent).await,
            _ => Ok(Driven::Idle),
        }
    }

    async fn attempt(
        &self,
        key: &str,
        effect: &Effect,
        intent: &dezky_domain::effects::EffectIntent,
    ) -> Result<Driven, String> {
        let request = match Request::parse(&intent.system, &intent.request) {
            Ok(request) => request,
            Err(reason) => {
                // A request this version cannot read: no attempt can help; an operator must.
                self.record(key, effect, EffectCommand::BeginAttempt { at: now() })
                    .await?;
                let attempt = effect.attempts + 1;
                self.record(
                    key,
                    effect,
                    EffectCommand::Fail {
                        attempt,
                        error: reason,
                        retryable: false,
                        retry_at: now(),
                        at: now(),
                    },
                )
                .await?;
                return Ok(Driven::Attempted(EffectStatus::DeadLettered));
            }
        };
        match self
            .effects
            .execute(
                key,
                EffectCommand::BeginAttempt { at: now() },
                self.metadata(effect),
            )
            .await
        {
            Ok(()) => {}
            // Someone else moved it meanwhile (an operator, a second worker during a lease
            // handover): nothing to do now.
            Err(AggregateError::UserError(EffectError::InvalidState { .. })) => {
                return Ok(Driven::Idle)
            }
            Err(e) => return Err(e.to_string()),
        }
        let attempt = effect.attempts + 1;
        let outcome = self.systems.perform(&request).await;
        let at = now();
        let command = match outcome {
            Outcome::Done(result) => EffectCommand::Succeed {
                attempt,
                result,
                at,
            },
            Outcome::Failed { error, retryable } => EffectCommand::Fail {
                attempt,
                error,
                retryable,
                retry_at: retry_at(attempt),
                at,
            },
            Outcome::Unknown(reason) => EffectCommand::OutcomeUnknown {
                attempt,
                reason,
                at,
            },
            Outcome::NotConfigured => EffectCommand::NotConfigured { at },
        };
        self.record(key, effect, command).await?;
        let after = self.effects.load(key).await?;
        if after.status == Some(EffectStatus::Unknown) {
            return self.reconcile(key, &after, intent).await;
        }
        Ok(Driven::Attempted(
            after.status.unwrap_or(EffectStatus::Pending),
        ))
    }

    async fn reconcile(
        &self,
        key: &str,
        effect: &Effect,
        intent: &dezky_domain::effects::EffectIntent,
    ) -> Result<Driven, String> {
        let request = Request::parse(&intent.system, &intent.request)?;
        let (applied, found) = match self.systems.read_back(&request).await {
            Ok(ReadBack::Applied(found)) => (true, found),
            Ok(ReadBack::NotApplied(found)) => (false, found),
            Err(error) => {
                tracing::warn!(key, %error, "reading back an unknown outcome failed; will retry");
                return Ok(Driven::StillUnknown);
            }
        };
        self.record(
            key,
            effect,
            EffectCommand::Reconcile {
                applied,
                found,
                retry_at: retry_at(effect.attempts),
                at: now(),
            },
        )
        .await?;
        let after = self.effects.load(key).await?;
        Ok(Driven::Reconciled(
            after.status.unwrap_or(EffectStatus::Pending),
        ))
    }

    /// One round: every due effect driven one step, one at a time. Returns how many changed.
    pub async fn round(&self) -> Result<usize, String> {
        let keys = self.queue.due(&now(), DUE_PER_ROUND).await?;
        let mut changed = 0;
        for key in keys {
            let waiting = self
                .unreachable
                .lock()
                .map(|map| {
                    map.get(&key)
                        .is_some_and(|t| *t > std::time::Instant::now())
                })
                .unwrap_or(false);
            if waiting {
                continue;
            }
            match self.drive(&key).await {
                Ok(Driven::Idle) => {}
                Ok(Driven::StillUnknown) => {
                    if let Ok(mut map) = self.unreachable.lock() {
                        let next =
                            std::time::Instant::now() + Duration::from_millis(RECONCILE_RETRY_MS);
                        map.insert(key, next);
                    }
                }
                Ok(_) => {
                    if let Ok(mut map) = self.unreachable.lock() {
                        map.remove(&key);
                    }
                    changed += 1;
                }
                Err(error) => tracing::warn!(key, %error, "driving an effect failed"),
            }
        }
        Ok(changed)
    }

    /// Runs until `shutdown` turns true: holds the lease, drives due effects, waits for new
    /// events or the poll interval.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut heads = self.ledger.subscribe();
        loop {
            if *shutdown.borrow() {
                break;
            }
            let held = self
                .queue
                .hold_lease(&self.holder)
                .await
                .unwrap_or_else(|error| {
                    tracing::warn!(%error, "saga worker lease");
                    false
                });
            let mut busy = false;
            if held {
                match self.round().await {
                    Ok(n) => busy = n > 0,
                    Err(error) => tracing::warn!(%error, "listing due effects failed"),
                }
            }
            if busy {
                continue;
            }
            tokio::select! {
                _ = shutdown.changed() => {}
                _ = heads.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(WORKER_POLL_MS)) => {}
            }
        }
        self.queue.release_lease(&self.holder).await;
    }
}
