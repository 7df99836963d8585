// GraphQL Hive Gateway configuration of the ADX supergraph router (port 4000 by default).
//
// Started by `adx schema router` (what `make dev` runs), which passes:
//   hive-gateway supergraph <supergraph.graphql> -c gateway.config.ts --host H --port P
//   ADX_ROUTER_SUBGRAPH_URLS='{"workflow": "http://127.0.0.1:4005/graphql", ...}'  (from ADX settings)
//   ADX_ROUTER_CORS_ORIGINS, ADX_ROUTER_LIMITS, ADX_ROUTER_PRODUCTION,
//   ADX_ROUTER_TRUSTED_DOCUMENTS, ADX_ROUTER_SHOW_COST  (see below)
// Run it by hand the same way to serve the committed schema/supergraph.graphql elsewhere
// (without ADX_ROUTER_LIMITS, the defaults below are adx's).
import { readFileSync } from "node:fs";

import { defineConfig, type GatewayConfig } from "@graphql-hive/gateway";
import { GraphQLError, type ExecutionResult, type ValidationRule } from "graphql";
import { maskError } from "graphql-yoga";

// Subgraph name -> GraphQL URL. Overrides the URL recorded in the supergraph (the committed
// supergraph carries the default development ports), so one supergraph serves every setup.
const subgraphUrls: Record<string, string> = JSON.parse(
  process.env.ADX_ROUTER_SUBGRAPH_URLS ?? "{}",
);

// Headers of the client's request that every subgraph request carries.
const PROPAGATED_HEADERS = ["authorization", "x-correlation-id"];

// Browser origins allowed cross-origin, with credentials (ADX setting cors_origins). None: no
// CORS headers at all. (An empty origin list would make the gateway echo any Origin.)
const corsOrigins: string[] = JSON.parse(process.env.ADX_ROUTER_CORS_ORIGINS ?? "[]");

// A request a browser sends cross-site without a preflight (a form post: urlencoded,
// multipart or text/plain; a GET) must carry this header, which forces the preflight that
// CORS refuses for other origins. application/json requests are preflighted anyway.
const CSRF_HEADER = "x-adx-csrf";

// The router's own limits (the subgraphs' from graph/schema.py, handed over by `adx schema
// router`), so an abusive document is refused before the router parses or plans it.
const limits: {
  upstream_timeout_ms: number;
  depth: number;
  cost: number;
  list_size: number;
  aliases: number;
  tokens: number;
  body_bytes: number;
  logins_per_minute: number;
  emails_per_quarter_hour: number;
} = JSON.parse(
  process.env.ADX_ROUTER_LIMITS ??
    '{"upstream_timeout_ms":15000,"depth":10,"cost":200,"list_size":10,"aliases":15,"tokens":2000,"body_bytes":102400,"logins_per_minute":30,"emails_per_quarter_hour":5}',
);
const MINUTE = 60_000;
// Production: no introspection and no "Did you mean" suggestions (the schema stays private).
const production = process.env.ADX_ROUTER_PRODUCTION === "1";

// Trusted documents (ADX setting router_trusted_documents; on in production): the SDK's
// generated documents by the sha256 of their text (sdk/src/generated/trusted-documents.json).
// Then only these run, sent by id (extensions.persistedQuery.sha256Hash); text is refused.
const trustedDocuments: Record<string, string> | undefined = process.env.ADX_ROUTER_TRUSTED_DOCUMENTS
  ? JSON.parse(readFileSync(process.env.ADX_ROUTER_TRUSTED_DOCUMENTS, "utf8"))
  : undefined;

