// The run-time prior's statistics, the same for every backend (and for a batch's own samples).

export { trimmedStats } from "../run/trimmed-stats.js";

/** How many recent succeeded jobs the prior stands on, unless asked otherwise. */
export const PRIOR_WINDOW = 50;
