/**
 * Builds browser bundles for tests: the client the way `deno task bundle` does, and any other
 * browser module (the harness and W.A.T.E.R. hosts) with `deno bundle`.
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

/**
 * Bundles `entry` (a path from the repo root, with the repo's `deno.json` imports) into one
 * browser ES module `out` with `deno bundle`, and resolves its source text.
 *
 * @throws {AssertionError} with `deno bundle`'s stderr when bundling fails.
 */
export async function bundleForBrowser(entry: string, out: string): Promise<string> {
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["bundle", "--platform", "browser", "--format", "esm", "--output", out, entry],
    cwd: new URL("../../", import.meta.url),
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.equal(code, 0, `deno bundle ${entry}: ${new TextDecoder().decode(stderr)}`);
  return await Deno.readTextFile(out);
}
