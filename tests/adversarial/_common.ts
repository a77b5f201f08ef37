/**
 * Shared pieces of the adversarial suite: a seeded random source, policy files, and the server's
 * figures (`/healthz` latency, open file descriptors) printed as the suite runs.
 *
 * @module
 */
import { delay } from "../helpers/wait.ts";
import type { ServerProcess } from "../helpers/server_process.ts";

/** A deterministic random source (xorshift32), so a failing run can be replayed. */
export class Rng {
  #s: number;
  /** @param seed any non-zero 32-bit integer. */
  constructor(seed: number) {
    this.#s = seed >>> 0 || 1;
  }
  /** An integer in [0, 2^32). */
  u32(): number {
    let x = this.#s;
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    this.#s = x >>> 0;
    return this.#s;
  }
  /** An integer in [0, n). */
  int(n: number): number {
    return this.u32() % n;
  }
  /** One element of `list`. */
  pick<T>(list: readonly T[]): T {
    return list[this.int(list.length)] as T;
  }
}

/** Writes a policy file with `toml` into a new temp dir and returns its path. */
export async function policyFile(toml: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "wasmnet-adversarial-" });
  const path = `${dir}/policy.toml`;
  await Deno.writeTextFile(path, toml);
  return path;
}

/**
 * `GET /healthz` on a connection of its own, closed after the answer (a pooled keep-alive
 * connection would hold an fd in the server until the server's idle timeout — 5 s in Deno's
 * node:http, about 10 s in Bun.serve — which {@linkcode fdsBackTo} counts as a leak); returns
 * the body.
 *
 * @throws {Error} when the answer is not 200.
 */
async function getHealthz(port: number): Promise<string> {
  using client = Deno.createHttpClient({ poolMaxIdlePerHost: 0 });
  const res = await fetch(`http://127.0.0.1:${port}/healthz`, { client });
  const body = await res.text();
  if (!res.ok) throw new Error(`/healthz answered ${res.status}`);
  return body;
}

/** The time `/healthz` takes to answer, in ms. */
export async function healthzMs(port: number): Promise<number> {
  const t0 = performance.now();
  await getHealthz(port);
  return performance.now() - t0;
}

/** `/healthz`'s `sessions` count. */
export async function liveSessions(port: number): Promise<number> {
  return (JSON.parse(await getHealthz(port)) as { sessions: number }).sessions;
}

/**
 * Waits until the server's open file descriptors are back to at most `baseline` (within
 * `timeoutMs`), and returns the last count.
 *
 * @throws {Error} naming the count when they do not come back: a leak.
 */
export async function fdsBackTo(
  server: ServerProcess,
  baseline: number,
  what: string,
  timeoutMs = 10_000,
): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const n = await server.fds();
    if (n <= baseline) return n;
    if (Date.now() > deadline) {
      throw new Error(`${what}: the server holds ${n} fds, ${n - baseline} more than before`);
    }
    await delay(100);
  }
}

/** Prints one figure line of the suite (the issue asks each part to print its figures). */
export function report(line: string): void {
  // deno-lint-ignore no-console -- the suite's figures are its output
  console.log(`  [adversarial] ${line}`);
}
