/**
 * Bun's {@linkcode Runtime}: process services through `node:process` and `node:fs` (which Bun
 * implements), the `Bun.serve` adapter and the `node:net`/`node:dgram`/`node:dns` transport.
 *
 * @module
 */
import { watchFile } from "./_watch.ts";
import process from "node:process";
import { readFile } from "node:fs/promises";
import type { Runtime } from "./runtime.ts";
import { bunAdapter } from "../server/bun/mod.ts";
import { bunTransport } from "../transport/bun/mod.ts";
import { BoundedWriter } from "../log/mod.ts";

/**
 * An asynchronous write to `process.stdout` or `process.stderr` that resolves from the stream's
 * callback (once Bun has handed the bytes to the pipe). Bun's `Bun.write(Bun.stdout, ...)` and
 * `node:fs` `writeSync` block the event loop on a pipe nobody reads; the stream does not.
 */
function streamWrite(stream: NodeJS.WriteStream): (bytes: Uint8Array) => Promise<number> {
  // A reader that went away (EPIPE) is reported on the stream too: the write's rejection handles it.
  stream.on("error", () => {});
  return (bytes) =>
    new Promise((resolve, reject) => {
      stream.write(bytes, (e) => e ? reject(e) : resolve(bytes.byteLength));
    });
}

/** The Bun runtime. */
export function bunRuntime(): Runtime {
  const bun = (globalThis as unknown as { Bun?: { version?: string } }).Bun;
  const out = new BoundedWriter(streamWrite(process.stdout));
  const err = new BoundedWriter(streamWrite(process.stderr));
  return {
    name: "bun",
    version: bun?.version ?? "unknown",
    // `bun run mod.ts a b` and a compiled binary both give [bun, script, ...args].
    args: () => process.argv.slice(2),
    env: (name) => process.env[name],
    readTextFile: (path) => readFile(path, "utf8"),
    write: (stream, text) => (stream === "stdout" ? out : err).write(text),
    flush: async (timeoutMs) => {
      await Promise.all([out.flush(timeoutMs), err.flush(timeoutMs)]);
    },
    onStopSignals: (stop) => {
      const signals = process.platform === "win32"
        ? ["SIGINT" as const]
        : ["SIGINT" as const, "SIGTERM" as const];
      for (const s of signals) process.on(s, stop);
      return () => {
        for (const s of signals) process.off(s, stop);
      };
    },
    onReloadSignal: (reload) => {
      if (process.platform === "win32") return () => {};
      process.on("SIGHUP", reload);
      return () => process.off("SIGHUP", reload);
    },
    watchFile: (path, changed, debounceMs) => watchFile(path, changed, debounceMs),
    exit: (code) => process.exit(code),
    adapter: () => bunAdapter(),
    transport: (options) => bunTransport(options),
  };
}
