// The hand-written client on top of the generated documents: queries and mutations over fetch,
// subscriptions over graphql-ws (default) or graphql-sse, operation progress that survives
// dropped connections, and errors as typed objects carrying the GraphQL code.
import type { DocumentTypeDecoration } from "@graphql-typed-document-node/core";
import { createClient as createSseClient, type Client as SseClient } from "graphql-sse";
import { createClient as createWsClient, type Client as WsClient } from "graphql-ws";

import { AdxGraphQLError, AdxTransportError, isAdxError, isRetryable, toErrorItems } from "./errors.js";
import {
  OperationProgressDocument,
  type OperationProgressSubscription,
  type OperationProgressSubscriptionVariables,
} from "./generated/graphql.js";

/** A generated document (`GetOperationDocument`, ...): its text plus its result and variables types. */
export type TypedDocument<TData, TVariables> = DocumentTypeDecoration<TData, TVariables> & {
  toString(): string;
};

export type Token = string | null | undefined;

export interface AdxClientOptions {
  /** The router's GraphQL endpoint, e.g. `http://127.0.0.1:4000/graphql`. */
  url: string;
  /** The current access token (called for every request and every WebSocket connection). */
  getToken?: () => Token | Promise<Token>;
  /** WebSocket endpoint; default: `url` with ws(s)://. */
  wsUrl?: string;
  /** How subscriptions travel: graphql-ws ("ws", default) or graphql-sse ("sse"). */
  subscriptions?: "ws" | "sse";
  /** A WebSocket class where there is no global one (Node.js < 22: `import WebSocket from "ws"`). */
  webSocketImpl?: unknown;
  /** fetch to use; default: the global fetch. */
  fetch?: typeof fetch;
  /** Headers added to every HTTP request (e.g. `x-correlation-id`). */
  headers?: Record<string, string>;
  /** Reconnect attempts of the subscription transport before a subscription fails (default 5). */
  retryAttempts?: number;
  /** First reconnect delay in ms, doubled per attempt up to 5 s (default 250). */
  retryDelayMs?: number;
  /**
   * Send each generated document by its id (the sha256 of its text, as in
   * `trusted-documents.json`) instead of its text: a router in production runs only these
   * trusted documents. `request()` with a plain-text document cannot be sent then.
   */
  persistedDocuments?: boolean;
}

export interface RequestOptions {
  signal?: AbortSignal;
}

/** Variables are optional exactly when the document has no required variable. */
export type RequestArgs<TVariables> = {} extends TVariables
  ? [variables?: TVariables, options?: RequestOptions]
  : [variables: TVariables, options?: RequestOptions];

/** One event of `operationProgress`. */
export type OperationUpdate = OperationProgressSubscription["operationProgress"];

export interface WatchOptions {
  /** Resume after this offset (the last one already seen); default 0: from the start. */
  fromOffset?: number;
  /** Reconnects in a row without a new event before giving up (default 10). */
  maxReconnects?: number;
  signal?: AbortSignal;
  /** Called before each reconnect, with the offset the stream resumes from. */
  onReconnect?: (info: { attempt: number; fromOffset: number; error: unknown }) => void;
}

export interface StartAndWatchOptions<TData> extends Omit<WatchOptions, "fromOffset"> {
  /** Where the started operation is in the mutation's result; default: the first root field. */
  select?: (data: TData) => { id: string };
}

/** A started operation: `started` is the mutation's result; iterate for its progress to the end. */
export interface OperationRun<TData> extends AsyncIterable<OperationUpdate> {
  readonly started: Promise<TData>;
}

interface Payload {
  // Empty for a persisted document (graphql-ws requires the field; an empty one is no text).
  query: string;
  variables: Record<string, unknown>;
  operationName?: string;
  extensions?: { persistedQuery: { version: 1; sha256Hash: string } };
}

const documentIds = new Map<string, Promise<string>>();

/** The document's id in the trusted documents: the sha256 of its text, in hex. */
export function documentId(query: string): Promise<string> {
  let id = documentIds.get(query);
  if (id === undefined) {
    id = globalThis.crypto.subtle
      .digest("SHA-256", new TextEncoder().encode(query))
      .then((hash) => Array.from(new Uint8Array(hash), (byte) => byte.toString(16).padStart(2, "0")).join(""));
    documentIds.set(query, id);
  }
  return id;
}

