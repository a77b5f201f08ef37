/**
 * Helpers for the W.A.T.E.R. tests: modules built from WAT source in the repository (the
 * examples, and test modules derived from `examples/water/plain.wat`), a capturing TCP tap, a
 * log capture, and the optional Go reference test modules.
 *
 * @module
 */
import { bundleForBrowser } from "./bundle.ts";
import { buildExample, watToWasm } from "../../examples/water/build.ts";
import { setLogOutput } from "../../src/log/mod.ts";

/** Builds `examples/water/NAME.wat`. */
export function exampleModule(name: "plain" | "xor"): Promise<Uint8Array<ArrayBuffer>> {
  return buildExample(name);
}

const PLAIN_WAT = new URL("../../examples/water/plain.wat", import.meta.url);

/** Builds plain.wat after `edit`, which must change it (asserted). */
async function plainWith(
  name: string,
  edit: (wat: string) => string,
): Promise<Uint8Array<ArrayBuffer>> {
  const wat = await Deno.readTextFile(PLAIN_WAT);
  const edited = edit(wat);
  if (edited === wat) throw new Error(`${name}: the edit of plain.wat changed nothing`);
  return await watToWasm(`${name}.wat`, edited);
}

function replaceOnce(text: string, from: string, to: string): string {
  const at = text.indexOf(from);
  if (at < 0 || text.indexOf(from, at + 1) >= 0) throw new Error(`not exactly once: ${from}`);
  return text.slice(0, at) + to + text.slice(at + from.length);
}

/** The byte that makes {@linkcode badModule} trap. */
export const TRAP_BYTE = 0xff;
/** The byte that makes {@linkcode badModule} spin forever inside `watm_start_v1`. */
export const SPIN_BYTE = 0xfe;

/**
 * plain.wat that traps (`unreachable`) when a read starts with {@linkcode TRAP_BYTE} and spins
 * forever (never returning, ignoring its control pipe) when one starts with
 * {@linkcode SPIN_BYTE}; otherwise a pass-through.
 */
export function badModule(): Promise<Uint8Array<ArrayBuffer>> {
  return plainWith("bad", (wat) =>
    replaceOnce(
      wat,
      "      (if (i32.eqz (local.get $n)) (then (return (i32.const -1))))\n",
      "      (if (i32.eqz (local.get $n)) (then (return (i32.const -1))))\n" +
        `      (if (i32.eq (i32.load8_u (i32.const 4096)) (i32.const ${TRAP_BYTE})) (then unreachable))\n` +
        `      (if (i32.eq (i32.load8_u (i32.const 4096)) (i32.const ${SPIN_BYTE})) (then (loop $spin (br $spin))))\n`,
    ));
}

/** plain.wat whose `watm_init_v1` never returns. */
export function initSpinModule(): Promise<Uint8Array<ArrayBuffer>> {
  return plainWith("init_spin", (wat) =>
    replaceOnce(
      wat,
      '(func (export "watm_init_v1") (result i32)\n    (i32.const 0))',
      '(func (export "watm_init_v1") (result i32)\n    (loop $spin (br $spin))\n    (i32.const 0))',
    ));
}

/**
 * plain.wat as a dialer that picks its own address: no `watm_dial_v1`, and its
 * `watm_dial_fixed_v1` calls `water_dial("tcp", address)`.
 */
export function dialAddressModule(address: string): Promise<Uint8Array<ArrayBuffer>> {
  return plainWith("dial_address", (wat) => {
    let out = replaceOnce(
      wat,
      '  (import "env" "water_dial_fixed"',
      '  (import "env" "water_dial" (func $water_dial (param i32 i32 i32 i32) (result i32)))\n' +
        '  (import "env" "water_dial_fixed"',
    );
    out = replaceOnce(
      out,
      '  (memory (export "memory") 2)\n',
      '  (memory (export "memory") 2)\n' +
        '  (data (i32.const 1024) "tcp")\n' +
        `  (data (i32.const 1100) "${address}")\n` +
        '  (data (i32.const 1056) "\\00\\04\\00\\00\\03\\00\\00\\00")\n' +
        `  (data (i32.const 1064) "\\4c\\04\\00\\00\\${
          address.length.toString(16).padStart(2, "0")
        }\\00\\00\\00")\n`,
    );
    out = replaceOnce(
      out,
      '  (func (export "watm_dial_v1") (param $internal i32) (result i32)\n    (call $dial (local.get $internal)))\n',
      "",
    );
    return replaceOnce(
      out,
      "    (local.set $fd (call $water_dial_fixed))\n    (if (i32.lt_s (local.get $fd) (i32.const 0)) (then (return (local.get $fd))))\n    (global.set $dst",
      "    (local.set $fd (call $water_dial (i32.const 1056) (i32.const 1) (i32.const 1064) (i32.const 1)))\n    (if (i32.lt_s (local.get $fd) (i32.const 0)) (then (return (local.get $fd))))\n    (global.set $dst",
    );
  });
}

/** plain.wat whose dialer calls `water_dial_fixed` twice (keeps the second connection). */
export function doubleDialModule(): Promise<Uint8Array<ArrayBuffer>> {
  return plainWith("double_dial", (wat) =>
    replaceOnce(
      wat,
      "    (global.set $src (local.get $internal))\n    (local.set $fd (call $water_dial_fixed))\n",
      "    (global.set $src (local.get $internal))\n    (drop (call $water_dial_fixed))\n" +
        "    (local.set $fd (call $water_dial_fixed))\n",
    ));
}

