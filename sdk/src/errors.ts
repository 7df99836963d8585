// Errors the client surfaces: typed objects carrying the GraphQL `extensions.code`.

/** The codes the ADX subgraphs put in `extensions.code` (graph/errors.py). */
export type AdxErrorCode =
  | "UNAUTHENTICATED"
  | "FORBIDDEN"
  | "NOT_FOUND"
  | "BAD_USER_INPUT"
  | "CONFLICT"
  | "UNAVAILABLE"
  | "INTERNAL";

/**
 * Codes the router itself may answer with (validation of the document, an unreachable
 * subgraph, a schema reload), and any other string a future subgraph may send.
 */
export type GraphQLErrorCode =
  | AdxErrorCode
  | "GRAPHQL_PARSE_FAILED"
  | "GRAPHQL_VALIDATION_FAILED"
  | "BAD_REQUEST"
  | "INTERNAL_SERVER_ERROR"
  | "SCHEMA_RELOAD"
  | (string & {});

/** One GraphQL error as the server sent it. */
export interface GraphQLErrorItem {
  message: string;
  /** `extensions.code`, or "INTERNAL_SERVER_ERROR" when the server sent none. */
  code: GraphQLErrorCode;
  path?: ReadonlyArray<string | number>;
  extensions: Record<string, unknown>;
}

/** The server answered with GraphQL errors. `code` is the first error's code. */
export class AdxGraphQLError extends Error {
  override readonly name = "AdxGraphQLError";
  readonly code: GraphQLErrorCode;
  readonly errors: ReadonlyArray<GraphQLErrorItem>;
  /** The partial data that came with the errors, if any. */
  readonly data: unknown;
  /** The HTTP status of the answer (queries and mutations; undefined for subscriptions). */
  readonly status: number | undefined;

  constructor(errors: ReadonlyArray<GraphQLErrorItem>, options: { data?: unknown; status?: number } = {}) {
    const first = errors[0];
    super(first ? first.message : "GraphQL error");
    this.errors = errors;
    this.code = first ? first.code : "INTERNAL_SERVER_ERROR";
    this.data = options.data ?? null;
    this.status = options.status;
  }

  /** True when some error of the answer has this code. */
  has(code: GraphQLErrorCode): boolean {
    return this.errors.some((error) => error.code === code);
  }

  /** The first error's extensions (e.g. `resumeFromOffset`, `operationId`, `fields`). */
  get extensions(): Record<string, unknown> {
    return this.errors[0]?.extensions ?? {};
  }
}

/** No GraphQL answer: the network failed, the socket closed, or the HTTP answer was not GraphQL. */
export class AdxTransportError extends Error {
  override readonly name = "AdxTransportError";
  readonly code = "NETWORK_ERROR" as const;
  /** HTTP status, when there was an HTTP answer. */
  readonly status: number | undefined;
  /** WebSocket close code, when the socket closed. */
  readonly closeCode: number | undefined;

  constructor(message: string, options: { status?: number; closeCode?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.status = options.status;
    this.closeCode = options.closeCode;
  }
}

export type AdxError = AdxGraphQLError | AdxTransportError;

export function isAdxError(value: unknown): value is AdxError {
  return value instanceof AdxGraphQLError || value instanceof AdxTransportError;
}

interface RawGraphQLError {
  message?: unknown;
  path?: unknown;
  extensions?: unknown;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The `errors` array of a GraphQL answer as typed items. */
export function toErrorItems(raw: unknown): GraphQLErrorItem[] {
  const list: unknown[] = Array.isArray(raw) ? raw : [raw];
  return list.map((entry) => {
    const error: RawGraphQLError = isRecord(entry) ? entry : { message: String(entry) };
    const extensions = isRecord(error.extensions) ? error.extensions : {};
    const code = typeof extensions["code"] === "string" ? extensions["code"] : "INTERNAL_SERVER_ERROR";
    const item: GraphQLErrorItem = {
      message: typeof error.message === "string" ? error.message : "GraphQL error",
      code,
      extensions,
    };
    if (Array.isArray(error.path)) {
      item.path = error.path.filter(
        (part): part is string | number => typeof part === "string" || typeof part === "number",
      );
    }
    return item;
  });
}

/** Transport-level failures worth retrying a subscription for (not the caller's mistakes). */
const RETRYABLE_CODES: ReadonlySet<string> = new Set([
  "UNAVAILABLE",
  "SCHEMA_RELOAD",
  // The router masks an unreachable subgraph as an unexpected error.
  "INTERNAL_SERVER_ERROR",
]);

export function isRetryable(error: unknown): boolean {
  if (error instanceof AdxTransportError) return true;
  if (error instanceof AdxGraphQLError) return error.errors.every((e) => RETRYABLE_CODES.has(e.code));
  return false;
}
