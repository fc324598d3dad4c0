//! The query guard: bounds a GraphQL document's cost before the library validates or runs it.
//!
//! async-graphql's own depth and complexity limits are computed by its validation, which
//! expands every fragment spread where it appears: a short document whose fragments each
//! spread the previous one twice makes validation itself do exponential work before any limit
//! is checked. The guard runs first (an [`Extension`]'s `prepare_request`, which sees the raw
//! document): it refuses an oversized or too deeply bracketed text before parsing, then walks
//! the parsed document once, computing each fragment's cost once (memoised, with cycle
//! detection), so refusing any document takes time linear in its length. The library's limits
//! stay in place behind it as a second line.
//!
//! What is counted, per operation unless said otherwise (every count sees fragment spreads and
//! inline fragments as what they expand to):
//!
//! | measure | limit | refused with |
//! |---|---|---|
//! | document text | [`MAX_QUERY_DOCUMENT_BYTES`] | `QUERY_TOO_LARGE` |
//! | bracket nesting of the text | [`MAX_QUERY_BRACKET_NESTING`] | `QUERY_TOO_DEEP` |
//! | directives on one selection | [`MAX_QUERY_DIRECTIVES_PER_SELECTION`] | `QUERY_TOO_LARGE` |
//! | aliased fields | [`MAX_QUERY_ALIASES`] | `QUERY_TOO_LARGE` |
//! | root fields | [`MAX_QUERY_ROOT_FIELDS`] | `QUERY_TOO_LARGE` |
//! | field depth | [`MAX_QUERY_DEPTH`] ([`MAX_INTROSPECTION_DEPTH`] under `__schema`/`__type`) | `QUERY_TOO_DEEP` |
//! | nested introspection lists | [`MAX_INTROSPECTION_LIST_NESTING`] | `QUERY_TOO_DEEP` |
//! | selection-set nesting, fragments included | [`MAX_SELECTION_NESTING`] | `QUERY_TOO_DEEP` |
//! | fields | [`MAX_QUERY_COMPLEXITY`] | `QUERY_TOO_COMPLEX` |
//! | fields weighted by page sizes | [`MAX_QUERY_COST`] | `QUERY_TOO_COMPLEX` |
//! | selections of the whole document (all operations and fragment definitions) | [`MAX_QUERY_EXPANDED_SELECTIONS`] | `QUERY_TOO_COMPLEX` |
//!
//! A fragment that spreads itself is refused with `GRAPHQL_VALIDATION_FAILED`, and
//! `__schema`/`__type` in a request whose introspection is disabled with
//! `INTROSPECTION_DISABLED`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest,
};
use async_graphql::parser::types::{
    ExecutableDocument, Field, Selection, SelectionSet, TypeKind, TypeSystemDefinition,
};
use async_graphql::{IntrospectionMode, Pos, Request, ServerError, ServerResult, Value, Variables};
use dezky_projections::tenants::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};

use super::error::{ApiError, Code};

/// The longest query document accepted, in bytes (the API suites' longest query is under
/// 1 KiB, the introspection query of GraphQL tools under 2 KiB).
pub const MAX_QUERY_DOCUMENT_BYTES: usize = 16 * 1024;
/// The deepest nesting of `{`, `[` and `(` in the document's text, checked before parsing: the
/// parser recurses on nested values and would exhaust its stack long before other limits.
pub const MAX_QUERY_BRACKET_NESTING: usize = 48;
/// Most directives on one field, fragment spread or inline fragment (`@skip`, `@include`).
pub const MAX_QUERY_DIRECTIVES_PER_SELECTION: usize = 4;
/// Most aliased fields in an operation, as expanded.
pub const MAX_QUERY_ALIASES: u64 = 64;
/// Most root fields in an operation, as expanded: each is its own resolver (a mutation each).
pub const MAX_QUERY_ROOT_FIELDS: u64 = 32;
/// Deepest chain of fields accepted (outside introspection).
pub const MAX_QUERY_DEPTH: usize = 10;
/// Deepest chain of fields under `__schema` or `__type`: the standard introspection query of
/// GraphQL tools reaches 15 (a type reference unwrapped nine times).
pub const MAX_INTROSPECTION_DEPTH: usize = 16;
/// Most introspection lists nested in one another (`types { fields { args } }` is three):
/// nesting them deeper multiplies the answer by the schema's size at each level.
pub const MAX_INTROSPECTION_LIST_NESTING: usize = 3;
/// Deepest nesting of selection sets, counting fragment spreads and inline fragments as a
/// level each (async-graphql's recursive depth, set to the same value behind the guard).
pub const MAX_SELECTION_NESTING: usize = 24;
/// Most fields in an operation, one each (async-graphql's complexity measure, whose own limit
/// is set to the same value behind the guard).
pub const MAX_QUERY_COMPLEXITY: usize = 2_000;
/// Most fields in an operation weighted by page sizes: a paginated field costs one plus its
/// page size (`first`, else the default page) times what it selects per item.
pub const MAX_QUERY_COST: u64 = 10_000;
/// Most selections (fields, spreads, inline fragments) in the whole document as expanded,
/// fragment definitions included: what validation walks.
pub const MAX_QUERY_EXPANDED_SELECTIONS: u64 = 10_000;

