// The one base of every error this library throws. Callers branch on `code` (stable, snake_case,
// unique across the library but for the image probe's `not_found`/`timeout`/`aborted`, older than
// the family and kept) or with `instanceof`; the CLI maps codes to exit codes in one table.
// Each family sets its codes with a static `code` on the class (a subclass overrides it), so a
// new error class needs no constructor just to have one.

export interface DreaminaErrorOptions {
  /** Overrides the class's default code. */
  code?: string | undefined;
  /** Whether repeating the same operation could succeed. Default false. */
  retryable?: boolean | undefined;
  cause?: unknown;
}

export class DreaminaError extends Error {
  /** The code an instance of this class carries unless its constructor was given another. */
  static readonly code: string = "error";

  /** Stable and machine-readable: what went wrong, e.g. `authentication`, `image_not_found`. */
  readonly code: string;
  /** Whether repeating the same operation could succeed. */
  readonly retryable: boolean;

  constructor(message: string, options: DreaminaErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = options.code ?? (new.target as typeof DreaminaError).code;
    this.retryable = options.retryable ?? false;
  }

  toJSON(): Record<string, unknown> {
    return { name: this.name, code: this.code, message: this.message, retryable: this.retryable };
  }
}
