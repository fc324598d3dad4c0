//! What the audit timeline says about each tenant event: a sentence for people and the
//! field-level diff `{field: {from, to}}` of only the fields the command changed.

use super::*;

/// What the fold says about one event.
pub(super) struct Described {
    pub(super) summary: String,
    pub(super) diff: Diff,
    /// The tenant the payload names (platform flag, slug claims), used when the metadata has
    /// none.
    pub(super) payload_tenant: Option<String>,
}

impl Described {
    pub(super) fn new(summary: String, diff: Diff) -> Self {
        Self {
            summary,
            diff,
            payload_tenant: None,
        }
    }
}

pub(super) fn diff_of<const N: usize>(fields: [(&str, FieldDiff); N]) -> Diff {
    fields
        .into_iter()
        .map(|(name, change)| (name.to_owned(), change))
        .collect()
}

/// The `{field: {from, to}}` map of an update event's changes. The change structs serialize
/// only the fields that changed, each as `{from, to}`, which is this diff's shape already.
pub(super) fn changes_diff<T: Serialize>(
    event: &EventRecord,
    changes: &T,
) -> Result<Diff, ProjectionError> {
    serde_json::to_value(changes)
        .and_then(serde_json::from_value)
        .map_err(|error| fold_error(event, error))
}

pub(super) fn fields_sentence(what: &str, diff: &Diff) -> String {
    if diff.is_empty() {
        format!("{what} updated")
    } else {
        let fields: Vec<&str> = diff.keys().map(String::as_str).collect();
        format!("{what} updated: {}", fields.join(", "))
    }
}

