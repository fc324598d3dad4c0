//! The one retry-on-conflict policy: a command decided on an aggregate version that another
//! writer moved on meanwhile is decided again on the new state, a bounded number of times with
//! a growing pause, and then given up with a typed error instead of spinning.
//!
//! Deciding again is always safe: the command is re-run through the aggregate, which sees what
//! the other writer did and may now refuse. Only the optimistic-concurrency conflict is
//! retried; a refusal or a store failure is returned at once.

use std::collections::HashMap;
use std::time::Duration;

use cqrs_es::{Aggregate, AggregateError, CqrsFramework, EventStore};

/// Attempts at one command, the first included, before a run of conflicts is given up. A
/// popular aggregate (a host's calendar on a busy booking page, a slot that fifty people want
/// at once) sees a conflict per competing writer; twelve rounds with growing, jittered pauses
/// outlast such a burst.
pub const CONFLICT_ATTEMPTS: u32 = 12;
/// The pause before the second attempt; it doubles for each further one.
pub const CONFLICT_BACKOFF_BASE_MS: u64 = 2;
/// The longest pause between two attempts.
pub const CONFLICT_BACKOFF_MAX_MS: u64 = 100;

/// How a retried command failed.
#[derive(Debug, thiserror::Error)]
pub enum RetryError<E: std::error::Error> {
    /// The aggregate refused the command (its typed error).
    #[error(transparent)]
    Refused(E),
    /// Every attempt met a concurrent writer.
    #[error("the record kept changing under the command ({attempts} attempts)")]
    Exhausted {
        /// Attempts made.
        attempts: u32,
    },
    /// The store failed (anything but a refusal or a conflict).
    #[error(transparent)]
    Failed(AggregateError<E>),
}

impl<E: std::error::Error> RetryError<E> {
    /// The failure in cqrs-es's terms, for callers that map those: a refusal is a user error,
    /// an exhausted run of conflicts a conflict.
    pub fn into_aggregate(self) -> AggregateError<E> {
        match self {
            RetryError::Refused(error) => AggregateError::UserError(error),
            RetryError::Exhausted { .. } => AggregateError::AggregateConflict,
            RetryError::Failed(error) => error,
        }
    }
}

/// The longest pause after `failed_attempts` conflicts; the pause taken is a random point in
/// its upper half, so writers that collided once do not collide again in lockstep.
fn backoff(failed_attempts: u32) -> Duration {
    let exponent = failed_attempts.saturating_sub(1).min(16);
    Duration::from_millis(
        CONFLICT_BACKOFF_BASE_MS
            .saturating_mul(1 << exponent)
            .min(CONFLICT_BACKOFF_MAX_MS),
    )
}

/// Runs the command `command()` makes on aggregate `id` under the policy: a new command is
/// made for each attempt, so one that carries a time or a context can be made afresh.
pub async fn execute_with_retry<A, ES>(
    cqrs: &CqrsFramework<A, ES>,
    id: &str,
    metadata: &HashMap<String, String>,
    mut command: impl FnMut() -> A::Command,
) -> Result<(), RetryError<A::Error>>
where
    A: Aggregate,
    ES: EventStore<A>,
{
    let mut attempts = 0;
    loop {
        attempts += 1;
        match cqrs
            .execute_with_metadata(id, command(), metadata.clone())
            .await
        {
            Ok(()) => return Ok(()),
            Err(AggregateError::AggregateConflict) if attempts < CONFLICT_ATTEMPTS => {
                tokio::time::sleep(jittered(backoff(attempts))).await;
            }
            Err(AggregateError::AggregateConflict) => {
                return Err(RetryError::Exhausted { attempts })
            }
            Err(AggregateError::UserError(error)) => return Err(RetryError::Refused(error)),
            Err(other) => return Err(RetryError::Failed(other)),
        }
    }
}

/// A random pause between half of `longest` and `longest`.
fn jittered(longest: Duration) -> Duration {
    use rand_core::RngCore;
    let half = longest / 2;
    let spread = u64::try_from(half.as_micros()).unwrap_or(u64::MAX).max(1);
    half + Duration::from_micros(rand_core::OsRng.next_u64() % spread)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    use cqrs_es::{AggregateContext, EventEnvelope};
    use dezky_domain::probe::{Probe, ProbeCommand, Reading};

    use super::*;

    /// A store where every commit loses the race, as if another writer always got there first.
    #[derive(Default)]
    struct AlwaysRaced {
        commits: Arc<AtomicU32>,
    }

    struct Fresh(Probe);

    impl AggregateContext<Probe> for Fresh {
        fn aggregate(&mut self) -> &mut Probe {
            &mut self.0
        }
    }

    impl EventStore<Probe> for AlwaysRaced {
        type AC = Fresh;

        async fn load_events(
            &self,
            _: &str,
        ) -> Result<Vec<EventEnvelope<Probe>>, AggregateError<<Probe as Aggregate>::Error>>
        {
            Ok(Vec::new())
        }

        async fn load_aggregate(
            &self,
            _: &str,
        ) -> Result<Fresh, AggregateError<<Probe as Aggregate>::Error>> {
            Ok(Fresh(Probe::default()))
        }

        async fn commit(
            &self,
            _: Vec<<Probe as Aggregate>::Event>,
            _: Fresh,
            _: HashMap<String, String>,
        ) -> Result<Vec<EventEnvelope<Probe>>, AggregateError<<Probe as Aggregate>::Error>>
        {
            self.commits.fetch_add(1, Ordering::SeqCst);
            Err(AggregateError::AggregateConflict)
        }
    }

    #[tokio::test]
    async fn a_command_that_keeps_losing_the_race_gets_a_typed_error_after_the_last_attempt() {
        let store = AlwaysRaced::default();
        let commits = store.commits.clone();
        let cqrs = CqrsFramework::new(store, vec![], ());
        let command = || ProbeCommand::Record {
            readings: vec![Reading {
                value_milli: 1,
                unit: "ms".into(),
            }],
            label: "raced".into(),
        };
        let outcome = execute_with_retry(&cqrs, "probe-1", &HashMap::new(), command).await;
        assert!(
            matches!(
                outcome,
                Err(RetryError::Exhausted {
                    attempts: CONFLICT_ATTEMPTS
                })
            ),
            "{outcome:?}"
        );
        assert_eq!(commits.load(Ordering::SeqCst), CONFLICT_ATTEMPTS);
    }

    #[test]
    fn the_pause_doubles_up_to_its_cap() {
        assert_eq!(backoff(1), Duration::from_millis(2));
        assert_eq!(backoff(2), Duration::from_millis(4));
        assert_eq!(backoff(6), Duration::from_millis(64));
        assert_eq!(backoff(7), Duration::from_millis(100));
        assert_eq!(backoff(u32::MAX), Duration::from_millis(100));
    }

    #[test]
    fn a_jittered_pause_stays_in_the_upper_half() {
        for _ in 0..100 {
            let pause = jittered(Duration::from_millis(64));
            assert!(pause >= Duration::from_millis(32) && pause <= Duration::from_millis(64));
        }
    }
}
