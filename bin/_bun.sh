#!/usr/bin/env bash
# Prints the path of the pinned Bun (1.4.5) on stdout, for bin/wasmnet-bun and bin/binary, after
# making sure the clone's node_modules/ holds exactly what package.json and bun.lock pin:
#
#   bun=$("$root/bin/_bun.sh") || exit 1
#
# 1. `bun` on PATH, if `bun --version` says exactly 1.4.5 (any other version is ignored);
# 2. otherwise the platform binary of the npm package bun@1.4.5, installed once into .tools/bun/
#    (git-ignored) by `npm install --prefix .tools/bun --ignore-scripts bun@1.4.5`. npm picks the
#    binary package for this OS, CPU and libc from bun's optional dependencies
#    (@oven/bun-linux-x64, @oven/bun-linux-x64-musl, @oven/bun-darwin-aarch64, ...) and its file
#    .tools/bun/node_modules/@oven/bun-*/bin/bun is the real Bun: no postinstall script is run
#    (bun's install.js only moves that file and may download from the network), so
#    `ignore-scripts` in anyone's npm config changes nothing. The binary is run (`--version`)
#    before it is used, and .tools/bun/node_modules/.bin/bun is made a link to it (npm's points at
#    a placeholder).
#    Needs Node.js and npm, and the npm registry, on first use only.
# 3. `bun install --frozen-lockfile` in the clone when node_modules/ is missing or was installed
#    for another package.json, bun.lock or Bun (a stamp file, node_modules/.wasmnet-bun-install,
#    holds a checksum of the three); never rewrites bun.lock. Once both are installed, nothing
#    here uses the network.
# The caller should `exec` the binary it gets, so signals reach the real process directly.
# Progress and errors go to stderr; stdout carries only the path. Run it, do not source it.
set -euo pipefail

version=1.4.5
root=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
tools="$root/.tools"
prefix="$tools/bun"

# `<bin> --version` prints the bare version ("1.4.5"); empty when the binary does not run.
bun_version() {
  "$1" --version 2>/dev/null | head -n 1 || true
}

# The first .tools/bun/node_modules/@oven/bun-*/bin/bun that runs and is $version, or nothing.
local_bun() {
  local b
  for b in "$prefix"/node_modules/@oven/bun-*/bin/bun; do
    if [ -x "$b" ] && [ "$(bun_version "$b")" = "$version" ]; then
      echo "$b"
      return 0
    fi
  done
}

# npm's .bin/bun points at a placeholder that only the skipped postinstall replaces: point it at
# the real binary $1, so .tools/bun/node_modules/.bin/bun is Bun too (for tools that look there).
link_bin() {
  local link="$prefix/node_modules/.bin/bun" target="../${1#"$prefix/node_modules/"}"
  if [ "$(readlink "$link" 2>/dev/null || true)" != "$target" ]; then
    mkdir -p "${link%/*}" && ln -sf "$target" "$link"
  fi
}

# One installer at a time (two first runs at once share .tools/ and node_modules/). Taken only
# when something has to be installed.
locked=""
lock() {
  if [ -n "$locked" ]; then return 0; fi
  mkdir -p "$tools"
  exec 9>"$tools/.bun.lock"
  if command -v flock >/dev/null 2>&1; then flock 9; fi
  locked=1
}

find_bun() {
  local found
  if found=$(command -v bun 2>/dev/null) && [ "$(bun_version "$found")" = "$version" ]; then
    echo "$found"
    return 0
  fi
  found=$(local_bun)
  if [ -n "$found" ]; then
    link_bin "$found"
    echo "$found"
    return 0
  fi
  if ! command -v npm >/dev/null 2>&1; then
    echo "wasmnet: needs Bun $version: install Node.js 20+ with npm (then Bun comes from npm into" \
      ".tools/bun/ on first use), or put Bun $version on PATH" >&2
    return 1
  fi
  lock
  found=$(local_bun)
  if [ -z "$found" ]; then
    echo "wasmnet: installing bun@$version from npm into $prefix (first use only)" >&2
    rm -rf "$prefix"
    mkdir -p "$prefix"
    if ! npm install --prefix "$prefix" --no-save --no-audit --no-fund --loglevel=error \
      --ignore-scripts "bun@$version" >&2; then
      echo "wasmnet: npm install bun@$version failed (see above)" >&2
      return 1
    fi
    found=$(local_bun)
  fi
  if [ -z "$found" ]; then
    echo "wasmnet: npm installed bun@$version but no Bun $version binary in" \
      "$prefix/node_modules/@oven/ runs on this machine ($(uname -sm)); its platform packages:" \
      "$(cd "$prefix/node_modules/@oven" 2>/dev/null && echo bun-*)" >&2
    return 1
  fi
  link_bin "$found"
  echo "$found"
}

bun=$(find_bun)

# node_modules/ for Bun: package.json + bun.lock, installed by this very Bun.
stamp_file="$root/node_modules/.wasmnet-bun-install"
stamp() {
  { cat "$root/package.json" "$root/bun.lock" && echo "bun $version"; } | cksum
}
if [ "$(cat "$stamp_file" 2>/dev/null || true)" != "$(stamp)" ]; then
  lock
  if [ "$(cat "$stamp_file" 2>/dev/null || true)" != "$(stamp)" ]; then
    echo "wasmnet: bun install --frozen-lockfile (package.json, bun.lock -> node_modules/)" >&2
    if ! (cd "$root" && "$bun" install --frozen-lockfile --no-progress >&2); then
      echo "wasmnet: bun install --frozen-lockfile failed (see above: no network on first use," \
        "or bun.lock out of step with package.json?)" >&2
      exit 1
    fi
    stamp >"$stamp_file"
  fi
fi

echo "$bun"
