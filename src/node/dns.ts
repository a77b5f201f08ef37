/**
 * Node's `dns` module (Node 22 API, https://nodejs.org/docs/latest-v22.x/api/dns.html) over a
 * wasmnet server's `resolve` operation (A and AAAA, subject to the server's policy).
 *
 * Implemented: {@linkcode lookup} (options `family`, `all`, `order`/`verbatim`),
 * {@linkcode resolve} (`A`, `AAAA`), {@linkcode resolve4}, {@linkcode resolve6} (option `ttl`:
 * the protocol does not carry TTLs, so `ttl` is 0), {@linkcode promises} with the same four,
 * {@linkcode Resolver}, the error code constants, {@linkcode configure}.
 *
 * Not implemented, and why: other record types (`resolveMx`, `resolveTxt`, `resolveSrv`,
 * `resolveCname`, `resolveNs`, `resolvePtr`, `resolveSoa`, `resolveNaptr`, `resolveCaa`,
 * `resolveAny`, `reverse`, `lookupService`) fail with `ENOTIMP`: the `resolve` operation answers
 * A and AAAA only. `setServers` is accepted and ignored (the server's resolver is used).
 *
 * Errors: a name that does not resolve → `ENOTFOUND` (`getaddrinfo ENOTFOUND name` for `lookup`,
 * `queryA ENOTFOUND name` for `resolve4`); a name with no address of the asked family →
 * `ENODATA` for `resolve4`/`resolve6`, `ENOTFOUND` for `lookup`; a policy denial → `EACCES`
 * with the server's text naming the rule.
 *
 * @example
 * ```ts ignore
 * import dns from "./dns.ts";
 * dns.configure({ url: "ws://127.0.0.1:9000/" });
 * const { address, family } = await dns.promises.lookup("example.com", { family: 4 });
 * ```
 *
 * @module
 */
import { configure, type ConfigureOptions, sharedClient } from "./_client.ts";
import { nodeError, type NodeSystemError, toNodeError } from "./_errors.ts";
import { isIP, isIPv4, isIPv6 } from "./_ip.ts";

export { configure, type ConfigureOptions };

/** One address of {@linkcode lookup} with `all: true` (Node 22 `dns.LookupAddress`). */
export interface LookupAddress {
  /** The IP address. */
  address: string;
  /** 4 or 6. */
  family: 4 | 6;
}

/** Options of {@linkcode lookup} (Node 22 `dns.LookupOptions`). */
export interface LookupOptions {
  /** 0 (either, default), 4 or 6; also `IPv4`/`IPv6`. */
  family?: number | "IPv4" | "IPv6";
  /** `getaddrinfo` hints: accepted, ignored (the server resolves). */
  hints?: number;
  /** Return every address, as {@linkcode LookupAddress}es. */
  all?: boolean;
  /** `verbatim` (default: the server's order), `ipv4first` or `ipv6first`. */
  order?: "verbatim" | "ipv4first" | "ipv6first";
  /** Deprecated form of `order`: `true` = `verbatim`, `false` = `ipv4first`. */
  verbatim?: boolean;
}

/** Options of {@linkcode resolve4}/{@linkcode resolve6} (Node 22 `dns.ResolveOptions`). */
export interface ResolveOptions {
  /** Return `{ address, ttl }` records (`ttl` is always 0: the protocol carries none). */
  ttl?: boolean;
}

/** An address with its TTL (Node 22 `dns.RecordWithTtl`); `ttl` is always 0 here. */
export interface RecordWithTtl {
  /** The IP address. */
  address: string;
  /** Seconds; always 0 (unknown). */
  ttl: number;
}

/** Callback of {@linkcode lookup} without `all`. */
export type LookupCallback = (err: NodeSystemError | null, address: string, family: number) => void;
/** Callback of {@linkcode lookup} with `all: true`. */
export type LookupAllCallback = (err: NodeSystemError | null, addresses: LookupAddress[]) => void;
/** Callback of the `resolve` functions. */
export type ResolveCallback<T> = (err: NodeSystemError | null, records: T) => void;

