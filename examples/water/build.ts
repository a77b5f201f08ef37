/**
 * Builds the example WATM v1 transport modules from their WAT source with npm `wabt` (pinned in
 * deno.json): `examples/water/NAME.wat` → `examples/water/build/NAME.wasm` (git-ignored).
 * `deno task water:build`; tests call {@linkcode watToWasm} themselves.
 *
 * @module
 */
import wabtInit from "wabt";

/** The example modules, by name. */
export const EXAMPLES: readonly string[] = ["plain", "xor"];

let wabt: Awaited<ReturnType<typeof wabtInit>> | undefined;

/**
 * Compiles WAT text to a WebAssembly binary.
 *
 * @param name the source's name, for error messages
 * @throws {Error} wabt's parse or validation error, naming the line
 */
export async function watToWasm(name: string, wat: string): Promise<Uint8Array<ArrayBuffer>> {
  wabt ??= await wabtInit();
  const module = wabt.parseWat(name, wat, {});
  try {
    module.validate();
    const { buffer } = module.toBinary({});
    return new Uint8Array(buffer);
  } finally {
    module.destroy();
  }
}

/** Builds one example; resolves its binary. */
export async function buildExample(name: string): Promise<Uint8Array<ArrayBuffer>> {
  const src = new URL(`./${name}.wat`, import.meta.url);
  return await watToWasm(`${name}.wat`, await Deno.readTextFile(src));
}

if (import.meta.main) {
  const out = new URL("./build/", import.meta.url);
  await Deno.mkdir(out, { recursive: true });
  for (const name of EXAMPLES) {
    const wasm = await buildExample(name);
    const file = new URL(`${name}.wasm`, out);
    await Deno.writeFile(file, wasm);
    // deno-lint-ignore no-console
    console.log(`${file.pathname} (${wasm.length} bytes)`);
  }
}
