//! Hostile GraphQL documents: fragment fan-out, alias floods, deep nesting, huge documents,
//! many root fields, nested pages, fragment cycles and introspection without a token. Each is
//! refused with its code before the library validates it — shown by counting, in-process,
//! the validations and field resolutions the schema performs (none), never by timing — and
//! `/healthz` keeps answering while eight of them run at once against the real server. The
//! legitimate documents (the portals' queries, the explorer's introspection query) still run.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextResolve, NextValidation, ResolveInfo,
};
use async_graphql::{ServerError, ServerResult, ValidationResult, Value as GqlValue};
use dezky_api::graphql::guard::{self, MAX_QUERY_DOCUMENT_BYTES};
use dezky_api::graphql::{schema_builder, DezkySchema};
use dezky_tests::graphql_rig::{code, GraphqlApi};
use dezky_tests::server_rig::DevServer;
use dezky_tests::Backend;
use serde_json::{json, Value};

/// What the schema did: validations run and fields resolved.
#[derive(Default)]
struct Work {
    validations: AtomicU64,
    resolves: AtomicU64,
}

impl Work {
    fn take(&self) -> (u64, u64) {
        (
            self.validations.swap(0, Ordering::SeqCst),
            self.resolves.swap(0, Ordering::SeqCst),
        )
    }
}

/// Counts [`Work`]; registered after the guard, so it sees only what the guard let through.
struct CountWork(Arc<Work>);

impl ExtensionFactory for CountWork {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(CountWork(self.0.clone()))
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for CountWork {
    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        self.0.validations.fetch_add(1, Ordering::SeqCst);
        next.run(ctx).await
    }

    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<GqlValue>> {
        self.0.resolves.fetch_add(1, Ordering::SeqCst);
        next.run(ctx, info).await
    }
}

/// The API over HTTP with the work counter, and the same schema for in-process calls.
struct Rig {
    api: GraphqlApi,
    schema: DezkySchema,
    work: Arc<Work>,
}

async fn rig() -> Rig {
    let work = Arc::new(Work::default());
    let slot = Arc::new(OnceLock::new());
    let (counter, built) = (work.clone(), slot.clone());
    let api = GraphqlApi::start_with_schema(Backend::Sqlite, move |context, _| {
        let schema = schema_builder(context)
            .extension(CountWork(counter))
            .finish();
        let _ = built.set(schema.clone());
        schema
    })
    .await;
    let schema = slot.get().expect("schema").clone();
    Rig { api, schema, work }
}

impl Rig {
    /// Sends `query` anonymously (or with `token`) and asserts it is refused with `expected`
    /// before validation, with no field resolved.
    async fn refused(&self, token: Option<&str>, query: &str, expected: &str) -> Value {
        self.work.take();
        let response = self.api.post(token, query, json!({})).await;
        assert_eq!(code(&response), Some(expected), "{response}");
        assert_eq!(response["data"], Value::Null, "{response}");
        assert_eq!(
            self.work.take(),
            (0, 0),
            "validations and resolves for a refused query"
        );
        response
    }
}

/// Fragments `F1`..`Fn`, each spreading the previous one `fan` times, over `F0 { __typename }`.
fn fan_out(levels: usize, fan: usize) -> String {
    let mut query = format!("query {{ ...F{levels} }}\nfragment F0 on Query {{ __typename }}\n");
    for level in 1..=levels {
        let spreads = format!(" ...F{}", level - 1).repeat(fan);
        query.push_str(&format!("fragment F{level} on Query {{{spreads} }}\n"));
    }
    query
}

#[tokio::test]
async fn a_fragment_fan_out_is_refused_as_too_complex_without_validating_or_resolving() {
    let rig = rig().await;
    // The attack: 22 levels, each spreading the previous twice — 2^22 fields in under a KiB.
    let doubling = fan_out(22, 2);
    assert!(doubling.len() < 1_024, "{} bytes", doubling.len());
    rig.refused(None, &doubling, "QUERY_TOO_COMPLEX").await;
    // The guard counts what the document expands to, once per fragment.
    let document = async_graphql::parser::parse_query(&doubling).expect("parse");
    let cost =
        guard::measure(&document, &Default::default(), &Default::default()).expect("measure");
    assert_eq!(cost.operations[0].1.fields, 1 << 22);
    // Wider and deeper fan-outs (the counts saturate rather than overflow) are refused alike.
    rig.refused(None, &fan_out(7, 10), "QUERY_TOO_COMPLEX")
        .await;
    rig.refused(None, &fan_out(23, 64), "QUERY_TOO_COMPLEX")
        .await;
    // Past the nesting limit the same chain is refused as too deep.
    rig.refused(None, &fan_out(40, 2), "QUERY_TOO_DEEP").await;
}

