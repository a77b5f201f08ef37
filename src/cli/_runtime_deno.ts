/**
 * Deno's {@linkcode Runtime}: `Deno.*` process services, the Deno server adapter and transport.
 *
 * @module
 */
import { watchFile } from "./_watch.ts";
import type { Runtime } from "./runtime.ts";
import { denoAdapter } from "../server/deno/mod.ts";
import { denoTransport } from "../transport/deno/mod.ts";

const encoder = new TextEncoder();

/** The Deno runtime. */
export function denoRuntime(): Runtime {
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
    write: (stream, text) => {
      const s = stream === "stdout" ? Deno.stdout : Deno.stderr;
      const bytes = encoder.encode(text);
      let n = 0;
      while (n < bytes.byteLength) n += s.writeSync(bytes.subarray(n));
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
