// Fault injection for the sandbox: which requests go wrong, and how; and modes, which pick
// one of the answer shapes the contract allows (every answer of that kind takes it).
//
// Grammar (the string form, e.g. $DREAMINA_SANDBOX_FAULTS or `dreamina sandbox --faults`):
//
//   spec    := item ("," item)*           whitespace around items is ignored; "" = no faults
//   item    := "seed=" INT                the fault seed (default 0; the sandbox's seed if given)
//            | mode "=" value             a mode (table below); the last one given wins
//            | target ":" kind ["@" NUM] "=" share ["#" INT]
//   target  := submit | status | result | cancel | models | cdn | job
//            | api                        shorthand: the rule applies to all five API endpoints
//   share   := NUM in [0, 1] | NUM "%"    share of that endpoint's requests (or jobs) hit
//   "#" INT := at most that many hits for this rule, then it is spent (e.g. status:500=1#2
//              fails the first two status calls and no more)
//
//   kind (and its "@" parameter)          valid for
//   429[@S]       429 + Retry-After: S seconds (default 1)        API endpoints, cdn
//   429-date[@S]  429 + Retry-After as an HTTP date S s ahead     API endpoints, cdn
//   429-bare      429 without Retry-After                         API endpoints, cdn
//   500           500 with a JSON error body                      API endpoints, cdn
//   502           502 with a gateway's HTML page                  API endpoints, cdn
//   503[@S]       503 with an HTML page (+ Retry-After S if given) API endpoints, cdn
//   reset         the connection is destroyed, no response        API endpoints, cdn
//   stall[@S]     the real answer, S seconds late (default 5;     API endpoints, cdn
//                 wall-clock, not scaled by timeScale)
//   malformed     HTTP 200, JSON content type, body cut in half   API endpoints
//   error200[@C]  HTTP 200 whose JSON carries error_code C        API endpoints
//                 (default 500001)
//   unknown       the real answer with status "PAUSED"            status, result
//   lost          the job is created, then the connection is      submit
//                 destroyed before any response byte
//   balance[@H]   insufficient balance: HTTP H (default 402, any  submit
//                 4xx) with error_code 400002; nothing is created
//   fail          the job runs its time, then fails: result       job
//                 "failed" + error, status "completed"
//   truncate[@F]  full Content-Length sent, the connection closed cdn
//                 after fraction F of the bytes (default 0.5)
//   slow[@B]      bytes trickle at B bytes/s (default 262144)     cdn
//
//   mode=value (the first value is the default)
//   output=video|videos          a succeeded result's output: {video: URL} or {videos: [URL]}
//   finished-status=completed|outcome
//                                what status (and cancel) say of a finished job: "completed"
//                                whatever the outcome, or the outcome itself ("succeeded"/"failed")
//   job-error=string|array       a failed result's error: a string, or [{errorCode, error, debugInfo}]
//   error-key=error_message|message|error
//                                the key that carries the message in every JSON error body
//   result-model-id=off|on       whether the result carries the job's model_id
//
// Determinism: the n-th request to an endpoint draws u = drawUnit(seed, endpoint, n); the
// endpoint's rules are walked in spec order with cumulative shares and the first whose
// cumulative share exceeds u applies. Same spec + same per-endpoint order = same faults.
// "Request" here is one HTTP request reaching the route (auth failures included);
// `job` counts accepted submits. Errors (429/5xx/error200/balance/reset) pre-empt the handler
// (nothing is created); stall, malformed, unknown and lost run the handler first. Modes draw
// nothing: they shape every answer, faults included (error-key applies to a fault's body too).
//
// Example: submit:lost=0.1,status:500=0.05,status:429=0.05,cdn:truncate=0.05,job:fail=0.1,seed=7
//          job:fail=0.5,finished-status=outcome,job-error=array,output=videos

// The error base is the one thing shared beyond the model rules: it holds no client logic, and a
// bad spec is met by users of the SDK and the CLI like any other error.
import { DreaminaError } from "../api/dreamina-error.js";
import { drawUnit } from "./random.js";

export const FAULT_ENDPOINTS = ["submit", "status", "result", "cancel", "models", "cdn", "job"] as const;
export type FaultEndpoint = (typeof FAULT_ENDPOINTS)[number];
const API_ENDPOINTS: readonly FaultEndpoint[] = ["submit", "status", "result", "cancel", "models"];

export type FaultKind =
  | "429"
  | "429-date"
  | "429-bare"
  | "500"
  | "502"
  | "503"
  | "reset"
  | "stall"
  | "malformed"
  | "error200"
  | "unknown"
  | "lost"
  | "balance"
  | "fail"
  | "truncate"
  | "slow";

