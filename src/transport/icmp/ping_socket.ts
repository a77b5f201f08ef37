/**
 * The last-resort ICMP mechanism: the system `ping` (iputils, or busybox), one process per
 * request, its output read for the round-trip time. It works where `ping` works (setuid or with
 * `cap_net_raw`), but cannot choose the payload bytes or the identifier: a request carries
 * `data.length` bytes (at least {@linkcode PING_MIN_DATA}) of `ping`'s own (its timestamp, then
 * its pattern set from the first 16 bytes of `data`), `ping` checks that the reply echoes them,
 * and the reply reports `data` as sent, `id` 0 and `seq` as requested.
 *
 * @module
 */
import type { IcmpEchoReply, IcmpSocket } from "../types.ts";
import { BadResource } from "../errors.ts";
import { ECHO_REPLY, MAX_ECHO_DATA } from "./packet.ts";

/** What a finished `ping` process gave. */
export interface PingRun {
  /** Exit code (0: a reply came). */
  readonly code: number;
  /** Its standard output. */
  readonly stdout: string;
}

/**
 * Runs the system `ping` with `args` (in the C locale) and resolves once it exits; `signal`
 * kills it. A runtime provides it (`Deno.Command`, `node:child_process`).
 *
 * @throws {Error} (rejects) when the process cannot be started.
 */
export type PingRunner = (args: readonly string[], signal: AbortSignal) => Promise<PingRun>;

/**
 * Fewest payload bytes a `ping` request carries: `ping` measures the round trip only when its
 * timestamp (a 16-byte `struct timeval`) fits in the payload.
 */
export const PING_MIN_DATA = 16;

/** How long one `ping` process waits for its reply, in seconds (`-W`). */
export const PING_WAIT_SECONDS = 10;

/**
 * Reads the first reply line of `ping`'s output: `64 bytes from 127.0.0.1: icmp_seq=1 ttl=64
 * time=0.045 ms` (iputils; `::1:` for IPv6; busybox writes `seq=`).
 *
 * @returns the replying address and the round-trip time in ms, or undefined without a reply line.
 */
export function parsePingReply(stdout: string): { source: string; rttMs: number } | undefined {
  const m = /bytes from (\S+?):? (?:icmp_)?seq=\d+ .*?time[=<] ?([\d.]+) ?ms/.exec(stdout);
  if (!m || m[1] === undefined || m[2] === undefined) return undefined;
  const rttMs = Number(m[2]);
  return Number.isFinite(rttMs) ? { source: m[1], rttMs } : undefined;
}

/** The `ping` arguments for one request of `data.length` bytes to `ip`. */
export function pingArgs(family: 4 | 6, ip: string, data: Uint8Array): string[] {
  const args = [`-${family}`, "-n", "-c", "1", "-W", String(PING_WAIT_SECONDS)];
  args.push("-s", String(Math.max(data.byteLength, PING_MIN_DATA)));
  if (data.byteLength > 0) {
    const pattern = Array.from(data.subarray(0, 16), (b) => b.toString(16).padStart(2, "0"));
    args.push("-p", pattern.join(""));
  }
  args.push(ip);
  return args;
}

interface Pending {
  readonly reply: Promise<IcmpEchoReply | undefined>;
  readonly abort: AbortController;
}

/** An {@linkcode IcmpSocket} that runs the system `ping` for each request. */
export class PingProcessSocket implements IcmpSocket {
  /** Always `ping`. */
  readonly mechanism = "ping";
  readonly #family: 4 | 6;
  readonly #run: PingRunner;
  readonly #pending: Pending[] = [];
  readonly #closing = new AbortController();
  #closed = false;

  /**
   * @param family the address family of every request (`-4` / `-6`).
   * @param run starts one `ping` (see {@linkcode PingRunner}).
   */
  constructor(family: 4 | 6, run: PingRunner) {
    this.#family = family;
    this.#run = run;
  }

