/**
 * Starts a real wasmnet server on loopback port 0 for a test.
 *
 * @module
 */
import { type StartOptions, startServer, type WasmnetServer } from "../../mod.ts";
import { Policy } from "../../src/policy/mod.ts";
import { setLogLevel } from "../../src/log/mod.ts";

setLogLevel((Deno.env.get("WASMNET_LOG") as "debug" | undefined) ?? "warn");

/** A policy for tests that need loopback peers: no deny rules, allow everything, no bandwidth cap. */
export function loopbackPolicy(extra: Record<string, unknown> = {}): Policy {
  return Policy.fromConfig({ deny: [], allow: ["*"], maxBandwidthMbps: 0, ...extra }, "<test>");
}

/** Starts a server on 127.0.0.1:0 (loopback-allowing policy unless one is given). */
export function startTestServer(options: StartOptions = {}): Promise<WasmnetServer> {
  return startServer({ hostname: "127.0.0.1", port: 0, policy: loopbackPolicy(), ...options });
}
