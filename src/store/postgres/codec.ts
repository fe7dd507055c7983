// What goes into a stored row is decided once for every backend (../redact.ts); this adds only
// the PostgreSQL side's time formatting.

export { parseStoredJson, redactText, storedInput, storeError, storeJson } from "../redact.js";
export { toMillis } from "../transitions.js";

export function iso(ms: number): string {
  return new Date(ms).toISOString();
}

export function optIso(ms: number | null): string | undefined {
  return ms === null ? undefined : iso(ms);
}
