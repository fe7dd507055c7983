// What a command gets besides its own options, in the manner of gh's cmdutil.Factory: the
// output, the client, the job store and the in-process sandbox, each made on first use and
// never before, so `--help`, `validate` or `jobs` open no socket, ask for no token and start
// no sandbox. Every command gets its client from here (batch included, with its rate limiter's
// hooks), and its store: nothing else in the CLI opens one.

import { RunComfyClient } from "../api/client.js";
import type { Env } from "../api/token.js";
import type { FetchLike, TransportHooks } from "../api/transport.js";
import type { Dreamina } from "../node/dreamina.js";
import type { Sandbox } from "../sandbox/index.js";
import type { JobStore } from "../store/job-store.js";
import { type GlobalOptions, Io } from "./io.js";
import { resolveStoreSpec, type StoreSpec } from "./store-spec.js";

/** The job store as the CLI holds it: SQLite or PostgreSQL, behind one contract. */
export type CliStore = JobStore;

/** What `openJobStore` takes for a spec: the SQLite path or the PostgreSQL URL. */
export function storeTarget(spec: StoreSpec): string {
  return spec.kind === "sqlite" ? spec.path : spec.url;
}

/** The CLI's HTTP calls: nodeFetch, loaded on the first call (--help and --version need none). */
let nodeFetchModule: Promise<typeof import("../http/node-fetch.js")> | undefined;
export const lazyNodeFetch: FetchLike = async (url, init) => {
  nodeFetchModule ??= import("../http/node-fetch.js");
  return (await nodeFetchModule).nodeFetch(url, init);
};

/** How much faster than the real service the --sandbox runs (a job takes seconds, not a minute). */
export const SANDBOX_TIME_SCALE = 20;

const DEFAULT_BASE_URL = "https://model-api.runcomfy.net";

export interface ClientOptions {
  /** Transport hooks (batch's shared rate limiter); only the first client() call may set them. */
  hooks?: TransportHooks;
}

export class Factory {
  readonly io: Io;
  readonly options: GlobalOptions;
  readonly #env: Env;
  #storeSpec: StoreSpec | undefined;
  #sandbox: Promise<Sandbox> | undefined;
  #client: Promise<RunComfyClient> | undefined;
  #token: Promise<string> | undefined;
  #store: Promise<CliStore> | undefined;
  #dreamina: Promise<Dreamina> | undefined;

  constructor(options: GlobalOptions, io: Io = new Io(options), env: Env = process.env) {
    this.options = options;
    this.io = io;
    this.#env = env;
  }

  /** Set with --sandbox: the polling schedule is scaled to match. */
  get timeScale(): number | undefined {
    return this.options.sandbox ? SANDBOX_TIME_SCALE : undefined;
  }

  /** Which store this command line means (flags, then environment); throws a usage error if unusable. */
  get storeSpec(): StoreSpec {
    this.#storeSpec ??= resolveStoreSpec(this.options, this.#env);
    return this.#storeSpec;
  }

  /**
   * Throws (a usage error) when the store this command line means cannot be used: conflicting
   * flags, an unknown scheme. Commands that only annotate the store call it before anything is
   * sent, so such a mistake is never swallowed.
   */
  checkStore(): StoreSpec {
    return this.storeSpec;
  }

  /** The in-process sandbox of --sandbox, started on first use. */
  sandbox(): Promise<Sandbox> {
    if (!this.options.sandbox) throw new Error("no --sandbox on this command line");
    this.#sandbox ??= (async () => {
      const { startSandbox } = await import("../sandbox/index.js");
      const sandbox = await startSandbox({ quiet: true, timeScale: SANDBOX_TIME_SCALE });
      this.io.debug(`sandbox listening at ${sandbox.url} (time scale x${SANDBOX_TIME_SCALE})`);
      return sandbox;
    })();
    return this.#sandbox;
  }

  /** The API client every command uses; with --sandbox, pointed at the in-process sandbox. */
  client(options: ClientOptions = {}): Promise<RunComfyClient> {
    if (this.#client) {
      // Hooks belong to the one client; a second set would silently not apply.
      if (options.hooks) throw new Error("the client was already made without these hooks");
      return this.#client;
    }
    this.#client = (async () => {
      const baseUrl = this.options.sandbox
        ? (await this.sandbox()).url
        : (this.options.baseUrl ?? this.#env.RUNCOMFY_MODEL_API_BASE ?? DEFAULT_BASE_URL);
      return new RunComfyClient({
        baseUrl,
        token: () => this.token(),
        fetch: lazyNodeFetch,
        ...(options.hooks ? { hooks: options.hooks } : {}),
      });
    })();
    return this.#client;
  }

  /**
   * The API token, looked up once (on the first API call, unless a command asks sooner to say a
   * missing token at start): commands that never call the API never ask for one.
   */
  token(): Promise<string> {
    if (this.options.sandbox) return Promise.resolve("sandbox-token");
    this.#token ??= import("../config/token-file.js").then(({ resolveToken }) =>
      resolveToken(this.options.token).then((t) => t.token),
    );
    return this.#token;
  }

  /** The job store, opened (and created if need be) on first use. */
  store(): Promise<CliStore> {
    if (!this.#store) {
      const spec = this.checkStore();
      this.#store = import("../store/open.js").then(({ openJobStore }) => openJobStore(storeTarget(spec)));
    }
    return this.#store;
  }

  /**
   * The job store when there is one already, else undefined: a command that only reads or
   * annotates the store does not create one (a SQLite file never written, with no recovery
   * folder of submits it could not record, is no store yet).
   */
  async existingStore(): Promise<CliStore | undefined> {
    if (!this.#store) {
      const spec = this.checkStore();
      const [{ existsSync }, { recoveryDirFor }] = await Promise.all([
        import("node:fs"),
        import("../store/recovery.js"),
      ]);
      // A shared (PostgreSQL) store always exists: it is created on first use by any worker.
      if (spec.kind === "sqlite" && !existsSync(spec.path) && !existsSync(recoveryDirFor(spec.path)))
        return undefined;
    }
    return this.store();
  }

  /**
   * The SDK object for run, submit and wait, on this factory's client. It gets the store's
   * location rather than an open store: it opens it at its first write, after the input is
   * checked, so a bad image is reported before the store is touched.
   */
  dreamina(): Promise<Dreamina> {
    this.#dreamina ??= (async () => {
      const spec = this.checkStore();
      const [{ Dreamina }, client] = await Promise.all([import("../node/dreamina.js"), this.client()]);
      return new Dreamina({ client, store: storeTarget(spec) });
    })();
    return this.#dreamina;
  }

  /** Closes whatever was opened, in the reverse order of need: SDK, store, sandbox. */
  async close(): Promise<void> {
    const dreamina = this.#dreamina;
    const store = this.#store;
    const sandbox = this.#sandbox;
    this.#dreamina = this.#store = this.#sandbox = undefined;
    // Each was opened (or failed to) before the command ended; a failed one has nothing to close.
    if (dreamina) await dreamina.then((d) => d.close(), noop);
    if (store) await store.then((s) => s.close(), noop);
    if (sandbox) await sandbox.then((s) => s.close(), noop);
  }
}

function noop(): void {}
