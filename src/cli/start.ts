/**
 * `startServer` for library users: the neutral `startServer` of `src/server/` with the current
 * runtime's adapter and transport filled in.
 *
 * @module
 */
import {
  type ServerAdapter,
  type ServerOptions,
  startServer as startWith,
  type WasmnetServer,
} from "../server/mod.ts";
import type { Transport } from "../transport/mod.ts";
import { currentRuntime } from "./runtime.ts";

/** Options of {@linkcode startServer}: the server's, with `adapter` and `transport` optional. */
export type StartOptions = Omit<ServerOptions, "adapter" | "transport"> & {
  /** Default: the current runtime's (`denoAdapter()` on Deno, `bunAdapter()` on Bun). */
  adapter?: ServerAdapter | undefined;
  /** Default: the current runtime's (`denoTransport()` on Deno, `bunTransport()` on Bun). */
  transport?: Transport | undefined;
};

/**
 * Starts a wasmnet server on the current runtime and resolves once it listens.
 *
 * @throws {Error} (rejects) `cannot listen on HOST:PORT: <reason>` when it cannot listen (see
 * the server's `startServer`).
 *
 * @example
 * ```ts ignore
 * import { Policy, startServer } from "../../mod.ts";
 * await using server = await startServer({ hostname: "127.0.0.1", port: 0, policy: Policy.defaults() });
 * console.log(server.url); // ws://127.0.0.1:40123/
 * ```
 */
export async function startServer(options: StartOptions = {}): Promise<WasmnetServer> {
  const { adapter, transport, ...rest } = options;
  const runtime = await currentRuntime();
  return startWith({
    ...rest,
    adapter: adapter ?? runtime.adapter(),
    transport: transport ?? runtime.transport(),
  });
}
