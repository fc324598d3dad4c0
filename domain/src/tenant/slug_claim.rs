//! Slug uniqueness across tenants: one small aggregate per slug (aggregate id = the slug).
//!
//! A tenant cannot know which slugs other tenants hold, so uniqueness cannot be a tenant
//! invariant. Instead each slug is its own aggregate whose whole state is "who holds me". Two
//! concurrent claims both decide on version 0; the ledger commits one and answers the other
//! with a conflict, and a retry of the loser then sees the holder and gets
//! [`SlugClaimError::SlugTaken`]. So twenty concurrent claims make exactly one winner.
//!
//! The caller validates the slug with [`crate::tenant::Slug::parse`] before using it as an
//! aggregate id; the claim itself does not know its id (cqrs-es does not pass it to `handle`).

use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::EventUpcaster;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

/// Aggregate type name as stored in the ledger. Never change it.
pub const SLUG_CLAIM_AGGREGATE_TYPE: &str = "slug_claim";
/// Schema version of the slug-claim events.
const SLUG_CLAIM_EVENT_VERSION: &str = "1.0";

/// Commands a slug claim accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlugClaimCommand {
    /// Claim the slug for a tenant. Claiming a slug the tenant already holds changes nothing,
    /// so a retried creation is harmless.
    Claim {
        /// The claiming tenant.
        tenant_id: String,
    },
    /// Release the slug (after the tenant was purged, or its creation was refused).
    Release {
        /// The tenant that holds it.
        tenant_id: String,
    },
}

/// Events a slug claim emits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SlugClaimEvent {
    /// A tenant claimed the slug.
    SlugClaimed {
        /// The tenant.
        tenant_id: String,
    },
    /// The holder released the slug; it can be claimed again.
    SlugReleased {
        /// The tenant that held it.
        tenant_id: String,
    },
}

impl DomainEvent for SlugClaimEvent {
    fn event_type(&self) -> String {
        match self {
            SlugClaimEvent::SlugClaimed { .. } => "SlugClaimed".to_owned(),
            SlugClaimEvent::SlugReleased { .. } => "SlugReleased".to_owned(),
        }
    }

    fn event_version(&self) -> String {
        SLUG_CLAIM_EVENT_VERSION.to_owned()
    }
}

/// Why a slug claim refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlugClaimError {
    /// Another tenant holds the slug.
    #[error("the slug is taken by tenant {by}")]
    SlugTaken {
        /// The holder.
        by: String,
    },
    /// Release of a slug nobody holds.
    #[error("the slug is not claimed")]
    NotClaimed,
    /// Release by a tenant that does not hold the slug.
    #[error("the slug is held by tenant {by}, not by the one releasing it")]
    HeldByAnotherTenant {
        /// The holder.
        by: String,
    },
    /// A blank tenant id.
    #[error("the tenant id must not be blank")]
    BlankTenantId,
}

/// A slug's claim, folded from its events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlugClaim {
    /// The tenant holding the slug, if any.
    pub holder: Option<String>,
}

impl SlugClaim {
    /// Decides a command. Pure.
    pub fn decide(&self, command: SlugClaimCommand) -> Result<Vec<SlugClaimEvent>, SlugClaimError> {
        match command {
            SlugClaimCommand::Claim { tenant_id } => {
                if tenant_id.trim().is_empty() {
                    return Err(SlugClaimError::BlankTenantId);
                }
                match &self.holder {
                    None => Ok(vec![SlugClaimEvent::SlugClaimed { tenant_id }]),
                    Some(holder) if *holder == tenant_id => Ok(Vec::new()),
                    Some(holder) => Err(SlugClaimError::SlugTaken { by: holder.clone() }),
                }
            }
            SlugClaimCommand::Release { tenant_id } => match &self.holder {
                None => Err(SlugClaimError::NotClaimed),
                Some(holder) if *holder == tenant_id => {
                    Ok(vec![SlugClaimEvent::SlugReleased { tenant_id }])
                }
                Some(holder) => Err(SlugClaimError::HeldByAnotherTenant { by: holder.clone() }),
            },
        }
    }
}

impl Aggregate for SlugClaim {
    const TYPE: &'static str = SLUG_CLAIM_AGGREGATE_TYPE;
    type Command = SlugClaimCommand;
    type Event = SlugClaimEvent;
    type Error = SlugClaimError;
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
            SlugClaimEvent::SlugClaimed { tenant_id } => self.holder = Some(tenant_id),
            SlugClaimEvent::SlugReleased { .. } => self.holder = None,
        }
    }
}

