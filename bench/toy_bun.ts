/**
 * A hand-written WebSocket-to-TCP relay for Bun, the benchmark's floor for the Bun runtime: what a
 * user writes in an afternoon with `Bun.serve`'s `websocket` handlers and `Bun.connect`, wsproxy
 * style. One WebSocket is one TCP connection to the fixed `--target`; binary messages go upstream
 * as they are, upstream bytes come back as binary messages. Flow control the Bun way: a `send()`
 * that returns -1 pauses the TCP socket until the WebSocket's `drain`; a short TCP `write()`
 * keeps the rest queued until the socket's `drain`. No limits.
 *
 * Usage: `bun run bench/toy_bun.ts --target 127.0.0.1:PORT [-p 0]`; prints
 * `listening addr=127.0.0.1:PORT`.
 *
 * @module
 */
import type { BunApi, BunServerWebSocket, BunSocket } from "./_bun_types.ts";

const Bun = (globalThis as unknown as { Bun: BunApi }).Bun;
const args = (globalThis as unknown as { process: { argv: string[] } }).process.argv;
const arg = (name: string, fallback: string): string => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] ?? fallback : fallback;
};
const [hostname = "127.0.0.1", port = "0"] = arg("--target", "").split(":");
type Relay = { tcp?: BunSocket; queue: Uint8Array[] };

/** Writes the queued messages until the socket takes no more (the rest waits for `drain`). */
function flush(r: Relay): void {
  while (r.tcp && r.queue.length > 0) {
    const head = r.queue[0] as Uint8Array;
    const n = r.tcp.write(head);
    if (n < head.byteLength) return void (r.queue[0] = head.subarray(Math.max(n, 0)));
    r.queue.shift();
  }
}

const server = Bun.serve<Relay>({
  hostname: "127.0.0.1",
  port: Number(arg("-p", "0")),
  fetch: (req, server) =>
    server.upgrade(req, { data: { queue: [] } })
      ? undefined
      : new Response("WebSocket only\n", { status: 426 }),
  websocket: {
    open(ws: BunServerWebSocket<Relay>): void {
      Bun.connect({
        hostname,
        port: Number(port),
        socket: {
          open: (tcp) => flush(Object.assign(ws.data, { tcp })),
          data: (tcp, bytes) => void (ws.send(bytes) === -1 && tcp.pause()),
          drain: () => flush(ws.data),
          close: () => ws.close(),
        },
      }).catch(() => ws.close());
    },
    message(ws, msg): void {
      ws.data.queue.push(typeof msg === "string" ? new TextEncoder().encode(msg) : msg);
      flush(ws.data);
    },
    drain: (ws) => ws.data.tcp?.resume(),
    close: (ws) => ws.data.tcp?.end(),
  },
});
// deno-lint-ignore no-console
console.log(`listening addr=${server.hostname}:${server.port}`);
