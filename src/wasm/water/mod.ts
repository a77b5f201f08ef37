/**
 * W.A.T.E.R. (WebAssembly Transport Executable Reactor): a host for WATM v1 transport modules
 * (spec: refraction-networking/water-doc `transport-module/spec/v1.md`). A module decides how
 * bytes look on the wire; this host runs it over real connections as a dialer, listener or
 * relay, one module instance per connection, each in its own worker, with every outbound dial
 * under the wasmnet policy.
 *
 * - {@linkcode startWaterHost}: the TCP host (the `wasmnet water` command).
 * - {@linkcode WatmInstance}: one instance over any `StreamConn`s (browser-safe).
 * - {@linkcode inspectWatm}/{@linkcode compileWatm}: version detection by export names.
 *
 * @module
 */
export {
  DEFAULT_MAX_INSTANCES,
  DEFAULT_WORKER_URL,
  type HostPort,
  startWaterHost,
  type WaterHost,
  WaterHostError,
  type WaterHostOptions,
  type WaterHostStats,
} from "./host.ts";
export {
  DEFAULT_INSTANCE_LIMITS,
  describeEnd,
  type DialRequest,
  HostCallError,
  type InstanceEnd,
  type InstanceLimits,
  type InstanceOptions,
  WatmInstance,
} from "./instance.ts";
export {
  compileWatm,
  inspectWatm,
  WATM_V1_CORE_EXPORTS,
  WATM_V1_HOST_IMPORTS,
  WATM_V1_ROLE_EXPORTS,
  WatmError,
  type WatmErrorCode,
  type WatmInfo,
} from "./watm.ts";
export { type Role, WasiErrno } from "./_shared.ts";
