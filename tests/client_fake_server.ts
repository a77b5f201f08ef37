/**
 * A tiny scripted wasmnet server for client unit tests: real `Deno.serve` + WebSocket on loopback
 * port 0, speaking the protocol for a few ops with canned answers (no real sockets behind it).
 * It answers in the framing of the most recent request, as the real server does.
 *
 * Scripted behaviour:
 * - `connect`/`connect_tls` by port: 1 → `denied`; 2 → `error`; 3 → no answer until `close`;
 *   4 → the server closes the WebSocket; 5 → `connected`, then `error` after 20 ms;
 *   6 → `connected`, then 64 × 64 KiB of `data`; any other → `connected`.
 * - `send` on a TCP id echoes `data`; on a UDP id answers `data_from` 192.0.2.7:53.
 * - `send_to` echoes as `data_from` with the request's addr and port.
 * - `close` answers `closed`.
 * - `resolve`: `example.test` → two addresses; `denied.test` → `denied`; `unknown.test` → first a
 *   `data` event for id 999 999, then `resolved []`; `slow.test` → no answer; else `error`.
 * - `bind` → `listening` port 4242. `listen` → `listening` port 0, then `accepted` with conn_id
 *   2^52 + 1 from `192.0.2.9:50000`, then `data` "hello" on that conn_id.
 * - `connect_udp` → `udp_bound` port 5353.
 *
 * @module
 */
import {
  decodeRequest,
  encodeEvent,
  type Framing,
  type Request,
  type WireEvent,
} from "../src/protocol/mod.ts";

/** A running fake server. */
export interface FakeServer extends AsyncDisposable {
  /** `ws://127.0.0.1:port/`. */
  readonly url: string;
  /** Every request received, in order, with its framing. */
  readonly requests: Array<{ req: Request; framing: Framing }>;
  /** Stops the server and waits until it and its sockets are closed. */
  close(): Promise<void>;
}

/** conn_id the fake assigns to its accepted connection: the first server id (2^52 + 1). */
export const FAKE_CONN_ID = 2 ** 52 + 1;

/** Starts the fake server on 127.0.0.1, port 0. */
export function startFakeServer(): Promise<FakeServer> {
  const requests: Array<{ req: Request; framing: Framing }> = [];
  const sockets = new Set<WebSocket>();
  const timers = new Set<ReturnType<typeof setTimeout>>();
  const later = (ms: number, fn: () => void): void => {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
  };

  const session = (ws: WebSocket): void => {
    let framing: Framing = "json";
    const kinds = new Map<number, "tcp" | "udp" | "listener">();
    const pending = new Set<number>();
    const emit = (ev: WireEvent): void => {
      if (ws.readyState === WebSocket.OPEN) ws.send(encodeEvent(ev, framing));
    };
    ws.binaryType = "arraybuffer";
    ws.onmessage = (e: MessageEvent): void => {
      const raw = e.data;
      framing = typeof raw === "string" ? "json" : "binary";
      const req = decodeRequest(typeof raw === "string" ? raw : new Uint8Array(raw));
      requests.push({ req, framing });
      const id = req.id;
      switch (req.op) {
        case "connect":
        case "connect_tls":
          kinds.set(id, "tcp");
          if (req.port === 1) return emit({ ev: "denied", id, msg: "denied by policy" });
          if (req.port === 2) return emit({ ev: "error", id, msg: "connection refused" });
          if (req.port === 3) return void pending.add(id);
          if (req.port === 4) return ws.close(1011, "scripted");
          emit({ ev: "connected", id });
          if (req.port === 5) later(20, () => emit({ ev: "error", id, msg: "connection reset" }));
          if (req.port === 6) {
            for (let i = 0; i < 64; i++) {
              emit({ ev: "data", id, data: new Uint8Array(64 * 1024).fill(i) });
            }
          }
          return;
        case "send":
          if (kinds.get(id) === "udp") {
            return emit({ ev: "data_from", id, data: req.data, addr: "192.0.2.7", port: 53 });
          }
          return emit({ ev: "data", id, data: req.data });
        case "send_to":
          return emit({ ev: "data_from", id, data: req.data, addr: req.addr, port: req.port });
        case "close":
          pending.delete(id);
          kinds.delete(id);
          return emit({ ev: "closed", id });
        case "resolve":
          if (req.name === "example.test") {
            return emit({ ev: "resolved", id, addrs: ["192.0.2.1", "2001:db8::1"] });
          }
          if (req.name === "denied.test") return emit({ ev: "denied", id, msg: "name denied" });
          if (req.name === "unknown.test") {
            emit({ ev: "data", id: 999_999, data: new Uint8Array([1]) });
            return emit({ ev: "resolved", id, addrs: [] });
          }
          if (req.name === "slow.test") return;
          return emit({ ev: "error", id, msg: `DNS lookup failed for "${req.name}"` });
        case "bind":
          kinds.set(id, "listener");
          return emit({ ev: "listening", id, port: 4242 });
        case "listen":
          emit({ ev: "listening", id, port: 0 });
          emit({ ev: "accepted", id, conn_id: FAKE_CONN_ID, remote: "192.0.2.9:50000" });
          kinds.set(FAKE_CONN_ID, "tcp");
          return emit({ ev: "data", id: FAKE_CONN_ID, data: new TextEncoder().encode("hello") });
        case "connect_udp":
          kinds.set(id, "udp");
          return emit({ ev: "udp_bound", id, port: 5353 });
      }
    };
    ws.onclose = (): void => void sockets.delete(ws);
  };

  return new Promise((resolve) => {
    const server = Deno.serve({
      hostname: "127.0.0.1",
      port: 0,
      onListen: (addr) => {
        const close = async (): Promise<void> => {
          for (const t of timers) clearTimeout(t);
          timers.clear();
          for (const ws of sockets) ws.close();
          await server.shutdown();
        };
        resolve({
          url: `ws://127.0.0.1:${addr.port}/`,
          requests,
          close,
          [Symbol.asyncDispose]: close,
        });
      },
    }, (req) => {
      const { socket, response } = Deno.upgradeWebSocket(req);
      sockets.add(socket);
      session(socket);
      return response;
    });
  });
}
