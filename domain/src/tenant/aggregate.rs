//! The tenant aggregate's state, folded from its events, and its cqrs-es wiring.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use super::billing::BillingInfo;
use super::branding::Branding;
use super::command::TenantCommand;
use super::context::Principal;
use super::decide::decide;
use super::error::TenantError;
use super::event::TenantEvent;
use super::mail::{address_key, AddressHolder, MailingList};
use super::member::{Member, MemberStatus, Role};
use super::security::SecurityPolicy;

/// Aggregate type name as stored in the ledger. Never change it: it is part of every hash.
pub const TENANT_AGGREGATE_TYPE: &str = "tenant";

/// Where a tenant is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TenantStatus {
    /// Created; the provisioning saga is setting up its external resources.
    PendingProvisioning,
    /// In use.
    Active,
    /// Suspended (e.g. unpaid): members cannot sign in.
    Suspended,
    /// Soft-deleted: kept, slug still claimed, until purged.
    SoftDeleted,
    /// Purged: external resources torn down, slug released. Final.
    Purged,
}

impl TenantStatus {
    /// Whether the tenant is soft-deleted or purged.
    pub fn is_deleted(self) -> bool {
        matches!(self, TenantStatus::SoftDeleted | TenantStatus::Purged)
    }
}

impl fmt::Display for TenantStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TenantStatus::PendingProvisioning => "pending provisioning",
            TenantStatus::Active => "active",
            TenantStatus::Suspended => "suspended",
            TenantStatus::SoftDeleted => "soft-deleted",
            TenantStatus::Purged => "purged",
        })
    }
}

/// A tenant, folded from its events. The default value is a tenant that does not exist yet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    /// The tenant id (empty until created).
    pub id: String,
    /// The status; `None` until created.
    pub status: Option<TenantStatus>,
    /// The organization's name.
    pub organization_name: String,
    /// The slug.
    pub slug: String,
    /// The plan id.
    pub plan: String,
    /// Seats.
    pub seats: u32,
    /// The owning partner.
    pub partner_id: Option<String>,
    /// When it was created.
    pub created_at: String,
    /// When it was soft-deleted.
    pub deleted_at: Option<String>,
    /// Billing details.
    pub billing: BillingInfo,
    /// Branding.
    pub branding: Branding,
    /// Security policy.
    pub security_policy: SecurityPolicy,
    /// Current members by id.
    pub members: BTreeMap<String, Member>,
    /// The owner's member id.
    pub owner_member_id: Option<String>,
    /// Ids of removed members. A member id is never reused, so the audit trail of one id is
    /// always about one person.
    pub retired_member_ids: BTreeSet<String>,
    /// Aliases (canonical address) and the member whose mailbox each delivers to.
    #[serde(default)]
    pub aliases: BTreeMap<String, String>,
    /// Distribution lists by id.
    #[serde(default)]
    pub mailing_lists: BTreeMap<String, MailingList>,
    /// Ids of deleted lists, never reused for the same reason as member ids.
    #[serde(default)]
    pub retired_list_ids: BTreeSet<String>,
}

impl Tenant {
    /// The member the principal is recognised as, if any (see [`Member::is_recognised_as`]).
    /// A linked subject wins over an e-mail match.
    pub fn acting_member(&self, principal: &Principal) -> Option<&Member> {
        self.members
            .values()
            .find(|m| m.subject.is_some() && m.is_recognised_as(principal))
            .or_else(|| {
                self.members
                    .values()
                    .find(|m| m.is_recognised_as(principal))
            })
    }

    /// What of this workspace uses the mail domain `name` (canonical): members whose address
    /// is there (with a mailbox or not: an admin who signs in with such an address would be cut
    /// off too), aliases and distribution lists. The input of a domain's removal, decided on
    /// the write side so that an alias made a moment ago counts.
    pub fn domain_usage(&self, name: &str) -> crate::domains::DomainUsage {
        let at = |address: &str| {
            address
                .rsplit_once('@')
                .and_then(|(_, domain)| crate::domains::DomainName::parse(domain).ok())
                .is_some_and(|domain| domain.as_str() == name)
        };
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        crate::domains::DomainUsage {
            mailboxes: count(self.members.values().filter(|m| at(&m.email)).count()),
            aliases: count(self.aliases.keys().filter(|a| at(a)).count()),
            lists: count(
                self.mailing_lists
                    .values()
                    .filter(|list| at(&list.address))
                    .count(),
            ),
        }
    }

    /// How many admins can currently sign in.
    pub fn active_admin_count(&self) -> usize {
        self.members
            .values()
            .filter(|m| m.is_active_admin())
            .count()
    }

    /// Whether `member_id` owns the tenant.
    pub fn is_owner(&self, member_id: &str) -> bool {
        self.owner_member_id.as_deref() == Some(member_id)
    }

    /// How many aliases deliver to `member_id`'s mailbox.
    pub fn alias_count(&self, member_id: &str) -> usize {
        self.aliases.values().filter(|m| *m == member_id).count()
    }

    /// What uses `address` (compared in canonical form) in this tenant: a member's own
    /// address, an alias or a list's address. Each address routes one way, so at most one.
    pub fn address_holder(&self, address: &str) -> Option<AddressHolder> {
        let key = address_key(address);
        if let Some(member_id) = self.aliases.get(&key) {
            return Some(AddressHolder::Alias {
                member_id: member_id.clone(),
            });
        }
        if let Some(list) = self.mailing_lists.values().find(|l| l.address == key) {
            return Some(AddressHolder::List {
                list_id: list.id.clone(),
            });
        }
        self.members
            .values()
            .find(|m| address_key(&m.email) == key)
            .map(|m| AddressHolder::Member {
                member_id: m.id.clone(),
            })
    }

