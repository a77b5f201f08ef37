/**
 * Bun's {@linkcode Runtime}: process services through `node:process` and `node:fs` (which Bun
 * implements), the `Bun.serve` adapter and the `node:net`/`node:dgram`/`node:dns` transport.
 *
 * @module
 */
import { watchFile } from "./_watch.ts";
import process from "node:process";
import { readFile } from "node:fs/promises";
import { write } from "node:fs";
import type { Runtime } from "./runtime.ts";
import { bunAdapter } from "../server/bun/mod.ts";
import { bunTransport } from "../transport/bun/mod.ts";
import { BoundedWriter } from "../log/mod.ts";

/**
 * An asynchronous write to file descriptor 1 or 2 with `node:fs` `write` (on a thread of the pool:
 * a pipe nobody reads blocks that thread, never the event loop). Measured with Bun 1.4.5: through
 * `process.stdout.write`, a pipe's write callback or `drain` event sometimes never came and every
 * later log line waited behind it; `Bun.write(Bun.stdout, ...)` and `writeSync` block the event loop
 * on a full pipe.
 */
function fdWrite(fd: 1 | 2): (bytes: Uint8Array) => Promise<number> {
  return (bytes) =>
    new Promise((resolve, reject) => {
      write(fd, bytes, 0, bytes.byteLength, null, (e, n) => e ? reject(e) : resolve(n));
    });
}

/** The Bun runtime. */
export function bunRuntime(): Runtime {
  const bun = (globalThis as unknown as { Bun?: { version?: string } }).Bun;
  const out = new BoundedWriter(fdWrite(1));
  const err = new BoundedWriter(fdWrite(2));
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