/// Introspection's root fields.
const INTROSPECTION_ROOTS: [&str; 2] = ["__schema", "__type"];
/// Introspection's list fields: each nesting multiplies the answer by the schema's size.
const INTROSPECTION_LISTS: [&str; 8] = [
    "types",
    "fields",
    "args",
    "inputFields",
    "interfaces",
    "possibleTypes",
    "enumValues",
    "directives",
];

/// Why a document is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The code (`QUERY_TOO_LARGE`, `QUERY_TOO_DEEP`, …).
    pub code: Code,
    /// What was over which limit.
    pub message: String,
    /// Where in the document, when one place is to blame.
    pub pos: Option<Pos>,
}

impl Refusal {
    fn new(code: Code, message: impl Into<String>, pos: Option<Pos>) -> Self {
        Self {
            code,
            message: message.into(),
            pos,
        }
    }

    fn into_server_error(self) -> ServerError {
        ApiError::new(self.code, self.message).into_server_error(self.pos)
    }
}

/// What one operation (or the whole document) costs, as far as the guard measures it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueryCost {
    /// Fields, as expanded.
    pub fields: u64,
    /// Fields weighted by page sizes.
    pub weighted: u64,
    /// Aliased fields, as expanded.
    pub aliases: u64,
    /// Root fields, as expanded (operations only).
    pub root_fields: u64,
    /// Fields, fragment spreads and inline fragments, as expanded.
    pub selections: u64,
    /// The deepest chain of fields outside introspection.
    pub depth: usize,
    /// The deepest chain of fields under `__schema`/`__type`.
    pub introspection_depth: usize,
    /// The most introspection lists nested in one another.
    pub introspection_lists: usize,
    /// The deepest selection-set nesting, fragments counted.
    pub nesting: usize,
    /// Whether the operation asks for `__schema` or `__type`.
    pub introspection: bool,
}

impl QueryCost {
    /// Adds `other` (a selection beside this one's): counts add, depths take the larger.
    fn absorb(&mut self, other: &QueryCost) {
        self.fields = self.fields.saturating_add(other.fields);
        self.weighted = self.weighted.saturating_add(other.weighted);
        self.aliases = self.aliases.saturating_add(other.aliases);
        self.root_fields = self.root_fields.saturating_add(other.root_fields);
        self.selections = self.selections.saturating_add(other.selections);
        self.depth = self.depth.max(other.depth);
        self.introspection_depth = self.introspection_depth.max(other.introspection_depth);
        self.introspection_lists = self.introspection_lists.max(other.introspection_lists);
        self.nesting = self.nesting.max(other.nesting);
        self.introspection |= other.introspection;
    }
}

/// Whether a selection set sits directly in an operation (its fields are root fields) or
/// below a field. A fragment's cost differs between the two, so each is memoised apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Level {
    Root,
    Nested,
}

enum Memo {
    InProgress,
    Done(QueryCost),
}

/// One walk over one document.
struct Walk<'a> {
    document: &'a ExecutableDocument,
    variables: &'a Variables,
    /// Default values of the document's variables, for variables the request leaves out.
    defaults: HashMap<&'a str, &'a Value>,
    paginated: &'a HashSet<String>,
    memo: HashMap<(&'a str, Level), Memo>,
}