// Node 22 `dns` error codes.
/** Node 22 `dns.NODATA`. */
export const NODATA = "ENODATA";
/** Node 22 `dns.FORMERR`. */
export const FORMERR = "EFORMERR";
/** Node 22 `dns.SERVFAIL`. */
export const SERVFAIL = "ESERVFAIL";
/** Node 22 `dns.NOTFOUND`. */
export const NOTFOUND = "ENOTFOUND";
/** Node 22 `dns.NOTIMP`. */
export const NOTIMP = "ENOTIMP";
/** Node 22 `dns.REFUSED`. */
export const REFUSED = "EREFUSED";
/** Node 22 `dns.BADNAME`. */
export const BADNAME = "EBADNAME";
/** Node 22 `dns.TIMEOUT`. */
export const TIMEOUT = "ETIMEOUT";
/** Node 22 `dns.CONNREFUSED`. */
export const CONNREFUSED = "ECONNREFUSED";
/** Node 22 `dns.CANCELLED`. */
export const CANCELLED = "ECANCELLED";
/** Node 22 `dns.ADDRCONFIG` hint (accepted, ignored). */
export const ADDRCONFIG = 1024;
/** Node 22 `dns.V4MAPPED` hint (accepted, ignored). */
export const V4MAPPED = 2048;
/** Node 22 `dns.ALL` hint (accepted, ignored). */
export const ALL = 256;

/** Asks the server; failures become Node errors for `syscall` (`getaddrinfo` or `queryA`...). */
async function query(hostname: string, syscall: string): Promise<string[]> {
  try {
    return await sharedClient().resolve(hostname);
  } catch (e) {
    const err = toNodeError(e, "lookup", syscall, hostname);
    err.syscall = syscall;
    err.hostname = hostname;
    err.message = err.message.replace(/^getaddrinfo /, `${syscall} `);
    throw err;
  }
}

function familyNumber(family: LookupOptions["family"]): 0 | 4 | 6 {
  if (family === 4 || family === "IPv4") return 4;
  if (family === 6 || family === "IPv6") return 6;
  if (family === undefined || family === 0) return 0;
  throw Object.assign(
    new TypeError(`The argument 'family' must be one of: 0, 4, 6. Received ${String(family)}`),
    { code: "ERR_INVALID_ARG_VALUE" },
  );
}

function order(addrs: LookupAddress[], options: LookupOptions): LookupAddress[] {
  const how = options.order ?? (options.verbatim === false ? "ipv4first" : "verbatim");
  if (how === "verbatim") return addrs;
  const first = how === "ipv4first" ? 4 : 6;
  return [...addrs.filter((a) => a.family === first), ...addrs.filter((a) => a.family !== first)];
}

/** The promise form of {@linkcode lookup}: every address when `all`, else the first. */
async function lookupAll(hostname: string, options: LookupOptions): Promise<LookupAddress[]> {
  const family = familyNumber(options.family);
  const literal = isIP(hostname);
  if (literal !== 0) return [{ address: hostname, family: literal }];
  const found = (await query(hostname, "getaddrinfo"))
    .map((address): LookupAddress => ({ address, family: isIPv6(address) ? 6 : 4 }))
    .filter((a) => family === 0 || a.family === family);
  if (found.length === 0) {
    throw nodeError("ENOTFOUND", `getaddrinfo ENOTFOUND ${hostname}`, {
      syscall: "getaddrinfo",
      hostname,
    });
  }
  return order(found, options);
}

function lookupOptions(options: unknown): LookupOptions {
  if (typeof options === "number") return { family: options };
  if (options !== null && typeof options === "object") return options as LookupOptions;
  return {};
}

/**
 * Resolves a name to an address (Node 22 `dns.lookup`): `(hostname, cb)`,
 * `(hostname, family, cb)`, `(hostname, options, cb)`. An IP address is returned as it is; a
 * name is resolved by the server (A and AAAA), filtered by `family`, in `order`.
 */
export function lookup(hostname: string, callback: LookupCallback): void;
export function lookup(hostname: string, family: number, callback: LookupCallback): void;
export function lookup(
  hostname: string,
  options: LookupOptions & { all: true },
  callback: LookupAllCallback,
): void;
export function lookup(
  hostname: string,
  options: LookupOptions,
  callback: LookupCallback | LookupAllCallback,
): void;
export function lookup(hostname: string, ...rest: unknown[]): void {
  const callback = rest[rest.length - 1];
  if (typeof callback !== "function") {
    throw Object.assign(new TypeError('The "callback" argument must be of type function'), {
      code: "ERR_INVALID_ARG_TYPE",
    });
  }
  const options = rest.length > 1 ? lookupOptions(rest[0]) : {};
  lookupAll(hostname, withDefaultOrder(options)).then((addrs) => {
    if (options.all === true) (callback as LookupAllCallback)(null, addrs);
    else {
      const first = addrs[0] as LookupAddress;
      (callback as LookupCallback)(null, first.address, first.family);
    }
  }, (err: NodeSystemError) => {
    if (options.all === true) (callback as LookupAllCallback)(err, []);
    else (callback as LookupCallback)(err, "", 0);
  });
}

