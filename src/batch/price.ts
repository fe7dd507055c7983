// The batch's price: given, read from the service's models endpoint, or the documented
// fallback (said so in the event); then every row's estimate from its frame count.

import { estimateCostUsd, MODEL_ID } from "../model/input.js";
import { FALLBACK_PRICE } from "./batch-types.js";
import type { BatchRunContext } from "./run-context.js";

export async function loadPrice(ctx: BatchRunContext): Promise<void> {
  if (ctx.options.price) {
    ctx.price = { ...ctx.options.price, source: "given" };
  } else {
    try {
      const model = await ctx.options.client.models.get(MODEL_ID, {
        signal: ctx.options.signal,
        timeoutMs: 15_000,
      });
      if (model.basePriceUsd === undefined) throw new Error("the model detail has no base_price_usd");
      ctx.price = {
        basePriceUsd: model.basePriceUsd,
        priceUnit: model.priceUnit ?? "request",
        source: "service",
      };
    } catch (error) {
      if (ctx.options.signal?.aborted) {
        ctx.interrupted = true;
        ctx.stopping = true;
      }
      ctx.price = {
        ...FALLBACK_PRICE,
        source: "default",
        note:
          `the price could not be read from the service (${error instanceof Error ? error.message : String(error)}); ` +
          `estimates use the default US$${FALLBACK_PRICE.basePriceUsd} per ${FALLBACK_PRICE.priceUnit}`,
      };
    }
  }
  ctx.emit({ type: "price", price: ctx.price });
  for (const r of ctx.rows) {
    r.estimateUsd = estimateCostUsd({
      frames: r.row.frames,
      basePriceUsd: ctx.price.basePriceUsd,
      priceUnit: ctx.price.priceUnit,
    });
  }
}
