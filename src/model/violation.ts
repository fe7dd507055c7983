// The shape every rule reports in: one problem (or warning) with where it is, which rule, and why.
// Its own module so the input rules, the image rules and their callers share it without each other.

export interface Violation {
  /** Where: `prompt`, `image_urls`, `image_urls[0]`, `seed`, `frames`, `input`, or an unknown key. */
  path: string;
  /** Which rule: a JSON-schema keyword (`required`, `type`, `maxLength`, `enum`...) or the schema's `validation_rule`. */
  rule: string;
  limit?: unknown;
  actual?: unknown;
  message: string;
}

export interface ValidationReport {
  valid: boolean;
  violations: Violation[];
  warnings: Violation[];
}
