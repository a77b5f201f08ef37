// The recipe: bundle Node libraries (here the unmodified npm `pg` and `ioredis`) for a web page,
// with Node's `net`, `tls`, `dns` and `dgram` served by a wasmnet server.
//
// - npm `esbuild` bundles;
// - npm `node-stdlib-browser` supplies `buffer`, `events`, `stream`, `util`, `crypto`, `process`,
//   ... as the CommonJS packages themselves, so `require("events")` returns the EventEmitter class
//   as in Node (not a `{ default }` wrapper), and its shim defines the globals `Buffer`, `process`
//   and `global` that Node libraries assume;
// - `net`, `tls`, `dns`, `dgram` (and `node:net` ...) are aliased to wasmnet's `dist/node/*.js`
//   (built by `deno task bundle`), which take their server from `configure({ url })` or
//   `globalThis.WASMNET_URL`.
//
// Usage (in this folder, after `deno install` or `npm install`):
//   deno run --allow-read --allow-write --allow-env --allow-run build.mjs [ENTRY] [OUTFILE]
//   node build.mjs [ENTRY] [OUTFILE]
// Defaults: app.js → dist/app.js (an ES module). Environment: MINIFY=1 minifies;
// WASMNET_NODE_DIR=/path/ (with a trailing slash) takes wasmnet's modules from another folder.
// `deno task example:node` at the repository root builds dist/node first, then this.
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";
import * as esbuild from "esbuild";
import stdLibBrowser from "node-stdlib-browser";
import stdLibBrowserPlugin from "node-stdlib-browser/helpers/esbuild/plugin";

const require = createRequire(import.meta.url);

/** Where wasmnet's `dist/node/*.js` are (this repository's; copy them next to your app). */
export const WASMNET_NODE = fileURLToPath(new URL("../../dist/node/", import.meta.url));

/** Builtin name → file: Node-builtin polyfills, with wasmnet for the network modules. */
export function aliases(wasmnetNode = WASMNET_NODE) {
  const map = { ...stdLibBrowser };
  // What node-stdlib-browser leaves out of Node's modules: `util/types` (pg uses it), and
  // `buffer.constants` (ioredis's pipeline reads it).
  const shim = (file) => fileURLToPath(new URL(`shims/${file}`, import.meta.url));
  map["util/types"] = map["node:util/types"] = shim("util_types.cjs");
  map.buffer = map["node:buffer"] = shim("buffer.cjs");
  for (const name of ["net", "tls", "dns", "dgram"]) {
    map[name] = `${wasmnetNode}${name}.js`;
    map[`node:${name}`] = `${wasmnetNode}${name}.js`;
  }
  return map;
}

/**
 * Bundles `entry` (and what it imports or requires) into one ES module for browsers.
 * Resolves esbuild's result (with `metafile`); rejects with esbuild's errors.
 */
export function buildApp({ entry, outfile, minify = false, wasmnetNode = WASMNET_NODE }) {
  return esbuild.build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    minify,
    metafile: true,
    logLevel: "warning",
    inject: [require.resolve("node-stdlib-browser/helpers/esbuild/shim")],
    define: { global: "global", process: "process", Buffer: "Buffer" },
    plugins: [stdLibBrowserPlugin(aliases(wasmnetNode))],
  });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const here = (path) => fileURLToPath(new URL(path, import.meta.url));
  const [entry = here("app.js"), outfile = here("dist/app.js")] = process.argv.slice(2);
  const result = await buildApp({
    entry,
    outfile,
    minify: process.env.MINIFY === "1",
    wasmnetNode: process.env.WASMNET_NODE_DIR ?? WASMNET_NODE,
  });
  for (const [file, { bytes }] of Object.entries(result.metafile.outputs)) {
    process.stdout.write(`${file}: ${bytes} bytes\n`);
  }
  await esbuild.stop?.();
}
