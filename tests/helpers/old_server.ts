/**
 * A server without the wasmnet protocol extensions (`start_tls`, `shutdown`, `ping`), for tests of how
 * clients behave against old servers: a WebSocket relay in front of the real server that answers
 * those ops as such a server does and relays everything else.
 *
 * @module
 */
import { decodeRequest, encodeEvent, type Framing, type Request } from "../../src/protocol/mod.ts";

/** The binary message type of each extension op (README "Protocol extensions"). */
const EXTENSION_TYPES: Record<string, string> = { start_tls: "0a", shutdown: "0b", ping: "0c" };

/** How a server without an extension words its refusal of that op (id 0). */
export const OLD_SERVERS = {
  // This server before the extension (and the binary text of wasmnet 0.1.3).
  "wasmnet-deno": (op: string, framing: Framing): string =>
    framing === "json"
      ? `invalid request: unknown op ${JSON.stringify(op)}`
      : `invalid binary frame: unknown message type: 0x${EXTENSION_TYPES[op]}`,
  // wasmnet 0.1.3 (Rust, serde) for JSON: the column is just past `{"op":"<op>"` and one more.
  "wasmnet 0.1.3": (op: string, framing: Framing): string =>
    framing === "json"
      ? `invalid request: unknown variant \`${op}\`, expected one of \`connect\`, \`connect_tls\`, ` +
        "`connect_udp`, `bind`, `listen`, `send`, `send_to`, `close`, `resolve` at line 1 column " +
        (10 + op.length)
      : `invalid binary frame: unknown message type: 0x${EXTENSION_TYPES[op]}`,
} as const;

/**
 * A WebSocket relay in front of the real server that plays a server without the extensions
 * `ops` (default `start_tls` and `shutdown`): it answers them with `old(op, framing)` for id 0,
 * as such a server does, and relays everything else both ways.
 */
export function startOldServer(
  upstream: string,
  old: (op: string, framing: Framing) => string,
  ops: readonly string[] = ["start_tls", "shutdown"],
): Promise<{ url: string; refused: Request[] } & AsyncDisposable> {
  const refused: Request[] = [];
  const sockets = new Set<WebSocket>();
  const closedAll = new Set<Promise<void>>();
  const track = (ws: WebSocket): void => {
    sockets.add(ws);
    closedAll.add(new Promise((resolve) => ws.addEventListener("close", () => resolve())));
  };
  return new Promise((resolve) => {
    const server = Deno.serve({
      hostname: "127.0.0.1",
      port: 0,
      onListen: (addr) =>
        resolve({
          url: `ws://127.0.0.1:${addr.port}/`,
          refused,
          async [Symbol.asyncDispose](): Promise<void> {
            for (const ws of sockets) ws.close();
            await Promise.all([...closedAll]);
            await server.shutdown();
          },
        }),
    }, (req) => {
      const { socket: down, response } = Deno.upgradeWebSocket(req);
      const up = new WebSocket(upstream);
      up.binaryType = "arraybuffer";
      down.binaryType = "arraybuffer";
      track(down);
      track(up);
      const early: (string | ArrayBuffer)[] = [];
      up.onopen = (): void => {
        for (const m of early.splice(0)) up.send(m);
      };
      up.onmessage = (e): void => {
        if (down.readyState === WebSocket.OPEN) down.send(e.data);
      };
      up.onclose = (): void => down.close();
      down.onclose = (): void => up.close();
      down.onmessage = (e): void => {
        const data = e.data as string | ArrayBuffer;
        const framing: Framing = typeof data === "string" ? "json" : "binary";
        const req = decodeRequest(typeof data === "string" ? data : new Uint8Array(data));
        if (ops.includes(req.op)) {
          refused.push(req);
          down.send(encodeEvent({ ev: "error", id: 0, msg: old(req.op, framing) }, framing));
          return;
        }
        if (up.readyState === WebSocket.OPEN) up.send(data);
        else early.push(data);
      };
      return response;
    });
  });
}
