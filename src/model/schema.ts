// The model's JSON schemas, shipped as data. Rules are read from these objects (not re-typed)
// so a schema update changes the checks and their messages in one place.

import inputSchema from "./dreamina-3-0-pro-image-to-video.input.schema.json" with { type: "json" };
import outputSchema from "./dreamina-3-0-pro-image-to-video.output.schema.json" with { type: "json" };

/** One entry of `image_urls.validations`: the custom image rules the service applies. */
export interface ImageValidationRule {
  /** A metric and a comparison, e.g. `file_size_mb<`, `width_pixels<=`, `width/height>`. */
  validation_rule: string;
  validation_value: number;
  /** The service's own wording, used verbatim as the violation message. */
  validation_error: string;
}

/** The image rules exactly as the schema lists them, in its order. */
export const imageValidations: readonly ImageValidationRule[] = inputSchema.properties.image_urls.validations;

export { inputSchema, outputSchema };
