/**
 * Builds the browser client bundle for tests, the way `deno task bundle` does.
 *
 * @module
 */
import assert from "node:assert/strict";
import { bundleArgs } from "../../src/client/bundle.ts";

/**
 * Bundles `src/client/mod.ts` into one ES module `dir/wasmnet-client.js` with `deno bundle`
 * (as `src/client/bundle.ts` does) and resolves its source text.
 *
 * @throws {AssertionError} with `deno bundle`'s stderr when bundling fails.
 */
export async function bundleClient(dir: string): Promise<string> {
  const out = `${dir}/wasmnet-client.js`;
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: bundleArgs(out),
    cwd: new URL("../../", import.meta.url),
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  return await Deno.readTextFile(out);
}
