// One error hierarchy for everything the service (or the way to it) can do wrong.
// Callers branch with `instanceof`; every error also carries enough context
// (status, errorCode, requestId) to be logged without the original response.

import { DreaminaError } from "./dreamina-error.js";
import { redactSecrets } from "./redact.js";

export interface RunComfyErrorOptions {
  status?: number | undefined;
  errorCode?: number | undefined;
  requestId?: string | undefined;
  retryable?: boolean | undefined;
  body?: unknown;
  cause?: unknown;
  /** The response's Retry-After, in milliseconds. */
  retryAfterMs?: number | undefined;
  /** Overrides the class's default code. */
  code?: string | undefined;
}

/** What the service (or the way to it) did wrong. Each subclass has its own `code`. */
export class RunComfyError extends DreaminaError {
  static override readonly code: string = "service_error";
  /** HTTP status of the response that caused this error, when there was one. */
  readonly status: number | undefined;
  /** The service's numeric `error_code` (400004, 404001, ...), when it sent one. */
  readonly errorCode: number | undefined;
  readonly requestId: string | undefined;
  /** The response body, parsed when it was JSON, with any secret redacted. */
  readonly body: unknown;
  /** How long the service asked us to wait (Retry-After on a 429 or 5xx), when it said. */
  readonly retryAfterMs: number | undefined;

  constructor(message: string, options: RunComfyErrorOptions = {}) {
    // A retry of the same call could succeed only where a subclass says so (never for an ambiguous submit).
    super(redactSecrets(message), { code: options.code, retryable: options.retryable, cause: options.cause });
    this.status = options.status;
    this.errorCode = options.errorCode;
    this.requestId = options.requestId;
    this.body = redactSecrets(options.body);
    this.retryAfterMs = options.retryAfterMs;
  }

  override toJSON(): Record<string, unknown> {
    return {
      ...super.toJSON(),
      status: this.status,
      errorCode: this.errorCode,
      requestId: this.requestId,
      body: this.body,
      retryAfterMs: this.retryAfterMs,
    };
  }
}

/** 401, or error_code 400004: missing, expired or revoked token, inactive account. */
export class AuthenticationError extends RunComfyError {
  static override readonly code: string = "authentication";
}
/** 403, or error_code 403001: the request belongs to another account. */
export class PermissionDeniedError extends RunComfyError {
  static override readonly code: string = "permission_denied";
}
/** 404, or error_code 404001: unknown, deleted or expired request (or unknown path). */
export class NotFoundError extends RunComfyError {
  static override readonly code: string = "not_found";
}
/** 402, or error_code 400002. */
export class InsufficientBalanceError extends RunComfyError {
  static override readonly code: string = "insufficient_balance";
}

export interface FieldProblem {
  /** Dotted path of the field, e.g. `image_urls.0`, when the service named one. */
  field: string | undefined;
  message: string;
  raw: unknown;
}

/** 400/422 (and 400001, an unknown model id): the input was refused as it is. */
export class InvalidInputError extends RunComfyError {
  static override readonly code: string = "invalid_input";
  readonly detail: FieldProblem[];
  constructor(message: string, options: RunComfyErrorOptions & { detail?: FieldProblem[] } = {}) {
    super(message, options);
    this.detail = redactSecrets(options.detail ?? []);
  }
  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), detail: this.detail };
  }
}

/** 429. `retryAfterMs` is the service's Retry-After when it sent one. */
export class RateLimitError extends RunComfyError {
  static override readonly code: string = "rate_limited";
  constructor(message: string, options: RunComfyErrorOptions = {}) {
    super(message, { retryable: true, ...options });
  }
}

/** 5xx (including gateways' HTML error pages). */
export class ServerError extends RunComfyError {
  static override readonly code: string = "server_error";
}

/** Any other HTTP status the service answered with, or a body that could not be understood. */
export class UnexpectedResponseError extends RunComfyError {
  static override readonly code: string = "unexpected_response";
}

/** The connection failed (refused, reset, DNS). `beforeSend` is true only when nothing reached the service. */
export class ConnectionError extends RunComfyError {
  static override readonly code: string = "connection_failed";
  readonly beforeSend: boolean;
  constructor(message: string, options: RunComfyErrorOptions & { beforeSend?: boolean } = {}) {
    super(message, { retryable: true, ...options });
    this.beforeSend = options.beforeSend ?? false;
  }
}

/** A request (or a wait) took longer than allowed. */
export class TimeoutError extends RunComfyError {
  static override readonly code: string = "timeout";
}

/** The caller aborted (AbortSignal). Carries the request id when a job exists. */
export class AbortError extends RunComfyError {
  static override readonly code: string = "aborted";
}

/**
 * A submit whose outcome cannot be known: the service may have accepted (and billed) it.
 * It is never retried automatically; the input and the time let a person decide.
 */
export class SubmissionUnknownError extends RunComfyError {
  static override readonly code: string = "submission_unknown";
  readonly modelId: string;
  readonly input: unknown;
  readonly at: Date;
  constructor(
    message: string,
    options: RunComfyErrorOptions & { modelId: string; input: unknown; at?: Date },
  ) {
    super(message, { ...options, retryable: false });
    this.modelId = options.modelId;
    this.input = options.input;
    this.at = options.at ?? new Date();
  }
  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), modelId: this.modelId, at: this.at.toISOString() };
  }
}

/** The job ran and the service reports it failed. `jobError` is the service's error, verbatim. */
export class JobFailedError extends RunComfyError {
  static override readonly code: string = "job_failed";
  readonly jobError: unknown;
  constructor(message: string, options: RunComfyErrorOptions & { jobError: unknown }) {
    super(message, options);
    this.jobError = options.jobError;
  }
  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), jobError: this.jobError };
  }
}

/** The job was cancelled (by this client or anyone else). */
export class JobCancelledError extends RunComfyError {
  static override readonly code: string = "job_cancelled";
}

/** The service reported a status this client does not know, and the result did not settle it. */
export class UnknownStatusError extends RunComfyError {
  static override readonly code: string = "unknown_status";
  readonly rawStatus: string;
  constructor(message: string, options: RunComfyErrorOptions & { rawStatus: string }) {
    super(message, options);
    this.rawStatus = options.rawStatus;
  }
}

/**
 * No token was found; `lookedIn` lists every place that was tried, in order. `hint` names
 * places this caller could not try itself (the core cannot read token.json).
 */
export class MissingTokenError extends RunComfyError {
  static override readonly code: string = "missing_token";
  readonly lookedIn: string[];
  constructor(lookedIn: string[], hint?: string) {
    super(`No RunComfy API token found. Looked in: ${lookedIn.join("; ")}.${hint ? ` ${hint}` : ""}`);
    this.lookedIn = lookedIn;
  }
}