const ERRORS: FaultKind[] = ["429", "429-date", "429-bare", "500", "502", "503", "reset", "stall"];
const VALID_FOR: Record<FaultEndpoint, readonly FaultKind[]> = {
  submit: [...ERRORS, "malformed", "error200", "lost", "balance"],
  status: [...ERRORS, "malformed", "error200", "unknown"],
  result: [...ERRORS, "malformed", "error200", "unknown"],
  cancel: [...ERRORS, "malformed", "error200"],
  models: [...ERRORS, "malformed", "error200"],
  cdn: [...ERRORS, "truncate", "slow"],
  job: ["fail"],
};
const TAKES_PARAM: ReadonlySet<FaultKind> = new Set<FaultKind>([
  "429",
  "429-date",
  "503",
  "stall",
  "error200",
  "balance",
  "truncate",
  "slow",
]);

/** Each mode's values; the first is the default (the contract's plainest reading). */
export const MODE_VALUES = {
  output: ["video", "videos"],
  "finished-status": ["completed", "outcome"],
  "job-error": ["string", "array"],
  "error-key": ["error_message", "message", "error"],
  "result-model-id": ["off", "on"],
} as const;
export type ModeName = keyof typeof MODE_VALUES;
export type SandboxModes = { -readonly [M in ModeName]: (typeof MODE_VALUES)[M][number] };

export const DEFAULT_MODES: Readonly<SandboxModes> = {
  output: "video",
  "finished-status": "completed",
  "job-error": "string",
  "error-key": "error_message",
  "result-model-id": "off",
};

function isModeName(name: string): name is ModeName {
  return Object.hasOwn(MODE_VALUES, name);
}

export interface FaultRule {
  endpoint: FaultEndpoint;
  kind: FaultKind;
  /** Share of the endpoint's requests hit, in [0, 1]. */
  share: number;
  /** The "@" parameter (seconds, bytes/s, fraction or error code, depending on kind). */
  param?: number | undefined;
  /** At most this many hits. */
  max?: number | undefined;
}

export interface FaultConfig {
  seed?: number | undefined;
  rules: FaultRule[];
  /** Modes given in the spec; the others keep their defaults. */
  modes?: Partial<SandboxModes> | undefined;
}

/** What happened to one request, as recorded in the request log. */
export interface AppliedFault {
  kind: FaultKind;
  param?: number | undefined;
}

/** A fault spec that cannot be parsed; the message names the bad item. */
export class FaultSpecError extends DreaminaError {
  static override readonly code: string = "fault_spec";
}

