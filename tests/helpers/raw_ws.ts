/**
 * A WebSocket client written against RFC 6455 directly on a TCP connection, for hostile-client
 * tests a browser-style `WebSocket` cannot express: fragmented messages (§5.4), frames with bad
 * UTF-8, a client that stops reading, a connection dropped without a close frame.
 *
 * @module
 */
import { encodeBase64 } from "../../src/protocol/mod.ts";

/** RFC 6455 §5.2 opcodes. */
export const Opcode = { continuation: 0, text: 1, binary: 2, close: 8, ping: 9, pong: 10 } as const;

/** A raw WebSocket connection (client side: every frame it sends is masked, §5.3). */
export class RawWebSocket {
  readonly conn: Deno.TcpConn;
  #buffer: Uint8Array = new Uint8Array(0);
  #closed = false;

  private constructor(conn: Deno.TcpConn, rest: Uint8Array) {
    this.conn = conn;
    this.#buffer = rest;
  }

  /**
   * Connects to `127.0.0.1:port`, sends the opening handshake (§4.1) and reads the response.
   *
   * @throws {Error} when the server does not answer 101.
   */
  static async connect(
    port: number,
    path = "/",
    headers: Record<string, string> = {},
  ): Promise<RawWebSocket> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const key = encodeBase64(crypto.getRandomValues(new Uint8Array(16)));
    const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join("");
    await writeAll(
      conn,
      new TextEncoder().encode(
        `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\n` +
          `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n` +
          `${extra}\r\n`,
      ),
    );
    let head: Uint8Array = new Uint8Array(0);
    const buf = new Uint8Array(4096);
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) {
        conn.close();
        throw new Error("the server closed during the handshake");
      }
      head = concat(head, buf.subarray(0, n));
      const end = indexOfCrlfCrlf(head);
      if (end < 0) continue;
      const status = new TextDecoder().decode(head.subarray(0, end));
      if (!status.startsWith("HTTP/1.1 101")) {
        conn.close();
        throw new Error(`upgrade refused: ${status.split("\r\n")[0]}`);
      }
      return new RawWebSocket(conn, head.slice(end + 4));
    }
  }

  /** Sends one frame: `fin` false for all but the last fragment of a message (§5.4). */
  async send(opcode: number, payload: Uint8Array, fin = true): Promise<void> {
    await writeAll(this.conn, frame(opcode, payload, fin));
  }

  /**
   * Sends only a frame header announcing `length` payload bytes, with an all-zero mask (legal: the
   * key is arbitrary, §5.3), so the payload can then be streamed raw with `conn.write`.
   */
  async sendHeader(opcode: number, length: number, fin = true): Promise<void> {
    const ext = length < 126 ? 0 : length < 65536 ? 2 : 8;
    const out = new Uint8Array(2 + ext + 4);
    out[0] = (fin ? 0x80 : 0) | opcode;
    out[1] = 0x80 | (ext === 0 ? length : ext === 2 ? 126 : 127);
    const dv = new DataView(out.buffer);
    if (ext === 2) dv.setUint16(2, length);
    if (ext === 8) dv.setBigUint64(2, BigInt(length));
    await writeAll(this.conn, out);
  }

  /** Writes raw bytes (e.g. a payload after {@linkcode RawWebSocket.sendHeader}), all of them. */
  writeRaw(bytes: Uint8Array): Promise<void> {
    return writeAll(this.conn, bytes);
  }

  /** Sends a whole text message. */
  sendText(text: string): Promise<void> {
    return this.send(Opcode.text, new TextEncoder().encode(text));
  }

  /**
   * Reads the next frame from the server (unmasked, §5.1), or null at EOF. A close frame's
   * payload starts with its status code (§5.5.1): see {@linkcode closeCode}.
   */
  async next(): Promise<{ opcode: number; payload: Uint8Array } | null> {
    for (;;) {
      const f = parseFrame(this.#buffer);
      if (f) {
        this.#buffer = this.#buffer.slice(f.size);
        return { opcode: f.opcode, payload: f.payload };
      }
      const buf = new Uint8Array(64 * 1024);
      let n: number | null;
      try {
        n = await this.conn.read(buf);
      } catch {
        n = null;
      }
      if (n === null) return null;
      this.#buffer = concat(this.#buffer, buf.subarray(0, n));
    }
  }

  /**
   * Reads frames until the server's close frame and returns its status code, or `undefined` when
   * the connection ends without one (1006 in a browser).
   */
  async closeCode(): Promise<number | undefined> {
    for (;;) {
      const f = await this.next();
      if (f === null) return undefined;
      if (f.opcode === Opcode.close) {
        return f.payload.byteLength >= 2 ? ((f.payload[0] ?? 0) << 8) | (f.payload[1] ?? 0) : 1005;
      }
    }
  }

  /** Drops the TCP connection (no close frame). Idempotent. */
  drop(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.conn.close();
    } catch {
      // already closed
    }
  }
}

/** A masked client frame (RFC 6455 §5.2). */
export function frame(opcode: number, payload: Uint8Array, fin = true): Uint8Array {
  const len = payload.byteLength;
  const ext = len < 126 ? 0 : len < 65536 ? 2 : 8;
  const out = new Uint8Array(2 + ext + 4 + len);
  out[0] = (fin ? 0x80 : 0) | opcode;
  out[1] = 0x80 | (ext === 0 ? len : ext === 2 ? 126 : 127);
  const dv = new DataView(out.buffer);
  if (ext === 2) dv.setUint16(2, len);
  if (ext === 8) dv.setBigUint64(2, BigInt(len));
  const mask = crypto.getRandomValues(new Uint8Array(4));
  out.set(mask, 2 + ext);
  const body = 2 + ext + 4;
  for (let i = 0; i < len; i++) out[body + i] = (payload[i] ?? 0) ^ (mask[i & 3] ?? 0);
  return out;
}

function parseFrame(
  b: Uint8Array,
): { opcode: number; payload: Uint8Array; size: number } | undefined {
  if (b.byteLength < 2) return undefined;
  let len = (b[1] ?? 0) & 0x7f;
  let off = 2;
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (len === 126) {
    if (b.byteLength < 4) return undefined;
    len = dv.getUint16(2);
    off = 4;
  } else if (len === 127) {
    if (b.byteLength < 10) return undefined;
    len = Number(dv.getBigUint64(2));
    off = 10;
  }
  if (b.byteLength < off + len) return undefined;
  return { opcode: (b[0] ?? 0) & 0x0f, payload: b.slice(off, off + len), size: off + len };
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  for (let off = 0; off < data.byteLength;) off += await conn.write(data.subarray(off));
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.byteLength + b.byteLength);
  out.set(a);
  out.set(b, a.byteLength);
  return out;
}

function indexOfCrlfCrlf(b: Uint8Array): number {
  for (let i = 0; i + 3 < b.byteLength; i++) {
    if (b[i] === 13 && b[i + 1] === 10 && b[i + 2] === 13 && b[i + 3] === 10) return i;
  }
  return -1;
}
