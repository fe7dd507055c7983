// What a one-off call (status, result, cancel) learnt goes into the job store too, when the
// store knows the request, so `dreamina jobs` does not go on showing a job as queued after
// `cancel` or `result`. Best effort: the answer is printed whatever happens here.

import type { CliStore, Factory } from "./factory.js";

export async function recordIfKnown(
  ctx: Factory,
  requestId: string,
  record: (store: CliStore) => unknown,
): Promise<void> {
  try {
    // A store that does not exist yet is not created for a request it cannot know.
    const store = await ctx.existingStore();
    if (!store) return;
    if ((await store.get(requestId))?.requestId === requestId) await record(store);
  } catch (error) {
    ctx.io.debug(`journal not updated: ${(error as Error).message}`);
  }
}
