// The workflow subgraph through the router with the SDK: queries, mutations, operation progress
// over WebSocket and SSE, a killed connection resumed without losing or repeating an event.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import {
  AdxGraphQLError,
  CancelOperationDocument,
  GetOperationDocument,
  ListOperationsDocument,
  OperationHistoryDocument,
  RetryOperationDocument,
  type AdxClient,
  type GetOperationQuery,
  type OperationUpdate,
} from "../../src/index.js";
import { clientFor, collect, killableProxy, person, range, startDemo, type Person } from "../support.js";

const TIMEOUT = { timeout: 60_000 };

let alice: Person;
let mallory: Person;
let client: AdxClient;
const clients: AdxClient[] = [];

function track(c: AdxClient): AdxClient {
  clients.push(c);
  return c;
}

before(async () => {
  alice = await person("alice");
  mallory = await person("mallory");
  client = track(clientFor(alice.token));
});

after(async () => {
  await Promise.all(clients.map((c) => c.dispose()));
});

async function settled(id: string): Promise<NonNullable<GetOperationQuery["operation"]>> {
  for (let i = 0; i < 200; i += 1) {
    const { operation } = await client.query(GetOperationDocument, { id });
    assert.ok(operation, "alice sees her operation");
    if (operation.status !== "RUNNING") return operation;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`operation ${id} still running`);
}

function assertComplete(updates: OperationUpdate[], steps: number): void {
  assert.deepEqual(
    updates.map((u) => u.offset),
    range(1, updates.length),
    "every offset once, in order",
  );
  const last = updates.at(-1);
  assert.ok(last);
  assert.equal(last.terminal, true);
  assert.equal(last.status, "COMPLETED");
  assert.deepEqual((last.result as { done: string[] }).done, range(0, steps - 1).map((i) => `s${i}`));
  assert.equal(updates.filter((u) => u.terminal).length, 1, "one terminal event, the last");
}

describe("queries and mutations over HTTP", () => {
  test("operation: a finished operation with its progress, result and user", TIMEOUT, async () => {
    const id = await startDemo({ steps: 2 });
    const operation = await settled(id);
    assert.equal(operation.status, "COMPLETED");
    assert.equal(operation.type, "demo_steps");
    assert.deepEqual(operation.user, { id: alice.userId });
    assert.equal(operation.progress.completed, 2);
    assert.equal(operation.progress.fraction, 1);
    assert.deepEqual(operation.result, { label: (operation.result as { label: string }).label, done: ["s0", "s1"] });
    assert.equal(operation.error, null);
  });

  test("operations: the caller's own operations, paged", TIMEOUT, async () => {
    const id = await startDemo({ steps: 1 });
    await settled(id);
    const { operations } = await client.query(ListOperationsDocument, {
      filter: { mine: true, type: "demo_steps" },
      first: 100,
    });
    assert.ok(operations.edges.some((edge) => edge.node.id === id));
    assert.ok(operations.edges.every((edge) => edge.node.user?.id === alice.userId));
  });

  test("operationHistory: steps with timings and the event log", TIMEOUT, async () => {
    const id = await startDemo({ steps: 3 });
    await settled(id);
    const { operationHistory } = await client.query(OperationHistoryDocument, { id });
    assert.deepEqual(
      operationHistory.steps.map((s) => [s.name, s.state]),
      [["s0", "COMPLETED"], ["s1", "COMPLETED"], ["s2", "COMPLETED"]],
    );
    assert.ok(operationHistory.steps.every((s) => s.durationMs !== null && s.durationMs >= 0));
    assert.deepEqual(
      operationHistory.events.map((e) => e.offset),
      range(1, operationHistory.events.length),
    );
  });

  test("cancelOperation then retryOperation", TIMEOUT, async () => {
    const id = await startDemo({ steps: 5, delayMs: 300 });
    const { cancelOperation } = await client.mutate(CancelOperationDocument, { id, reason: "changed my mind" });
    assert.equal(cancelOperation.id, id);
    assert.equal((await settled(id)).status, "CANCELED");
    const { retryOperation } = await client.mutate(RetryOperationDocument, { id });
    assert.equal(retryOperation.retryOf, id);
    assert.notEqual(retryOperation.id, id);
    await client.mutate(CancelOperationDocument, { id: retryOperation.id });
  });

  test("errors carry the GraphQL code", TIMEOUT, async () => {
    const id = await startDemo({ steps: 1 });
    const anonymous = track(clientFor(null));
    await assert.rejects(anonymous.query(GetOperationDocument, { id }), (error: unknown) => {
      assert.ok(error instanceof AdxGraphQLError);
      assert.equal(error.code, "UNAUTHENTICATED");
      return true;
    });
    const other = track(clientFor(mallory.token));
    // Another tenant never sees it: `operation` is null (with a NOT_FOUND error, as the
    // workflow subgraph answers today, or without one).
    const seenByOther = await other.query(GetOperationDocument, { id }).catch((error: unknown) => {
      assert.ok(error instanceof AdxGraphQLError);
      assert.equal(error.code, "NOT_FOUND");
      return error.data as GetOperationQuery;
    });
    assert.equal(seenByOther.operation, null);
    await assert.rejects(other.query(OperationHistoryDocument, { id }), (error: unknown) => {
      assert.ok(error instanceof AdxGraphQLError);
      assert.equal(error.code, "NOT_FOUND");
      assert.deepEqual(error.errors[0]?.path, ["operationHistory"]);
      return true;
    });
    await assert.rejects(collect(other.watchOperation(id)), (error: unknown) => {
      assert.ok(error instanceof AdxGraphQLError, `got ${String(error)}`);
      assert.equal(error.code, "NOT_FOUND");
      return true;
    });
  });
});

