/**
 * WebAssembly plugins with real sockets: the harness host ABI (JonCooperWorks/harness
 * `plugin/wasm.go`: `tcp_*`, `udp_*`, `icmp_*` in namespace `env` over Extism memory blocks) on
 * the server, under wasmnet's policy and limits. The browser host is `browser_harness.ts`.
 *
 * @module
 */
export { createHarnessNet, type HarnessHostOptions, loadHarnessPlugin } from "./harness.ts";
export {
  DEFAULT_PLUGIN_MEMORY_MIB,
  DEFAULT_PLUGIN_TIMEOUT_MS,
  HarnessPlugin,
  PluginError,
  type PluginErrorCode,
  type PluginLimits,
} from "./_plugin.ts";
export {
  type HarnessIcmpReply,
  type HarnessNet,
  type HarnessSocket,
  type HostPort,
  MAX_RECV_BYTES,
  parseHostPort,
  RECV_WAIT_MS,
  SEND_WAIT_MS,
} from "./_abi.ts";
