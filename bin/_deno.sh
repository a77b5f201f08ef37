#!/usr/bin/env bash
# Prints the path of the pinned Deno (2.9.6) on stdout, for bin/wasmnet and bin/test:
#
#   deno=$("$root/bin/_deno.sh") || exit 1
#
# 1. `deno` on PATH, if `deno --version` says 2.9.6;
# 2. otherwise .tools/node_modules/deno/deno, installed once from the npm package deno@2.9.6
#    (its postinstall puts the real binary there; .tools/ is git-ignored). Needs Node.js and npm.
# The caller should `exec` the binary it gets, so signals reach the real process directly.
# Progress and errors go to stderr; stdout carries only the path.
#
# Another pinned runtime reuses the pattern: write bin/_<name>.sh ending in
# `pinned_npm_tool <name> <version> <npm package> <binary path under node_modules>`.
set -euo pipefail

root=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
tools="$root/.tools"

# First x.y.z in the output of `<bin> --version` ("deno 2.9.6 (stable, ...)" -> 2.9.6).
tool_version() {
  "$1" --version 2>/dev/null | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -n 1 || true
}

# pinned_npm_tool NAME VERSION PACKAGE BIN: prints the path of NAME at exactly VERSION.
pinned_npm_tool() {
  local name=$1 version=$2 package=$3 bin=$4 found
  if found=$(command -v "$name" 2>/dev/null) && [ "$(tool_version "$found")" = "$version" ]; then
    echo "$found"
    return 0
  fi
  local local_bin="$tools/node_modules/$bin"
  if [ ! -x "$local_bin" ] || [ "$(tool_version "$local_bin")" != "$version" ]; then
    if ! command -v npm >/dev/null 2>&1; then
      echo "wasmnet: needs $name $version: install Node.js 20+ with npm (then $name comes from npm" \
        "into .tools/ on first use), or put $name $version on PATH" >&2
      return 1
    fi
    mkdir -p "$tools"
    # One installer at a time (two first runs at once share the folder).
    exec 9>"$tools/.lock"
    if command -v flock >/dev/null 2>&1; then flock 9; fi
    if [ ! -x "$local_bin" ] || [ "$(tool_version "$local_bin")" != "$version" ]; then
      echo "wasmnet: installing $package@$version from npm into $tools (first use only)" >&2
      if ! npm install --prefix "$tools" --no-save --no-audit --no-fund --loglevel=error \
        "$package@$version" >&2; then
        echo "wasmnet: npm install $package@$version failed (see above)" >&2
        return 1
      fi
    fi
    exec 9>&-
  fi
  if [ ! -x "$local_bin" ] || [ "$(tool_version "$local_bin")" != "$version" ]; then
    echo "wasmnet: npm installed $package@$version but $local_bin is not $name $version" \
      "(was the package's postinstall script skipped, e.g. by npm's ignore-scripts?)" >&2
    return 1
  fi
  echo "$local_bin"
}

pinned_npm_tool deno 2.9.6 deno deno/deno
