// The model's rules, runtime-neutral: shared by the SDK, the CLI and the sandbox.
export * from "./image-facts.js";
export * from "./image-header.js";
export * from "./image-rules.js";
export * from "./input.js";
export * from "./schema.js";
export * from "./validate.js";
export * from "./violation.js";
