//! dezky's adapters: one module per external system, each speaking that system's real protocol.
//!
//! Today it holds [`oidc`], which verifies the bearer tokens an OpenID Connect provider
//! (Authentik in production) issues for the API, and [`stalwart`], the mail server port over
//! Stalwart's JMAP management API. The Authentik management, Stripe,
//! CalDAV, S3 and DNS adapters join as their issues arrive, each implementing a port declared
//! in `dezky-domain` or `dezky-commands`.

pub mod caldav;
pub mod dns;
pub mod health;
pub mod oidc;
pub mod smtp;
pub mod stalwart;
