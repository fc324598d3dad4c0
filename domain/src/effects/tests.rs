//! Given/when/then tests of the Effect aggregate, one per rule, named as the rule.

use cqrs_es::test::TestFramework;
use serde_json::json;

use super::*;

const AT: &str = "2026-11-28T10:00:00Z";
const LATER: &str = "2026-11-28T10:00:04Z";

fn intent(max_attempts: u32) -> EffectIntent {
    EffectIntent {
        saga: "tenant-provisioning".into(),
        step: "create-service-domain".into(),
        system: "stalwart".into(),
        tenant_id: Some("tenant-acme".into()),
        trigger_position: 42,
        request: json!({"domain": "acme.dezky.eu"}),
        max_attempts,
    }
}

fn intended(max_attempts: u32) -> EffectEvent {
    EffectEvent::EffectIntended {
        intent: intent(max_attempts),
        at: AT.into(),
    }
}

fn attempted(attempt: u32) -> EffectEvent {
    EffectEvent::EffectAttempted {
        attempt,
        at: AT.into(),
    }
}

fn failed(attempt: u32) -> EffectEvent {
    EffectEvent::EffectFailed {
        attempt,
        error: "503".into(),
        retry_at: Some(LATER.into()),
        at: AT.into(),
    }
}

fn fail(attempt: u32, retryable: bool) -> EffectCommand {
    EffectCommand::Fail {
        attempt,
        error: "503".into(),
        retryable,
        retry_at: LATER.into(),
        at: AT.into(),
    }
}

fn outcome(
    given: Vec<EffectEvent>,
    command: EffectCommand,
) -> Result<Vec<EffectEvent>, EffectError> {
    TestFramework::<Effect>::with(())
        .given(given)
        .when(command)
        .inspect_result()
}

fn state(events: Vec<EffectEvent>) -> Effect {
    let mut effect = Effect::default();
    for event in events {
        effect.apply(event);
    }
    effect
}

#[test]
fn the_idempotency_key_is_derived_from_saga_step_and_triggering_position() {
    assert_eq!(
        idempotency_key("tenant-provisioning", "create-service-domain", 42),
        "tenant-provisioning/create-service-domain/42"
    );
}

#[test]
fn an_intent_is_recorded_once_and_a_repeated_identical_intent_changes_nothing() {
    assert_eq!(
        outcome(
            vec![],
            EffectCommand::Intend {
                intent: intent(3),
                at: AT.into()
            }
        ),
        Ok(vec![intended(3)])
    );
    assert_eq!(
        outcome(
            vec![intended(3)],
            EffectCommand::Intend {
                intent: intent(3),
                at: LATER.into()
            }
        ),
        Ok(vec![])
    );
}

#[test]
fn a_different_intent_under_the_same_key_is_refused() {
    let mut other = intent(3);
    other.step = "delete-service-domain".into();
    assert_eq!(
        outcome(
            vec![intended(3)],
            EffectCommand::Intend {
                intent: other,
                at: AT.into()
            }
        ),
        Err(EffectError::KeyReused)
    );
}

#[test]
fn an_intent_without_attempts_is_refused() {
    assert_eq!(
        outcome(
            vec![],
            EffectCommand::Intend {
                intent: intent(0),
                at: AT.into()
            }
        ),
        Err(EffectError::NoAttempts)
    );
}

#[test]
fn nothing_happens_to_an_effect_never_intended() {
    assert_eq!(
        outcome(vec![], EffectCommand::BeginAttempt { at: AT.into() }),
        Err(EffectError::NotIntended)
    );
}

#[test]
fn a_second_attempt_cannot_start_while_one_is_in_flight() {
    assert_eq!(
        outcome(
            vec![intended(3), attempted(1)],
            EffectCommand::BeginAttempt { at: AT.into() }
        ),
        Err(EffectError::InvalidState {
            status: EffectStatus::InFlight,
            action: "starting an attempt"
        })
    );
}

#[test]
fn an_outcome_names_the_attempt_in_flight() {
    assert_eq!(
        outcome(
            vec![intended(3), attempted(1), failed(1), attempted(2)],
            EffectCommand::Succeed {
                attempt: 1,
                result: json!({}),
                at: AT.into()
            }
        ),
        Err(EffectError::WrongAttempt {
            given: 1,
            current: 2
        })
    );
}

#[test]
fn a_succeeded_effect_accepts_no_further_attempt() {
    let done = vec![
        intended(3),
        attempted(1),
        EffectEvent::EffectSucceeded {
            attempt: 1,
            result: json!({"id": "d1"}),
            at: AT.into(),
        },
    ];
    assert_eq!(state(done.clone()).status, Some(EffectStatus::Succeeded));
    assert!(matches!(
        outcome(done, EffectCommand::BeginAttempt { at: AT.into() }),
        Err(EffectError::InvalidState {
            status: EffectStatus::Succeeded,
            ..
        })
    ));
}

#[test]
fn a_retryable_failure_schedules_the_next_attempt_until_the_budget_is_spent_then_dead_letters() {
    assert_eq!(
        outcome(vec![intended(2), attempted(1)], fail(1, true)),
        Ok(vec![failed(1)])
    );
    let spent = outcome(
        vec![intended(2), attempted(1), failed(1), attempted(2)],
        fail(2, true),
    )
    .expect("decided");
    assert!(matches!(
        spent.as_slice(),
        [
            EffectEvent::EffectFailed { retry_at: None, .. },
            EffectEvent::EffectDeadLettered { .. }
        ]
    ));
}