impl<'a> Walk<'a> {
    /// The cost of `set` at `level`, `nesting` selection sets below the walk's start (which
    /// bounds the recursion whatever the document holds).
    fn selection_set(
        &mut self,
        set: &'a SelectionSet,
        level: Level,
        nesting: usize,
    ) -> Result<QueryCost, Refusal> {
        let mut cost = QueryCost::default();
        for selection in &set.items {
            if selection.node.directives().len() > MAX_QUERY_DIRECTIVES_PER_SELECTION {
                return Err(Refusal::new(
                    Code::QueryTooLarge,
                    format!(
                        "at most {MAX_QUERY_DIRECTIVES_PER_SELECTION} directives per selection"
                    ),
                    Some(selection.pos),
                ));
            }
            let inner = match &selection.node {
                Selection::Field(field) => self.field(&field.node, level, nesting, field.pos)?,
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    let mut inner = self.fragment(name, level, nesting + 1, spread.pos)?;
                    inner.nesting += 1;
                    inner.selections = inner.selections.saturating_add(1);
                    inner
                }
                Selection::InlineFragment(inline) => {
                    let mut inner = self.nested_set(
                        &inline.node.selection_set.node,
                        level,
                        nesting + 1,
                        inline.pos,
                    )?;
                    inner.nesting += 1;
                    inner.selections = inner.selections.saturating_add(1);
                    inner
                }
            };
            cost.absorb(&inner);
        }
        Ok(cost)
    }

    /// [`Walk::selection_set`] one level further down, refused past the nesting limit.
    fn nested_set(
        &mut self,
        set: &'a SelectionSet,
        level: Level,
        nesting: usize,
        pos: Pos,
    ) -> Result<QueryCost, Refusal> {
        if nesting > MAX_SELECTION_NESTING {
            return Err(Refusal::new(
                Code::QueryTooDeep,
                format!("selections may nest at most {MAX_SELECTION_NESTING} levels deep, fragments included"),
                Some(pos),
            ));
        }
        self.selection_set(set, level, nesting)
    }

    fn field(
        &mut self,
        field: &'a Field,
        level: Level,
        nesting: usize,
        pos: Pos,
    ) -> Result<QueryCost, Refusal> {
        let name = field.name.node.as_str();
        let children = if field.selection_set.node.items.is_empty() {
            QueryCost::default()
        } else {
            let mut children =
                self.nested_set(&field.selection_set.node, Level::Nested, nesting + 1, pos)?;
            children.nesting += 1;
            children
        };
        let mut cost = QueryCost {
            fields: children.fields.saturating_add(1),
            weighted: self
                .page_size(field)
                .saturating_mul(children.weighted)
                .saturating_add(1),
            aliases: children
                .aliases
                .saturating_add(u64::from(field.alias.is_some())),
            selections: children.selections.saturating_add(1),
            nesting: children.nesting,
            ..QueryCost::default()
        };
        match level {
            Level::Nested => {
                // Below the root, `depth` is the chain under this field and
                // `introspection_lists` counts introspection's list names along it; the root
                // field decides whether the chain is introspection's.
                cost.depth = children.depth + 1;
                cost.introspection_lists =
                    children.introspection_lists + usize::from(INTROSPECTION_LISTS.contains(&name));
            }
            Level::Root => {
                cost.root_fields = 1;
                if INTROSPECTION_ROOTS.contains(&name) {
                    cost.introspection = true;
                    cost.introspection_depth = children.depth + 1;
                    cost.introspection_lists = children.introspection_lists;
                } else {
                    cost.depth = children.depth + 1;
                }
            }
        }
        Ok(cost)
    }

    /// A fragment's cost at `level`, computed once; a fragment met again while its own cost is
    /// being computed spreads itself.
    fn fragment(
        &mut self,
        name: &'a str,
        level: Level,
        nesting: usize,
        pos: Pos,
    ) -> Result<QueryCost, Refusal> {
        match self.memo.get(&(name, level)) {
            Some(Memo::Done(cost)) => return Ok(*cost),
            Some(Memo::InProgress) => {
                return Err(Refusal::new(
                    Code::GraphqlValidationFailed,
                    format!("fragment \"{name}\" spreads itself"),
                    Some(pos),
                ))
            }
            None => {}
        }
        // An unknown fragment costs nothing here; validation names it afterwards.
        let Some(definition) = self.document.fragments.get(name) else {
            return Ok(QueryCost::default());
        };
        self.memo.insert((name, level), Memo::InProgress);
        let cost = self.nested_set(&definition.node.selection_set.node, level, nesting, pos)?;
        self.memo.insert((name, level), Memo::Done(cost));
        Ok(cost)
    }

    /// How many items a field returns per call, for the weighted cost: the page size it asks
    /// for (`first`/`last`, bounded by the largest page served), the default page for a
    /// paginated field that does not ask, one otherwise.
    fn page_size(&self, field: &Field) -> u64 {
        let argument = field
            .arguments
            .iter()
            .find(|(name, _)| matches!(name.node.as_str(), "first" | "last"))
            .map(|(_, value)| &value.node);
        // A literal, or the variable's value (the request's, else its default).
        let requested = argument
            .and_then(|value| {
                value
                    .clone()
                    .into_const_with(|variable| {
                        self.variables
                            .get(&variable)
                            .or_else(|| self.defaults.get(variable.as_str()).copied())
                            .cloned()
                            .ok_or(())
                    })
                    .ok()
            })
            .and_then(|value| match value {
                Value::Number(number) => number.as_u64(),
                _ => None,
            });
        let paginated = argument.is_some() || self.paginated.contains(field.name.node.as_str());
        match requested {
            Some(size) if paginated => size.clamp(1, u64::from(MAX_PAGE_SIZE)),
            _ if paginated => u64::from(DEFAULT_PAGE_SIZE),
            _ => 1,
        }
    }
}