async function resolveFamily(
  hostname: string,
  family: 4 | 6,
  options: ResolveOptions,
): Promise<string[] | RecordWithTtl[]> {
  const syscall = family === 4 ? "queryA" : "queryAaaa";
  const literal = isIP(hostname);
  const all = literal !== 0 ? [hostname] : await query(hostname, syscall);
  const addrs = all.filter((a) => (family === 4 ? isIPv4(a) : isIPv6(a)));
  if (addrs.length === 0) {
    throw nodeError("ENODATA", `${syscall} ENODATA ${hostname}`, { syscall, hostname });
  }
  return options.ttl === true ? addrs.map((address) => ({ address, ttl: 0 })) : addrs;
}

function notImplemented(syscall: string, hostname: string): NodeSystemError {
  return nodeError(
    "ENOTIMP",
    `${syscall} ENOTIMP ${hostname} - wasmnet resolves A and AAAA records only`,
    { syscall, hostname },
  );
}

/** The promise form of {@linkcode resolve}. */
function resolveRr(hostname: string, rrtype: string): Promise<string[]> {
  if (rrtype === "A") return resolveFamily(hostname, 4, {}) as Promise<string[]>;
  if (rrtype === "AAAA") return resolveFamily(hostname, 6, {}) as Promise<string[]>;
  return Promise.reject(notImplemented(`query${rrtype}`, hostname));
}

function callbackOf<T>(rest: unknown[]): ResolveCallback<T> {
  const cb = rest[rest.length - 1];
  if (typeof cb !== "function") {
    throw Object.assign(new TypeError('The "callback" argument must be of type function'), {
      code: "ERR_INVALID_ARG_TYPE",
    });
  }
  return cb as ResolveCallback<T>;
}

function settle<T>(p: Promise<T>, cb: ResolveCallback<T>, empty: T): void {
  p.then((v) => cb(null, v), (e: NodeSystemError) => cb(e, empty));
}

/**
 * Resolves A (`rrtype` `A`, default) or AAAA records (Node 22 `dns.resolve`): `(hostname, cb)` or
 * `(hostname, rrtype, cb)`. Other types fail with `ENOTIMP`.
 */
export function resolve(hostname: string, callback: ResolveCallback<string[]>): void;
export function resolve(
  hostname: string,
  rrtype: string,
  callback: ResolveCallback<string[]>,
): void;
export function resolve(hostname: string, ...rest: unknown[]): void {
  const cb = callbackOf<string[]>(rest);
  const rrtype = typeof rest[0] === "string" ? rest[0] : "A";
  settle(resolveRr(hostname, rrtype), cb, []);
}

/** IPv4 addresses of a name (Node 22 `dns.resolve4`): `(hostname, cb)`, `(hostname, options, cb)`. */
export function resolve4(hostname: string, callback: ResolveCallback<string[]>): void;
export function resolve4(
  hostname: string,
  options: ResolveOptions,
  callback: ResolveCallback<string[] | RecordWithTtl[]>,
): void;
export function resolve4(hostname: string, ...rest: unknown[]): void {
  const cb = callbackOf<string[] | RecordWithTtl[]>(rest);
  const options = rest.length > 1 ? (rest[0] as ResolveOptions) : {};
  settle(resolveFamily(hostname, 4, options), cb, []);
}

/** IPv6 addresses of a name (Node 22 `dns.resolve6`): `(hostname, cb)`, `(hostname, options, cb)`. */
export function resolve6(hostname: string, callback: ResolveCallback<string[]>): void;
export function resolve6(
  hostname: string,
  options: ResolveOptions,
  callback: ResolveCallback<string[] | RecordWithTtl[]>,
): void;
export function resolve6(hostname: string, ...rest: unknown[]): void {
  const cb = callbackOf<string[] | RecordWithTtl[]>(rest);
  const options = rest.length > 1 ? (rest[0] as ResolveOptions) : {};
  settle(resolveFamily(hostname, 6, options), cb, []);
}

function unsupported(rrtype: string): (hostname: string, ...rest: unknown[]) => void {
  return (hostname: string, ...rest: unknown[]): void => {
    const cb = callbackOf<never[]>(rest);
    queueMicrotask(() => cb(notImplemented(`query${rrtype}`, hostname), []));
  };
}

/** Not implemented (`ENOTIMP`): the `resolve` operation answers A and AAAA only. */
export const resolveAny: (hostname: string, ...rest: unknown[]) => void = unsupported("Any");
/** Not implemented (`ENOTIMP`). */
export const resolveCname: (hostname: string, ...rest: unknown[]) => void = unsupported("Cname");
/** Not implemented (`ENOTIMP`). */
export const resolveMx: (hostname: string, ...rest: unknown[]) => void = unsupported("Mx");
/** Not implemented (`ENOTIMP`). */
export const resolveNs: (hostname: string, ...rest: unknown[]) => void = unsupported("Ns");
/** Not implemented (`ENOTIMP`). */
export const resolveSrv: (hostname: string, ...rest: unknown[]) => void = unsupported("Srv");
/** Not implemented (`ENOTIMP`). */
export const resolveTxt: (hostname: string, ...rest: unknown[]) => void = unsupported("Txt");
/** Not implemented (`ENOTIMP`). */
export const resolvePtr: (hostname: string, ...rest: unknown[]) => void = unsupported("Ptr");
/** Not implemented (`ENOTIMP`). */
export const reverse: (ip: string, ...rest: unknown[]) => void = unsupported("Ptr");

