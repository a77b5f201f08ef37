/**
 * The Wisp packet codec (pure; runs in a browser too). Wisp multiplexes TCP and UDP streams over
 * one WebSocket; every packet is one binary WebSocket message `[type u8][stream id u32 LE]
 * [payload]`, all integers little-endian.
 *
 * Follows MercuryWorkshop/wisp-protocol `protocol.md`: v1.2 (branch `main`) and "2.0 draft 6"
 * (branch `v2`), sections "Packet Format", "Packet Types" and "Protocol Extensions".
 *
 * @module
 */

/** Packet types (spec "Packet Types"). */
export const PacketType = {
  /** `0x01` CONNECT: `[stream type u8][port u16 LE][host UTF-8]`. */
  connect: 0x01,
  /** `0x02` DATA: the stream's bytes. */
  data: 0x02,
  /** `0x03` CONTINUE: `[buffer remaining u32 LE]`, in packets. */
  continue: 0x03,
  /** `0x04` CLOSE: `[reason u8]`. */
  close: 0x04,
  /** `0x05` INFO (v2): `[major u8][minor u8][extensions...]`. */
  info: 0x05,
} as const;

/** Stream types of CONNECT (spec "0x01 - CONNECT"). */
export const StreamType = {
  /** `0x01` a TCP socket. */
  tcp: 0x01,
  /** `0x02` a UDP socket (v2 extension 0x01; optional). */
  udp: 0x02,
} as const;

/** CLOSE reasons (spec "Client/Server Close Reasons" and those specified by extensions). */
export const CloseReason = {
  /** `0x01` unspecified or unknown. */
  unspecified: 0x01,
  /** `0x02` voluntary closure (one side ended the stream). */
  voluntary: 0x02,
  /** `0x03` unexpected closure due to a network error. */
  networkError: 0x03,
  /** `0x04` incompatible extensions (handshake only). */
  incompatible: 0x04,
  /** `0x41` stream creation failed: invalid information (bad host, bad port, bad packet). */
  invalid: 0x41,
  /** `0x42` stream creation failed: unreachable destination (e.g. the name resolves to nothing). */
  unreachable: 0x42,
  /** `0x43` stream creation timed out. */
  timeout: 0x43,
  /** `0x44` the destination refused the connection. */
  refused: 0x44,
  /** `0x47` TCP data transfer timed out. */
  dataTimeout: 0x47,
  /** `0x48` the destination is blocked by the server (policy). */
  blocked: 0x48,
  /** `0x49` throttled by the server (a limit). */
  throttled: 0x49,
  /** `0x81` the client hit an unexpected error (client only). */
  clientError: 0x81,
  /** `0xc0` authentication failed: invalid username or password. */
  authInvalidPassword: 0xc0,
  /** `0xc1` authentication failed: invalid signature. */
  authInvalidSignature: 0xc1,
  /** `0xc2` authentication required but no credentials were given. */
  authRequired: 0xc2,
} as const;

/** Extension ids of INFO (v2, spec "Protocol Extensions"). */
export const ExtensionId = {
  /** `0x01` UDP streams; no payload. */
  udp: 0x01,
  /** `0x02` password authentication; server `[required u8]`, client credentials. */
  password: 0x02,
  /** `0x03` public/private key authentication (Ed25519). */
  key: 0x03,
  /** `0x04` server MOTD; server `[UTF-8 text]`. */
  motd: 0x04,
  /** `0x05` stream open confirmation (CONTINUE after a connect succeeds); no payload. */
  streamOpen: 0x05,
} as const;

/** Bytes of a packet header: type (1) + stream id (4). */
export const WISP_HEADER_BYTES = 5;

/** One extension entry of an INFO packet: `[id u8][payload length u32 LE][payload]`. */
export interface WispExtension {
  /** Extension id ({@linkcode ExtensionId}). */
  readonly id: number;
  /** Its metadata (may be empty). */
  readonly payload: Uint8Array;
}