/// The deepest nesting of brackets in `text` outside strings and comments, or `None` as soon
/// as it passes `limit` (the scan stops there).
fn bracket_nesting(text: &str, limit: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let (mut depth, mut deepest, mut i) = (0usize, 0usize, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                while i < bytes.len() && !matches!(bytes[i], b'\n' | b'\r') {
                    i += 1;
                }
                continue;
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                i += 3;
                while i < bytes.len() {
                    if bytes[i..].starts_with(b"\\\"\"\"") {
                        i += 4;
                    } else if bytes[i..].starts_with(b"\"\"\"") {
                        i += 3;
                        break;
                    } else {
                        i += 1;
                    }
                }
                continue;
            }
            b'"' => {
                // A plain string ends at its closing quote or, where the parser gives up on
                // it, at the end of the line.
                i += 1;
                while i < bytes.len() {
                    match bytes[i] {
                        b'\\' => i += 2,
                        b'"' => {
                            i += 1;
                            break;
                        }
                        b'\n' | b'\r' => break,
                        _ => i += 1,
                    }
                }
                continue;
            }
            b'{' | b'[' | b'(' => {
                depth += 1;
                deepest = deepest.max(depth);
                if deepest > limit {
                    return None;
                }
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Some(deepest)
}

/// Checks a document's text before it is parsed: its length and its bracket nesting.
pub fn check_text(query: &str) -> Result<(), Refusal> {
    if query.len() > MAX_QUERY_DOCUMENT_BYTES {
        return Err(Refusal::new(
            Code::QueryTooLarge,
            format!("the query document may be at most {MAX_QUERY_DOCUMENT_BYTES} bytes long"),
            None,
        ));
    }
    if bracket_nesting(query, MAX_QUERY_BRACKET_NESTING).is_none() {
        return Err(Refusal::new(
            Code::QueryTooDeep,
            format!("brackets may nest at most {MAX_QUERY_BRACKET_NESTING} levels deep"),
            None,
        ));
    }
    Ok(())
}

/// What a document costs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DocumentCost {
    /// Each operation's cost, by name (`None` for an anonymous one).
    pub operations: Vec<(Option<String>, QueryCost)>,
    /// The whole document's: the operations' and, for its selections, every fragment
    /// definition's on its own.
    pub whole: QueryCost,
}

/// What `document` costs, or why it is refused while being measured. `paginated` names the
/// fields that take a page size.
pub fn measure(
    document: &ExecutableDocument,
    variables: &Variables,
    paginated: &HashSet<String>,
) -> Result<DocumentCost, Refusal> {
    let defaults = document
        .operations
        .iter()
        .flat_map(|(_, operation)| &operation.node.variable_definitions)
        .filter_map(|definition| {
            let default = definition.node.default_value.as_ref()?;
            Some((definition.node.name.node.as_str(), &default.node))
        })
        .collect();
    let mut walk = Walk {
        document,
        variables,
        defaults,
        paginated,
        memo: HashMap::new(),
    };
    let mut operations = Vec::new();
    let mut whole = QueryCost::default();
    for (name, operation) in document.operations.iter() {
        let cost = walk.selection_set(&operation.node.selection_set.node, Level::Root, 0)?;
        whole.absorb(&cost);
        operations.push((name.map(|n| n.to_string()), cost));
    }
    // Validation also walks every fragment definition on its own, used or not.
    let mut names: Vec<&str> = document.fragments.keys().map(|n| n.as_str()).collect();
    names.sort_unstable();
    for name in names {
        let pos = document.fragments[name].pos;
        let cost = walk.fragment(name, Level::Nested, 1, pos)?;
        whole.selections = whole.selections.saturating_add(cost.selections);
    }
    Ok(DocumentCost { operations, whole })
}