    fn member_mut(&mut self, member_id: &str) -> Option<&mut Member> {
        self.members.get_mut(member_id)
    }

    fn insert_member(
        &mut self,
        member_id: String,
        email: String,
        display_name: String,
        role: Role,
        has_mailbox: bool,
    ) {
        self.members.insert(
            member_id.clone(),
            Member {
                id: member_id,
                email,
                display_name,
                role,
                status: MemberStatus::Active,
                has_mailbox,
                subject: None,
                issuer: None,
            },
        );
    }
}

impl Aggregate for Tenant {
    const TYPE: &'static str = TENANT_AGGREGATE_TYPE;
    type Command = TenantCommand;
    type Event = TenantEvent;
    type Error = TenantError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in decide(self, command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    /// Folds one event. Events are facts already decided, so an event about a member this
    /// state does not know (which `decide` never produces) changes nothing rather than
    /// failing the load of the whole tenant.
    fn apply(&mut self, event: Self::Event) {
        match event {
            TenantEvent::TenantCreated {
                tenant_id,
                organization_name,
                slug,
                plan,
                seats,
                partner_id,
                created_at,
                security_policy,
            } => {
                self.id = tenant_id;
                self.status = Some(TenantStatus::PendingProvisioning);
                self.organization_name = organization_name;
                self.slug = slug;
                self.plan = plan;
                self.seats = seats;
                self.partner_id = partner_id;
                self.created_at = created_at;
                self.security_policy = security_policy;
            }
            TenantEvent::TenantProvisioned {} | TenantEvent::TenantResumed {} => {
                self.status = Some(TenantStatus::Active);
            }
            TenantEvent::TenantSuspended {} => self.status = Some(TenantStatus::Suspended),
            TenantEvent::TenantSoftDeleted { deleted_at } => {
                self.status = Some(TenantStatus::SoftDeleted);
                self.deleted_at = Some(deleted_at);
            }
            TenantEvent::TenantPurged { .. } => self.status = Some(TenantStatus::Purged),
            TenantEvent::BillingInfoUpdated { changes } => changes.apply_to(&mut self.billing),
            TenantEvent::BrandingUpdated { changes } => changes.apply_to(&mut self.branding),
            TenantEvent::SecurityPolicyUpdated { changes } => {
                changes.apply_to(&mut self.security_policy);
            }
            TenantEvent::MemberInvited {
                member_id,
                email,
                display_name,
                role,
                owner,
                has_mailbox,
            } => {
                if owner {
                    self.owner_member_id = Some(member_id.clone());
                }
                self.insert_member(member_id, email, display_name, role, has_mailbox);
            }
            TenantEvent::MemberAdded {
                member_id,
                email,
                display_name,
                role,
                has_mailbox,
            } => self.insert_member(member_id, email, display_name, role, has_mailbox),
            TenantEvent::MemberRoleChanged { member_id, to, .. } => {
                if let Some(member) = self.member_mut(&member_id) {
                    member.role = to;
                }
            }
            TenantEvent::OwnershipTransferred { to_member_id, .. } => {
                if let Some(member) = self.member_mut(&to_member_id) {
                    member.role = Role::Admin;
                }
                self.owner_member_id = Some(to_member_id);
            }
            TenantEvent::MemberSuspended { member_id } => {
                if let Some(member) = self.member_mut(&member_id) {
                    member.status = MemberStatus::Suspended;
                }
            }
            TenantEvent::MemberResumed { member_id } => {
                if let Some(member) = self.member_mut(&member_id) {
                    member.status = MemberStatus::Active;
                }
            }
            TenantEvent::MemberLogoutRequested { .. }
            | TenantEvent::MemberPasswordResetRequested { .. } => {
                // Intents for the member saga; the tenant's state does not change.
            }
            TenantEvent::MemberRemoved { member_id } => {
                self.members.remove(&member_id);
                // Their aliases delivered to the mailbox that goes with them.
                self.aliases.retain(|_, owner| *owner != member_id);
                self.retired_member_ids.insert(member_id);
            }
            TenantEvent::MemberSubjectLinked {
                member_id,
                subject,
                issuer,
            } => {
                if let Some(member) = self.member_mut(&member_id) {
                    member.subject = Some(subject);
                    member.issuer = issuer;
                }
            }
            TenantEvent::MemberMailboxCreated { member_id } => {
                if let Some(member) = self.member_mut(&member_id) {
                    member.has_mailbox = true;
                }
            }
            TenantEvent::MemberAliasAdded {
                member_id, alias, ..
            } => {
                self.aliases.insert(alias, member_id);
            }
            TenantEvent::MemberAliasRemoved { alias, .. } => {
                self.aliases.remove(&alias);
            }
            TenantEvent::MailingListCreated {
                list_id,
                address,
                display_name,
                recipients,
            } => {
                self.mailing_lists.insert(
                    list_id.clone(),
                    MailingList {
                        id: list_id,
                        address,
                        display_name,
                        recipients,
                    },
                );
            }
            TenantEvent::MailingListRecipientsSet {
                list_id,
                recipients,
                ..
            } => {
                if let Some(list) = self.mailing_lists.get_mut(&list_id) {
                    list.recipients = recipients;
                }
            }
            TenantEvent::MailingListDeleted { list_id, .. } => {
                self.mailing_lists.remove(&list_id);
                self.retired_list_ids.insert(list_id);
            }
        }
    }
}
