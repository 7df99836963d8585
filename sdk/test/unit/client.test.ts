// The client's HTTP side and error objects, with a stand-in fetch (no server): `npm test`.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import {
  AdxGraphQLError,
  AdxTransportError,
  createAdxClient,
  documentId,
  GetOperationDocument,
  isRetryable,
  ListOperationsDocument,
  RetryOperationDocument,
} from "../../src/index.js";

interface Sent {
  url: string;
  headers: Record<string, string>;
  body: {
    query: string;
    variables: Record<string, unknown>;
    operationName?: string;
    extensions?: { persistedQuery?: { version: number; sha256Hash: string } };
  };
}

function fakeFetch(status: number, answer: unknown, sent: Sent[] = []): typeof fetch {
  return async (input, init) => {
    sent.push({
      url: String(input),
      headers: init?.headers as Record<string, string>,
      body: JSON.parse(String(init?.body)) as Sent["body"],
    });
    const text = typeof answer === "string" ? answer : JSON.stringify(answer);
    return new Response(text, { status, headers: { "content-type": "application/json" } });
  };
}

test("a query posts the document, its variables and name, with the current token", async () => {
  const sent: Sent[] = [];
  let token = "first";
  const client = createAdxClient({
    url: "http://router.test/graphql",
    getToken: () => token,
    headers: { "x-correlation-id": "c-1" },
    fetch: fakeFetch(200, { data: { operation: null } }, sent),
  });
  assert.deepEqual(await client.query(GetOperationDocument, { id: "op-1" }), { operation: null });
  token = "second";
  await client.query(ListOperationsDocument); // no required variable: variables may be left out
  assert.equal(sent[0]?.url, "http://router.test/graphql");
  assert.equal(sent[0]?.headers["Authorization"], "Bearer first");
  assert.equal(sent[1]?.headers["Authorization"], "Bearer second");
  assert.equal(sent[0]?.headers["x-correlation-id"], "c-1");
  assert.equal(sent[0]?.body.operationName, "GetOperation");
  assert.deepEqual(sent[0]?.body.variables, { id: "op-1" });
  assert.match(sent[0]?.body.query ?? "", /fragment OperationFields on Operation/);
  assert.deepEqual(sent[1]?.body.variables, {});
});

test("no token, no Authorization header", async () => {
  const sent: Sent[] = [];
  const client = createAdxClient({ url: "http://router.test/graphql", fetch: fakeFetch(200, { data: {} }, sent) });
  await client.query(ListOperationsDocument, {});
  assert.equal(sent[0]?.headers["Authorization"], undefined);
});

test("GraphQL errors become an AdxGraphQLError with the code, path and partial data", async () => {
  const client = createAdxClient({
    url: "http://router.test/graphql",
    fetch: fakeFetch(200, {
      data: { operation: null },
      errors: [
        { message: "operation not found", path: ["operation"], extensions: { code: "NOT_FOUND", serviceName: "workflow" } },
        { message: "no code" },
      ],
    }),
  });
  const error = await client.query(GetOperationDocument, { id: "x" }).catch((e: unknown) => e);
  assert.ok(error instanceof AdxGraphQLError);
  assert.equal(error.code, "NOT_FOUND");
  assert.equal(error.message, "operation not found");
  assert.deepEqual(error.errors[0]?.path, ["operation"]);
  assert.equal(error.errors[1]?.code, "INTERNAL_SERVER_ERROR");
  assert.equal(error.extensions["serviceName"], "workflow");
  assert.deepEqual(error.data, { operation: null });
  assert.equal(error.status, 200);
  assert.ok(error.has("NOT_FOUND"));
  assert.equal(isRetryable(error), false);
});

test("a validation error answered with HTTP 400 is still a GraphQL error", async () => {
  const client = createAdxClient({
    url: "http://router.test/graphql",
    fetch: fakeFetch(400, { errors: [{ message: "Cannot query field", extensions: { code: "GRAPHQL_VALIDATION_FAILED" } }] }),
  });
  await assert.rejects(client.mutate(RetryOperationDocument, { id: "x" }), (error: unknown) => {
    assert.ok(error instanceof AdxGraphQLError);
    assert.equal(error.code, "GRAPHQL_VALIDATION_FAILED");
    assert.equal(error.status, 400);
    return true;
  });
});

test("an answer that is not GraphQL, or no answer, is an AdxTransportError", async () => {
  const html = createAdxClient({ url: "http://router.test/graphql", fetch: fakeFetch(502, "<html>bad gateway</html>") });
  await assert.rejects(html.query(ListOperationsDocument), (error: unknown) => {
    assert.ok(error instanceof AdxTransportError);
    assert.equal(error.code, "NETWORK_ERROR");
    assert.equal(error.status, 502);
    assert.equal(isRetryable(error), true);
    return true;
  });
  const down = createAdxClient({
    url: "http://router.test/graphql",
    fetch: async () => {
      throw new TypeError("fetch failed");
    },
  });
  await assert.rejects(down.query(ListOperationsDocument), AdxTransportError);
});

test("unavailable and schema reloads are retried; caller mistakes are not", () => {
  const error = (code: string): AdxGraphQLError =>
    new AdxGraphQLError([{ message: code, code, extensions: { code } }]);
  assert.equal(isRetryable(error("UNAVAILABLE")), true);
  assert.equal(isRetryable(error("SCHEMA_RELOAD")), true);
  for (const code of ["UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND", "BAD_USER_INPUT", "CONFLICT"]) {
    assert.equal(isRetryable(error(code)), false, code);
  }
});

test("startAndWatch without an operation id in the result fails with a clear error", async () => {
  const client = createAdxClient({ url: "http://router.test/graphql", fetch: fakeFetch(200, { data: { retryOperation: null } }) });
  const run = client.startAndWatch(RetryOperationDocument, { id: "x" });
  await assert.rejects(
    (async () => {
      for await (const _ of run) break;
    })(),
    /no operation id/,
  );
});

test("with persisted documents, a document travels as its trusted id, never as text", async () => {
  const sent: Sent[] = [];
  const client = createAdxClient({
    url: "http://router.test/graphql",
    persistedDocuments: true,
    fetch: fakeFetch(200, { data: { operation: null } }, sent),
  });
  await client.query(GetOperationDocument, { id: "op-1" });
  const id = sent[0]?.body.extensions?.persistedQuery?.sha256Hash ?? "";
  assert.equal(sent[0]?.body.query, "");
  assert.equal(sent[0]?.body.extensions?.persistedQuery?.version, 1);
  assert.deepEqual(sent[0]?.body.variables, { id: "op-1" });
  assert.equal(id, await documentId(GetOperationDocument.toString()));
  // The id names the document in the trusted documents the router serves in production.
  const trusted = JSON.parse(readFileSync("src/generated/trusted-documents.json", "utf8")) as Record<string, string>;
  assert.equal(trusted[id], GetOperationDocument.toString());
});