describe("operation progress", () => {
  test("watchOperation over WebSocket: to COMPLETED with ordered offsets", TIMEOUT, async () => {
    const id = await startDemo({ steps: 3, delayMs: 100 });
    const updates = await collect(client.watchOperation(id));
    assertComplete(updates, 3);
    const resumed = await collect(client.watchOperation(id, { fromOffset: 4 }));
    assert.deepEqual(
      resumed.map((u) => u.offset),
      updates.filter((u) => u.offset > 4).map((u) => u.offset),
      "fromOffset resumes after that offset",
    );
  });

  test("watchOperation over SSE", TIMEOUT, async () => {
    const sse = track(clientFor(alice.token, { subscriptions: "sse" }));
    const id = await startDemo({ steps: 2, delayMs: 100 });
    assertComplete(await collect(sse.watchOperation(id)), 2);
  });

  for (const mode of ["transport reconnect", "watchOperation reconnect"] as const) {
    test(`a connection killed mid-stream resumes without losing or repeating events (${mode})`, TIMEOUT, async () => {
      const proxy = await killableProxy();
      // (offset resubscribed from, offset last delivered to the loop) at each reconnect
      const reconnects: [number, number | undefined][] = [];
      const watcher = track(
        clientFor(alice.token, {
          wsUrl: proxy.wsUrl,
          // 0: the socket's death fails the subscription and watchOperation itself resubscribes.
          retryAttempts: mode === "transport reconnect" ? 5 : 0,
        }),
      );
      try {
        const id = await startDemo({ steps: 8, delayMs: 300 });
        const reference = collect(track(clientFor(alice.token)).watchOperation(id));
        const seen: OperationUpdate[] = [];
        let killedAt: number | undefined;
        for await (const update of watcher.watchOperation(id, {
          onReconnect: ({ fromOffset }) => reconnects.push([fromOffset, seen.at(-1)?.offset]),
        })) {
          seen.push(update);
          if (killedAt === undefined && seen.length === 3) {
            killedAt = update.offset;
            proxy.killAll();
          }
        }
        assert.equal(killedAt, 3);
        assert.ok(proxy.accepted >= 2, "a new connection after the kill");
        const last = seen.at(-1);
        assert.ok(last && last.offset > 3, "events after the kill arrived");
        if (mode === "watchOperation reconnect") {
          // Events already received when the socket died are still delivered first.
          const [fromOffset, lastDelivered] = reconnects[0] ?? [];
          assert.ok(fromOffset !== undefined && fromOffset >= 3, `reconnected: ${JSON.stringify(reconnects)}`);
          assert.equal(fromOffset, lastDelivered, "resubscribed from the last delivered offset");
        }
        assertComplete(seen, 8);
        assert.deepEqual(seen, await reference, "the same events as an uninterrupted subscriber");
      } finally {
        await proxy.close();
      }
    });
  }

  test("startAndWatch: a mutation that starts an operation, followed to the end", TIMEOUT, async () => {
    const cancelled = await startDemo({ steps: 2, delayMs: 200, state: "cancelled" });
    const run = client.startAndWatch(RetryOperationDocument, { id: cancelled });
    const started = await run.started;
    assert.equal(started.retryOperation.retryOf, cancelled);
    const updates = await collect(run);
    assertComplete(updates, 2);
    assert.ok(updates.every((u) => u.operationId === started.retryOperation.id));
  });
});
