/**
 * ICMP for the Bun transport: libc bound with `bun:ffi` (`dlopen`; Linux only). Bun's FFI calls
 * run on the calling thread only, so a socket polls with timeout 0 on a timer instead of waiting
 * in `poll(2)` (see `transport/icmp/ffi_socket.ts`). The `ping` fallback runs the system `ping`
 * with `node:child_process`. Under Deno (where this transport is unit-tested) there is no
 * `bun:ffi`: only the `ping` fallback.
 *
 * @module
 */
import { execFile } from "node:child_process";
import { statSync } from "node:fs";
import process from "node:process";
import { type IcmpProvider, icmpProvider, type Libc, type PingRunner } from "../icmp/mod.ts";

/** The shapes of `bun:ffi` this module uses (Bun's own types are not loaded under Deno). */
interface BunFfi {
  dlopen(
    path: string,
    symbols: Record<string, { args: readonly string[]; returns: string }>,
  ): {
    symbols: Record<string, (...args: unknown[]) => unknown>;
    close(): void;
  };
  read: { i32(ptr: number, offset?: number): number };
}

const SYMBOLS = {
  socket: { args: ["i32", "i32", "i32"], returns: "i32" },
  sendto: { args: ["i32", "ptr", "u64", "i32", "ptr", "u32"], returns: "i64" },
  recvfrom: { args: ["i32", "ptr", "u64", "i32", "ptr", "ptr"], returns: "i64" },
  setsockopt: { args: ["i32", "i32", "i32", "ptr", "u32"], returns: "i32" },
  eventfd: { args: ["u32", "i32"], returns: "i32" },
  read: { args: ["i32", "ptr", "u64"], returns: "i64" },
  write: { args: ["i32", "ptr", "u64"], returns: "i64" },
  close: { args: ["i32"], returns: "i32" },
  poll: { args: ["ptr", "u64", "i32"], returns: "i32" },
  __errno_location: { args: [], returns: "ptr" },
} as const;

/** Directories searched for `ping`. */
const PING_DIRS = ["/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin"];

/** `bun:ffi`, or why it cannot be had. */
function bunFfi(): BunFfi | string {
  if (!("Bun" in globalThis)) return "no bun:ffi (not running on Bun)";
  if (process.platform !== "linux") return `ICMP by FFI needs Linux (this is ${process.platform})`;
  try {
    const req = (import.meta as unknown as { require(id: string): unknown }).require;
    return req("bun:ffi") as BunFfi;
  } catch (e) {
    return `no bun:ffi (${e instanceof Error ? e.message : String(e)})`;
  }
}

/** Binds libc with `bun:ffi`, or says why not. */
export function loadBunLibc(): Libc | string {
  const ffi = bunFfi();
  if (typeof ffi === "string") return ffi;
  let lib: ReturnType<BunFfi["dlopen"]>;
  try {
    lib = ffi.dlopen("libc.so.6", SYMBOLS);
  } catch (e) {
    return `cannot load libc.so.6 (${e instanceof Error ? e.message : String(e)})`;
  }
  const s = lib.symbols as Record<keyof typeof SYMBOLS, (...args: unknown[]) => unknown>;
  const n = (v: unknown): number => Number(v);
  return {
    socket: (domain, type, protocol) => n(s.socket(domain, type, protocol)),
    sendto: (fd, buf, flags, addr) =>
      n(s.sendto(fd, buf, buf.byteLength, flags, addr, addr.byteLength)),
    recvfrom: (fd, buf, flags, addr, addrLen) =>
      n(s.recvfrom(fd, buf, buf.byteLength, flags, addr, addrLen)),
    setsockopt: (fd, level, name, value) =>
      n(s.setsockopt(fd, level, name, value, value.byteLength)),
    eventfd: (initval, flags) => n(s.eventfd(initval, flags)),
    read: (fd, buf) => n(s.read(fd, buf, buf.byteLength)),
    write: (fd, buf) => n(s.write(fd, buf, buf.byteLength)),
    close: (fd) => n(s.close(fd)),
    poll: (fds, nfds, timeoutMs) => n(s.poll(fds, nfds, timeoutMs)),
    errno: () => {
      const p = s.__errno_location();
      return typeof p === "number" && p !== 0 ? ffi.read.i32(p, 0) : 0;
    },
    unload: () => lib.close(),
  };
}

/** The system `ping` run by `node:child_process`, or why not. */
export function bunPingRunner(): PingRunner | string {
  const path = PING_DIRS.map((d) => `${d}/ping`).find((p) => {
    try {
      return statSync(p).isFile();
    } catch {
      return false;
    }
  });
  if (path === undefined) return `no ping binary (in ${PING_DIRS.join(", ")})`;
  return (args, signal) =>
    new Promise((resolve, reject) => {
      execFile(
        path,
        [...args],
        { env: { LC_ALL: "C" }, signal, encoding: "utf8" },
        (error, stdout) => {
          const code = error ? (error as { code?: unknown }).code : 0;
          if (typeof code === "string") return reject(error); // ENOENT, EACCES: not started
          resolve({ code: typeof code === "number" ? code : 1, stdout: String(stdout) });
        },
      );
    });
}

/** The Bun transport's ICMP provider (one per process: detection is remembered). */
export const bunIcmp: IcmpProvider = icmpProvider({ loadLibc: loadBunLibc, ping: bunPingRunner });