/** Parses the string grammar above. Throws FaultSpecError naming the bad item. */
export function parseFaultSpec(spec: string): FaultConfig {
  const config: FaultConfig = { rules: [] };
  for (const raw of spec.split(",")) {
    const item = raw.trim();
    if (item === "") continue;
    const seed = /^seed\s*=\s*(-?\d+)$/i.exec(item);
    if (seed) {
      config.seed = Number(seed[1]);
      continue;
    }
    const mode = /^([a-z-]+)\s*=\s*(\S*)$/i.exec(item);
    if (mode) {
      const [, name = "", value = ""] = mode;
      config.modes = { ...config.modes, ...parseMode(name.toLowerCase(), value.toLowerCase(), item) };
      continue;
    }
    const m = /^([a-z]+):([a-z0-9-]+)(?:@([0-9.]+))?=([0-9.]+)(%?)(?:#(\d+))?$/i.exec(item);
    if (!m) {
      throw new FaultSpecError(
        `bad fault item ${JSON.stringify(item)}: expected target:kind[@param]=share[#max] or seed=N`,
      );
    }
    const [, target = "", kindText = "", paramText, shareText = "", percent, maxText] = m;
    const kind = kindText.toLowerCase() as FaultKind;
    const share = Number(shareText) / (percent ? 100 : 1);
    if (!Number.isFinite(share) || share < 0 || share > 1) {
      throw new FaultSpecError(`bad share in ${JSON.stringify(item)}: must be within [0, 1] or 0%..100%`);
    }
    const param = paramText === undefined ? undefined : Number(paramText);
    if (param !== undefined && (!Number.isFinite(param) || !TAKES_PARAM.has(kind))) {
      throw new FaultSpecError(`fault ${JSON.stringify(kind)} takes no valid "@" parameter in ${item}`);
    }
    const endpoints =
      target.toLowerCase() === "api" ? API_ENDPOINTS : [target.toLowerCase() as FaultEndpoint];
    for (const endpoint of endpoints) {
      const rule: FaultRule = { endpoint, kind, share, param };
      if (maxText !== undefined) rule.max = Number(maxText);
      checkRule(rule, item);
      config.rules.push(rule);
    }
  }
  return config;
}

function parseMode(name: string, value: string, item: string): Partial<SandboxModes> {
  if (name === "seed") throw new FaultSpecError(`bad seed in ${JSON.stringify(item)}: must be an integer`);
  if (!isModeName(name)) {
    throw new FaultSpecError(
      `unknown mode ${JSON.stringify(name)} in ${JSON.stringify(item)}: one of ${Object.keys(MODE_VALUES).join(", ")} ` +
        "(a fault is written target:kind=share)",
    );
  }
  checkMode(name, value, item);
  return { [name]: value };
}

function checkMode(name: ModeName, value: unknown, item: string): void {
  const values: readonly string[] = MODE_VALUES[name];
  if (typeof value !== "string" || !values.includes(value)) {
    throw new FaultSpecError(
      `bad value ${JSON.stringify(value)} for mode ${name} in ${JSON.stringify(item)}: one of ${values.join(", ")}`,
    );
  }
}

function checkRule(rule: FaultRule, item: string): void {
  const valid = VALID_FOR[rule.endpoint];
  if (!valid) {
    throw new FaultSpecError(
      `unknown fault target ${JSON.stringify(rule.endpoint)} in ${item}: one of ${[...FAULT_ENDPOINTS, "api"].join(", ")}`,
    );
  }
  if (!valid.includes(rule.kind)) {
    throw new FaultSpecError(
      `fault ${JSON.stringify(rule.kind)} does not apply to ${rule.endpoint} (${item}); valid: ${valid.join(", ")}`,
    );
  }
  if (rule.kind === "truncate" && rule.param !== undefined && (rule.param < 0 || rule.param >= 1)) {
    throw new FaultSpecError(`truncate fraction must be within [0, 1) in ${item}`);
  }
  if (rule.kind === "slow" && rule.param !== undefined && rule.param <= 0) {
    throw new FaultSpecError(`slow rate must be positive in ${item}`);
  }
  if (
    rule.kind === "balance" &&
    rule.param !== undefined &&
    !(Number.isInteger(rule.param) && rule.param >= 400 && rule.param <= 499)
  ) {
    throw new FaultSpecError(`balance takes an HTTP status from 400 to 499 in ${item}`);
  }
}

/** The canonical string form of a config (what the sandbox logs at start). */
export function formatFaultSpec(config: FaultConfig): string {
  const items = config.rules.map(
    (r) =>
      `${r.endpoint}:${r.kind}${r.param === undefined ? "" : `@${r.param}`}=${r.share}${r.max === undefined ? "" : `#${r.max}`}`,
  );
  for (const [name, value] of Object.entries(config.modes ?? {})) {
    if (value !== undefined) items.push(`${name}=${value}`);
  }
  if (config.seed !== undefined) items.push(`seed=${config.seed}`);
  return items.join(",");
}

/**
 * The live fault plan: one counter per endpoint, one deterministic draw per request.
 * Replaceable at run time (tests switch faults on and off between phases).
 */
export class FaultPlan {
  #rules: FaultRule[];
  #seed: number;
  readonly #givenModes: Partial<SandboxModes>;
  /** Every mode, defaults filled in. */
  readonly modes: Readonly<SandboxModes>;
  readonly #counters = new Map<FaultEndpoint, number>();
  readonly #hits = new Map<FaultRule, number>();

  constructor(config: FaultConfig | string | undefined, defaultSeed = 0) {
    const parsed = typeof config === "string" ? parseFaultSpec(config) : (config ?? { rules: [] });
    for (const rule of parsed.rules) checkRule(rule, `${rule.endpoint}:${rule.kind}`);
    const given: Record<string, string> = {};
    for (const [name, value] of Object.entries(parsed.modes ?? {})) {
      if (value === undefined) continue; // a mode left out, as if never written
      if (!isModeName(name)) throw new FaultSpecError(`unknown mode ${JSON.stringify(name)}`);
      checkMode(name, value, `${name}=${String(value)}`);
      given[name] = value;
    }
    this.#rules = parsed.rules.map((r) => ({ ...r }));
    this.#seed = parsed.seed ?? defaultSeed;
    this.#givenModes = given as Partial<SandboxModes>;
    this.modes = Object.freeze({ ...DEFAULT_MODES, ...this.#givenModes });
  }

  get seed(): number {
    return this.#seed;
  }

  get config(): FaultConfig {
    const config: FaultConfig = { seed: this.#seed, rules: this.#rules.map((r) => ({ ...r })) };
    if (Object.keys(this.#givenModes).length > 0) config.modes = { ...this.#givenModes };
    return config;
  }

  /** Draws for the next request to `endpoint`; undefined when it goes through untouched. */
  next(endpoint: FaultEndpoint): AppliedFault | undefined {
    const index = this.#counters.get(endpoint) ?? 0;
    this.#counters.set(endpoint, index + 1);
    const rules = this.#rules.filter((r) => r.endpoint === endpoint);
    if (rules.length === 0) return undefined;
    const u = drawUnit(this.#seed, `fault:${endpoint}`, index);
    let cumulative = 0;
    for (const rule of rules) {
      const hits = this.#hits.get(rule) ?? 0;
      if (rule.max !== undefined && hits >= rule.max) continue;
      cumulative += rule.share;
      if (u < cumulative) {
        this.#hits.set(rule, hits + 1);
        return rule.param === undefined ? { kind: rule.kind } : { kind: rule.kind, param: rule.param };
      }
    }
    return undefined;
  }
}

export function describeFault(fault: AppliedFault | undefined): string | undefined {
  if (!fault) return undefined;
  return fault.param === undefined ? fault.kind : `${fault.kind}@${fault.param}`;
}
