//! The platform flag (`isPlatformTenant`): which tenant is dezky's own company tenant, the one
//! allowed to claim the platform apex domain and home of the operator accounts.
//!
//! Exactly one tenant holds it, and setting it elsewhere clears it here. A flag on each tenant
//! would need two aggregates to change together; a singleton aggregate (id
//! [`PLATFORM_FLAG_ID`]) makes the hand-over one event, [`PlatformFlagEvent::PlatformTenantAssigned`]
//! with the previous holder, which is atomic by construction. The seed moved the identity off
//! configuration and onto the record for the same reason: a slug in an environment variable
//! chased every purge and re-creation.

use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::EventUpcaster;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use super::context::{CommandContext, ContextError};

/// Aggregate type name as stored in the ledger. Never change it.
pub const PLATFORM_FLAG_AGGREGATE_TYPE: &str = "platform_flag";
/// The one aggregate id of the platform flag.
pub const PLATFORM_FLAG_ID: &str = "platform";
/// Schema version of the platform-flag events.
const PLATFORM_FLAG_EVENT_VERSION: &str = "1.0";

/// Commands the platform flag accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlatformFlagCommand {
    /// Make a tenant the platform tenant (and clear the flag on the previous one).
    Assign {
        /// Who acts, and when.
        ctx: CommandContext,
        /// The new platform tenant. Whether it exists is the caller's check (read model);
        /// this aggregate sees no tenants.
        tenant_id: String,
    },
}

/// Events the platform flag emits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PlatformFlagEvent {
    /// The flag moved to `tenant_id`; `previous` (if any) no longer holds it.
    PlatformTenantAssigned {
        /// The new platform tenant.
        tenant_id: String,
        /// The previous one.
        previous: Option<String>,
    },
}

impl DomainEvent for PlatformFlagEvent {
    fn event_type(&self) -> String {
        match self {
            PlatformFlagEvent::PlatformTenantAssigned { .. } => "PlatformTenantAssigned".to_owned(),
        }
    }

    fn event_version(&self) -> String {
        PLATFORM_FLAG_EVENT_VERSION.to_owned()
    }
}

/// Why the platform flag refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlatformFlagError {
    /// The command context is malformed.
    #[error(transparent)]
    Context(#[from] ContextError),
    /// Only platform admins may move the flag; in particular a tenant admin cannot make their
    /// own tenant the platform tenant.
    #[error("only a platform admin may assign the platform tenant")]
    NotPlatformAdmin,
    /// A blank tenant id.
    #[error("the tenant id must not be blank")]
    BlankTenantId,
}

/// The platform flag, folded from its events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformFlag {
    /// The platform tenant, once assigned.
    pub holder: Option<String>,
}

impl PlatformFlag {
    /// Decides a command. Pure. Assigning the current holder again changes nothing.
    pub fn decide(
        &self,
        command: PlatformFlagCommand,
    ) -> Result<Vec<PlatformFlagEvent>, PlatformFlagError> {
        match command {
            PlatformFlagCommand::Assign { ctx, tenant_id } => {
                ctx.check()?;
                if !ctx.principal.platform_admin {
                    return Err(PlatformFlagError::NotPlatformAdmin);
                }
                if tenant_id.trim().is_empty() {
                    return Err(PlatformFlagError::BlankTenantId);
                }
                if self.holder.as_deref() == Some(tenant_id.as_str()) {
                    return Ok(Vec::new());
                }
                Ok(vec![PlatformFlagEvent::PlatformTenantAssigned {
                    tenant_id,
                    previous: self.holder.clone(),
                }])
            }
        }
    }
}

impl Aggregate for PlatformFlag {
    const TYPE: &'static str = PLATFORM_FLAG_AGGREGATE_TYPE;
    type Command = PlatformFlagCommand;
    type Event = PlatformFlagEvent;
    type Error = PlatformFlagError;
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
            PlatformFlagEvent::PlatformTenantAssigned { tenant_id, .. } => {
                self.holder = Some(tenant_id);
            }
        }
    }
}

/// The upcasters a platform-flag event store must be built with (none yet).
pub fn platform_flag_upcasters() -> Vec<Box<dyn EventUpcaster>> {
    Vec::new()
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::super::context::Principal;
    use super::*;

    type Given = TestFramework<PlatformFlag>;

    const NOW: &str = "2026-11-28T10:00:00Z";

    fn assign(principal: Principal, tenant_id: &str) -> PlatformFlagCommand {
        PlatformFlagCommand::Assign {
            ctx: CommandContext::new(principal, NOW),
            tenant_id: tenant_id.into(),
        }
    }

    fn operator() -> Principal {
        Principal::platform_admin("op-1", "op@dezky.eu")
    }

    fn assigned(tenant_id: &str, previous: Option<&str>) -> PlatformFlagEvent {
        PlatformFlagEvent::PlatformTenantAssigned {
            tenant_id: tenant_id.into(),
            previous: previous.map(Into::into),
        }
    }

    #[test]
    fn a_platform_admin_assigns_the_first_platform_tenant() {
        Given::with(())
            .given_no_previous_events()
            .when(assign(operator(), "t-1"))
            .then_expect_events(vec![assigned("t-1", None)]);
    }

    #[test]
    fn assigning_another_tenant_clears_the_flag_on_the_previous_one_in_the_same_event() {
        Given::with(())
            .given(vec![assigned("t-1", None)])
            .when(assign(operator(), "t-2"))
            .then_expect_events(vec![assigned("t-2", Some("t-1"))]);
    }

    #[test]
    fn assigning_the_current_platform_tenant_again_changes_nothing() {
        Given::with(())
            .given(vec![assigned("t-1", None)])
            .when(assign(operator(), "t-1"))
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_tenant_admin_cannot_make_their_tenant_the_platform_tenant() {
        Given::with(())
            .given(vec![assigned("t-1", None)])
            .when(assign(Principal::user("u-1", "ada@example.eu"), "t-2"))
            .then_expect_error(PlatformFlagError::NotPlatformAdmin);
    }

    #[test]
    fn partner_staff_cannot_assign_the_platform_tenant() {
        Given::with(())
            .given_no_previous_events()
            .when(assign(
                Principal::partner_staff("p-1", "p@example.eu", "partner-1"),
                "t-2",
            ))
            .then_expect_error(PlatformFlagError::NotPlatformAdmin);
    }

    #[test]
    fn a_blank_tenant_cannot_become_the_platform_tenant() {
        Given::with(())
            .given_no_previous_events()
            .when(assign(operator(), ""))
            .then_expect_error(PlatformFlagError::BlankTenantId);
    }

    #[test]
    fn an_assignment_without_an_identifiable_actor_is_refused() {
        Given::with(())
            .given_no_previous_events()
            .when(assign(Principal::default(), "t-1"))
            .then_expect_error(PlatformFlagError::Context(
                ContextError::UnidentifiedPrincipal,
            ));
    }

    #[test]
    fn the_platform_flag_event_keeps_its_stored_name() {
        let event = assigned("t-2", Some("t-1"));
        assert_eq!(event.event_type(), "PlatformTenantAssigned");
        assert_eq!(event.event_version(), "1.0");
        assert_eq!(
            serde_json::to_value(&event).expect("serializes"),
            serde_json::json!({"PlatformTenantAssigned": {"tenant_id": "t-2", "previous": "t-1"}})
        );
    }
}
