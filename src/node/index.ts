// Node-only SDK: everything runtime-neutral, plus local images, auto-fit, the job journal,
// resumable downloads, and the `Dreamina` object that ties them together.
export * from "../index.js";
export * from "./download.js";
export {
  Dreamina,
  type DreaminaOptions,
  type RunVideoOptions,
  type VideoRequest,
  type VideoResult,
  type WaitVideoOptions,
} from "./dreamina.js";
export * from "./fit.js";
export { checkDecodes, type DecodeCheck, decodeViolation, MAX_DECODE_PIXELS } from "./image-check.js";
export * from "./image-input.js";
export * from "./journal.js";
export { nodeFetch } from "./node-fetch.js";
export { defaultJournalPath, dreaminaHome } from "./paths.js";
export * from "./probe.js";
export { type ResolvedToken, resolveToken, tokenFileCandidates } from "./token-file.js";
