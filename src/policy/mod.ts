/**
 * The wasmnet network policy: TOML → validated config, address normalisation, CIDR/domain/port
 * rules and verdicts. Pure and browser-safe: nothing here touches `Deno.*`.
 *
 * @example
 * ```ts
 * import { Policy, parseTarget } from "./mod.ts";
 * import assert from "node:assert/strict";
 * const policy = Policy.fromToml('[network]\ndeny = ["*"]\nallow = ["*.example.com:443"]', "inline");
 * const target = parseTarget("API.Example.com.");
 * assert.ok(target.kind !== "invalid");
 * assert.equal(policy.checkTarget(target, 443).rule, "*.example.com:443");
 * assert.equal(policy.checkTarget(target, 80).allowed, false);
 * ```
 *
 * @module
 */

export { canonicalIp, type ParsedTarget, parseTarget, type Target } from "./target.ts";
export {
  DEFAULT_DENY,
  DEFAULT_DENY_NAME_RULES,
  DEFAULT_DENY_NAMES,
  DEFAULT_DENY_RANGES,
  DEFAULT_DENY_TOKEN,
} from "./default_deny.ts";
export { PolicyError } from "./policy_error.ts";
export { Policy, type Verdict } from "./policy.ts";
export {
  MAX_BANDWIDTH_LIMIT,
  MAX_CONNECTIONS_LIMIT,
  MAX_TIMEOUT_SECS,
  type PolicyConfig,
} from "./policy_config.ts";