// A subgraph that cannot be reached (down, refusing, reset) or does not answer in time (hung)
// is UNAVAILABLE to clients, named by its subgraph, never by its address; every other
// unexpected error is masked as usual.
function maskUnreachable(error: unknown, message: string, isDev?: boolean): Error {
  const original = error instanceof GraphQLError ? error.originalError : undefined;
  const extensions = original instanceof GraphQLError ? original.extensions : undefined;
  const path = error instanceof GraphQLError ? error.path : undefined;
  if (extensions?.code === "SUBREQUEST_HTTP_ERROR") {
    return new GraphQLError(`The ${String(extensions.serviceName ?? "")} service is unavailable.`, {
      path,
      extensions: { code: "UNAVAILABLE" },
    });
  }
  if (extensions?.code === "GATEWAY_TIMEOUT") {
    const name = extensions.serviceName ? `The ${String(extensions.serviceName)} service` : "A service";
    return new GraphQLError(`${name} did not answer in time.`, { path, extensions: { code: "UNAVAILABLE" } });
  }
  return maskError(error, message, isDev);
}

function isAsyncIterable(value: unknown): value is AsyncIterable<ExecutionResult> {
  return typeof value === "object" && value !== null && Symbol.asyncIterator in value;
}

// The subscription's one root field (whatever its alias) carries `offset` when the document
// selects it; results without one pass as they are.
async function* withoutRepeatedOffsets(
  results: AsyncIterable<ExecutionResult>,
): AsyncGenerator<ExecutionResult> {
  let last = -Infinity;
  for await (const result of results) {
    const [root] = Object.values(result.data ?? {});
    const offset = (root as { offset?: unknown } | null | undefined)?.offset;
    if (typeof offset === "number") {
      if (offset <= last) continue;
      last = offset;
    }
    yield result;
  }
}

const aliasLimit: ValidationRule = (context) => {
  let aliases = 0;
  return {
    Field(node) {
      if (node.alias && ++aliases === limits.aliases + 1) {
        context.reportError(
          new GraphQLError(`Too many aliases: at most ${limits.aliases} in one document.`, {
            extensions: { code: "BAD_USER_INPUT" },
          }),
        );
      }
    },
  };
};