/// The upcasters a slug-claim event store must be built with (none yet).
pub fn slug_claim_upcasters() -> Vec<Box<dyn EventUpcaster>> {
    Vec::new()
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;

    type Given = TestFramework<SlugClaim>;

    fn claimed(tenant_id: &str) -> SlugClaimEvent {
        SlugClaimEvent::SlugClaimed {
            tenant_id: tenant_id.into(),
        }
    }

    fn released(tenant_id: &str) -> SlugClaimEvent {
        SlugClaimEvent::SlugReleased {
            tenant_id: tenant_id.into(),
        }
    }

    fn claim(tenant_id: &str) -> SlugClaimCommand {
        SlugClaimCommand::Claim {
            tenant_id: tenant_id.into(),
        }
    }

    fn release(tenant_id: &str) -> SlugClaimCommand {
        SlugClaimCommand::Release {
            tenant_id: tenant_id.into(),
        }
    }

    #[test]
    fn a_free_slug_is_claimed_by_the_first_tenant() {
        Given::with(())
            .given_no_previous_events()
            .when(claim("t-1"))
            .then_expect_events(vec![claimed("t-1")]);
    }

    #[test]
    fn a_slug_held_by_another_tenant_is_refused_naming_the_holder() {
        Given::with(())
            .given(vec![claimed("t-1")])
            .when(claim("t-2"))
            .then_expect_error(SlugClaimError::SlugTaken { by: "t-1".into() });
    }

    #[test]
    fn claiming_a_slug_the_tenant_already_holds_changes_nothing() {
        Given::with(())
            .given(vec![claimed("t-1")])
            .when(claim("t-1"))
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_blank_tenant_cannot_claim_a_slug() {
        Given::with(())
            .given_no_previous_events()
            .when(claim(" "))
            .then_expect_error(SlugClaimError::BlankTenantId);
    }

    #[test]
    fn the_holder_releases_its_slug() {
        Given::with(())
            .given(vec![claimed("t-1")])
            .when(release("t-1"))
            .then_expect_events(vec![released("t-1")]);
    }

    #[test]
    fn a_slug_is_reusable_after_its_release() {
        Given::with(())
            .given(vec![claimed("t-1"), released("t-1")])
            .when(claim("t-2"))
            .then_expect_events(vec![claimed("t-2")]);
    }

    #[test]
    fn releasing_an_unclaimed_slug_is_refused() {
        Given::with(())
            .given(vec![claimed("t-1"), released("t-1")])
            .when(release("t-1"))
            .then_expect_error(SlugClaimError::NotClaimed);
    }

    #[test]
    fn only_the_holder_can_release_a_slug() {
        Given::with(())
            .given(vec![claimed("t-1")])
            .when(release("t-2"))
            .then_expect_error(SlugClaimError::HeldByAnotherTenant { by: "t-1".into() });
    }

    #[test]
    fn of_twenty_claims_decided_on_the_same_version_one_commits_and_every_retry_is_refused() {
        // Models what the ledger does with twenty concurrent claims: all decide on the empty
        // claim (version 0), optimistic concurrency commits the first, and each loser retries
        // on the committed state.
        let empty = SlugClaim::default();
        let decisions: Vec<_> = (0..20)
            .map(|i| empty.decide(claim(&format!("t-{i}"))))
            .collect();
        assert!(decisions
            .iter()
            .all(|d| d.as_ref().is_ok_and(|e| e.len() == 1)));

        let mut committed = SlugClaim::default();
        committed.apply(claimed("t-7"));
        let retries: Vec<_> = (0..20)
            .filter(|i| *i != 7)
            .map(|i| committed.decide(claim(&format!("t-{i}"))))
            .collect();
        assert_eq!(retries.len(), 19);
        assert!(retries
            .iter()
            .all(|r| *r == Err(SlugClaimError::SlugTaken { by: "t-7".into() })));
    }

    #[test]
    fn slug_claim_events_keep_their_stored_names() {
        for (event, name) in [
            (claimed("t"), "SlugClaimed"),
            (released("t"), "SlugReleased"),
        ] {
            assert_eq!(event.event_type(), name);
            assert_eq!(event.event_version(), "1.0");
            let json = serde_json::to_value(&event).expect("serializes");
            assert!(json.get(name).is_some(), "{json}");
        }
    }
}