/** A module with `watm_init_v1` and memory only (lacks the other v1 exports). */
export function missingExportsModule(): Promise<Uint8Array<ArrayBuffer>> {
  return watToWasm(
    "missing.wat",
    '(module (memory (export "memory") 1) (func (export "watm_init_v1") (result i32) (i32.const 0)))',
  );
}

/** A WATM v0-shaped module (exports `_water_v0`). */
export function v0Module(): Promise<Uint8Array<ArrayBuffer>> {
  return watToWasm(
    "v0.wat",
    '(module (memory (export "memory") 1) (func (export "_water_v0") (result i32) (i32.const 0)))',
  );
}

/** A running capturing TCP tap: forwards to a target and records both directions. */
export interface Tap extends AsyncDisposable {
  /** Its port on 127.0.0.1. */
  readonly port: number;
  /** Bytes seen client → target, over all connections, in order per connection. */
  readonly up: () => Uint8Array;
  /** Bytes seen target → client. */
  readonly down: () => Uint8Array;
  /** Connections accepted. */
  readonly connections: () => number;
  /** Stops and closes everything. */
  close(): Promise<void>;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Starts a TCP forwarder on 127.0.0.1 port 0 to `127.0.0.1:targetPort` that records bytes. */
export function startTap(targetPort: number): Tap {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const up: Uint8Array[] = [];
  const down: Uint8Array[] = [];
  const conns = new Set<Deno.Conn>();
  const tasks = new Set<Promise<void>>();
  let accepted = 0;
  const pipe = async (from: Deno.Conn, to: Deno.Conn, log: Uint8Array[]): Promise<void> => {
    const buf = new Uint8Array(65536);
    try {
      for (;;) {
        const n = await from.read(buf);
        if (n === null) break;
        log.push(buf.slice(0, n));
        let at = 0;
        while (at < n) at += await to.write(buf.subarray(at, n));
      }
    } catch {
      // closed
    }
    for (const c of [from, to]) {
      try {
        c.close();
      } catch {
        // already closed
      }
      conns.delete(c);
    }
  };
  const loop = (async () => {
    for (;;) {
      let client: Deno.Conn;
      try {
        client = await listener.accept();
      } catch {
        return;
      }
      accepted++;
      let target: Deno.Conn;
      try {
        target = await Deno.connect({ hostname: "127.0.0.1", port: targetPort });
      } catch {
        client.close();
        continue;
      }
      conns.add(client).add(target);
      const t = Promise.all([pipe(client, target, up), pipe(target, client, down)]).then(() => {});
      tasks.add(t);
      void t.finally(() => tasks.delete(t));
    }
  })();
  const close = async (): Promise<void> => {
    try {
      listener.close();
    } catch {
      // already closed
    }
    await loop;
    for (const c of conns) {
      try {
        c.close();
      } catch {
        // already closed
      }
    }
    await Promise.all([...tasks]);
  };
  return {
    port: (listener.addr as Deno.NetAddr).port,
    up: () => concat(up),
    down: () => concat(down),
    connections: () => accepted,
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** Collects log lines while `fn` runs (the logger's output is restored after). */
export async function captureLogs<T>(fn: (lines: string[]) => Promise<T>): Promise<T> {
  const lines: string[] = [];
  setLogOutput((_stream, line) => void lines.push(line));
  try {
    return await fn(lines);
  } finally {
    setLogOutput(undefined);
  }
}

/** Where the Go reference's test modules may be (never committed): `$WASMNET_WATER_TESTDATA`. */
export const GO_TESTDATA: string = Deno.env.get("WASMNET_WATER_TESTDATA") ??
  new URL("../../.tools/water-testdata/", import.meta.url).pathname;

/**
 * Reads `NAME.wasm` of the Go reference's `transport/v1/testdata/` (TinyGo builds) from
 * {@linkcode GO_TESTDATA}, or resolves undefined after printing why the test using it skips.
 */
export async function goTestModule(
  name: "plain" | "reverse",
): Promise<Uint8Array<ArrayBuffer> | undefined> {
  const file = `${GO_TESTDATA.replace(/\/?$/, "/")}${name}.wasm`;
  try {
    return new Uint8Array(await Deno.readFile(file));
  } catch {
    // deno-lint-ignore no-console
    console.log(
      `SKIP: ${file} is absent (copy refraction-networking/water transport/v1/testdata/${name}.wasm ` +
        "there, or set WASMNET_WATER_TESTDATA; it is never committed)",
    );
    return undefined;
  }
}

/** Reads exactly `n` bytes from `conn` (fewer at end of stream). */
export async function readN(conn: Deno.Conn, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let got = 0;
  while (got < n) {
    const k = await conn.read(out.subarray(got));
    if (k === null) break;
    got += k;
  }
  return out.subarray(0, got);
}

/** Writes all of `data` to `conn`. */
export async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let at = 0;
  while (at < data.length) at += await conn.write(data.subarray(at));
}

/** `data` XORed with the repeating `key`. */
export function xor(data: Uint8Array, key: Uint8Array): Uint8Array {
  return data.map((b, i) => b ^ (key[i % key.length] ?? 0));
}

/**
 * Bundles `src/wasm/water/browser.ts` (the page's module) and `src/wasm/water/_worker.ts` (its
 * worker) for browsers with `deno bundle` into `dir`; resolves their source texts.
 *
 * @throws {AssertionError} with `deno bundle`'s stderr when bundling fails.
 */
export async function bundleWater(dir: string): Promise<{ host: string; worker: string }> {
  return {
    host: await bundleForBrowser("src/wasm/water/browser.ts", `${dir}/water.js`),
    worker: await bundleForBrowser("src/wasm/water/_worker.ts", `${dir}/water-worker.js`),
  };
}
