/**
 * Bundles the client library (`src/client/mod.ts` and the protocol it imports) into one ES module,
 * `dist/wasmnet-client.js`, with its declarations in one file, `dist/wasmnet-client.d.ts`; then
 * Node's `net`, `tls`, `dns` and `dgram` over wasmnet (`src/node/`) into `dist/node/`
 * ({@linkcode buildNodeBundles}).
 *
 * Run from anywhere: `deno task bundle [--minify] [--output FILE]`. `--output` writes the client
 * module to FILE instead (relative to the repository root, or absolute), no declarations and no
 * `dist/node/`; the demo page's build (`src/server/demo/build.ts`) uses it through
 * {@linkcode buildBundle}.
 * The client is built by `deno bundle` (Deno 2.4+; esbuild, fetched once from the npm registry)
 * with `--no-config`, so the project's server-side npm imports and their Node types stay out of
 * the declaration build (the client imports none of them).
 *
 * Exit code 0 on success; 1 when a build fails; 2 for bad arguments.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import type * as Esbuild from "esbuild";

const ENTRY = "src/client/mod.ts";
const OUT_JS = "dist/wasmnet-client.js";
const ROOT = new URL("../../", import.meta.url);

function say(line: string): void {
  Deno.stderr.writeSync(new TextEncoder().encode(`${line}\n`));
}

/**
 * The `deno bundle` arguments that build the client into `outJs` (run from the repo root).
 * `--no-config` keeps the server-side npm imports and their Node types out of the build.
 */
export function bundleArgs(
  outJs: string,
  options: { declaration?: boolean; minify?: boolean } = {},
): string[] {
  return [
    "bundle",
    "--no-config",
    "--platform",
    "browser",
    "--format",
    "esm",
    ...(options.declaration ? ["--declaration"] : []),
    ...(options.minify ? ["--minify"] : []),
    "--output",
    outJs,
    ENTRY,
  ];
}

/** Options of {@linkcode buildBundle}. */
export interface BundleOptions {
  /**
   * Where to write the ES module: a path relative to the repository root, or an absolute path.
   * Default `dist/wasmnet-client.js`.
   */
  output?: string;
  /** Minify (esbuild's `--minify`). Default false. */
  minify?: boolean;
  /**
   * Also write the declarations, `NAME.d.ts` next to `NAME.js`. Default: true for the default
   * output, false for another `output`.
   */
  declaration?: boolean;
  /**
   * Capture `deno bundle`'s output (its progress lines and warnings) instead of passing it to this
   * process's stdout/stderr; it is then only shown in the error thrown on failure. Default false.
   */
  quiet?: boolean;
}

/**
 * Builds the client bundle with `deno bundle` (a subprocess, run from the repository root). The
 * output is deterministic for one Deno version, wherever it is written.
 *
 * @returns the absolute paths written: the module, then the declarations when asked for.
 * @throws {Error} `deno bundle failed (exit N)` when it fails (with its output when `quiet`).
 */
export async function buildBundle(options: BundleOptions = {}): Promise<string[]> {
  const output = options.output ?? OUT_JS;
  const declaration = options.declaration ?? options.output === undefined;
  const result = await new Deno.Command(Deno.execPath(), {
    args: bundleArgs(output, { declaration, minify: options.minify === true }),
    cwd: ROOT,
    stdout: options.quiet ? "piped" : "inherit",
    stderr: options.quiet ? "piped" : "inherit",
  }).output();
  if (result.code !== 0) {
    const dec = new TextDecoder();
    const text = options.quiet
      ? `: ${dec.decode(result.stdout)}${dec.decode(result.stderr)}`.trimEnd()
      : "";
    throw new Error(`deno bundle failed (exit ${result.code})${text}`);
  }
  const js = fileURLToPath(new URL(output, ROOT));
  return declaration ? [js, js.replace(/(\.m?js)?$/, ".d.ts")] : [js];
}

/** The size in bytes of `file` gzip-compressed (the default level of `CompressionStream`). */
async function gzipSize(file: string): Promise<number> {
  const body = (await Deno.open(file)).readable.pipeThrough(new CompressionStream("gzip"));
  return (await new Response(body).arrayBuffer()).byteLength;
}

/**
 * Builds the bundle from command-line arguments: `--minify`, `--output FILE`.
 *
 * @returns the process exit code (0 ok, 1 `deno bundle` failed, 2 bad arguments).
 */
