// dreamina-i2v: the runtime-neutral SDK (fetch only: Node, Deno, Bun, browsers).
// Node-only parts (local files, auto-fit, the journal, downloads, the Dreamina object) live
// in "dreamina-i2v/node"; the local sandbox in "dreamina-i2v/sandbox"; batches in "dreamina-i2v/batch".
export * from "./api/index.js";
export * from "./model/index.js";
export * from "./run/index.js";