#[test]
fn a_failure_that_retrying_cannot_fix_dead_letters_at_once() {
    let refused = outcome(vec![intended(5), attempted(1)], fail(1, false)).expect("decided");
    assert!(matches!(
        refused.as_slice(),
        [
            EffectEvent::EffectFailed { retry_at: None, .. },
            EffectEvent::EffectDeadLettered { .. }
        ]
    ));
}

#[test]
fn an_unknown_outcome_is_never_retried_blindly_but_reconciled_first() {
    let unknown = vec![
        intended(3),
        attempted(1),
        EffectEvent::EffectOutcomeUnknown {
            attempt: 1,
            reason: "connection lost after sending".into(),
            at: AT.into(),
        },
    ];
    assert!(matches!(
        outcome(
            unknown.clone(),
            EffectCommand::BeginAttempt { at: AT.into() }
        ),
        Err(EffectError::InvalidState {
            status: EffectStatus::Unknown,
            ..
        })
    ));
    // Found applied: the effect is done, with no second attempt.
    let applied = outcome(
        unknown.clone(),
        EffectCommand::Reconcile {
            applied: true,
            found: json!({"id": "d1"}),
            retry_at: LATER.into(),
            at: LATER.into(),
        },
    )
    .expect("reconciled");
    let mut after = unknown.clone();
    after.extend(applied);
    assert_eq!(state(after).status, Some(EffectStatus::Succeeded));
    // Found not applied: another attempt is due.
    let not_applied = outcome(
        unknown.clone(),
        EffectCommand::Reconcile {
            applied: false,
            found: json!(null),
            retry_at: LATER.into(),
            at: LATER.into(),
        },
    )
    .expect("reconciled");
    let mut after = unknown;
    after.extend(not_applied);
    let effect = state(after);
    assert_eq!(effect.status, Some(EffectStatus::Retrying));
    assert_eq!(effect.retry_at.as_deref(), Some(LATER));
}

#[test]
fn a_system_that_is_not_configured_is_recorded_as_such_never_as_success() {
    let events = outcome(
        vec![intended(3)],
        EffectCommand::NotConfigured { at: AT.into() },
    )
    .expect("recorded");
    assert_eq!(
        events,
        vec![EffectEvent::EffectNotConfigured {
            system: "stalwart".into(),
            at: AT.into()
        }]
    );
    let mut all = vec![intended(3)];
    all.extend(events);
    assert_eq!(state(all).status, Some(EffectStatus::NotConfigured));
}

#[test]
fn an_operator_retries_a_dead_lettered_effect_with_a_fresh_round_of_attempts() {
    let dead = vec![
        intended(2),
        attempted(1),
        failed(1),
        attempted(2),
        EffectEvent::EffectFailed {
            attempt: 2,
            error: "503".into(),
            retry_at: None,
            at: AT.into(),
        },
        EffectEvent::EffectDeadLettered {
            error: "503".into(),
            at: AT.into(),
        },
    ];
    let retried = outcome(
        dead.clone(),
        EffectCommand::OperatorRetry {
            by: "op".into(),
            at: LATER.into(),
        },
    )
    .expect("retried");
    assert_eq!(
        retried,
        vec![EffectEvent::EffectRetryRequested {
            by: "op".into(),
            attempt_budget: 4,
            at: LATER.into()
        }]
    );
    let mut all = dead;
    all.extend(retried);
    assert_eq!(
        outcome(all, EffectCommand::BeginAttempt { at: LATER.into() }),
        Ok(vec![EffectEvent::EffectAttempted {
            attempt: 3,
            at: LATER.into()
        }])
    );
}

#[test]
fn an_operator_cannot_retry_an_effect_that_is_still_being_driven() {
    assert!(matches!(
        outcome(
            vec![intended(3), attempted(1), failed(1)],
            EffectCommand::OperatorRetry {
                by: "op".into(),
                at: AT.into()
            }
        ),
        Err(EffectError::InvalidState {
            status: EffectStatus::Retrying,
            ..
        })
    ));
}

#[test]
fn retry_delays_grow_exponentially_to_a_cap_and_jitter_scales_them_down_only() {
    assert_eq!(retry_delay_ms(1, 1_000), RETRY_BASE_DELAY_MS);
    assert_eq!(retry_delay_ms(2, 1_000), 2 * RETRY_BASE_DELAY_MS);
    assert_eq!(retry_delay_ms(4, 1_000), 8 * RETRY_BASE_DELAY_MS);
    assert_eq!(retry_delay_ms(40, 1_000), RETRY_MAX_DELAY_MS);
    assert_eq!(retry_delay_ms(3, 500), 2 * RETRY_BASE_DELAY_MS);
    // More than 1000 per mille is clamped: jitter never lengthens past the schedule.
    assert_eq!(retry_delay_ms(1, 5_000), RETRY_BASE_DELAY_MS);
}

#[test]
fn the_stored_event_type_names_are_pinned() {
    let events = [
        intended(1),
        attempted(1),
        EffectEvent::EffectSucceeded {
            attempt: 1,
            result: json!({}),
            at: AT.into(),
        },
        failed(1),
        EffectEvent::EffectOutcomeUnknown {
            attempt: 1,
            reason: String::new(),
            at: AT.into(),
        },
        EffectEvent::EffectReconciled {
            applied: true,
            found: json!({}),
            retry_at: None,
            at: AT.into(),
        },
        EffectEvent::EffectDeadLettered {
            error: String::new(),
            at: AT.into(),
        },
        EffectEvent::EffectNotConfigured {
            system: String::new(),
            at: AT.into(),
        },
        EffectEvent::EffectRetryRequested {
            by: String::new(),
            attempt_budget: 1,
            at: AT.into(),
        },
    ];
    let names: Vec<String> = events.iter().map(CqrsEvent::event_type).collect();
    assert_eq!(names, EFFECT_EVENT_TYPES);
}
