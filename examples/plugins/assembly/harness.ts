// AssemblyScript bindings for the harness host ABI (namespace "env"), over Extism memory blocks.
// Compiled with the plugins that import it (see build.ts); not a Deno module.
import { Memory } from "@extism/as-pdk";
import { length } from "@extism/as-pdk/lib/env";

@external("env", "tcp_connect")
declare function tcp_connect(addr: u64): u32;
@external("env", "tcp_send")
declare function tcp_send(id: u32, data: u64, len: u64): u32;
@external("env", "tcp_recv")
declare function tcp_recv(id: u32, maxLen: u32): u64;
@external("env", "tcp_close")
declare function tcp_close(id: u32): void;
@external("env", "udp_connect")
declare function udp_connect(addr: u64): u32;
@external("env", "udp_send")
declare function udp_send(id: u32, data: u64, len: u64): u32;
@external("env", "udp_recv")
declare function udp_recv(id: u32, maxLen: u32): u64;
@external("env", "udp_close")
declare function udp_close(id: u32): void;
@external("env", "icmp_send")
declare function icmp_send(target: u64, payload: u64, len: u64, seq: u32): u32;
@external("env", "icmp_recv")
declare function icmp_recv(timeoutMs: u32): u64;

function block(offset: u64): Uint8Array | null {
  if (offset == 0) return null;
  return new Memory(offset, length(offset)).toUint8Array();
}

/** Opens a TCP connection to "host:port" ("[v6]:port"); 0 when refused or failed. */
export function tcpConnect(addr: string): u32 {
  return tcp_connect(Memory.allocateString(addr).offset);
}
/** Sends all of `data`; the bytes sent, 0 on failure. */
export function tcpSend(id: u32, data: Uint8Array): u32 {
  return tcp_send(id, Memory.allocateBytes(data).offset, data.length);
}
/** Up to `maxLen` bytes; null when nothing came within the host's wait, at EOF or on error. */
export function tcpRecv(id: u32, maxLen: u32): Uint8Array | null {
  return block(tcp_recv(id, maxLen));
}
/** Closes the connection. */
export function tcpClose(id: u32): void {
  tcp_close(id);
}
/** Opens a UDP socket connected to "host:port"; 0 when refused or failed. */
export function udpConnect(addr: string): u32 {
  return udp_connect(Memory.allocateString(addr).offset);
}
/** Sends one datagram; the bytes sent, 0 on failure or refusal. */
export function udpSend(id: u32, data: Uint8Array): u32 {
  return udp_send(id, Memory.allocateBytes(data).offset, data.length);
}
/** One datagram from the peer (cut to `maxLen`); null when none came in time. */
export function udpRecv(id: u32, maxLen: u32): Uint8Array | null {
  return block(udp_recv(id, maxLen));
}
/** Closes the socket. */
export function udpClose(id: u32): void {
  udp_close(id);
}
/** Sends an ICMP echo request; true when sent. */
export function icmpSend(target: string, payload: Uint8Array, seq: u32): bool {
  const t = Memory.allocateString(target);
  const p = Memory.allocateBytes(payload);
  return icmp_send(t.offset, p.offset, payload.length, seq) != 0;
}
/** The next echo reply as JSON text ({source,type,code,id,seq,data}); null on timeout. */
export function icmpRecv(timeoutMs: u32): string | null {
  const bytes = block(icmp_recv(timeoutMs));
  return bytes == null ? null : String.UTF8.decode(bytes.buffer);
}

/** The plugin's abort handler (`--use abort=...`): trap, so the host reports it. */
export function abort(
  message: string | null,
  fileName: string | null,
  line: u32,
  column: u32,
): void {
  unreachable();
}

/** UTF-8 bytes of `text`. */
export function utf8(text: string): Uint8Array {
  return Uint8Array.wrap(String.UTF8.encode(text));
}