#[tokio::test]
async fn alias_floods_are_refused_as_too_large_without_validating_or_resolving() {
    let rig = rig().await;
    // 100,000 aliases spelt out: the document alone is past its limit (and past the HTTP body
    // limit, see tests/tests/http_edge.rs), refused before parsing.
    let mut spelt = String::from("{");
    for i in 0..100_000 {
        spelt.push_str(&format!(" a{i}: __typename"));
    }
    spelt.push('}');
    rig.work.take();
    let response = rig.schema.execute(spelt.as_str()).await;
    let json = serde_json::to_value(&response).expect("json");
    assert_eq!(code(&json), Some("QUERY_TOO_LARGE"), "{json}");
    assert_eq!(rig.work.take(), (0, 0));
    // 100,000 aliases through fragments, in a short document.
    let aliases: String = (0..100).map(|i| format!(" a{i}: __typename")).collect();
    let mut folded = format!("query {{ ...C }}\nfragment A on Query {{{aliases} }}\n");
    folded.push_str(&format!(
        "fragment B on Query {{{} }}\n",
        " ...A".repeat(10)
    ));
    folded.push_str(&format!(
        "fragment C on Query {{{} }}\n",
        " ...B".repeat(100)
    ));
    assert!(folded.len() < MAX_QUERY_DOCUMENT_BYTES);
    rig.refused(None, &folded, "QUERY_TOO_LARGE").await;
    // Even a few dozen aliased root fields past the limit.
    let many: String = (0..65).map(|i| format!(" a{i}: __typename")).collect();
    rig.refused(None, &format!("{{{many} }}"), "QUERY_TOO_LARGE")
        .await;
}

#[tokio::test]
async fn deep_nesting_is_refused_as_too_deep_before_parsing_or_validating() {
    let rig = rig().await;
    let operator = rig.api.operator();
    // Eleven fields deep (names need not exist: the guard runs before validation).
    let fields = format!("{{{} x{} }}", " a {".repeat(11), " }".repeat(11));
    rig.refused(Some(&operator), &fields, "QUERY_TOO_DEEP")
        .await;
    // Five thousand nested list brackets in an argument: refused from the text, before the
    // parser recurses into them (and runs out of stack).
    let brackets = format!(
        "{{ me(x: {}1{}) {{ subject }} }}",
        "[".repeat(5_000),
        "]".repeat(5_000)
    );
    rig.refused(None, &brackets, "QUERY_TOO_DEEP").await;
    // A chain of fragments each spreading the next, 30 deep.
    let mut chain = String::from("query { ...F0 }\n");
    for i in 0..30 {
        chain.push_str(&format!("fragment F{i} on Query {{ ...F{} }}\n", i + 1));
    }
    chain.push_str("fragment F30 on Query { __typename }\n");
    rig.refused(None, &chain, "QUERY_TOO_DEEP").await;
    // Introspection nested past its own limits, even with a token.
    let of_types = format!(
        "{{ __schema {{ types {{ fields {{ type {}name{} }} }} }} }}",
        "{ ofType ".repeat(14),
        " }".repeat(14)
    );
    rig.refused(Some(&operator), &of_types, "QUERY_TOO_DEEP")
        .await;
    let lists =
        "{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }";
    rig.refused(Some(&operator), lists, "QUERY_TOO_DEEP").await;
}

#[tokio::test]
async fn huge_documents_and_many_root_fields_are_refused_as_too_large() {
    let rig = rig().await;
    let padded = format!("{}{{ __typename }}", " ".repeat(MAX_QUERY_DOCUMENT_BYTES));
    rig.refused(None, &padded, "QUERY_TOO_LARGE").await;
    let roots = " __typename".repeat(33);
    rig.refused(None, &format!("{{{roots} }}"), "QUERY_TOO_LARGE")
        .await;
    let operator = rig.api.operator();
    let me = " me { subject }".repeat(33);
    rig.refused(Some(&operator), &format!("{{{me} }}"), "QUERY_TOO_LARGE")
        .await;
    let directives = " @include(if: true)".repeat(5);
    rig.refused(
        None,
        &format!("{{ __typename{directives} }}"),
        "QUERY_TOO_LARGE",
    )
    .await;
}

