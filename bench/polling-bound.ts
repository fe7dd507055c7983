// What any polling schedule can achieve on the bench's run-time distribution: a lower bound on
// requests per job under the issue-12 latency targets, for a client that knows exactly when the
// run started and how long runs of its frame count take (mean and std, no sampling error). A
// real client knows less (it must discover the start by polling, through the queue), so it can
// only do worse: whatever this bound says is out of reach is out of reach for every schedule.
//
// The argument. Polls at times p1 < p2 < … after the start; the run time T has CDF F. Poll k is
// made iff T > p(k−1), so E[requests] = Σk (1 − F(p(k−1))). A completion at x ∈ (p(k−1), pk] is
// seen pk − x later, so P(latency > θ) = Σk [F(max(p(k−1), pk − θ)) − F(p(k−1))]. The targets
// are P(latency > θj) ≤ αj: θ = fixed 2 s's p50, p95 and p99 (α = 0.5, 0.05, 0.01) and fixed
// 5 s's maximum (α = 1 / jobs: on average less than one job in the run beyond it, a relaxation
// of "never"). For multipliers λ ≥ 0, minimising E[requests] + Σ λj·(P(latency > θj) − αj) over
// all schedules is a shortest path over poll times (exact dynamic programme on a 50 ms grid,
// gaps up to 60 s), and by weak duality its value is ≤ the constrained optimum for *any* λ:
// that is the lower bound printed. Searching λ (subgradient steps) also yields schedules that
// meet every target: the best one is the "oracle" figure, an upper bound on the same optimum.

/** One kind of job: its run time is normal(mean, spread × mean), truncated below at `floor` × mean. */
export interface RunTimeKind {
  meanMs: number;
  spread: number;
  floor: number;
  weight: number;
}

export interface LatencyTarget {
  /** Latency, ms. */
  thresholdMs: number;
  /** The largest allowed P(latency > thresholdMs). */
  allowed: number;
}

export interface BoundResult {
  /** No schedule needs fewer requests per job than this (Lagrangian dual). */
  lowerBound: number;
  /** The cheapest known-start schedule found that meets every target (NaN if none was). */
  oracle: number;
  iterations: number;
}

const GRID_MS = 50;
const FINE_MS = 10;
const MAX_GAP_MS = 60_000;

function erfc(x: number): number {
  const c = [
    -1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807, -1.13520398, 1.48851587,
    -0.82215223, 0.17087277,
  ];
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  let p = 0;
  for (let i = c.length - 1; i >= 0; i--) p = c[i]! + t * p;
  const r = t * Math.exp(-z * z + p);
  return x >= 0 ? r : 2 - r;
}

const phi = (z: number) => 1 - 0.5 * erfc(z / Math.SQRT2);

interface Tables {
  /** Grid points (GRID_MS) up to where the run is as good as surely over. */
  points: number;
  /** CDF on the poll grid and on the fine grid. */
  cdf: Float64Array;
  fine: Float64Array;
  weight: number;
}

function tables(kind: RunTimeKind): Tables {
  const std = kind.spread * kind.meanMs;
  const lo = kind.floor * kind.meanMs;
  const below = phi((lo - kind.meanMs) / std);
  const cdf = (x: number) => (x <= lo ? 0 : (phi((x - kind.meanMs) / std) - below) / (1 - below));
  const points = Math.ceil((kind.meanMs + 7 * std) / GRID_MS);
  const coarse = new Float64Array(points + 1);
  for (let g = 0; g <= points; g++) coarse[g] = cdf(g * GRID_MS);
  const fine = new Float64Array((points * GRID_MS) / FINE_MS + 1);
  for (let i = 0; i < fine.length; i++) fine[i] = cdf(i * FINE_MS);
  return { points, cdf: coarse, fine, weight: kind.weight };
}

interface Solved {
  /** min over schedules of E[requests] + Σ λ·P(latency > θ). */
  value: number;
  requests: number;
  exceed: number[];
}

function solve(t: Tables, lambda: number[], thresholds: number[]): Solved {
  const { points, cdf, fine } = t;
  const ratio = GRID_MS / FINE_MS;
  const maxStep = MAX_GAP_MS / GRID_MS;
  const value = new Float64Array(points + 1);
  const next = new Int32Array(points + 1).fill(-1);
  for (let g = points - 1; g >= 0; g--) {
    const alive = 1 - cdf[g]!;
    let best = Number.POSITIVE_INFINITY;
    for (let g2 = g + 1; g2 <= Math.min(points, g + maxStep); g2++) {
      let cost = alive + value[g2]!;
      for (let j = 0; j < thresholds.length; j++) {
        const cut = g2 * ratio - thresholds[j]!;
        if (cut > g * ratio) cost += lambda[j]! * (fine[cut]! - cdf[g]!);
      }
      if (cost < best) {
        best = cost;
        next[g] = g2;
      }
    }
    value[g] = best;
  }
  let requests = 0;
  const exceed = thresholds.map(() => 0);
  for (let g = 0; g < points; ) {
    const g2 = next[g]!;
    requests += 1 - cdf[g]!;
    for (let j = 0; j < thresholds.length; j++) {
      const cut = g2 * ratio - thresholds[j]!;
      if (cut > g * ratio) exceed[j]! += fine[cut]! - cdf[g]!;
    }
    g = g2;
  }
  return { value: value[0]!, requests, exceed };
}

/**
 * The bound for a mix of job kinds. `start` is a warm start for the multipliers (one per target);
 * the subgradient search runs `iterations` steps from it.
 */
export function pollingLowerBound(
  kinds: RunTimeKind[],
  targets: LatencyTarget[],
  iterations = 30,
  start: number[] = [1.9, 0, 158, 22_400],
): BoundResult {
  // Thresholds rounded up to the fine grid: a looser target, so the bound stays a bound.
  const thresholds = targets.map((x) => Math.ceil(x.thresholdMs / FINE_MS));
  const all = kinds.map(tables);
  const total = kinds.reduce((a, k) => a + k.weight, 0);
  let lambda = targets.map((_, j) => start[j] ?? 1);
  const scale = [20, 100, 3_000, 2_000_000];
  let lowerBound = 0;
  let oracle = Number.NaN;
  for (let it = 0; it < iterations; it++) {
    const solved = all.map((t) => solve(t, lambda, thresholds));
    const mix = (f: (s: Solved) => number) =>
      solved.reduce((a, s, i) => a + (all[i]!.weight / total) * f(s), 0);
    const exceed = targets.map((_, j) => mix((s) => s.exceed[j]!));
    const dual = mix((s) => s.value) - targets.reduce((a, x, j) => a + lambda[j]! * x.allowed, 0);
    lowerBound = Math.max(lowerBound, dual);
    if (exceed.every((e, j) => e <= targets[j]!.allowed)) {
      const requests = mix((s) => s.requests);
      if (!(requests >= oracle)) oracle = requests;
    }
    lambda = lambda.map((l, j) =>
      Math.max(0, l + ((scale[j] ?? 100) / Math.sqrt(it + 1)) * (exceed[j]! - targets[j]!.allowed)),
    );
  }
  return { lowerBound, oracle, iterations };
}