export async function bundle(args: string[]): Promise<number> {
  const options: BundleOptions = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const value = args[i + 1];
    if (arg === "--minify") options.minify = true;
    else if (arg === "--output" && value !== undefined) {
      options.output = value;
      i++;
    } else {
      say(`bundle: unexpected argument ${arg} (expected --minify, --output FILE)`);
      return 2;
    }
  }
  let files: string[];
  try {
    files = await buildBundle(options);
  } catch (e) {
    say((e as Error).message);
    return 1;
  }
  if (options.output === undefined) {
    try {
      files.push(...(await buildNodeBundles({ minify: options.minify === true })));
    } catch (e) {
      say((e as Error).message);
      return 1;
    }
  }
  const root = fileURLToPath(ROOT);
  for (const file of files) {
    const name = file.startsWith(root) ? file.slice(root.length) : file;
    try {
      say(`${name}: ${(await Deno.stat(file)).size} bytes (gzip ${await gzipSize(file)})`);
    } catch {
      say(name); // outside the repository: no read permission to stat it
    }
  }
  return 0;
}

// ── dist/node: Node's net, tls, dns, dgram ───────────────────────────────────────────────────────

/** The modules of `src/node/` built into `dist/node/NAME.js` (+ `NAME.d.ts`). */
export const NODE_MODULES: readonly ["net", "tls", "dns", "dgram"] = ["net", "tls", "dns", "dgram"];

/**
 * The folder of the esbuild recipe (`examples/node-in-browser/`): its `package.json` pins esbuild
 * and the npm packages `src/node/` bundles in (`readable-stream`, `buffer`, `events`), its
 * `deno.lock` their exact tarballs; `deno install --frozen` there makes the `node_modules/` the
 * builds resolve from.
 */
export const RECIPE_DIR: string = fileURLToPath(new URL("examples/node-in-browser/", ROOT));

/**
 * The npm packages `src/node/` imports and bundles in, resolved from {@linkcode RECIPE_DIR}'s
 * `node_modules/` (`buffer` is not bundled: see {@linkcode buildNodeBundles}).
 */
const NODE_NPM = /^(readable-stream|events)$/;

/** `buffer` as any module of the graph asks for it (`require("buffer")`, `"node:buffer"`). */
const BUFFER = /^(node:)?buffer$/;

/**
 * Installs the recipe's npm packages into `examples/node-in-browser/node_modules/` with
 * `deno install --frozen` (exactly the versions of its `deno.lock`, from the npm registry or
 * Deno's cache). Quick when they are there already.
 *
 * @throws {Error} `deno install failed (exit N): OUTPUT` (a lockfile out of date, no registry).
 */
