//! The one API error type: every failure a client can see, with a stable `extensions.code`.

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextRequest,
    NextValidation,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{
    ErrorExtensions, Pos, Response, ServerError, ServerResult, ValidationResult, Variables,
};
use dezky_domain::domains::DomainError;
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
    /// The query document is too long, or selects too many aliases or root fields
    /// (`graphql::guard`).
    QueryTooLarge,
    /// The query nests fields, selections or brackets too deeply (`graphql::guard`).
    QueryTooDeep,
    /// The query selects too many fields once fragments are expanded and pages counted
    /// (`graphql::guard`).
    QueryTooComplex,
    /// The query asks for `__schema` or `__type`, which this caller may not.
    IntrospectionDisabled,
    /// The query is not GraphQL (a syntax error).
    GraphqlParseFailed,
    /// The query is GraphQL but not valid against the schema (an unknown field, a missing
    /// argument, a literal of the wrong type).
    GraphqlValidationFailed,
    /// A variable or argument value cannot be read as its type.
    BadUserInput,
    /// The HTTP request is not a GraphQL request: malformed JSON, a wrong shape, a batch, no
    /// operation to run.
    BadRequest,
    /// The request body is longer than the endpoint accepts (HTTP 413).
    PayloadTooLarge,
    /// The request body is not JSON (HTTP 415).
    UnsupportedMediaType,
    /// The request body did not arrive in time (HTTP 408).
    RequestTimeout,
    /// Too many requests are being served; retry later (HTTP 503).
    Overloaded,
    /// A public call over its per-client limit; retry in a minute.
    RateLimited,
    /// Not a valid domain name.
    InvalidDomain,
    /// Another workspace has the domain.
    DomainTaken,
    /// The workspace already has the domain.
    DomainAlreadyAdded,
    /// The platform's apex domain, asked for by a workspace that is not the platform tenant.
    PlatformDomainReserved,
    /// A name under the platform's apex (the workspaces' service domains).
    PlatformSubdomainReserved,
    /// The domain is not provisioned yet.
    DomainNotProvisioned,
    /// Members' addresses, aliases or lists still use the domain (`extensions.usage` says
    /// how many of each).
    DomainInUse,
    /// An alias or list address whose domain is not one of the workspace's.
    DomainNotInWorkspace,
    /// Not a valid mail address (for aliases, lists and their recipients).
    InvalidAddress,
    /// The address already routes somewhere in the workspace.
    AddressInUse,
    /// The member has no mailbox for an alias to deliver to.
    MemberHasNoMailbox,
    /// A member has as many aliases as allowed.
    TooManyAliases,
    /// The workspace has as many lists as allowed.
    TooManyLists,
    /// A list with no recipients or more than allowed.
    RecipientsOutOfRange,
    /// A list among its own recipients.
    ListIncludesItself,
    /// What was asked needs a setting this deployment has not set (the mail host for client
    /// set-up, say); nothing is made up in its place.
    NotConfigured,
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
            Code::QueryTooLarge => "QUERY_TOO_LARGE",
            Code::QueryTooDeep => "QUERY_TOO_DEEP",
            Code::QueryTooComplex => "QUERY_TOO_COMPLEX",
            Code::IntrospectionDisabled => "INTROSPECTION_DISABLED",
            Code::GraphqlParseFailed => "GRAPHQL_PARSE_FAILED",
            Code::GraphqlValidationFailed => "GRAPHQL_VALIDATION_FAILED",
            Code::BadUserInput => "BAD_USER_INPUT",
            Code::BadRequest => "BAD_REQUEST",
            Code::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Code::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            Code::RequestTimeout => "REQUEST_TIMEOUT",
            Code::Overloaded => "OVERLOADED",
            Code::RateLimited => "RATE_LIMITED",
            Code::InvalidDomain => "INVALID_DOMAIN",
            Code::DomainTaken => "DOMAIN_TAKEN",
            Code::DomainAlreadyAdded => "DOMAIN_ALREADY_ADDED",
            Code::PlatformDomainReserved => "PLATFORM_DOMAIN_RESERVED",
            Code::PlatformSubdomainReserved => "PLATFORM_SUBDOMAIN_RESERVED",
            Code::DomainNotProvisioned => "DOMAIN_NOT_PROVISIONED",
            Code::DomainInUse => "DOMAIN_IN_USE",
            Code::DomainNotInWorkspace => "DOMAIN_NOT_IN_WORKSPACE",
            Code::InvalidAddress => "INVALID_ADDRESS",
            Code::AddressInUse => "ADDRESS_IN_USE",
            Code::MemberHasNoMailbox => "MEMBER_HAS_NO_MAILBOX",
            Code::TooManyAliases => "TOO_MANY_ALIASES",
            Code::TooManyLists => "TOO_MANY_LISTS",
            Code::RecipientsOutOfRange => "RECIPIENTS_OUT_OF_RANGE",
            Code::ListIncludesItself => "LIST_INCLUDES_ITSELF",
            Code::NotConfigured => "NOT_CONFIGURED",
        }
    }
}

