/**
 * The benchmark's upstream peer, run as its own process: one TCP port whose first byte picks
 * the mode of the connection, plus a WebSocket port that runs the same modes directly on
 * WebSocket messages (the load generator's ceiling, with no proxy in between).
 *
 * Modes (first byte of the stream):
 * - `E` echo: every later byte is written back.
 * - `S` + u64 N: sink. Bytes are counted; at least every {@linkcode ACK_EVERY} bytes, and when N
 *   bytes have arrived, the running total is written back as a u64 big-endian (the client's
 *   end-to-end flow control and timer).
 * - `U` + u64 N: upload. Like `S`, but the total is written back only once N bytes have arrived
 *   (no flow control from the peer: the client's own buffer and TCP are all it has).
 * - `D` + u64 N: writes N bytes, then waits for the client to close.
 *
 * Prints one line `{"tcp":PORT,"ws":PORT}` on stdout once it listens; exits on SIGTERM/SIGINT.
 *
 * @module
 */
import {
  ACK_EVERY,
  CHUNK_BYTES,
  MODE_DOWNLOAD,
  MODE_ECHO,
  MODE_SINK,
  MODE_UPLOAD,
} from "./_wire.ts";

const FILL = new Uint8Array(CHUNK_BYTES).fill(0x61);

/** Applies one mode to a byte stream, whatever the transport. */
class ModeMachine {
  #mode = 0;
  #header = new Uint8Array(8);
  #headerFill = 0;
  #received = 0;
  #lastAck = 0;
  #expected = 0;
  constructor(
    readonly write: (bytes: Uint8Array) => Promise<void> | void,
    readonly download: (n: number) => Promise<void>,
  ) {}

  /** Feeds bytes; resolves once the reply (if any) was written. */
  async feed(bytes: Uint8Array): Promise<void> {
    let at = 0;
    if (this.#mode === 0) {
      if (bytes.byteLength === 0) return;
      this.#mode = bytes[0] ?? 0;
      at = 1;
    }
    if (this.#mode === MODE_ECHO) {
      if (at < bytes.byteLength) await this.write(bytes.subarray(at));
      return;
    }
    if (this.#mode !== MODE_SINK && this.#mode !== MODE_UPLOAD && this.#mode !== MODE_DOWNLOAD) {
      throw new Error(`unknown mode ${this.#mode}`);
    }
    if (this.#headerFill < 8) {
      const take = Math.min(8 - this.#headerFill, bytes.byteLength - at);
      this.#header.set(bytes.subarray(at, at + take), this.#headerFill);
      this.#headerFill += take;
      at += take;
      if (this.#headerFill < 8) return;
      this.#expected = Number(new DataView(this.#header.buffer).getBigUint64(0));
      if (this.#mode === MODE_DOWNLOAD) return await this.download(this.#expected);
    }
    if (this.#mode === MODE_DOWNLOAD) return; // bytes after the request are ignored
    this.#received += bytes.byteLength - at;
    if (
      (this.#mode === MODE_SINK && this.#received - this.#lastAck >= ACK_EVERY) ||
      (this.#received >= this.#expected && this.#lastAck < this.#received)
    ) {
      this.#lastAck = this.#received;
      const ack = new Uint8Array(8);
      new DataView(ack.buffer).setBigUint64(0, BigInt(this.#received));
      await this.write(ack);
    }
  }
}

async function serveTcp(conn: Deno.TcpConn): Promise<void> {
  conn.setNoDelay(true);
  const writeAll = async (bytes: Uint8Array): Promise<void> => {
    let off = 0;
    while (off < bytes.byteLength) off += await conn.write(bytes.subarray(off));
  };
  const machine = new ModeMachine(writeAll, async (n) => {
    let left = n;
    while (left > 0) {
      const k = Math.min(left, FILL.byteLength);
      await writeAll(k === FILL.byteLength ? FILL : FILL.subarray(0, k));
      left -= k;
    }
  });
  const buf = new Uint8Array(256 * 1024);
  try {
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      await machine.feed(buf.subarray(0, n));
    }
  } catch {
    // peer reset: fine for a benchmark peer
  } finally {
    try {
      conn.close();
    } catch {
      // already closed
    }
  }
}

function serveWs(req: Request): Response {
  // The first subprotocol the client asks for is accepted (`binary` from the `ws1` clients: Node's
  // `ws` refuses a handshake that answers none).
  const asked = req.headers.get("sec-websocket-protocol")?.split(",")[0]?.trim();
  const { socket, response } = Deno.upgradeWebSocket(req, asked ? { protocol: asked } : {});
  socket.binaryType = "arraybuffer";
  let chain = Promise.resolve();
  const machine = new ModeMachine((bytes) => socket.send(bytes), async (n) => {
    let left = n;
    while (left > 0) {
      while (socket.bufferedAmount > 1024 * 1024) await new Promise((r) => setTimeout(r, 1));
      const k = Math.min(left, FILL.byteLength);
      socket.send(k === FILL.byteLength ? FILL : FILL.subarray(0, k));
      left -= k;
    }
  });
  socket.onmessage = (e: MessageEvent<ArrayBuffer | string>) => {
    const data = typeof e.data === "string"
      ? new TextEncoder().encode(e.data)
      : new Uint8Array(e.data);
    chain = chain.then(() => machine.feed(data)).catch(() => socket.close());
  };
  return response;
}

const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
const ws = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, serveWs);
const stop = (): void => {
  listener.close();
  void ws.shutdown();
  Deno.exit(0);
};
Deno.addSignalListener("SIGTERM", stop);
Deno.addSignalListener("SIGINT", stop);
await Deno.stdout.write(
  new TextEncoder().encode(
    JSON.stringify({ tcp: (listener.addr as Deno.NetAddr).port, ws: ws.addr.port }) + "\n",
  ),
);
for await (const conn of listener) void serveTcp(conn);
