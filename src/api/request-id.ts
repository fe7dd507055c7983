// What a request id may look like: `request_id`s are opaque, this is what known clients accept,
// and it keeps the ids safe to put in a URL path. One definition for the client and the CLI.

/** The rule, as people read it. */
export const REQUEST_ID_RULE = "[A-Za-z0-9_-]{1,128}";

export const REQUEST_ID_PATTERN = new RegExp(`^${REQUEST_ID_RULE}$`);

export function isRequestId(value: unknown): value is string {
  return typeof value === "string" && REQUEST_ID_PATTERN.test(value);
}
