// Node-only SDK: everything runtime-neutral, plus local images, auto-fit, the job journal,
// resumable downloads, and the `Dreamina` object that ties them together.

export { defaultJournalPath, dreaminaHome } from "../config/paths.js";
export { type ResolvedToken, resolveToken, tokenFileCandidates } from "../config/token-file.js";
export * from "../download/download.js";
export { nodeFetch } from "../http/node-fetch.js";
export { type CheckedImage, type CheckImageOptions, checkImage } from "../image/check.js";
export { checkDecodes, type DecodeCheck, decodeViolation, MAX_DECODE_PIXELS } from "../image/decode-check.js";
export * from "../image/fit.js";
export * from "../image/prepare-input.js";
export * from "../image/probe.js";
export * from "../index.js";
export * from "../store/journal.js";
export {
  Dreamina,
  type DreaminaOptions,
  type RunVideoOptions,
  type VideoRequest,
  type VideoResult,
  type WaitVideoOptions,
} from "./dreamina.js";
