/**
 * Builds the example harness plugins from source: WebAssembly text with npm `wabt` and
 * AssemblyScript with npm `assemblyscript` + `@extism/as-pdk` (all pinned in deno.json). Run as
 * `deno task plugins:build`; the modules go to `examples/plugins/build/` (git-ignored). Tests
 * import {@linkcode compileWat} and {@linkcode compileAssemblyScript} to build what they need.
 *
 * @module
 */
// Importing the PDK's package.json makes Deno fetch the package, whose AssemblyScript sources
// the compiler then reads from Deno's npm cache.
import "@extism/as-pdk/package.json" with { type: "json" };
import asc from "assemblyscript/asc";
import wabtInit from "wabt";

const PDK_DIR = new URL(".", import.meta.resolve("@extism/as-pdk/package.json"));
const HERE = new URL(".", import.meta.url);
const ASSEMBLY = new URL("assembly/", HERE);

/** The example plugins: source file → output file. */
export const EXAMPLES: Readonly<Record<string, string>> = {
  "probe.wat": "probe.wasm",
  "assembly/http_get.ts": "http_get.wasm",
  "assembly/dns_query.ts": "dns_query.wasm",
  "assembly/ping.ts": "ping.wasm",
};

/**
 * Compiles WebAssembly text to a binary module.
 *
 * @param source The module in WebAssembly text format.
 * @param name File name for error messages.
 * @throws {Error} naming the line of a syntax or validation error.
 */
export async function compileWat(source: string, name = "plugin.wat"): Promise<Uint8Array> {
  const wabt = await wabtInit();
  const module = wabt.parseWat(name, source);
  try {
    module.validate();
    return module.toBinary({}).buffer;
  } finally {
    module.destroy();
  }
}

/**
 * Compiles an AssemblyScript plugin that imports `@extism/as-pdk` (and `./harness` from
 * `assembly/`) to a binary module, with the abort handler of `assembly/harness.ts` (it traps).
 *
 * @param entry Path of the entry file, or a name under `assembly/` with `source` given.
 * @param source The entry's text, when it is not a file (tests pass plugins inline).
 * @throws {Error} with the compiler's messages when compilation fails.
 */
export async function compileAssemblyScript(entry: string, source?: string): Promise<Uint8Array> {
  const dir = ASSEMBLY.pathname;
  const entryName = entry.startsWith(dir) ? entry.slice(dir.length) : entry;
  const outputs = new Map<string, Uint8Array | string>();
  const { error, stderr } = await asc.main([
    entryName,
    "--outFile",
    "out.wasm",
    "--optimizeLevel",
    "2",
    "--use",
    "abort=harness/abort",
    "--baseDir",
    dir.replace(/\/$/, ""),
  ], {
    readFile: async (name: string, baseDir: string): Promise<string | null> => {
      if (source !== undefined && name === entryName) return source;
      const path = `${baseDir}/${name}`;
      const pdk = /node_modules\/@extism\/as-pdk\/(.*)$/.exec(path);
      try {
        return await Deno.readTextFile(pdk ? new URL(pdk[1] as string, PDK_DIR) : path);
      } catch {
        return null;
      }
    },
    writeFile: (name: string, contents: Uint8Array | string): void => {
      outputs.set(name, contents);
    },
    listFiles: (): string[] => [],
  });
  const wasm = outputs.get("out.wasm");
  if (error || !(wasm instanceof Uint8Array)) {
    throw new Error(`cannot compile ${entryName}: ${error?.message ?? ""}\n${stderr.toString()}`);
  }
  return wasm;
}

/** Builds every example into `outDir` (default `examples/plugins/build/`); resolves the paths. */
export async function buildExamples(outDir = new URL("build/", HERE)): Promise<string[]> {
  await Deno.mkdir(outDir, { recursive: true });
  const built: string[] = [];
  for (const [source, output] of Object.entries(EXAMPLES)) {
    const path = new URL(source, HERE);
    const wasm = source.endsWith(".wat")
      ? await compileWat(await Deno.readTextFile(path), source)
      : await compileAssemblyScript(path.pathname);
    const out = new URL(output, outDir);
    await Deno.writeFile(out, wasm);
    built.push(out.pathname);
  }
  return built;
}

if (import.meta.main) {
  for (const path of await buildExamples()) {
    // deno-lint-ignore no-console
    console.log(path);
  }
}
