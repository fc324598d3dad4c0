// The API explorer's start-up: renders GraphiQL (loaded by the page before this file) with a
// fetcher that posts to the page's own URL, so queries go to this server and nowhere else.
// A separate file rather than an inline script, so the Content-Security-Policy's script-src
// can stay at 'self'.
//
// Tokens go in GraphiQL's headers editor, which opens with the page; headers are not
// persisted (GraphiQL's default), so a bearer token is not left in the browser's storage.
(function () {
  'use strict';

  var defaultQuery = [
    '# dezky API explorer',
    '#',
    '# Queries go to this server only. To act as someone, put their token in the',
    '# Headers tab below:',
    '#',
    '#   {"Authorization": "Bearer <token>"}',
    '#',
    '# In development mode, `dezky dev token --role platform-admin` prints one.',
    '# Run a query with Ctrl-Enter or the run button.',
    '',
    '{',
    '  __typename',
    '}',
    '',
  ].join('\n');

  // The server refuses queries nested deeper than 10 levels (MAX_QUERY_DEPTH), and the
  // standard introspection query's TypeRef fragment nests nine `ofType` levels, so GraphiQL's
  // schema fetch would be refused and its docs and completion stay empty. The schema's
  // deepest type reference is `[T!]!` (three wrappers): four levels describe it in full and
  // fit the limit (`__schema types fields args type` + four). Were a deeper reference ever
  // added, GraphiQL would say it cannot build the schema, and the browser test would fail.
  var TYPE_REF_LEVELS = 4;
  function boundedTypeRef() {
    var open = '';
    var close = '';
    for (var level = 0; level < TYPE_REF_LEVELS; level += 1) {
      open += ' ofType { kind name';
      close += ' }';
    }
    return 'fragment TypeRef on __Type { kind name' + open + close + ' }\n';
  }

  var httpFetcher = GraphiQL.createFetcher({
    url: window.location.pathname,
    // The server answers plain JSON only (no @defer/@stream).
    enableIncrementalDelivery: false,
  });
  function fetcher(params, options) {
    var typeRef = params.query ? params.query.indexOf('fragment TypeRef on __Type') : -1;
    if (params.operationName === 'IntrospectionQuery' && typeRef >= 0) {
      // graphql-js puts TypeRef last: replace it, keep the rest as GraphiQL asked.
      params = Object.assign({}, params, {
        query: params.query.slice(0, typeRef) + boundedTypeRef(),
      });
    }
    return httpFetcher(params, options);
  }
  var root = ReactDOM.createRoot(document.getElementById('explorer'));
  root.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultQuery: defaultQuery,
      defaultEditorToolsVisibility: 'headers',
      shouldPersistHeaders: false,
    })
  );
})();
