// dreamina-i2v: the runtime-neutral SDK (fetch only). Node-only parts live in
// "dreamina-i2v/node"; the local sandbox in "dreamina-i2v/sandbox".
export * from "./api/index.js";