const MAX_RETRY_DELAY_MS = 5_000;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function operationNameOf(query: string): string | undefined {
  return /\b(?:query|mutation|subscription)\s+([_A-Za-z][_0-9A-Za-z]*)/.exec(query)?.[1];
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** Anything a transport threw, as an AdxGraphQLError or AdxTransportError. */
function toAdxError(error: unknown): Error {
  if (isAdxError(error)) return error;
  if (Array.isArray(error)) return new AdxGraphQLError(toErrorItems(error));
  if (isRecord(error) && typeof error["code"] === "number" && "reason" in error) {
    const reason = typeof error["reason"] === "string" && error["reason"] ? `: ${error["reason"]}` : "";
    return new AdxTransportError(`WebSocket closed (${error["code"]}${reason})`, {
      closeCode: error["code"],
    });
  }
  if (error instanceof Error && error.name === "AbortError") return error;
  const status =
    isRecord(error) && isRecord(error["response"]) && typeof error["response"]["status"] === "number"
      ? error["response"]["status"]
      : undefined;
  const message = error instanceof Error ? error.message : String(error);
  return new AdxTransportError(message, status === undefined ? { cause: error } : { status, cause: error });
}

export class AdxClient {
  readonly url: string;
  readonly wsUrl: string;
  readonly #options: AdxClientOptions;
  #ws: WsClient | undefined;
  #sse: SseClient | undefined;

  constructor(options: AdxClientOptions) {
    this.#options = options;
    this.url = options.url;
    this.wsUrl = options.wsUrl ?? options.url.replace(/^http/, "ws");
  }

  /** Runs a query (or any document) over HTTP; resolves with `data`, rejects with an AdxError. */
  query<TData, TVariables>(
    document: TypedDocument<TData, TVariables>,
    ...[variables, options]: RequestArgs<TVariables>
  ): Promise<TData> {
    return this.#post<TData>(document.toString(), variables, options);
  }

  /** Runs a mutation over HTTP (the same as `query`, named for the reader). */
  mutate<TData, TVariables>(
    document: TypedDocument<TData, TVariables>,
    ...[variables, options]: RequestArgs<TVariables>
  ): Promise<TData> {
    return this.#post<TData>(document.toString(), variables, options);
  }

  /** A document as plain text (operations the SDK has no typed document for yet). */
  request<TData = Record<string, unknown>>(
    query: string,
    variables?: Record<string, unknown>,
    options?: RequestOptions,
  ): Promise<TData> {
    return this.#post<TData>(query, variables, options);
  }

  /** A subscription's events (`data` of each); throws an AdxError when the stream fails. */
  subscribe<TData, TVariables>(
    document: TypedDocument<TData, TVariables>,
    ...[variables, options]: RequestArgs<TVariables>
  ): AsyncGenerator<TData, void, undefined> {
    return this.#iterate<TData>(document.toString(), variables, options?.signal);
  }

  /**
   * The progress of an operation until its terminal event. After a dropped connection (or a
   * stream the server ended early) it resubscribes from the last offset it delivered, so every
   * event arrives once and in order.
   */
  async *watchOperation(id: string, options: WatchOptions = {}): AsyncGenerator<OperationUpdate, void, undefined> {
    const { maxReconnects = 10, signal, onReconnect } = options;
    let last = options.fromOffset ?? 0;
    let attempt = 0;
    while (!signal?.aborted) {
      // The transport resends this very object when it reconnects on its own, so keeping
      // fromOffset current there resumes without a replay; offsets are still checked below.
      const variables: OperationProgressSubscriptionVariables = { id, fromOffset: last };
      let failure: unknown;
      try {
        for await (const data of this.#iterate<OperationProgressSubscription>(
          OperationProgressDocument.toString(),
          variables,
          signal,
        )) {
          const update = data.operationProgress;
          if (update.offset <= last) continue; // delivered before the reconnect
          last = update.offset;
          variables.fromOffset = last;
          attempt = 0;
          yield update;
          if (update.terminal) return;
        }
        if (signal?.aborted) return;
        failure = new AdxTransportError("the progress stream ended before the operation did");
      } catch (error) {
        if (signal?.aborted) return;
        if (!isRetryable(error)) throw error;
        failure = error;
      }
      attempt += 1;
      if (attempt > maxReconnects) throw failure;
      onReconnect?.({ attempt, fromOffset: last, error: failure });
      await sleep(this.#retryDelay(attempt), signal);
    }
  }

  /**
   * Runs a mutation that starts an operation (its result holds an `Operation`), then follows
   * the operation's progress to its terminal event.
   */
  startAndWatch<TData, TVariables>(
    mutation: TypedDocument<TData, TVariables>,
    variables: TVariables,
    options: StartAndWatchOptions<TData> = {},
  ): OperationRun<TData> {
    const started = this.#post<TData>(mutation.toString(), variables as Record<string, unknown>);
    started.catch(() => undefined); // rejections reach whoever awaits `started` or iterates
    const select = options.select ?? firstOperation;
    const watch = (id: string): AsyncGenerator<OperationUpdate, void, undefined> =>
      this.watchOperation(id, options);
    return {
      started,
      async *[Symbol.asyncIterator]() {
        const { id } = select(await started);
        yield* watch(id);
      },
    };
  }

  /** Closes the subscription transports (queries need no cleanup). */
  async dispose(): Promise<void> {
    const ws = this.#ws;
    const sse = this.#sse;
    this.#ws = undefined;
    this.#sse = undefined;
    await ws?.dispose();
    sse?.dispose();
  }

  // Internals ------------------------------------------------------------------------------

  async #authorization(): Promise<Record<string, string>> {
    const token = await this.#options.getToken?.();
    return token ? { Authorization: `Bearer ${token}` } : {};
  }

  async #payload(query: string, variables: unknown): Promise<Payload> {
    // The variables object itself, not a copy: watchOperation updates it for reconnects.
    const payload: Payload = { query, variables: (variables ?? {}) as Record<string, unknown> };
    const name = operationNameOf(query);
    if (name) payload.operationName = name;
    if (this.#options.persistedDocuments) {
      payload.query = "";
      payload.extensions = { persistedQuery: { version: 1, sha256Hash: await documentId(query) } };
    }
    return payload;
  }

  #retryDelay(attempt: number): number {
    const base = this.#options.retryDelayMs ?? 250;
    return Math.min(base * 2 ** (attempt - 1), MAX_RETRY_DELAY_MS);
  }

  async #post<TData>(query: string, variables: unknown, options?: RequestOptions): Promise<TData> {
    const doFetch = this.#options.fetch ?? globalThis.fetch;
    const init: RequestInit = {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/graphql-response+json, application/json",
        ...this.#options.headers,
        ...(await this.#authorization()),
      },
      body: JSON.stringify(await this.#payload(query, variables)),
    };
    if (options?.signal) init.signal = options.signal;
    let response: Response;
    try {
      response = await doFetch(this.url, init);
    } catch (error) {
      if (error instanceof Error && error.name === "AbortError") throw error;
      throw new AdxTransportError(`request to ${this.url} failed`, { cause: error });
    }
    const text = await response.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw new AdxTransportError(`HTTP ${response.status}: not a GraphQL answer`, { status: response.status });
    }
    if (!isRecord(body) || !("data" in body || "errors" in body)) {
      throw new AdxTransportError(`HTTP ${response.status}: not a GraphQL answer`, { status: response.status });
    }
    if (Array.isArray(body["errors"]) && body["errors"].length > 0) {
      throw new AdxGraphQLError(toErrorItems(body["errors"]), { data: body["data"], status: response.status });
    }
    if (!response.ok) {
      throw new AdxTransportError(`HTTP ${response.status}`, { status: response.status });
    }
    return body["data"] as TData;
  }

  async *#iterate<TData>(
    query: string,
    variables: unknown,
    signal?: AbortSignal,
  ): AsyncGenerator<TData, void, undefined> {
    if (signal?.aborted) return;
    const payload = await this.#payload(query, variables);
    const source =
      this.#options.subscriptions === "sse"
        ? this.#sseClient().iterate<TData>(payload)
        : this.#wsClient().iterate<TData>(payload);
    const stop = (): void => void source.return?.();
    signal?.addEventListener("abort", stop, { once: true });
    try {
      for await (const result of source) {
        if (result.errors && result.errors.length > 0) {
          throw new AdxGraphQLError(toErrorItems(result.errors), { data: result.data });
        }
        yield result.data as TData;
      }
    } catch (error) {
      throw toAdxError(error);
    } finally {
      signal?.removeEventListener("abort", stop);
      await source.return?.();
    }
  }

  #wsClient(): WsClient {
    this.#ws ??= createWsClient({
      url: this.wsUrl,
      webSocketImpl: this.#options.webSocketImpl,
      lazy: true,
      // Read at every (re)connection, so a refreshed token is used.
      connectionParams: () => this.#authorization(),
      // The BFFs never ping; keep idle connections (and proxies on the way) alive.
      keepAlive: 10_000,
      retryAttempts: this.#options.retryAttempts ?? 5,
      shouldRetry: () => true,
      retryWait: (retries) => sleep(this.#retryDelay(retries + 1)),
    });
    return this.#ws;
  }

  #sseClient(): SseClient {
    this.#sse ??= createSseClient({
      url: this.url,
      headers: async () => ({ ...this.#options.headers, ...(await this.#authorization()) }),
      ...(this.#options.fetch ? { fetchFn: this.#options.fetch } : {}),
      retryAttempts: this.#options.retryAttempts ?? 5,
      retry: (retries) => sleep(this.#retryDelay(retries + 1)),
    });
    return this.#sse;
  }
}

function firstOperation(data: unknown): { id: string } {
  const first = isRecord(data) ? Object.values(data)[0] : undefined;
  if (isRecord(first) && typeof first["id"] === "string") return { id: first["id"] };
  throw new TypeError("startAndWatch: the mutation's result has no operation id; pass options.select");
}

/** A client of the ADX supergraph router. */
export function createAdxClient(options: AdxClientOptions): AdxClient {
  return new AdxClient(options);
}