/// Refuses a measured document past any limit, or asking for introspection where it is
/// disabled.
pub fn judge(cost: &DocumentCost, introspection: IntrospectionMode) -> Result<(), Refusal> {
    let DocumentCost { operations, whole } = cost;
    let refuse = |code, message: String| Err(Refusal::new(code, message, None));
    if whole.introspection && introspection == IntrospectionMode::Disabled {
        return refuse(
            Code::IntrospectionDisabled,
            "introspection is not available to this caller".into(),
        );
    }
    // The order decides the code of a document past several limits: aliases first (an
    // alias flood is too large however complex), then depth, then complexity (a fragment
    // fan-out at the root is too complex, not merely a long list of root fields).
    for (_, cost) in operations {
        if cost.aliases > MAX_QUERY_ALIASES {
            return refuse(
                Code::QueryTooLarge,
                format!("an operation may alias at most {MAX_QUERY_ALIASES} fields"),
            );
        }
        if cost.depth > MAX_QUERY_DEPTH {
            return refuse(
                Code::QueryTooDeep,
                format!("fields may nest at most {MAX_QUERY_DEPTH} levels deep"),
            );
        }
        if cost.introspection_depth > MAX_INTROSPECTION_DEPTH {
            return refuse(
                Code::QueryTooDeep,
                format!(
                    "introspection fields may nest at most {MAX_INTROSPECTION_DEPTH} levels deep"
                ),
            );
        }
        if cost.introspection_lists > MAX_INTROSPECTION_LIST_NESTING {
            return refuse(
                Code::QueryTooDeep,
                format!("introspection lists may nest at most {MAX_INTROSPECTION_LIST_NESTING} levels deep"),
            );
        }
        if cost.nesting > MAX_SELECTION_NESTING {
            return refuse(
                Code::QueryTooDeep,
                format!("selections may nest at most {MAX_SELECTION_NESTING} levels deep, fragments included"),
            );
        }
        if cost.fields > MAX_QUERY_COMPLEXITY as u64 {
            return refuse(
                Code::QueryTooComplex,
                format!("an operation may select at most {MAX_QUERY_COMPLEXITY} fields, fragments expanded"),
            );
        }
        if cost.weighted > MAX_QUERY_COST {
            return refuse(
                Code::QueryTooComplex,
                format!("an operation may cost at most {MAX_QUERY_COST}, each field counted once per item of the pages above it"),
            );
        }
        if cost.root_fields > MAX_QUERY_ROOT_FIELDS {
            return refuse(
                Code::QueryTooLarge,
                format!("an operation may select at most {MAX_QUERY_ROOT_FIELDS} root fields"),
            );
        }
    }
    if whole.selections > MAX_QUERY_EXPANDED_SELECTIONS {
        return refuse(
            Code::QueryTooComplex,
            format!("a document may hold at most {MAX_QUERY_EXPANDED_SELECTIONS} selections, fragments expanded"),
        );
    }
    Ok(())
}

/// The names of the fields in `sdl` that take a page size (a `first` argument).
pub fn paginated_fields(sdl: &str) -> HashSet<String> {
    let Ok(document) = async_graphql::parser::parse_schema(sdl) else {
        return HashSet::new();
    };
    document
        .definitions
        .iter()
        .filter_map(|definition| match definition {
            TypeSystemDefinition::Type(ty) => match &ty.node.kind {
                TypeKind::Object(object) => Some(&object.fields),
                TypeKind::Interface(interface) => Some(&interface.fields),
                _ => None,
            },
            _ => None,
        })
        .flatten()
        .filter(|field| {
            field
                .node
                .arguments
                .iter()
                .any(|argument| argument.node.name.node == "first")
        })
        .map(|field| field.node.name.node.to_string())
        .collect()
}