/** Node 22 `dns.getServers`: always empty (the wasmnet server's resolver is used). */
export function getServers(): string[] {
  return [];
}

/** Node 22 `dns.setServers`: accepted, ignored (the wasmnet server's resolver is used). */
export function setServers(_servers: readonly string[]): void {}

/** Node 22 `dns.setDefaultResultOrder`. */
export function setDefaultResultOrder(value: "verbatim" | "ipv4first" | "ipv6first"): void {
  defaultOrder = value;
}

/** Node 22 `dns.getDefaultResultOrder`. */
export function getDefaultResultOrder(): "verbatim" | "ipv4first" | "ipv6first" {
  return defaultOrder;
}

let defaultOrder: "verbatim" | "ipv4first" | "ipv6first" = "verbatim";

/** The promise API (Node 22 `dns.promises` / `dns/promises`). */
export const promises: {
  lookup(
    hostname: string,
    options?: number | LookupOptions,
  ): Promise<LookupAddress | LookupAddress[]>;
  resolve(hostname: string, rrtype?: string): Promise<string[]>;
  resolve4(hostname: string, options?: ResolveOptions): Promise<string[] | RecordWithTtl[]>;
  resolve6(hostname: string, options?: ResolveOptions): Promise<string[] | RecordWithTtl[]>;
  getServers(): string[];
  setServers(servers: readonly string[]): void;
} = {
  /** `{ address, family }`, or every address with `all: true`. */
  async lookup(
    hostname: string,
    options?: number | LookupOptions,
  ): Promise<LookupAddress | LookupAddress[]> {
    const opts = lookupOptions(options);
    const addrs = await lookupAll(hostname, withDefaultOrder(opts));
    return opts.all === true ? addrs : addrs[0] as LookupAddress;
  },
  resolve: (hostname: string, rrtype = "A"): Promise<string[]> => resolveRr(hostname, rrtype),
  resolve4: (hostname: string, options: ResolveOptions = {}) => resolveFamily(hostname, 4, options),
  resolve6: (hostname: string, options: ResolveOptions = {}) => resolveFamily(hostname, 6, options),
  getServers,
  setServers,
};

function withDefaultOrder(options: LookupOptions): LookupOptions {
  return options.order === undefined && options.verbatim === undefined
    ? { ...options, order: defaultOrder }
    : options;
}

/**
 * Node 22 `dns.Resolver`: the same resolution, as an object (`setServers` ignored, `cancel`
 * a no-op: answers of cancelled queries are still delivered).
 */
export class Resolver {
  /** As {@linkcode resolve}. */
  resolve: typeof resolve = resolve;
  /** As {@linkcode resolve4}. */
  resolve4: typeof resolve4 = resolve4;
  /** As {@linkcode resolve6}. */
  resolve6: typeof resolve6 = resolve6;
  /** As {@linkcode getServers}. */
  getServers: typeof getServers = getServers;
  /** As {@linkcode setServers}. */
  setServers: typeof setServers = setServers;
  /** Accepted, no effect. */
  cancel(): void {}
  /** Accepted, no effect. */
  setLocalAddress(_ipv4?: string, _ipv6?: string): void {}
}

/** The module as one object, for code compiled to CommonJS (`require("dns")` reads `.default`). */
const dns: Record<string, unknown> & {
  lookup: typeof lookup;
  resolve: typeof resolve;
  resolve4: typeof resolve4;
  resolve6: typeof resolve6;
  promises: typeof promises;
  configure: typeof configure;
} = {
  lookup,
  resolve,
  resolve4,
  resolve6,
  resolveAny,
  resolveCname,
  resolveMx,
  resolveNs,
  resolveSrv,
  resolveTxt,
  resolvePtr,
  reverse,
  getServers,
  setServers,
  setDefaultResultOrder,
  getDefaultResultOrder,
  promises,
  Resolver,
  configure,
  NODATA,
  FORMERR,
  SERVFAIL,
  NOTFOUND,
  NOTIMP,
  REFUSED,
  BADNAME,
  TIMEOUT,
  CONNREFUSED,
  CANCELLED,
  ADDRCONFIG,
  V4MAPPED,
  ALL,
};
export default dns;