#[tokio::test]
async fn nested_pages_are_refused_as_too_complex_by_their_page_sizes() {
    let rig = rig().await;
    let operator = rig.api.operator();
    // Three fields per audit entry, a hundred entries per tenant, a hundred tenants: about
    // forty thousand, although the document names seven fields.
    let nested = "{ tenants(first: 100) { nodes { auditTimeline(first: 100) { nodes { action actorEmail diff } } } } }";
    rig.refused(Some(&operator), nested, "QUERY_TOO_COMPLEX")
        .await;
    // The same sizes through variables, and through the default page when none is asked.
    rig.work.take();
    let through_variables = rig
        .api
        .post(
            Some(&operator),
            "query($n: Int) { tenants(first: $n) { nodes { auditTimeline(first: $n) { nodes { action actorEmail diff } } } } }",
            json!({"n": 100}),
        )
        .await;
    assert_eq!(code(&through_variables), Some("QUERY_TOO_COMPLEX"));
    assert_eq!(rig.work.take(), (0, 0));
    let defaults =
        "{ tenants { nodes { auditTimeline { nodes { action actorEmail diff at } } } } }";
    let per_page = guard::measure(
        &async_graphql::parser::parse_query(defaults).expect("parse"),
        &Default::default(),
        &["tenants".to_owned(), "auditTimeline".to_owned()]
            .into_iter()
            .collect(),
    )
    .expect("measure");
    assert_eq!(
        per_page.operations[0].1.weighted,
        1 + 20 * (1 + 1 + 20 * (1 + 4))
    );
    // Modest pages pass and run.
    let modest = rig
        .api
        .post(
            Some(&operator),
            "{ tenants(first: 10) { totalCount nodes { slug auditTimeline(first: 10) { totalCount } } } }",
            json!({}),
        )
        .await;
    assert_eq!(modest["errors"], Value::Null, "{modest}");
    let (validations, resolves) = rig.work.take();
    assert_eq!(validations, 1);
    assert!(resolves > 0);
}

#[tokio::test]
async fn a_fragment_that_spreads_itself_is_refused_before_validation() {
    let rig = rig().await;
    let cycle =
        "query { ...A } fragment A on Query { __typename ...B } fragment B on Query { ...A }";
    let response = rig.refused(None, cycle, "GRAPHQL_VALIDATION_FAILED").await;
    assert!(
        response["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("spreads itself")),
        "{response}"
    );
}

/// The introspection query GraphQL tools send (graphql-js `getIntrospectionQuery` with input
/// value deprecation, a type reference unwrapped nine times).
const TOOLS_INTROSPECTION: &str = r#"
query IntrospectionQuery {
  __schema {
    queryType { name }
    mutationType { name }
    subscriptionType { name }
    types { ...FullType }
    directives {
      name description locations
      args(includeDeprecated: true) { ...InputValue }
    }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) {
    name description
    args(includeDeprecated: true) { ...InputValue }
    type { ...TypeRef }
    isDeprecated deprecationReason
  }
  inputFields(includeDeprecated: true) { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue {
  name description type { ...TypeRef } defaultValue isDeprecated deprecationReason
}
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name
    ofType { kind name ofType { kind name ofType { kind name ofType { kind name
      ofType { kind name } } } } } } } } }
}
"#;

#[tokio::test]
async fn introspection_is_refused_to_anonymous_callers_and_answered_to_authenticated_ones() {
    let rig = rig().await;
    for query in [
        "{ __schema { queryType { name } } }",
        "{ __type(name: \"Query\") { name } }",
        "query { ...S } fragment S on Query { __schema { types { name } } }",
        TOOLS_INTROSPECTION,
    ] {
        rig.refused(None, query, "INTROSPECTION_DISABLED").await;
        rig.refused(Some("not-a-token"), query, "INTROSPECTION_DISABLED")
            .await;
    }
    // `__typename` is not introspection.
    let typename = rig.api.post(None, "{ __typename }", json!({})).await;
    assert_eq!(typename["data"]["__typename"], "Query", "{typename}");
    // The tools' query passes every limit and answers a caller with a token.
    let answered = rig
        .api
        .post(Some(&rig.api.operator()), TOOLS_INTROSPECTION, json!({}))
        .await;
    assert_eq!(answered["errors"], Value::Null, "{answered}");
    assert_eq!(answered["data"]["__schema"]["queryType"]["name"], "Query");
}

#[tokio::test]
async fn health_checks_answer_while_eight_hostile_queries_run_at_once() {
    let server = DevServer::start(&[]).await;
    let hostile = Arc::new([fan_out(22, 2), fan_out(23, 64), {
        let aliases: String = (0..100).map(|i| format!(" a{i}: __typename")).collect();
        format!(
            "query {{ ...B }} fragment A on Query {{{aliases} }} fragment B on Query {{{} }}",
            " ...A".repeat(1_000)
        )
    }]);
    let server = Arc::new(server);
    let senders: Vec<_> = (0..8)
        .map(|i| {
            let (server, hostile) = (server.clone(), hostile.clone());
            tokio::spawn(async move {
                for round in 0..25 {
                    let query = &hostile[(i + round) % hostile.len()];
                    let (status, body) = server.graphql(None, query).await;
                    assert_eq!(status, 200, "{body}");
                    assert!(
                        matches!(code(&body), Some("QUERY_TOO_COMPLEX" | "QUERY_TOO_LARGE")),
                        "{body}"
                    );
                }
            })
        })
        .collect();
    let client = reqwest::Client::builder()
        // A generous bound on "answered at all", not a latency target.
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let mut answered = 0;
    while !senders.iter().all(|sender| sender.is_finished()) || answered == 0 {
        let health = client
            .get(server.url("/healthz"))
            .send()
            .await
            .expect("healthz answers");
        assert_eq!(health.status(), 200);
        answered += 1;
    }
    for sender in senders {
        sender.await.expect("hostile sender");
    }
}