export const gatewayConfig: GatewayConfig = defineConfig({
  transportEntries: {
    // Every subgraph: subscriptions over WebSocket (graphql-transport-ws). The default SSE
    // transport splits events on "\n\n" only and silently drops Strawberry's CRLF events.
    // The client's token travels in connection_init, where the BFFs read it; a WebSocket
    // client's own connectionParams are merged into context.headers, so this works for
    // clients on WebSocket and on SSE alike.
    "*.http": {
      options: {
        subscriptions: {
          kind: "ws",
          options: {
            connectionParams: { Authorization: "{context.headers.authorization}" },
          },
        },
      },
    },
    ...Object.fromEntries(
      Object.entries(subgraphUrls).map(([name, url]) => [name, { location: url }]),
    ),
  },
  // Client headers are not forwarded to subgraphs by default.
  propagateHeaders: {
    fromClientToSubgraphs({ request }) {
      const headers: Record<string, string> = {};
      for (const name of PROPAGATED_HEADERS) {
        const value = request.headers.get(name);
        if (value) headers[name] = value;
      }
      return headers;
    },
  },
  // The anonymous operations, per email address (they have no caller to count by): password
  // guessing on one account, and mail floods of one address.
  rateLimiting: [
    { type: "Mutation", field: "login", max: limits.logins_per_minute, ttl: MINUTE, identifier: "{args.email}" },
    {
      type: "Mutation",
      field: "requestPasswordReset",
      max: limits.emails_per_quarter_hour,
      ttl: 15 * MINUTE,
      identifier: "{args.email}",
    },
    {
      type: "Mutation",
      field: "register",
      max: limits.emails_per_quarter_hour,
      ttl: 15 * MINUTE,
      identifier: "{args.input.email}",
    },
  ],
  // A hung subgraph is given up (queries and mutations; a subscription is long-lived).
  upstreamTimeout: ({ executionRequest }) =>
    executionRequest?.operationType === "subscription" ? undefined : limits.upstream_timeout_ms,
  persistedDocuments: trustedDocuments
    ? {
        getPersistedOperation: (id: string) => trustedDocuments[id] ?? null,
        allowArbitraryDocuments: false,
      }
    : undefined,
  // The cost of a document (Hive Gateway's demand control; see MAX_COST in
  // adx/schema_command.py): 1 per object field, a mutation 10 more. A document past the limit
  // is refused before the subgraph request that would pass it. In development every answer's
  // extensions.cost shows what its document costs.
  demandControl: {
    maxCost: limits.cost,
    listSize: limits.list_size,
    includeExtensionMetadata: process.env.ADX_ROUTER_SHOW_COST === "1",
  },
  maxDepth: limits.depth,
  maxTokens: limits.tokens,
  blockFieldSuggestions: production,
  disableIntrospection: production ? { disableIf: () => true } : undefined,
  plugins: () => [
    {
      // A body past the limit is refused: at once when its declared size says so, else (a
      // chunked body) as soon as that many bytes have been read.
      async onRequest({ request, setRequest, endResponse, fetchAPI }) {
        const tooLarge = () =>
          new fetchAPI.Response(
            JSON.stringify({
              errors: [
                {
                  message: `The request body is over ${limits.body_bytes} bytes.`,
                  extensions: { code: "BAD_USER_INPUT" },
                },
              ],
            }),
            { status: 413, headers: { "content-type": "application/json" } },
          );
        const declared = request.headers.get("content-length");
        if (declared !== null) {
          if (Number(declared) > limits.body_bytes) endResponse(tooLarge());
          return;
        }
        if (request.body === null) return;
        const chunks: Uint8Array[] = [];
        let size = 0;
        const reader = request.body.getReader();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          size += value.byteLength;
          if (size > limits.body_bytes) {
            await reader.cancel();
            endResponse(tooLarge());
            return;
          }
          chunks.push(value);
        }
        const body = new Uint8Array(size);
        let at = 0;
        for (const chunk of chunks) {
          body.set(chunk, at);
          at += chunk.byteLength;
        }
        setRequest(new fetchAPI.Request(request.url, { method: request.method, headers: request.headers, body }));
      },
      onValidate({ addValidationRule }) {
        addValidationRule(aliasLimit);
      },
    },
    {
      // After its connection to a subgraph drops (a BFF restarting), the gateway subscribes
      // there again with the client's original variables, so the events the client already
      // has come a second time: each progress event is passed on once, in offset order.
      onSubscribe() {
        return {
          onSubscribeResult({ result, setResult }) {
            if (isAsyncIterable(result)) setResult(withoutRepeatedOffsets(result));
          },
        };
      },
    },
    {
      // A WebSocket client's connection_init payload is merged into context.headers with its
      // keys as sent ("Authorization"); header names are case-insensitive, so lowercase them
      // for the {context.headers.authorization} interpolation above.
      onContextBuilding({ context, extendContext }) {
        const headers = (context as { headers?: Record<string, unknown> }).headers;
        if (headers && Object.keys(headers).some((key) => key !== key.toLowerCase())) {
          const lowered = Object.fromEntries(
            Object.entries(headers).map(([key, value]) => [key.toLowerCase(), value]),
          );
          extendContext({ headers: lowered } as never);
        }
      },
    },
  ],
  cors: corsOrigins.length
    ? {
        origin: corsOrigins,
        credentials: true,
        methods: ["GET", "POST", "OPTIONS"],
        allowedHeaders: ["authorization", "content-type", "x-correlation-id", CSRF_HEADER],
      }
    : false,
  csrfPrevention: { requestHeaders: [CSRF_HEADER] },
  maskedErrors: { maskError: maskUnreachable },
  graphqlEndpoint: "/graphql",
  // Prometheus metrics (requests, phases, errors, subgraph calls and their durations) for
  // scraping, as every other ADX process serves them.
  prometheus: { endpoint: "/metrics" },
  // Same probes as every other ADX process.
  healthCheckEndpoint: "/healthz",
  readinessCheckEndpoint: "/readyz",
  landingPage: false,
  logging: (process.env.ADX_ROUTER_LOG_LEVEL ?? "info") as "debug" | "info" | "warn" | "error",
});
