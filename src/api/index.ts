export * from "./client.js";
export { DreaminaError, type DreaminaErrorOptions } from "./dreamina-error.js";
export * from "./errors.js";
export { collectOutputUrls, isTerminalStatus, normalizeStatus } from "./parse.js";
export { redactSecrets, registerSecret } from "./redact.js";
export { backoffDelay, DEFAULT_RETRY_POLICY, parseRetryAfter, type RetryPolicy } from "./retry.js";
export { sleep } from "./sleep.js";
export { type Env, runtimeEnv, TOKEN_ENV_VARS, tokenFromEnv } from "./token.js";
export {
  apiRoot,
  type CallOptions,
  DEFAULT_BASE_URL,
  type FetchInit,
  type FetchLike,
  type HeadersLike,
  type ResponseLike,
  type TokenSource,
  type TransportHooks,
} from "./transport.js";
export * from "./types.js";
export { VERSION } from "./version.js";
