/**
 * The Bun transport (placeholder until it lands).
 *
 * @module
 */
import type { Transport, TransportOptions } from "../mod.ts";

/** The Bun transport. */
export function bunTransport(_options: TransportOptions = {}): Transport {
  throw new Error("the Bun transport is not written yet");
}
