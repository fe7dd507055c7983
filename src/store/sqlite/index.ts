// The SQLite backend's face: the store and how to open it. Its SQL stays in this folder.

export { SqliteJobStore, type SqliteJobStoreOptions } from "./store.js";
