//! Gives a purged tenant's slug back: `TenantPurged` → `SlugClaim::Release`.
//!
//! The tenant cannot release its slug itself (the claim is another aggregate, and one command
//! changes one aggregate), so this process manager does it after the purge is on the ledger.
//! A repeated release (a crash after the release and before the stored position) is refused by
//! the claim as `NotClaimed` or `HeldByAnotherTenant` — both mean the release already happened
//! (and perhaps someone has claimed the slug since), so they count as done.

use std::collections::HashMap;

use dezky_domain::tenant::{
    SlugClaim, SlugClaimCommand, SlugClaimError, TenantEvent, TENANT_AGGREGATE_TYPE,
};
use dezky_domain::{Actor, EventMetadata};

use super::{Process, ProcessError};
use crate::app::registry::{framework, Cqrs};
use crate::app::retry::{execute_with_retry, RetryError};
use crate::encoding::EventRecord;
use crate::Ledger;

/// The actor recorded on the releases this process issues.
pub const SLUG_RELEASE_ACTOR: &str = "dezky:process:slug-release";

type SlugCqrs = Cqrs<SlugClaim>;

/// The process manager.
pub struct SlugRelease {
    slugs: SlugCqrs,
}

impl SlugRelease {
    /// The process over `ledger`.
    pub fn new(ledger: &Ledger) -> Self {
        Self {
            slugs: framework(ledger),
        }
    }

    async fn release(&self, event: &EventRecord, slug: &str) -> Result<bool, ProcessError> {
        // The purge's correlation id carries over, so the audit trail links the release to the
        // request that purged; metadata this version cannot read just loses that link.
        let cause = serde_json::from_str::<HashMap<String, String>>(&event.metadata)
            .ok()
            .and_then(|map| EventMetadata::from_map(&map).ok())
            .unwrap_or_default();
        let metadata = EventMetadata {
            actor: Some(Actor {
                subject: SLUG_RELEASE_ACTOR.to_owned(),
                email: None,
            }),
            tenant_id: Some(event.aggregate_id.clone()),
            correlation_id: cause.correlation_id,
            causation_id: Some(format!("position:{}", event.position)),
            occurred_at: Some(event.recorded_at.clone()),
            request_ip: None,
        };
        let command = SlugClaimCommand::Release {
            tenant_id: event.aggregate_id.clone(),
        };
        let metadata = metadata.to_map();
        match execute_with_retry(&self.slugs, slug, &metadata, || command.clone()).await {
            Ok(())
            | Err(RetryError::Refused(
                SlugClaimError::NotClaimed | SlugClaimError::HeldByAnotherTenant { .. },
            )) => Ok(true),
            Err(error) => Err(ProcessError::Command {
                process: "slug_release",
                position: event.position,
                reason: error.to_string(),
            }),
        }
    }
}

impl Process for SlugRelease {
    fn name(&self) -> &'static str {
        "slug_release"
    }

    async fn handle(&self, event: &EventRecord) -> Result<bool, ProcessError> {
        if event.aggregate_type != TENANT_AGGREGATE_TYPE || event.event_type != "TenantPurged" {
            return Ok(false);
        }
        match serde_json::from_str::<TenantEvent>(&event.payload) {
            Ok(TenantEvent::TenantPurged { slug }) => self.release(event, &slug).await,
            Ok(_) | Err(_) => Err(ProcessError::Command {
                process: "slug_release",
                position: event.position,
                reason: "a TenantPurged event whose payload this version cannot read".into(),
            }),
        }
    }
}
