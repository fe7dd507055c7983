// Counters of the costly things done to an image, so a test can prove each image of a batch or
// of a `run` is read and decoded once (a regression would otherwise only show as slowness).
// Plain integers bumped in place: free next to the reads and decodes they count.

export interface ImageStats {
  /** Header reads (a file's, a URL's first bytes, a data URI's, a Blob's): one per probe. */
  headerReads: number;
  /** Whole images read into memory (a file's remaining bytes, a URL downloaded in full). */
  wholeReads: number;
  /** Decode checks asked for (each hashes the bytes; a remembered verdict answers some). */
  decodeChecks: number;
  /** Full decodes by sharp. */
  decodes: number;
  /** checkImage calls: the image rules checked once per call. */
  checks: number;
}

const counters: ImageStats = { headerReads: 0, wholeReads: 0, decodeChecks: 0, decodes: 0, checks: 0 };

/** A snapshot of the counters since the process started (or the last reset). */
export function imageStats(): ImageStats {
  return { ...counters };
}

/** For tests that measure one run: counts start again from zero. */
export function resetImageStats(): void {
  for (const key of Object.keys(counters) as (keyof ImageStats)[]) counters[key] = 0;
}

/** Internal: bumps one counter. */
export function countImage(key: keyof ImageStats): void {
  counters[key]++;
}