/** A decoded Wisp packet. `stream` is the u32 stream id (0 is the connection itself). */
export type WispPacket =
  | {
    readonly type: "connect";
    readonly stream: number;
    /** {@linkcode StreamType}: 1 TCP, 2 UDP (other values are decoded; the server refuses them). */
    readonly streamType: number;
    /** Destination port (0–65535). */
    readonly port: number;
    /** Destination host name or IP literal (as sent; normalised by the policy layer). */
    readonly host: string;
  }
  | { readonly type: "data"; readonly stream: number; readonly payload: Uint8Array }
  | { readonly type: "continue"; readonly stream: number; readonly remaining: number }
  | { readonly type: "close"; readonly stream: number; readonly reason: number }
  | {
    readonly type: "info";
    readonly stream: number;
    readonly major: number;
    readonly minor: number;
    readonly extensions: readonly WispExtension[];
  };

/** A packet that cannot be decoded; `stream` names the stream when the header was readable. */
export class WispError extends Error {
  /**
   * @param message what is wrong, e.g. `CONNECT payload of 2 bytes (needs at least 3)`.
   * @param stream the stream id from the header, or undefined when the header itself is short.
   */
  constructor(message: string, readonly stream?: number) {
    super(message);
    this.name = "WispError";
  }
}

// ignoreBOM: a host or user name that starts with U+FEFF keeps it (the default would strip it).
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const utf8Encoder = new TextEncoder();

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Decodes one packet. DATA payloads are views into `bytes` (no copy).
 *
 * @throws {WispError} for a packet shorter than its header, an unknown type, a payload of the
 *   wrong length, or a host that is not valid UTF-8.
 */
export function decodePacket(bytes: Uint8Array): WispPacket {
  if (bytes.byteLength < WISP_HEADER_BYTES) {
    throw new WispError(`packet of ${bytes.byteLength} bytes (the header needs 5)`);
  }
  const dv = view(bytes);
  const type = dv.getUint8(0);
  const stream = dv.getUint32(1, true);
  const payload = bytes.subarray(WISP_HEADER_BYTES);
  const n = payload.byteLength;
  switch (type) {
    case PacketType.connect: {
      if (n < 3) throw new WispError(`CONNECT payload of ${n} bytes (needs at least 3)`, stream);
      let host: string;
      try {
        host = utf8.decode(payload.subarray(3));
      } catch {
        throw new WispError("CONNECT host is not valid UTF-8", stream);
      }
      return {
        type: "connect",
        stream,
        streamType: dv.getUint8(5),
        port: dv.getUint16(6, true),
        host,
      };
    }
    case PacketType.data:
      return { type: "data", stream, payload };
    case PacketType.continue:
      if (n !== 4) throw new WispError(`CONTINUE payload of ${n} bytes (needs 4)`, stream);
      return { type: "continue", stream, remaining: dv.getUint32(5, true) };
    case PacketType.close:
      if (n !== 1) throw new WispError(`CLOSE payload of ${n} bytes (needs 1)`, stream);
      return { type: "close", stream, reason: dv.getUint8(5) };
    case PacketType.info: {
      if (n < 2) throw new WispError(`INFO payload of ${n} bytes (needs at least 2)`, stream);
      const extensions: WispExtension[] = [];
      let off = 2;
      while (off < n) {
        if (n - off < 5) throw new WispError("INFO extension header is truncated", stream);
        const id = payload[off] ?? 0;
        const len = view(payload).getUint32(off + 1, true);
        if (len > n - off - 5) {
          throw new WispError(`INFO extension 0x${hex(id)} claims ${len} bytes`, stream);
        }
        extensions.push({ id, payload: payload.subarray(off + 5, off + 5 + len) });
        off += 5 + len;
      }
      return {
        type: "info",
        stream,
        major: payload[0] ?? 0,
        minor: payload[1] ?? 0,
        extensions,
      };
    }
    default:
      throw new WispError(`unknown packet type 0x${hex(type)}`, stream);
  }
}

function hex(n: number): string {
  return n.toString(16).padStart(2, "0");
}

function packet(type: number, stream: number, payloadBytes: number): Uint8Array {
  const out = new Uint8Array(WISP_HEADER_BYTES + payloadBytes);
  writeWispHeader(out, type, stream);
  return out;
}

/** Writes `[type][stream id u32 LE]` at the start of `frame` (5 bytes). */
export function writeWispHeader(frame: Uint8Array, type: number, stream: number): void {
  frame[0] = type;
  view(frame).setUint32(1, stream, true);
}

