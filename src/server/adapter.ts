/**
 * The seam between the runtime-neutral server (`startServer`, the Hono app, the session registry)
 * and a runtime's HTTP/WebSocket server: `server/deno/` (`node:http` + npm `ws`, or `Deno.serve` +
 * `Deno.upgradeWebSocket`) and `server/bun/` (`Bun.serve` with its `websocket` handlers). Only the
 * CLI's runtime module (`src/cli/runtime.ts`) picks one.
 *
 * @module
 */
import type { Hono, MiddlewareHandler } from "hono";
import type { AppOptions, SessionRegistry } from "./app.ts";
import type { Transport } from "../transport/mod.ts";

/** What {@linkcode ServerAdapter.listen} gets from `startServer`. */
export interface ListenRequest {
  /** The server's options; `transport` is the one transport of the whole server. */
  readonly options: AppOptions & { readonly transport: Transport };
  /** The server's live sessions (for admission, shutdown and `/healthz`). */
  readonly registry: SessionRegistry;
  /** Address to listen on, e.g. `0.0.0.0`, `::1`. */
  readonly hostname: string;
  /** Port to listen on; 0 picks a free one. */
  readonly port: number;
  /**
   * Builds the app for plain HTTP (`/healthz`, the demo page, 426). An adapter that upgrades
   * inside the app (Deno's `Deno.upgradeWebSocket`) passes its upgrade middleware, mounted before
   * the 426 fallback; the others upgrade before the app sees the request.
   */
  app(upgrade?: MiddlewareHandler): Hono;
}

/** A listening server, whichever adapter runs it. */
export interface Listening {
  /** The bound address (the real port when 0 was asked). */
  readonly addr: { readonly hostname: string; readonly port: number };
  /**
   * Stops listening and closes idle HTTP connections; resolves once the listener has closed.
   * Sessions are closed by the registry first. Idempotent.
   */
  close(): Promise<void>;
  /**
   * Replaces the TLS certificate and key (PEM) for new connections; open connections and their
   * sessions keep theirs. Present only when listening with TLS.
   *
   * @throws {Error} when the certificate or key is invalid (the old ones stay in use).
   */
  reloadTls?(tls: TlsFiles): void;
}

/** A TLS listener's certificate chain and private key, PEM text (`--cert`, `--key`). */
export interface TlsFiles {
  /** The certificate chain, PEM (leaf first). */
  readonly cert: string;
  /** The private key, PEM (PKCS#8, PKCS#1 or SEC1). */
  readonly key: string;
}

/** A runtime's HTTP + WebSocket server. */
export interface ServerAdapter {
  /** For the log: `deno+ws` (`node:http` + npm `ws`), `deno` (`Deno.serve`), `bun`. */
  readonly name: string;
  /**
   * Whether a paused session stops reading its client (read backpressure, RFC 6455 over TCP flow
   * control). When false, `startServer` logs a warning: an upload that outruns its upstream fills
   * the per-socket queue and that socket ends with `send queue full`.
   */
  readonly readBackpressure: boolean;
  /**
   * Listens and serves: WebSocket upgrades go through `admission()` to `sessionFactory()`, other
   * requests to the app.
   *
   * @throws {Error} (rejects) the listen error with an OS error `name` (`AddrInUse`, ...) or Node
   * `code` (`EADDRINUSE`, ...), which `startServer` rewords to one line naming the address.
   */
  listen(request: ListenRequest): Promise<Listening>;
}