pub(super) fn describe_tenant_event(
    batch: &mut AuditBatch,
    record: &EventRecord,
    event: TenantEvent,
) -> Result<Described, ProjectionError> {
    let tenant_id = record.aggregate_id.as_str();
    let described = match event {
        TenantEvent::TenantCreated {
            organization_name,
            slug,
            plan,
            seats,
            partner_id,
            ..
        } => {
            let status = tenant_status_name(TenantStatus::PendingProvisioning);
            batch.remember_tenant(tenant_id, &slug, status);
            let through = partner_id
                .as_deref()
                .map(|p| format!(" through partner {p}"))
                .unwrap_or_default();
            let summary = format!(
                "Workspace {slug} created for {organization_name} on plan {plan} with {seats} \
                 seats{through}"
            );
            let mut diff = diff_of([
                ("organization_name", FieldDiff::set(organization_name)),
                ("slug", FieldDiff::set(slug)),
                ("plan", FieldDiff::set(plan)),
                ("seats", FieldDiff::set(seats)),
                ("status", FieldDiff::set(status)),
            ]);
            if let Some(partner_id) = partner_id {
                diff.insert("partner_id".into(), FieldDiff::set(partner_id));
            }
            Described::new(summary, diff)
        }
        TenantEvent::TenantProvisioned {} => {
            let (change, label) = batch.status_change(tenant_id, TenantStatus::Active);
            Described::new(
                format!("Workspace {label} provisioned"),
                diff_of([("status", change)]),
            )
        }
        TenantEvent::TenantSuspended {} => {
            let (change, label) = batch.status_change(tenant_id, TenantStatus::Suspended);
            Described::new(
                format!("Workspace {label} suspended"),
                diff_of([("status", change)]),
            )
        }
        TenantEvent::TenantResumed {} => {
            let (change, label) = batch.status_change(tenant_id, TenantStatus::Active);
            Described::new(
                format!("Workspace {label} resumed"),
                diff_of([("status", change)]),
            )
        }
        TenantEvent::TenantSoftDeleted { deleted_at } => {
            let (change, label) = batch.status_change(tenant_id, TenantStatus::SoftDeleted);
            Described::new(
                format!("Workspace {label} deleted (can still be restored until purged)"),
                diff_of([
                    ("status", change),
                    ("deleted_at", FieldDiff::set(deleted_at)),
                ]),
            )
        }
        TenantEvent::TenantPurged { slug } => {
            let (change, _) = batch.status_change(tenant_id, TenantStatus::Purged);
            Described::new(
                format!("Workspace {slug} purged; the slug can be claimed again"),
                diff_of([("status", change)]),
            )
        }
        TenantEvent::BillingInfoUpdated { changes } => {
            let diff = changes_diff(record, &changes)?;
            Described::new(fields_sentence("Billing details", &diff), diff)
        }
        TenantEvent::BrandingUpdated { changes } => {
            let diff = changes_diff(record, &changes)?;
            Described::new(fields_sentence("Branding", &diff), diff)
        }
        TenantEvent::SecurityPolicyUpdated { changes } => {
            let diff = changes_diff(record, &changes)?;
            Described::new(fields_sentence("Security policy", &diff), diff)
        }
        TenantEvent::MemberInvited {
            member_id,
            email,
            display_name,
            role,
            owner,
            has_mailbox,
        } => {
            batch.remember_member(tenant_id, &member_id, &email);
            let as_owner = if owner { " and owner" } else { "" };
            let summary = format!(
                "{display_name} <{email}> invited as {}{as_owner}",
                role_name(role)
            );
            let mut diff = diff_of([
                ("email", FieldDiff::set(email)),
                ("display_name", FieldDiff::set(display_name)),
                ("role", FieldDiff::set(role_name(role))),
                ("has_mailbox", FieldDiff::set(has_mailbox)),
            ]);
            if owner {
                diff.insert("owner".into(), FieldDiff::set(true));
            }
            Described::new(summary, diff)
        }
        TenantEvent::MemberAdded {
            member_id,
            email,
            display_name,
            role,
            has_mailbox,
        } => {
            batch.remember_member(tenant_id, &member_id, &email);
            let summary = format!("{display_name} <{email}> added as {}", role_name(role));
            let diff = diff_of([
                ("email", FieldDiff::set(email)),
                ("display_name", FieldDiff::set(display_name)),
                ("role", FieldDiff::set(role_name(role))),
                ("has_mailbox", FieldDiff::set(has_mailbox)),
            ]);
            Described::new(summary, diff)
        }
        TenantEvent::MemberRoleChanged {
            member_id,
            from,
            to,
        } => {
            let who = batch.member_label(tenant_id, &member_id);
            Described::new(
                format!(
                    "Role of {who} changed from {} to {}",
                    role_name(from),
                    role_name(to)
                ),
                diff_of([("role", FieldDiff::new(role_name(from), role_name(to)))]),
            )
        }
        TenantEvent::OwnershipTransferred {
            from_member_id,
            to_member_id,
        } => {
            let from = batch.member_label(tenant_id, &from_member_id);
            let to = batch.member_label(tenant_id, &to_member_id);
            Described::new(
                format!("Ownership transferred from {from} to {to}"),
                diff_of([("owner", FieldDiff::new(from_member_id, to_member_id))]),
            )
        }
        // The aggregate suspends only active members and resumes only suspended ones, so
        // the `from` side is known without remembering member statuses.
        TenantEvent::MemberSuspended { member_id } => {
            let who = batch.member_label(tenant_id, &member_id);
            Described::new(
                format!("{who} suspended"),
                diff_of([("status", FieldDiff::new("active", "suspended"))]),
            )
        }
        TenantEvent::MemberResumed { member_id } => {
            let who = batch.member_label(tenant_id, &member_id);
            Described::new(
                format!("{who} resumed"),
                diff_of([("status", FieldDiff::new("suspended", "active"))]),
            )
        }
        TenantEvent::MemberLogoutRequested { member_id } => {
            let who = batch.member_label(tenant_id, &member_id);
            Described::new(
                format!("Sign-out of every session requested for {who}"),
                Diff::new(),
            )
        }
        TenantEvent::MemberPasswordResetRequested { member_id } => {
            let who = batch.member_label(tenant_id, &member_id);
            Described::new(format!("Password reset requested for {who}"), Diff::new())
        }
        TenantEvent::MemberRemoved { member_id } => {
            let who = batch.member_label(tenant_id, &member_id);
            Described::new(format!("{who} removed"), Diff::new())
        }
        TenantEvent::MemberSubjectLinked {
            member_id,
            subject,
            issuer,
        } => {
            let who = batch.member_label(tenant_id, &member_id);
            let mut fields = vec![("subject", FieldDiff::set(subject.clone()))];
            if let Some(issuer) = issuer {
                fields.push(("issuer", FieldDiff::set(issuer)));
            }
            Described::new(
                format!("{who} linked to single sign-on account {subject}"),
                fields
                    .into_iter()
                    .map(|(name, change)| (name.to_owned(), change))
                    .collect(),
            )
        }
        TenantEvent::MemberMailboxCreated { member_id } => {
            let who = batch.member_label(tenant_id, &member_id);
            Described::new(
                format!("Mailbox created for {who}"),
                diff_of([("has_mailbox", FieldDiff::new(false, true))]),
            )
        }
        TenantEvent::MemberAliasAdded { address, alias, .. } => Described::new(
            format!("Alias {alias} added to the mailbox {address}"),
            diff_of([("alias", FieldDiff::set(alias))]),
        ),
        TenantEvent::MemberAliasRemoved { address, alias, .. } => Described::new(
            format!("Alias {alias} removed from the mailbox {address}"),
            diff_of([("alias", FieldDiff::new(alias, Value::Null))]),
        ),
        TenantEvent::MailingListCreated {
            address,
            display_name,
            recipients,
            ..
        } => Described::new(
            format!(
                "Distribution list {display_name} <{address}> created with {} recipients",
                recipients.len()
            ),
            diff_of([
                ("address", FieldDiff::set(address)),
                ("display_name", FieldDiff::set(display_name)),
                ("recipients", FieldDiff::set(recipients)),
            ]),
        ),
        // The event carries the new recipients only and the timeline keeps no lists, so the
        // summary says what happened and the diff stays empty rather than invent a `from`.
        TenantEvent::MailingListRecipientsSet {
            address,
            recipients,
            ..
        } => Described::new(
            format!(
                "Recipients of distribution list {address} replaced ({} recipients)",
                recipients.len()
            ),
            Diff::new(),
        ),
        TenantEvent::MailingListDeleted { address, .. } => Described::new(
            format!("Distribution list {address} deleted"),
            diff_of([("address", FieldDiff::new(address, Value::Null))]),
        ),
    };
    Ok(described)
}