export async function installRecipe(): Promise<void> {
  const result = await new Deno.Command(Deno.execPath(), {
    args: ["install", "--frozen", "--quiet"],
    cwd: RECIPE_DIR,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (result.code !== 0) {
    const dec = new TextDecoder();
    throw new Error(
      `deno install failed (exit ${result.code}) in ${RECIPE_DIR}: ` +
        `${dec.decode(result.stdout)}${dec.decode(result.stderr)}`.trimEnd(),
    );
  }
}

/** Options of {@linkcode buildNodeBundles}. */
export interface NodeBundleOptions {
  /**
   * The folder to write into: a path relative to the repository root, or absolute. Default
   * `dist/node`.
   */
  outdir?: string;
  /** Minify. Default false. */
  minify?: boolean;
}

/**
 * Builds `dist/node/{net,tls,dns,dgram}.js` from `src/node/` with npm esbuild (the recipe's
 * pinned version; {@linkcode installRecipe} first), and a declaration file next to each.
 *
 * Each module is an ES module for browsers with named exports and a default export (the module
 * object Node's CommonJS `require("net")` returns). Code the four share — the wasmnet client
 * and its one configuration, npm `readable-stream` 4 and `events` 3 (bundled in) — sits in
 * `_shared-HASH.js` chunks beside them, imported by relative paths: so `configure()` through any
 * of the four configures all, a `net.Socket` is the class `tls.connect({ socket })` expects, and
 * nothing is bundled twice. Their one bare import is the Node builtin `buffer`, which the
 * application's bundler provides (every Node-builtins polyfill does): the `Buffer`s their sockets
 * emit are then the application's own class, so libraries' `instanceof Buffer` checks hold
 * (ioredis turns replies into strings only for `instanceof Buffer` values). The copy of `events`
 * they carry is separate from the application's; nothing checks `instanceof EventEmitter`
 * across them.
 *
 * The declarations are Node's (`export * from "node:net"` and so on, from `@types/node`) plus
 * `configure`: the modules follow Node 22's API, and what they leave out is listed in each
 * module's documentation (`src/node/*.ts`).
 *
 * @returns the absolute paths written: each module and its declarations, then the shared chunks.
 * @throws {Error} from {@linkcode installRecipe}, or esbuild's build failure.
 */
export async function buildNodeBundles(options: NodeBundleOptions = {}): Promise<string[]> {
  await installRecipe();
  const outdir = fileURLToPath(new URL(`${options.outdir ?? "dist/node"}/`, ROOT));
  const root = fileURLToPath(ROOT);
  // Chunks of an earlier build (their names are hashes of their contents).
  try {
    for await (const entry of Deno.readDir(outdir)) {
      if (/^_shared-\w+\.js$/.test(entry.name)) await Deno.remove(`${outdir}${entry.name}`);
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  // Imported here, not at the top: the client build and the demo build never load esbuild.
  const esbuild: typeof Esbuild = await import("esbuild");
  const fromRecipe: Esbuild.Plugin = {
    name: "wasmnet-node-npm",
    setup(build): void {
      build.onResolve({ filter: NODE_NPM }, (args) => {
        if (args.pluginData === "wasmnet-node-npm") return undefined;
        return build.resolve(args.path, {
          kind: args.kind,
          resolveDir: RECIPE_DIR,
          pluginData: "wasmnet-node-npm",
        });
      });
      // Every `buffer` → one ES module re-exporting the application's `buffer` (left as a bare
      // import). Through it, CommonJS `require("buffer")` in readable-stream gets a static import
      // too (esbuild turns a require of an external into a `require()` call browsers lack).
      build.onResolve(
        { filter: BUFFER },
        (args) =>
          args.namespace === "wasmnet-buffer"
            ? { path: "buffer", external: true }
            : { path: "buffer", namespace: "wasmnet-buffer" },
      );
      build.onLoad({ filter: /.*/, namespace: "wasmnet-buffer" }, () => ({
        contents: 'export * from "buffer";\n',
        loader: "js",
      }));
    },
  };
  let result: Esbuild.BuildResult<{ metafile: true }>;
  try {
    result = await esbuild.build({
      absWorkingDir: root,
      entryPoints: NODE_MODULES.map((name) => ({ in: `src/node/${name}.ts`, out: name })),
      outdir,
      bundle: true,
      splitting: true,
      format: "esm",
      platform: "browser",
      target: "es2022",
      chunkNames: "_shared-[hash]",
      minify: options.minify === true,
      legalComments: "inline",
      metafile: true,
      logLevel: "silent",
      plugins: [fromRecipe],
    });
  } catch (e) {
    throw new Error(`esbuild failed for dist/node: ${(e as Error).message}`);
  } finally {
    await esbuild.stop();
  }
  const written: string[] = [];
  for (const name of NODE_MODULES) {
    const js = `${outdir}${name}.js`;
    const dts = `${outdir}${name}.d.ts`;
    await Deno.writeTextFile(dts, nodeDeclaration(name));
    written.push(js, dts);
  }
  for (const file of Object.keys(result.metafile.outputs)) {
    const abs = fileURLToPath(new URL(file, ROOT));
    if (!written.includes(abs)) written.push(abs);
  }
  return written;
}

/** Declarations of `dist/node/NAME.js`: Node's types of the module, plus `configure`. */
function nodeDeclaration(name: string): string {
  return `// Generated by \`deno task bundle\` (src/client/bundle.ts). wasmnet's \`${name}\`: Node 22's API
// over a wasmnet server; its types are Node's (@types/node), plus configure().
import * as node from "node:${name}";
export * from "node:${name}";
/** Options of {@link configure} (shared by net, tls, dns and dgram). */
export interface ConfigureOptions {
  /** WebSocket URL of the wasmnet server (ws: or wss:); the client is made on first use. */
  url?: string | URL;
  /** Binary frames (default true) or JSON text frames. */
  binary?: boolean;
  /** A WasmnetClient (dist/wasmnet-client.js) to use instead of one made from url. */
  client?: unknown;
}
/**
 * Sets the wasmnet server of net, tls, dns and dgram (one shared client). Synchronous; nothing
 * connects until the first use. Without it, globalThis.WASMNET_URL is used.
 * @throws {TypeError} when url and client are both given.
 */
export declare function configure(options: ConfigureOptions): void;
declare const _default: typeof node & { configure: typeof configure };
export default _default;
`;
}

if (import.meta.main) Deno.exit(await bundle(Deno.args));
