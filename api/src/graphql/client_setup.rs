//! The caller's own fields of `me`: `me.workspaces` (the workspaces they belong to, with their
//! role in each) and `me.clientSetup` (where their mail client should connect, for the portal's
//! set-up page: the same settings and the same ownership rule as the profile download,
//! [`crate::client_setup`]).

use async_graphql::{ComplexObject, Context, SimpleObject};

use super::error::ApiError;
use super::schema::{api, auth, Me, RoleGql, Tenant};
use crate::client_setup::{own_mailbox, IMAP_PORT, MOBILECONFIG_PATH, SUBMISSION_PORT};

/// A server a client connects to, with implicit TLS.
#[derive(SimpleObject)]
pub struct MailServerGql {
    /// Host name.
    pub host: String,
    /// Port.
    pub port: u16,
}

/// How the caller's mail, calendar and contacts clients are set up. A field this deployment
/// has no setting for is null ("not configured"), never a guessed host.
#[derive(SimpleObject)]
#[graphql(name = "ClientSetup")]
pub struct ClientSetupGql {
    /// The mailbox these settings are for.
    pub address: String,
    /// The Apple profile's path on this API (relative to its origin; download it with the
    /// caller's bearer token). Null when the mail host is not configured.
    pub mobileconfig_url: Option<String>,
    /// IMAP (implicit TLS); null when the mail host is not configured.
    pub imap: Option<MailServerGql>,
    /// SMTP submission (implicit TLS); null when the mail host is not configured.
    pub smtp: Option<MailServerGql>,
    /// The CalDAV calendar home; null when DAV is not configured.
    pub caldav_url: Option<String>,
    /// The CardDAV address-book home; null when DAV is not configured.
    pub carddav_url: Option<String>,
}

/// Percent-encodes a query value (the address's `@` and anything unusual).
fn query_value(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// One workspace the caller belongs to, with their membership there.
#[derive(SimpleObject)]
pub struct WorkspaceGql {
    /// The workspace.
    pub tenant: Tenant,
    /// The caller's role in it (roles are per workspace).
    pub role: RoleGql,
    /// Whether the caller owns it.
    pub is_owner: bool,
}

#[ComplexObject]
impl Me {
    /// The workspaces the caller is an active member of (recognised by their linked identity,
    /// or before linking by their verified address), with their role in each; deleted ones are
    /// left out. At most 100.
    async fn workspaces(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<WorkspaceGql>> {
        let viewer = auth(ctx).viewer()?;
        let found =
            dezky_projections::tenants::workspaces_of(api(ctx).ledger.db(), &viewer.principal())
                .await
                .map_err(ApiError::from)?;
        Ok(found
            .into_iter()
            .map(|(tenant, member)| WorkspaceGql {
                tenant: Tenant::from_row(tenant),
                role: member.role.into(),
                is_owner: member.is_owner,
            })
            .collect())
    }

    /// Client set-up for one of the caller's own workspace mailboxes (`address`; default: the
    /// verified e-mail of the token). `FORBIDDEN` for an address that is not the caller's.
    async fn client_setup(
        &self,
        ctx: &Context<'_>,
        address: Option<String>,
    ) -> async_graphql::Result<ClientSetupGql> {
        let viewer = auth(ctx).viewer()?;
        let api = api(ctx);
        let Some(address) = address.or_else(|| viewer.email.clone()) else {
            return Err(super::error::ApiError::new(
                super::error::Code::Validation,
                "name the address the set-up is for",
            )
            .into());
        };
        let mailbox = own_mailbox(api, viewer, &address).await?;
        let settings = &api.client_setup;
        let server = |port: u16| {
            settings.mail_host.as_ref().map(|host| MailServerGql {
                host: host.clone(),
                port,
            })
        };
        Ok(ClientSetupGql {
            mobileconfig_url: settings.mail_host.as_ref().map(|_| {
                format!(
                    "{MOBILECONFIG_PATH}?address={}",
                    query_value(&mailbox.address)
                )
            }),
            imap: server(IMAP_PORT),
            smtp: server(SUBMISSION_PORT),
            caldav_url: settings
                .dav
                .as_ref()
                .map(|d| d.caldav_url(&mailbox.address)),
            carddav_url: settings
                .dav
                .as_ref()
                .map(|d| d.carddav_url(&mailbox.address)),
            address: mailbox.address,
        })
    }
}
