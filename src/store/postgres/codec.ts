// What goes into a stored row is decided once for every backend (../redact.ts); the time formatting is
// the one every backend's records use (../job-row.ts).

export { iso, optIso } from "../job-row.js";
export { parseStoredJson, redactText, storedInput, storeError, storeJson } from "../redact.js";
export { toMillis } from "../transitions.js";
