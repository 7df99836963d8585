// @adx/sdk: the typed documents and types generated from schema/public.graphql, and the client.
export * from "./generated/graphql.js";
export {
  AdxClient,
  createAdxClient,
  documentId,
  type AdxClientOptions,
  type OperationRun,
  type OperationUpdate,
  type RequestArgs,
  type RequestOptions,
  type StartAndWatchOptions,
  type Token,
  type TypedDocument,
  type WatchOptions,
} from "./client.js";
export {
  AdxGraphQLError,
  AdxTransportError,
  isAdxError,
  isRetryable,
  type AdxError,
  type AdxErrorCode,
  type GraphQLErrorCode,
  type GraphQLErrorItem,
} from "./errors.js";
