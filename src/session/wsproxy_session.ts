/**
 * The wsproxy personality: one WebSocket = one TCP stream to the `host:port` named in the URL
 * (`<wisp prefix><host>:<port>`, the legacy form Wisp servers keep: wisp-protocol `protocol.md`,
 * "Choosing a Websocket URL"; what v86 and libcurl.js's wsproxy mode speak). Binary messages
 * both ways; the dial goes through a wasmnet {@linkcode Session}, so the policy, resolve → check →
 * dial, limits and logs are the same.
 *
 * @module
 */
import type { WireEvent } from "../protocol/mod.ts";
import { Session, type SessionOptions, type WireChannel } from "./session.ts";

/** Options of a {@linkcode WsproxySession}. */
export interface WsproxyOptions extends Omit<SessionOptions, "wire" | "protocol"> {
  /** Destination host name or IP literal (brackets already removed). */
  host: string;
  /** Destination TCP port. */
  port: number;
  /** Closes the WebSocket with a status code and reason (RFC 6455 §7.4). */
  closeChannel: (code: number, reason: string) => Promise<void>;
}

/** The id of the one stream in the session's table. */
const STREAM = 1;

/** A close reason cut to the 123 bytes RFC 6455 §5.5.1 allows (UTF-8). */
function reasonText(text: string): string {
  const bytes = new TextEncoder().encode(text);
  if (bytes.byteLength <= 123) return text;
  return new TextDecoder().decode(bytes.subarray(0, 120)).replace(/\uFFFD$/, "") + "...";
}

/**
 * One wsproxy connection. The dial starts on construction; client bytes sent before it completes
 * are queued. The WebSocket closes when the stream ends: 1000 when the peer closed, 1008 with
 * `denied: <reason>` for a policy denial, 1011 with the error otherwise. Closing the WebSocket
 * closes the TCP connection.
 */
export class WsproxySession implements AsyncDisposable {
  /** Protocol name (for the registry and `/healthz`). */
  readonly protocol = "wsproxy";
  readonly #session: Session;
  readonly #closeChannel: (code: number, reason: string) => Promise<void>;
  #done = false;

  /**
   * @param channel the WebSocket.
   * @param options the session's options, the destination and a way to close the socket.
   */
  constructor(channel: WireChannel, options: WsproxyOptions) {
    const { host, port, closeChannel, ...sessionOptions } = options;
    this.#closeChannel = closeChannel;
    this.#session = new Session(channel, {
      ...sessionOptions,
      protocol: "wsproxy",
      wire: {
        event: (ev, _cause, ends) => {
          if (ends) this.#end(ev);
        },
        data: (_id, payload) => {
          try {
            channel.send(payload);
          } catch {
            // the WebSocket closed; the server calls close() next
          }
        },
      },
    });
    this.#session.request({ op: "connect", id: STREAM, addr: host, port });
  }

  /** Session number for logs. */
  get number(): number {
    return this.#session.number;
  }

  /** The underlying session (stats, tests). */
  get session(): Session {
    return this.#session;
  }

  #end(ev: WireEvent): void {
    if (this.#done) return;
    this.#done = true;
    if (ev.ev === "closed") void this.#closeChannel(1000, "connection closed");
    else if (ev.ev === "denied") void this.#closeChannel(1008, reasonText(`denied: ${ev.msg}`));
    else if (ev.ev === "error") void this.#closeChannel(1011, reasonText(ev.msg));
    else void this.#closeChannel(1011, "stream ended");
  }

  /** Sends one message's bytes to the TCP peer (text as its UTF-8 bytes). */
  handle(message: string | Uint8Array | ArrayBuffer): void {
    if (this.#done) return;
    const data = typeof message === "string"
      ? new TextEncoder().encode(message)
      : message instanceof ArrayBuffer
      ? new Uint8Array(message)
      : message;
    this.#session.request({ op: "send", id: STREAM, data });
  }

  /** Ends the connection and its TCP socket. Idempotent. */
  async close(): Promise<void> {
    this.#done = true;
    await this.#session.close();
  }

  /** Same as {@linkcode WsproxySession.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
