// Helpers of the end-to-end tests (run by tests/router/test_router.py against the real stack).
import { once } from "node:events";
import net from "node:net";

import WebSocket from "ws";

import { createAdxClient, type AdxClient, type AdxClientOptions } from "../src/index.js";

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: these tests run through tests/router (make test)`);
  return value;
}

export const ROUTER_URL = required("ADX_ROUTER_URL");
// A production router runs trusted documents only: the client then sends each one's hash.
const PERSISTED = process.env["ADX_PERSISTED_DOCUMENTS"] === "1";

/** The test process's control endpoint (tests/router/conftest.py `control`: e2e tests only). */
async function control<T>(path: string, body: unknown): Promise<T> {
  const response = await fetch(`${required("ADX_E2E_CONTROL_URL")}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`control ${path}: HTTP ${response.status} ${await response.text()}`);
  return (await response.json()) as T;
}

export type Who = "alice" | "mallory";

export interface Person {
  token: string;
  userId: string;
  tenantId: string;
}

export function person(who: Who): Promise<Person> {
  return control<Person>("/token", { who });
}

export interface StartOptions {
  steps?: number;
  delayMs?: number;
  state?: "running" | "cancelled";
  who?: Who;
}

/** Starts a demo_steps workflow (steps s0..sN-1, each taking delayMs) as that person. */
export async function startDemo(options: StartOptions = {}): Promise<string> {
  const { id } = await control<{ id: string }>("/operations", options);
  return id;
}

/** A client of the router for that token (Node 20 has no global WebSocket: `ws`). */
export function clientFor(token: string | null, options: Partial<AdxClientOptions> = {}): AdxClient {
  return createAdxClient({
    url: ROUTER_URL,
    getToken: () => token,
    webSocketImpl: WebSocket,
    retryDelayMs: 50,
    persistedDocuments: PERSISTED,
    ...options,
  });
}

export async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const item of items) all.push(item);
  return all;
}

export function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

/**
 * A TCP proxy in front of the router whose connections the test can kill at any moment, as a
 * dropped network would (both sides see the socket die; no close frame).
 */
export interface KillableProxy {
  /** ws://127.0.0.1:PORT/graphql through the proxy. */
  readonly wsUrl: string;
  /** Connections accepted so far. */
  readonly accepted: number;
  killAll(): void;
  close(): Promise<void>;
}

export async function killableProxy(targetUrl: string = ROUTER_URL): Promise<KillableProxy> {
  const target = new URL(targetUrl);
  const live = new Set<net.Socket>();
  let accepted = 0;
  const server = net.createServer((downstream) => {
    accepted += 1;
    const upstream = net.connect(Number(target.port), target.hostname);
    live.add(downstream);
    live.add(upstream);
    const drop = (): void => {
      downstream.destroy();
      upstream.destroy();
      live.delete(downstream);
      live.delete(upstream);
    };
    downstream.on("error", drop).on("close", drop);
    upstream.on("error", drop).on("close", drop);
    downstream.pipe(upstream);
    upstream.pipe(downstream);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("proxy has no port");
  const killAll = (): void => {
    for (const socket of live) socket.destroy();
    live.clear();
  };
  return {
    wsUrl: `ws://127.0.0.1:${address.port}${target.pathname}`,
    get accepted() {
      return accepted;
    },
    killAll,
    async close() {
      killAll();
      server.close();
      await once(server, "close");
    },
  };
}
