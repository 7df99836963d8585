// GraphQL Hive Gateway configuration of the ADX supergraph router (port 4000 by default).
//
// Started by `adx schema router` (what `make dev` runs), which passes:
//   hive-gateway supergraph <supergraph.graphql> -c gateway.config.ts --host H --port P
//   ADX_ROUTER_SUBGRAPH_URLS='{"workflow": "http://127.0.0.1:4005/graphql", ...}'  (from ADX settings)
// Run it by hand the same way to serve the committed schema/supergraph.graphql elsewhere.
import { defineConfig, type GatewayConfig } from "@graphql-hive/gateway";

// Subgraph name -> GraphQL URL. Overrides the URL recorded in the supergraph (the committed
// supergraph carries the default development ports), so one supergraph serves every setup.
const subgraphUrls: Record<string, string> = JSON.parse(
  process.env.ADX_ROUTER_SUBGRAPH_URLS ?? "{}",
);

// Headers of the client's request that every subgraph request carries.
const PROPAGATED_HEADERS = ["authorization", "x-correlation-id"];

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
  plugins: () => [
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
  graphqlEndpoint: "/graphql",
  // Same probes as every other ADX process.
  healthCheckEndpoint: "/healthz",
  readinessCheckEndpoint: "/readyz",
  landingPage: false,
  logging: (process.env.ADX_ROUTER_LOG_LEVEL ?? "info") as "debug" | "info" | "warn" | "error",
});
