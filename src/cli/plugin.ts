/**
 * `wasmnet plugin FILE.wasm ...`: runs one function of a harness plugin (the harness host of
 * `src/wasm/`) through the runtime's transport under the policy, prints only the plugin's output
 * on stdout (every log line goes to stderr) and exits 0, or 1 with one line on stderr.
 *
 * @module
 */
import { readFile } from "node:fs/promises";
import process from "node:process";
import type { PluginFlags } from "./args.ts";
import type { Runtime } from "./runtime.ts";
import { getLogger, setLogOutput } from "../log/mod.ts";
import { Policy } from "../policy/mod.ts";
import { loadHarnessPlugin, PluginError } from "../wasm/mod.ts";

/**
 * Runs `flags.call` of the plugin `flags.file` with the input of `--input`/`--input-file` and
 * writes its output, byte for byte, to stdout.
 *
 * @param loadPolicy Reads a `--policy` file.
 * @returns 0 on success; 1 after one line on stderr (`wasmnet: ...`) for a file that cannot be
 *   read or is not WebAssembly, a module that does not instantiate, an unknown function, a trap,
 *   an error the plugin reported, or the time limit (`plugin ran longer than N ms`).
 * @throws {PolicyError} for a bad `--policy` file (the CLI exits 1 with its message).
 */
export async function runPlugin(
  runtime: Runtime,
  _print: (stream: "stdout" | "stderr", text: string) => void,
  flags: PluginFlags,
  loadPolicy: (path: string) => Promise<Policy>,
): Promise<number> {
  // stdout carries the plugin's output only.
  setLogOutput((_stream, line) => runtime.write("stderr", line));
  // The last line is written before the command returns (not queued behind log lines).
  const fail = async (line: string): Promise<number> => {
    await writeAll(process.stderr, new TextEncoder().encode(`wasmnet: ${line}\n`));
    return 1;
  };
  let wasm: Uint8Array;
  let input: Uint8Array | string = flags.input ?? "";
  try {
    wasm = new Uint8Array(await readFile(flags.file));
  } catch (e) {
    return await fail(`cannot read ${flags.file}: ${(e as Error).message}`);
  }
  if (flags.inputFile !== undefined) {
    try {
      input = new Uint8Array(await readFile(flags.inputFile));
    } catch (e) {
      return await fail(`cannot read ${flags.inputFile}: ${(e as Error).message}`);
    }
  }
  const policy = flags.noPolicy
    ? Policy.allowAll()
    : flags.policyFile !== undefined
    ? await loadPolicy(flags.policyFile)
    : Policy.defaults();
  const log = getLogger("wasm");
  if (flags.noPolicy) {
    log.warn("policy checks disabled (--no-policy): the plugin may dial anything");
  }
  let plugin;
  try {
    plugin = await loadHarnessPlugin(wasm, {
      transport: runtime.transport(),
      policy,
      logger: log,
      timeoutMs: flags.timeoutMs,
      maxMemoryMib: flags.maxMemoryMib,
    });
  } catch (e) {
    if (e instanceof PluginError) return await fail(`${flags.file}: ${e.message}`);
    throw e;
  }
  let output: Uint8Array;
  try {
    output = await plugin.call(flags.call, input);
  } catch (e) {
    if (!(e instanceof PluginError)) throw e;
    if (e.code === "unknown-function") {
      return await fail(`no exported function "${flags.call}" in ${flags.file}`);
    }
    return await fail(e.message);
  } finally {
    await plugin.close();
  }
  await writeAll(process.stdout, output);
  return 0;
}

function writeAll(
  stream: { write(data: Uint8Array, done: (e?: Error | null) => void): unknown },
  data: Uint8Array,
): Promise<void> {
  return new Promise((resolve, reject) => stream.write(data, (e) => e ? reject(e) : resolve()));
}
