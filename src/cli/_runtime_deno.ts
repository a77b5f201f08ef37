/**
 * Deno's {@linkcode Runtime}: `Deno.*` process services, the Deno server adapter and transport.
 *
 * @module
 */
import { watchFile } from "./_watch.ts";
import type { Runtime } from "./runtime.ts";
import { denoAdapter } from "../server/deno/mod.ts";
import { denoTransport } from "../transport/deno/mod.ts";
import { BoundedWriter } from "../log/mod.ts";

/** The Deno runtime. */
export function denoRuntime(): Runtime {
  // `Deno.stdout.write` runs off the event loop: a pipe nobody reads leaves it pending, and the
  // bounded writer drops lines meanwhile (Deno.exit ends the process even with a write pending).
  const out = new BoundedWriter((bytes) => Deno.stdout.write(bytes));
  const err = new BoundedWriter((bytes) => Deno.stderr.write(bytes));
  return {
    name: "deno",
    version: Deno.version.deno,
    args: () => [...Deno.args],
    env: (name) => {
      try {
        const status = Deno.permissions.querySync({ name: "env", variable: name });
        return status.state === "granted" ? Deno.env.get(name) : undefined;
      } catch {
        return undefined;
      }
    },
    readTextFile: (path) => Deno.readTextFile(path),
    write: (stream, text) => (stream === "stdout" ? out : err).write(text),
    flush: async (timeoutMs) => {
      await Promise.all([out.flush(timeoutMs), err.flush(timeoutMs)]);
    },
    onStopSignals: (stop) => {
      const signals: Deno.Signal[] = Deno.build.os === "windows"
        ? ["SIGINT"]
        : ["SIGINT", "SIGTERM"];
      for (const s of signals) Deno.addSignalListener(s, stop);
      return () => {
        for (const s of signals) Deno.removeSignalListener(s, stop);
      };
    },
    onReloadSignal: (reload) => {
      if (Deno.build.os === "windows") return () => {};
      Deno.addSignalListener("SIGHUP", reload);
      return () => Deno.removeSignalListener("SIGHUP", reload);
    },
    watchFile: (path, changed, debounceMs) => watchFile(path, changed, debounceMs),
    exit: (code) => Deno.exit(code),
    adapter: () => denoAdapter(),
    transport: (options) => denoTransport(options),
  };
}
