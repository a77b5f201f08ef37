/**
 * The Bun server adapter: `Bun.serve` with its `websocket` handlers (placeholder until it lands).
 *
 * @module
 */
import type { ServerAdapter } from "../adapter.ts";

/** The Bun server adapter. */
export function bunAdapter(): ServerAdapter {
  throw new Error("the Bun server adapter is not written yet");
}
