// The one error class of the policy module.

/**
 * A policy file or config that cannot be loaded. `code` is always `"EPOLICY"`. The message is one
 * line naming the source, the key and the bad value, e.g.
 * `Cannot load policy "policy.toml": network.deny[2] = "10.0.0.0/33" is not a valid rule (prefix length 33 > 32)`.
 * A TOML syntax error names the line and column. The original error, if any, is the `cause`.
 * (The Rust wasmnet ignored malformed rules silently; here they are startup errors.)
 */
export class PolicyError extends Error {
  /** Stable error code for programs: always `"EPOLICY"`. */
  readonly code: "EPOLICY" = "EPOLICY";

  /**
   * Builds the one-line message `Cannot load policy "<source>": <detail>`.
   *
   * @param source where the policy came from (file path, or `<config>`), quoted in the message
   * @param detail what is wrong, naming key and value
   * @param options `cause`: the underlying error, if any
   */
  constructor(source: string, detail: string, options?: ErrorOptions) {
    super(`Cannot load policy ${JSON.stringify(source)}: ${detail}`, options);
    this.name = "PolicyError";
  }
}