  /**
   * Starts one `ping` process for `ip`; its reply (or none) is taken by `receive`.
   *
   * @throws {BadResource} once closed; {@linkcode RangeError} for a bad `seq` or too much data;
   *   {@linkcode TypeError} when `ip` is not an address of the family.
   */
  send(ip: string, seq: number, data: Uint8Array): Promise<void> {
    if (this.#closed) return Promise.reject(new BadResource("the ICMP socket is closed"));
    if (!Number.isInteger(seq) || seq < 0 || seq > 0xffff) {
      return Promise.reject(new RangeError(`ICMP sequence number must be 0 to 65535, got ${seq}`));
    }
    if (data.byteLength > MAX_ECHO_DATA) {
      return Promise.reject(
        new RangeError(`ICMP echo data of ${data.byteLength} bytes exceeds ${MAX_ECHO_DATA}`),
      );
    }
    if (!isAddressOf(this.#family, ip)) {
      return Promise.reject(
        new TypeError(`${JSON.stringify(ip)} is not an IPv${this.#family} address`),
      );
    }
    const abort = new AbortController();
    const sent = data.slice();
    const started = this.#run(pingArgs(this.#family, ip, sent), abort.signal);
    const reply = started.then((run): IcmpEchoReply | undefined => {
      const parsed = run.code === 0 ? parsePingReply(run.stdout) : undefined;
      if (!parsed) return undefined;
      return {
        source: parsed.source,
        type: ECHO_REPLY[this.#family],
        code: 0,
        id: 0,
        seq,
        data: sent,
        rttMs: parsed.rttMs,
      };
    }, () => undefined);
    this.#pending.push({ reply, abort });
    return Promise.resolve();
  }

  /**
   * The next reply of a running `ping`, waiting at most `timeoutMs`; undefined on timeout,
   * abort, close, or when no `ping` runs. On timeout, abort or close every running `ping` is
   * killed (its request abandoned) and the call resolves once they have exited.
   *
   * @throws {BadResource} when called after `close()`.
   */
  async receive(timeoutMs: number, signal?: AbortSignal): Promise<IcmpEchoReply | undefined> {
    if (this.#closed) throw new BadResource("the ICMP socket is closed");
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stop = new Promise<"stop">((resolve) => {
      timer = setTimeout(() => resolve("stop"), Math.max(0, timeoutMs));
      const onStop = (): void => resolve("stop");
      signal?.addEventListener("abort", onStop, { once: true });
      this.#closing.signal.addEventListener("abort", onStop, { once: true });
      if (signal?.aborted) resolve("stop");
    });
    try {
      while (this.#pending.length > 0 && !this.#closed) {
        const settled = this.#pending.map((p) => p.reply.then((r) => ({ p, r })));
        const first = await Promise.race([stop, ...settled]);
        if (first === "stop") {
          // A request whose reply did not come in time is abandoned: its `ping` is killed, and
          // the receive resolves once every such process has exited (none outlives the wait).
          const abandoned = this.#pending.splice(0);
          for (const p of abandoned) p.abort.abort();
          await Promise.all(abandoned.map((p) => p.reply));
          return undefined;
        }
        this.#pending.splice(this.#pending.indexOf(first.p), 1);
        if (first.r) return first.r;
      }
      return undefined;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Kills every running `ping`; pending receives resolve undefined (once those processes have
   * exited). Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closing.abort();
    for (const p of this.#pending) p.abort.abort();
  }

  /** Resolves once every `ping` this socket started has exited (for tests and clean shutdown). */
  async settled(): Promise<void> {
    await Promise.all(this.#pending.map((p) => p.reply));
  }
}

/** Whether `ip` is an IPv4 (family 4) or IPv6 (family 6) address literal. */
function isAddressOf(family: 4 | 6, ip: string): boolean {
  if (family === 4) return /^\d{1,3}(?:\.\d{1,3}){3}$/.test(ip);
  return ip.includes(":") && /^[0-9a-fA-F:.]+$/.test(ip);
}
