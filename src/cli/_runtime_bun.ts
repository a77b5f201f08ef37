/**
 * Bun's {@linkcode Runtime}: process services through `node:process` and `node:fs` (which Bun
 * implements), the `Bun.serve` adapter and the `node:net`/`node:dgram`/`node:dns` transport.
 *
 * @module
 */
import { watchFile } from "./_watch.ts";
import process from "node:process";
import { writeSync } from "node:fs";
import { readFile } from "node:fs/promises";
import type { Runtime } from "./runtime.ts";
import { bunAdapter } from "../server/bun/mod.ts";
import { bunTransport } from "../transport/bun/mod.ts";

/** The Bun runtime. */
export function bunRuntime(): Runtime {
  const bun = (globalThis as unknown as { Bun?: { version?: string } }).Bun;
  return {
    name: "bun",
    version: bun?.version ?? "unknown",
    // `bun run mod.ts a b` and a compiled binary both give [bun, script, ...args].
    args: () => process.argv.slice(2),
    env: (name) => process.env[name],
    readTextFile: (path) => readFile(path, "utf8"),
    write: (stream, text) => {
      writeSync(stream === "stdout" ? 1 : 2, text);
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
