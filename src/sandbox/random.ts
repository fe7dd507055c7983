// Deterministic randomness for the sandbox. Every draw is a pure function of
// (seed, stream, index), so the n-th status request or the n-th job gets the same
// value whatever else happened in between: faults and jitter replay exactly.

/** FNV-1a over a string: turns a stream name into 32 bits. */
function hashString(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** A 32-bit finaliser (murmur3 fmix32): small input changes flip about half the bits. */
function mix(x: number): number {
  let h = x >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A 32-bit unsigned integer for draw `index` of `stream` under `seed`. */
export function drawUint32(seed: number, stream: string, index: number): number {
  const a = mix((seed | 0) ^ 0x9e3779b9);
  const b = mix(a ^ hashString(stream));
  return mix(b ^ mix((index | 0) + 0x7f4a7c15));
}

/** A float in [0, 1) for draw `index` of `stream` under `seed`. */
export function drawUnit(seed: number, stream: string, index: number): number {
  return drawUint32(seed, stream, index) / 0x1_0000_0000;
}

/** A small generator for code that needs several values in a row from one (seed, stream). */
export function generator(seed: number, stream: string): () => number {
  let index = 0;
  return () => drawUnit(seed, stream, index++);
}