/** Encodes any packet (the inverse of {@linkcode decodePacket}). */
export function encodePacket(p: WispPacket): Uint8Array {
  switch (p.type) {
    case "connect": {
      const host = utf8Encoder.encode(p.host);
      const out = packet(PacketType.connect, p.stream, 3 + host.byteLength);
      out[5] = p.streamType;
      view(out).setUint16(6, p.port, true);
      out.set(host, 8);
      return out;
    }
    case "data": {
      const out = packet(PacketType.data, p.stream, p.payload.byteLength);
      out.set(p.payload, WISP_HEADER_BYTES);
      return out;
    }
    case "continue":
      return encodeContinue(p.stream, p.remaining);
    case "close":
      return encodeClose(p.stream, p.reason);
    case "info":
      return encodeInfo(p.major, p.minor, p.extensions, p.stream);
  }
}

/** CONTINUE for `stream` with `remaining` packets of buffer (u32). */
export function encodeContinue(stream: number, remaining: number): Uint8Array {
  const out = packet(PacketType.continue, stream, 4);
  view(out).setUint32(5, remaining, true);
  return out;
}

/** CLOSE for `stream` with `reason` ({@linkcode CloseReason}). */
export function encodeClose(stream: number, reason: number): Uint8Array {
  const out = packet(PacketType.close, stream, 1);
  out[5] = reason;
  return out;
}

/** INFO (stream 0 unless given) with a version and extension entries. */
export function encodeInfo(
  major: number,
  minor: number,
  extensions: readonly WispExtension[],
  stream = 0,
): Uint8Array {
  const size = extensions.reduce((n, e) => n + 5 + e.payload.byteLength, 2);
  const out = packet(PacketType.info, stream, size);
  out[5] = major;
  out[6] = minor;
  let off = 7;
  for (const e of extensions) {
    out[off] = e.id;
    view(out).setUint32(off + 1, e.payload.byteLength, true);
    out.set(e.payload, off + 5);
    off += 5 + e.payload.byteLength;
  }
  return out;
}

/** DATA for `stream` whose payload is copied after a new header (for small payloads). */
export function encodeData(stream: number, payload: Uint8Array): Uint8Array {
  return encodePacket({ type: "data", stream, payload });
}

/** Credentials of the password extension's client message. */
export interface WispCredentials {
  /** The user name. */
  readonly user: string;
  /** The password. */
  readonly password: string;
}

/**
 * Decodes the client message of the password extension (0x02). Two layouts exist:
 * `[user len u8][pass len u16 LE][user][pass]` (what `@mercuryworkshop/wisp-js` 0.5 sends) and
 * `[user len u8][user][pass]` (protocol.md 2.0 draft 6). The first is taken when its lengths add
 * up to the payload exactly.
 *
 * @throws {WispError} when neither layout fits or a string is not UTF-8.
 */
export function decodeCredentials(payload: Uint8Array): WispCredentials {
  const n = payload.byteLength;
  if (n < 1) throw new WispError("password payload is empty", 0);
  const userLen = payload[0] ?? 0;
  try {
    if (n >= 3) {
      const passLen = view(payload).getUint16(1, true);
      if (3 + userLen + passLen === n) {
        return {
          user: utf8.decode(payload.subarray(3, 3 + userLen)),
          password: utf8.decode(payload.subarray(3 + userLen)),
        };
      }
    }
    if (1 + userLen > n) throw new WispError("password payload is truncated", 0);
    return {
      user: utf8.decode(payload.subarray(1, 1 + userLen)),
      password: utf8.decode(payload.subarray(1 + userLen)),
    };
  } catch (e) {
    if (e instanceof WispError) throw e;
    throw new WispError("credentials are not valid UTF-8", 0);
  }
}

/** Encodes credentials in the draft-6 layout `[user len u8][user][pass]` (for clients, tests). */
export function encodeCredentials(user: string, password: string): Uint8Array {
  const u = utf8Encoder.encode(user);
  if (u.byteLength > 255) throw new RangeError("user name longer than 255 bytes");
  const p = utf8Encoder.encode(password);
  const out = new Uint8Array(1 + u.byteLength + p.byteLength);
  out[0] = u.byteLength;
  out.set(u, 1);
  out.set(p, 1 + u.byteLength);
  return out;
}

/** UTF-8 bytes of `text` (for MOTD payloads). */
export function utf8Bytes(text: string): Uint8Array {
  return utf8Encoder.encode(text);
}