/// An error as a client sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The stable code.
    pub code: Code,
    /// A sentence for people.
    pub message: String,
    /// Further `extensions` members, for codes that carry details (`DOMAIN_IN_USE`'s usage).
    pub details: Vec<(&'static str, async_graphql::Value)>,
}

impl ApiError {
    /// An error with a code and message.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: Vec::new(),
        }
    }

    /// The error with one more `extensions` member.
    pub fn with_detail(mut self, name: &'static str, value: async_graphql::Value) -> Self {
        self.details.push((name, value));
        self
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

    /// The error as the GraphQL library carries it, at `pos` in the document.
    pub fn into_server_error(self, pos: Option<Pos>) -> ServerError {
        let mut error = ServerError::new(self.message, pos);
        error
            .extensions
            .get_or_insert_with(Default::default)
            .set("code", self.code.as_str());
        error
    }

    /// The error as a GraphQL response body with no data (a request error).
    pub fn into_json_body(self) -> serde_json::Value {
        serde_json::json!({
            "errors": [{"message": self.message, "extensions": {"code": self.code.as_str()}}]
        })
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(error: ApiError) -> Self {
        let details = error.details;
        async_graphql::Error::new(error.message).extend_with(|_, ext| {
            ext.set("code", error.code.as_str());
            for (name, value) in &details {
                ext.set(*name, value.clone());
            }
        })
    }
}

/// A refusal of the Tenant aggregate to a mail mutation (alias, list), where the address in
/// question is the one being routed: the mail rules' own codes, the rest as every tenant
/// mutation maps them ([`From<TenantError>`]).
pub fn mail_refusal(error: TenantError) -> ApiError {
    use TenantError as E;
    let code = match &error {
        E::InvalidEmail { .. } => Code::InvalidAddress,
        E::AddressInUse { .. } => Code::AddressInUse,
        E::MemberHasNoMailbox { .. } => Code::MemberHasNoMailbox,
        E::TooManyAliases { .. } => Code::TooManyAliases,
        E::TooManyLists { .. } => Code::TooManyLists,
        E::RecipientsOutOfRange { .. } => Code::RecipientsOutOfRange,
        E::ListIncludesItself { .. } => Code::ListIncludesItself,
        E::AliasNotFound { .. } | E::ListNotFound { .. } | E::MemberNotFound { .. } => {
            Code::NotFound
        }
        _ => return error.into(),
    };
    ApiError::new(code, error.to_string())
}

impl From<DomainError> for ApiError {
    fn from(error: DomainError) -> Self {
        let message = error.to_string();
        let code = match &error {
            DomainError::InvalidName(_) | DomainError::NameMismatch { .. } => Code::InvalidDomain,
            DomainError::UsedByAnotherWorkspace => Code::DomainTaken,
            DomainError::AlreadyAdded => Code::DomainAlreadyAdded,
            DomainError::PlatformApexReserved => Code::PlatformDomainReserved,
            DomainError::UnderPlatformApex => Code::PlatformSubdomainReserved,
            DomainError::NotProvisioned => Code::DomainNotProvisioned,
            DomainError::InUse { usage } => {
                return ApiError::new(Code::DomainInUse, message).with_detail(
                    "usage",
                    async_graphql::value!({
                        "mailboxes": usage.mailboxes,
                        "aliases": usage.aliases,
                        "lists": usage.lists,
                    }),
                )
            }
            DomainError::NotFound => Code::NotFound,
            // Recording provisioning and DNS results is the platform's; no mutation does it.
            DomainError::NotPlatform => return ApiError::forbidden(),
            DomainError::Context(_) | DomainError::IncompleteCheck => Code::Validation,
        };
        ApiError::new(code, message)
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

/// Where in a request's life the GraphQL library refused it, which decides the code of an
/// error that arrives without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Parsing and the library's pre-validation checks.
    Parse,
    /// Validation against the schema (its depth and complexity limits included).
    Validation,
    /// Execution: resolvers set their own codes; the library's own errors there are about
    /// argument and variable values (a required variable left out).
    Execution,
    /// Anything else (choosing the operation to run).
    Request,
}

/// Gives the code `phase` implies to an error that has none, with a message that names
/// nothing internal; an error that already has a code is left alone.
fn type_library_error(error: &mut ServerError, phase: Phase) {
    if error
        .extensions
        .as_ref()
        .is_some_and(|extensions| extensions.get("code").is_some())
    {
        return;
    }
    let (code, message) = match phase {
        Phase::Parse if error.message.starts_with("The recursion depth") => (
            Code::QueryTooDeep,
            format!(
                "selections may nest at most {} levels deep, fragments included",
                super::guard::MAX_SELECTION_NESTING
            ),
        ),
        Phase::Parse if error.message.starts_with("The number of directives") => (
            Code::QueryTooLarge,
            format!(
                "at most {} directives per selection",
                super::guard::MAX_QUERY_DIRECTIVES_PER_SELECTION
            ),
        ),
        Phase::Parse => (
            Code::GraphqlParseFailed,
            super::guard::parse_message(&error.message),
        ),
        Phase::Validation if error.message == "Query is too complex." => {
            (Code::QueryTooComplex, "the query is too complex".to_owned())
        }
        Phase::Validation if error.message == "Query is nested too deep." => (
            Code::QueryTooDeep,
            "the query is nested too deep".to_owned(),
        ),
        // A value the request supplies (a variable's or an argument's) that is not of its
        // type is the caller's input, whichever rule found it.
        Phase::Validation if error.message.starts_with("Invalid value for argument") => {
            (Code::BadUserInput, public_message(&error.message))
        }
        Phase::Validation => (
            Code::GraphqlValidationFailed,
            public_message(&error.message),
        ),
        Phase::Execution => (Code::BadUserInput, public_message(&error.message)),
        Phase::Request => (Code::BadRequest, public_message(&error.message)),
    };
    error.message = message;
    error.source = None;
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("code", code.as_str());
}

/// A library message as a client may read it: GraphQL names (types, fields, arguments,
/// variables) are the client's own vocabulary and stay; anything that reads as Rust (a module
/// path, Debug output, a serde message) is replaced by a sentence that names nothing.
fn public_message(message: &str) -> String {
    const INTERNAL: [&str; 8] = [
        "::",
        "serde",
        "Uuid",
        "invalid type:",
        "Some(",
        "None",
        " { ",
        "Error(",
    ];
    if INTERNAL.iter().any(|marker| message.contains(marker)) {
        "a value in the request cannot be read as the type the schema expects".to_owned()
    } else {
        message.to_owned()
    }
}

/// The one place where errors the GraphQL library produces itself (parse and validation
/// errors, argument and variable values it cannot read, a missing operation) get their
/// `extensions.code` and a message that names nothing internal: each phase's errors are typed
/// as they leave it.
#[derive(Default)]
pub struct TypedErrors;

impl ExtensionFactory for TypedErrors {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(TypedErrors)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for TypedErrors {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut response = next.run(ctx).await;
        for error in &mut response.errors {
            type_library_error(error, Phase::Request);
        }
        response
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        next.run(ctx, query, variables).await.map_err(|mut error| {
            type_library_error(&mut error, Phase::Parse);
            error
        })
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        next.run(ctx).await.map_err(|mut errors| {
            for error in &mut errors {
                type_library_error(error, Phase::Validation);
            }
            errors
        })
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let mut response = next.run(ctx, operation_name).await;
        for error in &mut response.errors {
            type_library_error(error, Phase::Execution);
        }
        response
    }
}