/// Checks `request` as the guard does: its text, then (parsing it, which async-graphql then
/// reuses) its cost.
pub fn check(request: &mut Request, paginated: &HashSet<String>) -> Result<(), Refusal> {
    check_text(&request.query)?;
    let introspection = request.introspection_mode;
    // Parsing borrows the request whole; the variables step aside meanwhile (up to the body
    // limit in size, they are not copied).
    let variables = std::mem::take(&mut request.variables);
    let judged = match request.parsed_query() {
        Ok(document) => {
            measure(document, &variables, paginated).and_then(|cost| judge(&cost, introspection))
        }
        Err(error) => Err(Refusal::new(
            Code::GraphqlParseFailed,
            parse_message(&error.message),
            error.locations.first().copied(),
        )),
    };
    request.variables = variables;
    judged
}

/// The parser's message without its source excerpt (the client has the source; the location
/// says where).
pub(crate) fn parse_message(message: &str) -> String {
    let reason = message
        .lines()
        .rev()
        .find_map(|line| line.trim().strip_prefix("= "));
    match reason {
        Some(reason) => format!("the query is not valid GraphQL: {reason}"),
        // The parser's own sentences ("operation A is defined twice") carry no excerpt.
        None if !message.trim_start().starts_with("-->") => {
            format!("the query is not valid GraphQL: {message}")
        }
        None => "the query is not valid GraphQL".to_owned(),
    }
}

/// The guard as a schema extension: every request passes [`check`] before async-graphql parses
/// or validates it.
#[derive(Default)]
pub struct QueryGuard {
    /// The schema's paginated field names, read from its SDL on first use.
    paginated: Arc<OnceLock<HashSet<String>>>,
}

impl ExtensionFactory for QueryGuard {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(QueryGuardExtension {
            paginated: self.paginated.clone(),
        })
    }
}

struct QueryGuardExtension {
    paginated: Arc<OnceLock<HashSet<String>>>,
}

#[async_graphql::async_trait::async_trait]
impl Extension for QueryGuardExtension {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        let paginated = self.paginated.get_or_init(|| paginated_fields(&ctx.sdl()));
        check(&mut request, paginated).map_err(Refusal::into_server_error)?;
        next.run(ctx, request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(query: &str, paginated: &[&str]) -> DocumentCost {
        let document = async_graphql::parser::parse_query(query).expect("parse");
        let paginated = paginated.iter().map(|name| (*name).to_owned()).collect();
        measure(&document, &Variables::default(), &paginated).expect("measure")
    }

    #[test]
    fn brackets_inside_strings_block_strings_and_comments_do_not_count() {
        let hidden = format!(
            "{{ a(x: \"{0}\", y: \"\"\"{0} \\\"\"\" {0}\"\"\") # {0}\n }}",
            "[".repeat(100)
        );
        assert_eq!(bracket_nesting(&hidden, 10), Some(2));
        assert_eq!(bracket_nesting("{ a { b(x: [[1]]) } }", 10), Some(5));
        assert_eq!(bracket_nesting(&"[".repeat(11), 10), None);
    }

    #[test]
    fn a_fragment_counts_as_often_as_it_is_spread_and_each_alias_counts() {
        let measured = cost(
            "{ ...F ...F me { ...G } } fragment F on Query { a: x b: y } fragment G on Me { z }",
            &[],
        );
        let (_, operation) = &measured.operations[0];
        assert_eq!(
            (operation.fields, operation.aliases, operation.root_fields),
            (6, 4, 5)
        );
        assert_eq!(operation.depth, 2);
    }

    #[test]
    fn page_sizes_weigh_what_a_paginated_field_selects_per_item() {
        let literal = cost("{ tenants(first: 7) { nodes { id } } }", &["tenants"]);
        assert_eq!(literal.operations[0].1.weighted, 1 + 7 * 2);
        let default = cost("{ tenants { nodes { id } } }", &["tenants"]);
        assert_eq!(
            default.operations[0].1.weighted,
            1 + u64::from(DEFAULT_PAGE_SIZE) * 2
        );
        let past_largest = cost("{ tenants(first: 100000) { nodes { id } } }", &[]);
        assert_eq!(
            past_largest.operations[0].1.weighted,
            1 + u64::from(MAX_PAGE_SIZE) * 2
        );
    }

    #[test]
    fn the_schemas_paginated_fields_are_read_from_its_sdl() {
        let mut names: Vec<String> = paginated_fields(&crate::graphql::sdl())
            .into_iter()
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["auditTimeline", "bookings", "sagaEffects", "tenants"]
        );
    }
}
