/**
 * ICMP for the Deno transport. Deno has no ICMP API, so libc is bound with `Deno.dlopen`
 * (`--allow-ffi`; Linux only): `poll` runs as a `nonblocking` FFI call on a worker thread, so a
 * socket waits for replies without blocking the event loop. The `ping` fallback runs the system
 * `ping` with `Deno.Command` (`--allow-run=ping`). Permissions are queried, never prompted for:
 * without them ICMP is unavailable.
 *
 * @module
 */
import { type IcmpProvider, icmpProvider, type Libc, type PingRunner } from "../icmp/mod.ts";

const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  sendto: { parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"], result: "isize" },
  recvfrom: {
    parameters: ["i32", "buffer", "usize", "i32", "buffer", "buffer"],
    result: "isize",
  },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32" },
  poll_async: {
    name: "poll",
    parameters: ["buffer", "u64", "i32"],
    result: "i32",
    nonblocking: true,
  },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

/** Directories searched for `ping` (the server may not read `PATH`). */
const PING_DIRS = ["/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin"];

/** Binds libc with `Deno.dlopen`, or says why not. */
export function loadDenoLibc(): Libc | string {
  if (Deno.build.os !== "linux") return `ICMP by FFI needs Linux (this is ${Deno.build.os})`;
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
    return "no FFI permission (--allow-ffi)";
  }
  let lib: Deno.DynamicLibrary<typeof SYMBOLS>;
  try {
    lib = Deno.dlopen("libc.so.6", SYMBOLS);
  } catch (e) {
    return `cannot load libc.so.6 (${e instanceof Error ? e.message : String(e)})`;
  }
  const s = lib.symbols;
  return {
    socket: (domain, type, protocol) => s.socket(domain, type, protocol),
    sendto: (fd, buf, flags, addr) =>
      Number(s.sendto(fd, buf, BigInt(buf.byteLength), flags, addr, addr.byteLength)),
    recvfrom: (fd, buf, flags, addr, addrLen) =>
      Number(s.recvfrom(fd, buf, BigInt(buf.byteLength), flags, addr, addrLen)),
    setsockopt: (fd, level, name, value) => s.setsockopt(fd, level, name, value, value.byteLength),
    eventfd: (initval, flags) => s.eventfd(initval, flags),
    read: (fd, buf) => Number(s.read(fd, buf, BigInt(buf.byteLength))),
    write: (fd, buf) => Number(s.write(fd, buf, BigInt(buf.byteLength))),
    close: (fd) => s.close(fd),
    poll: (fds, nfds, timeoutMs) => s.poll(fds, BigInt(nfds), timeoutMs),
    pollAsync: (fds, nfds, timeoutMs) => s.poll_async(fds, BigInt(nfds), timeoutMs),
    errno: () => {
      const p = s.__errno_location();
      return p === null ? 0 : new Deno.UnsafePointerView(p).getInt32(0);
    },
    unload: () => lib.close(),
  };
}

/** The system `ping` run by `Deno.Command`, or why not. */
export function denoPingRunner(): PingRunner | string {
  const path = PING_DIRS.map((d) => `${d}/ping`).find((p) => {
    if (Deno.permissions.querySync({ name: "read", path: p }).state !== "granted") return false;
    try {
      return Deno.statSync(p).isFile;
    } catch {
      return false;
    }
  });
  if (path === undefined) return `no ping binary (in ${PING_DIRS.join(", ")})`;
  if (Deno.permissions.querySync({ name: "run", command: path }).state !== "granted") {
    return `no permission to run ${path} (--allow-run=ping)`;
  }
  return async (args, signal) => {
    const out = await new Deno.Command(path, {
      args: [...args],
      env: { LC_ALL: "C" },
      stdin: "null",
      stdout: "piped",
      stderr: "null",
      signal,
    }).output();
    return { code: out.code, stdout: new TextDecoder().decode(out.stdout) };
  };
}

/** The Deno transport's ICMP provider (one per process: detection is remembered). */
export const denoIcmp: IcmpProvider = icmpProvider({
  loadLibc: loadDenoLibc,
  ping: denoPingRunner,
});
