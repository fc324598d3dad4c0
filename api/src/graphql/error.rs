//! The one API error type: every failure a client can see, with a stable `extensions.code`.

use async_graphql::ErrorExtensions;
use dezky_domain::tenant::{PlatformFlagError, SlugClaimError, TenantError};
use dezky_projections::tenants::QueryError;

/// Stable error codes, the contract with the portals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// The input is not acceptable.
    Validation,
    /// A text holds a control character (a line break in a one-line field) or an invisible
    /// direction override.
    InvalidCharacters,
    /// An address whose domain is neither the workspace's own service domain nor one of its
    /// domains (another workspace's, the platform's, or nobody's here).
    AddressNotOurs,
    /// No such thing (only said to callers allowed to know whether it exists).
    NotFound,
    /// The request conflicts with the current state (a rule, a race, a duplicate).
    Conflict,
    /// The caller may not do or see this.
    Forbidden,
    /// No valid access token.
    Unauthenticated,
    /// A dependency is down; retry later.
    Unavailable,
    /// Our fault; details are in the server log, never in the response.
    Internal,
}

impl Code {
    /// The `extensions.code` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Validation => "VALIDATION",
            Code::InvalidCharacters => "INVALID_CHARACTERS",
            Code::AddressNotOurs => "ADDRESS_NOT_OURS",
            Code::NotFound => "NOT_FOUND",
            Code::Conflict => "CONFLICT",
            Code::Forbidden => "FORBIDDEN",
            Code::Unauthenticated => "UNAUTHENTICATED",
            Code::Unavailable => "UNAVAILABLE",
            Code::Internal => "INTERNAL",
        }
    }
}

/// An error as a client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The stable code.
    pub code: Code,
    /// A sentence for people.
    pub message: String,
}

impl ApiError {
    /// An error with a code and message.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The caller may not do or see this.
    pub fn forbidden() -> Self {
        Self::new(Code::Forbidden, "not allowed")
    }

    /// No valid token.
    pub fn unauthenticated(reason: impl Into<String>) -> Self {
        Self::new(Code::Unauthenticated, reason)
    }

    /// An internal failure: logged with its cause, answered without it.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(%cause, "request failed");
        Self::new(Code::Internal, "internal error")
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(error: ApiError) -> Self {
        async_graphql::Error::new(error.message)
            .extend_with(|_, ext| ext.set("code", error.code.as_str()))
    }
}

impl From<TenantError> for ApiError {
    fn from(error: TenantError) -> Self {
        use TenantError as E;
        let code = match &error {
            E::NotAuthorized { .. } | E::RefusedOnSelf { .. } | E::PrimaryAccountLocked { .. } => {
                Code::Forbidden
            }
            E::NotFound
            | E::MemberNotFound { .. }
            | E::AliasNotFound { .. }
            | E::ListNotFound { .. } => Code::NotFound,
            E::AlreadyExists { .. }
            | E::Deleted { .. }
            | E::InvalidTransition { .. }
            | E::PurgeRequiresSoftDeletion { .. }
            | E::MemberAlreadyExists { .. }
            | E::DuplicateMemberEmail { .. }
            | E::TooManyMembers { .. }
            | E::LastActiveAdmin { .. }
            | E::OwnerCannotBeRemoved { .. }
            | E::MemberAlreadySuspended { .. }
            | E::MemberNotSuspended { .. }
            | E::TransferTargetNotActive { .. }
            | E::AlreadyOwner { .. }
            | E::MemberAlreadyLinked { .. }
            | E::SubjectLinkedToAnotherMember { .. }
            | E::MemberHasNoMailbox { .. }
            | E::TooManyAliases { .. }
            | E::AddressInUse { .. }
            | E::ListAlreadyExists { .. }
            | E::TooManyLists { .. } => Code::Conflict,
            E::DisallowedCharacter { .. } => Code::InvalidCharacters,
            E::AddressNotOurs { .. } => Code::AddressNotOurs,
            _ => Code::Validation,
        };
        ApiError::new(code, error.to_string())
    }
}

impl From<SlugClaimError> for ApiError {
    fn from(error: SlugClaimError) -> Self {
        let code = match error {
            SlugClaimError::SlugTaken { .. } | SlugClaimError::HeldByAnotherTenant { .. } => {
                Code::Conflict
            }
            _ => Code::Validation,
        };
        // The holder of a taken slug is another tenant's business.
        let message = match code {
            Code::Conflict => "that slug is already taken".to_owned(),
            _ => error.to_string(),
        };
        ApiError::new(code, message)
    }
}

impl From<PlatformFlagError> for ApiError {
    fn from(error: PlatformFlagError) -> Self {
        let code = match error {
            PlatformFlagError::NotPlatformAdmin => Code::Forbidden,
            _ => Code::Validation,
        };
        ApiError::new(code, error.to_string())
    }
}

impl From<QueryError> for ApiError {
    fn from(error: QueryError) -> Self {
        match error {
            QueryError::PageSize { .. }
            | QueryError::InvalidCursor
            | QueryError::InvalidTimestamp { .. } => {
                ApiError::new(Code::Validation, error.to_string())
            }
            other => ApiError::internal(&other),
        }
    }
}

/// Maps a cqrs-es failure of a command whose domain error maps through `E`.
pub fn from_aggregate<E>(error: cqrs_es::AggregateError<E>) -> ApiError
where
    E: std::error::Error + Into<ApiError>,
{
    match error {
        cqrs_es::AggregateError::UserError(e) => e.into(),
        cqrs_es::AggregateError::AggregateConflict => ApiError::new(
            Code::Conflict,
            "someone else changed this at the same time; reload and try again",
        ),
        cqrs_es::AggregateError::DatabaseConnectionError(e) => {
            tracing::error!(error = %e, "store unavailable");
            ApiError::new(Code::Unavailable, "the store is unavailable; try again")
        }
        other => ApiError::internal(&other),
    }
}
