/**
 * A tiny authoritative DNS server on UDP loopback, for tests that need a real
 * resolver peer (`Deno.resolveDns(..., { nameServer })`).
 *
 * @module
 */

import { Buffer } from "node:buffer";
// @ts-types="@types/dns-packet"
import * as dnsPacket from "dns-packet";

/** Addresses served for one name. A missing or empty list means NOERROR with no answers. */
export interface DnsRecords {
  /** IPv4 addresses returned for `A` queries. */
  A?: string[];
  /** IPv6 addresses returned for `AAAA` queries. */
  AAAA?: string[];
}

/** Options for {@linkcode startDnsServer}. */
export interface DnsServerOptions {
  /** Names the server knows (case-insensitive, a trailing dot is ignored). Other names get NXDOMAIN. */
  records: Record<string, DnsRecords>;
  /** Names the server never answers, so the client runs into its timeout. */
  silent?: string[];
  /** Loopback address to listen on; defaults to `127.0.0.1`. */
  hostname?: "127.0.0.1" | "::1";
}

/** One question the server received, in arrival order. */
export interface DnsQuestionSeen {
  /** The queried name, lower-cased, without trailing dot. */
  name: string;
  /** The queried record type, e.g. `A` or `AAAA`. */
  type: string;
}

/** A running test DNS server; close it with `await using` or {@linkcode DnsServer.close}. */
export interface DnsServer extends AsyncDisposable {
  /** The address the server listens on. */
  readonly hostname: "127.0.0.1" | "::1";
  /** The UDP port the OS picked. */
  readonly port: number;
  /** How many well-formed query packets arrived (silent names included). */
  readonly queries: number;
  /** Every question received, in arrival order (silent names included). */
  readonly questions: readonly DnsQuestionSeen[];
  /**
   * Stops answering, closes the socket and waits for the receive loop to end. Idempotent.
   * Rejects with the socket error if the receive loop died before close.
   */
  close(): Promise<void>;
}

/** DNS RCODE values used by the server (low four bits of the header flags). */
const RCODE_NOERROR = 0;
const RCODE_NXDOMAIN = 3;
const TTL_SECONDS = 60;

function normalizeName(name: string): string {
  return name.toLowerCase().replace(/\.+$/, "");
}

/**
 * Starts a UDP DNS server on loopback port 0 that answers `A`/`AAAA` queries from
 * `records`: known name with records of the asked type → NOERROR with answers; known
 * name without them → NOERROR, no answers; unknown name → NXDOMAIN; `silent` name →
 * no reply at all. Malformed packets are ignored.
 *
 * @example Resolve a name against the test server
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { startDnsServer } from "./dns_server.ts";
 *
 * await using dns = await startDnsServer({ records: { "echo.test": { A: ["127.0.0.1"] } } });
 * const ips = await Deno.resolveDns("echo.test", "A", {
 *   nameServer: { ipAddr: dns.hostname, port: dns.port },
 * });
 * deepStrictEqual(ips, ["127.0.0.1"]);
 * ```
 */
export function startDnsServer(options: DnsServerOptions): Promise<DnsServer> {
  const hostname = options.hostname ?? "127.0.0.1";
  const records = new Map<string, DnsRecords>();
  for (const [name, value] of Object.entries(options.records)) {
    records.set(normalizeName(name), value);
  }
  const silent = new Set((options.silent ?? []).map(normalizeName));

  const socket = Deno.listenDatagram({ transport: "udp", hostname, port: 0 });
  const addr = socket.addr as Deno.NetAddr;
  const questions: DnsQuestionSeen[] = [];
  let queries = 0;
  let closed = false;

  function answer(query: dnsPacket.DecodedPacket): Uint8Array | undefined {
    const question = query.questions?.[0];
    if (question === undefined) return undefined;
    const name = normalizeName(question.name);
    questions.push({ name, type: question.type });
    if (silent.has(name)) return undefined;
    const known = records.get(name);
    const answers: dnsPacket.Answer[] = [];
    if (known !== undefined && (question.type === "A" || question.type === "AAAA")) {
      for (const data of known[question.type] ?? []) {
        answers.push({ type: question.type, name: question.name, ttl: TTL_SECONDS, data });
      }
    }
    const rcode = known === undefined ? RCODE_NXDOMAIN : RCODE_NOERROR;
    const response = dnsPacket.encode({
      type: "response",
      id: query.id ?? 0,
      // RD is echoed from the query; RA stays off (this server is authoritative only).
      flags: dnsPacket.AUTHORITATIVE_ANSWER |
        (query.flag_rd ? dnsPacket.RECURSION_DESIRED : 0) | rcode,
      questions: [question],
      answers,
    });
    return new Uint8Array(response.buffer, response.byteOffset, response.byteLength);
  }

  async function serve(): Promise<void> {
    while (!closed) {
      let data: Uint8Array;
      let from: Deno.Addr;
      try {
        [data, from] = await socket.receive();
      } catch (err) {
        if (closed) return;
        throw err;
      }
      let query: dnsPacket.DecodedPacket;
      try {
        query = dnsPacket.decode(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
      } catch {
        continue; // not a DNS packet: ignore, like a real server would
      }
      if (query.type !== "query") continue;
      queries++;
      const reply = answer(query);
      if (reply === undefined || closed) continue;
      try {
        await socket.send(reply, from);
      } catch (err) {
        if (closed) return;
        throw err;
      }
    }
  }

  // An unexpected socket error ends the loop; it is rethrown by close() so the test sees it.
  let failure: unknown;
  const loop = serve().catch((err: unknown) => {
    failure = err;
  });
  let closing: Promise<void> | undefined;

  const server: DnsServer = {
    hostname,
    port: addr.port,
    get queries(): number {
      return queries;
    },
    questions,
    close(): Promise<void> {
      closing ??= (async () => {
        closed = true;
        try {
          socket.close();
        } catch {
          // already closed
        }
        await loop;
        if (failure !== undefined) throw failure;
      })();
      return closing;
    },
    [Symbol.asyncDispose](): Promise<void> {
      return server.close();
    },
  };
  return Promise.resolve(server);
}
