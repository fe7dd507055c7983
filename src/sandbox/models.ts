// The sandbox's model catalog: the Dreamina model it can run (schema shipped in src/model)
// and two neighbours that make listing, search and paging worth testing. Only the
// Dreamina model accepts submits; the others answer 400001 as the service does for
// models it cannot run.

import { MODEL_ID } from "../model/input.js";
import { inputSchema, outputSchema } from "../model/schema.js";

export interface CatalogModel {
  model_id: string;
  display_name: string;
  description: string;
  category: string;
  base_price_usd: number;
  price_unit: string;
  input_schema: unknown;
  output_schema: unknown;
  /** Whether the sandbox can run it. */
  runnable: boolean;
}

/** Sandbox price: US$ per second of video (so 121 frames = 5 s = $0.60). */
export const BASE_PRICE_USD = 0.12;
export const PRICE_UNIT = "second";

export const CATALOG: readonly CatalogModel[] = [
  {
    model_id: MODEL_ID,
    display_name: "Dreamina 3.0 Pro Image to Video",
    description: "ByteDance Dreamina 3.0 Pro: one image and a prompt to a 5 s or 10 s video.",
    category: "image-to-video",
    base_price_usd: BASE_PRICE_USD,
    price_unit: PRICE_UNIT,
    input_schema: inputSchema,
    output_schema: outputSchema,
    runnable: true,
  },
  {
    model_id: "bytedance/dreamina-3-0/pro/text-to-video",
    display_name: "Dreamina 3.0 Pro Text to Video",
    description:
      "ByteDance Dreamina 3.0 Pro: a prompt to a video (listed only; not runnable in the sandbox).",
    category: "text-to-video",
    base_price_usd: BASE_PRICE_USD,
    price_unit: PRICE_UNIT,
    input_schema: { type: "object", required: ["prompt"], properties: { prompt: { type: "string" } } },
    output_schema: outputSchema,
    runnable: false,
  },
  {
    model_id: "black-forest-labs/flux-1/dev/text-to-image",
    display_name: "FLUX.1 [dev] Text to Image",
    description: "A text-to-image model (listed only; not runnable in the sandbox).",
    category: "text-to-image",
    base_price_usd: 0.025,
    price_unit: "image",
    input_schema: { type: "object", required: ["prompt"], properties: { prompt: { type: "string" } } },
    output_schema: outputSchema,
    runnable: false,
  },
];

export function findModel(modelId: string): CatalogModel | undefined {
  return CATALOG.find((m) => m.model_id === modelId);
}

/** The public JSON of a model (detail, or a list entry without schemas unless asked). */
export function modelJson(model: CatalogModel, withSchema: boolean): Record<string, unknown> {
  const { runnable: _runnable, input_schema, output_schema, ...summary } = model;
  return withSchema ? { ...summary, input_schema, output_schema } : summary;
}

export interface ListQuery {
  limit?: number | undefined;
  offset?: number | undefined;
  search?: string | undefined;
  category?: string | undefined;
  includeSchema?: boolean | undefined;
}

export function listModels(query: ListQuery): { models: Record<string, unknown>[]; total: number } {
  const needle = query.search?.trim().toLowerCase();
  const matching = CATALOG.filter(
    (m) =>
      (!needle || `${m.model_id} ${m.display_name} ${m.description}`.toLowerCase().includes(needle)) &&
      (!query.category || m.category === query.category),
  );
  const offset = Math.max(0, query.offset ?? 0);
  const limit = Math.max(0, query.limit ?? 50);
  return {
    models: matching.slice(offset, offset + limit).map((m) => modelJson(m, Boolean(query.includeSchema))),
    total: matching.length,
  };
}
