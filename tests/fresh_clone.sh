#!/usr/bin/env bash
# Fresh-clone check, run by .ci/run after bin/test. What a new user does after `git clone`, on a
# machine with Node.js and npm but no Deno, no Bun and nothing cached:
#   - clones HEAD (committed files only) into a temp dir, with an empty DENO_DIR, an empty npm cache,
#     an empty Bun cache, no .tools/, no node_modules/ and a PATH without any `deno` or `bun`;
#   - runs the README's run command (`bin/wasmnet --host 127.0.0.1 --port 9000`, with `--port 0`
#     appended so it never collides with a real port 9000: the last --port wins), waits for
#     `listening`, checks /healthz and that the launched PID is the Deno binary itself (exec);
#   - sends SIGTERM to that PID: it must exit 0 within 5 s and leave nothing listening; the same
#     again with SIGINT;
#   - checks the run downloaded no test-only npm package (playwright-core) into the empty DENO_DIR;
#   - runs `bin/wasmnet --help`, a check-policy pass-through, and `wasmnet --version` through a
#     symlink on PATH from another directory (the README's one step, `ln -s "$PWD/bin/wasmnet"
#     /usr/local/bin/wasmnet`, done into a temp dir instead of /usr/local/bin);
#   - runs `bin/wasmnet-bun --help` (Bun 1.4.5 from npm into .tools/bun/, then `bun install
#     --frozen-lockfile` into node_modules/) and `deno task binary` (`bun build --compile` into
#     dist/wasmnet), and runs that binary (`--version`) from / with PATH=/usr/bin:/bin;
#   - checks the runs left the clone's tracked files untouched (deno.lock not rewritten).
# It does not run the test suite again: bin/test just ran it, also from empty caches on a fresh
# CI machine, and a second run would double CI time for nothing the checks above miss.
set -euo pipefail

root=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/wasmnet-fresh.XXXXXX")
clone="$work/wasmnet"
log=""
pid=""

# PIDs of processes running a binary from the clone (only this script starts those).
clone_pids() {
  local p
  for p in /proc/[0-9]*; do
    case "$(readlink "$p/exe" 2>/dev/null || true)" in
    "$clone"/*) echo "${p#/proc/}" ;;
    esac
  done
}

cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  local p
  for p in $(clone_pids); do kill -KILL "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

say() { echo "fresh_clone: $*"; }
fail() {
  echo "fresh_clone: FAIL: $*" >&2
  if [ -n "$log" ] && [ -f "$log" ]; then sed 's/^/  | /' "$log" >&2; fi
  exit 1
}

# The README's run command (kept in sync: this fails when the README's Quick start changes it).
run_cmd=(bin/wasmnet --host 127.0.0.1 --port 9000)
cmd_re=${run_cmd[*]}
grep -qE "^${cmd_re//./\\.}( |\$)" "$root/README.md" ||
  fail "README.md's Quick start no longer shows \`${run_cmd[*]}\`: update tests/fresh_clone.sh"

# PATH without any folder that holds a `deno` or a `bun`.
path=""
IFS=: read -ra dirs <<<"$PATH"
for d in "${dirs[@]}"; do
  if [ -z "$d" ] || [ -x "$d/deno" ] || [ -x "$d/bun" ]; then continue; fi
  path="${path:+$path:}$d"
done
for tool in deno bun; do
  if PATH="$path" command -v "$tool" >/dev/null 2>&1; then
    fail "could not build a PATH without $tool"
  fi
done
PATH="$path" command -v npm >/dev/null 2>&1 ||
  fail "npm is only in a folder that also holds deno or bun; cannot test a machine without them"

mkdir -p "$work/deno-dir" "$work/npm-cache" "$work/bun-cache" "$work/bin"
# The environment of a new user: no deno or bun on PATH, nothing cached.
clone_env=(env PATH="$path" DENO_DIR="$work/deno-dir" npm_config_cache="$work/npm-cache"
  BUN_INSTALL_CACHE_DIR="$work/bun-cache" NO_COLOR=1 WASMNET_LOG=info)
in_clone() { (cd "$clone" && exec "${clone_env[@]}" "$@"); }

git clone --quiet "$root" "$clone"
say "cloned HEAD $(git -C "$clone" rev-parse --short HEAD) into $clone (committed files only)"
[ ! -e "$clone/.tools" ] || fail ".tools/ is in the clone (it must be git-ignored)"
[ ! -e "$clone/node_modules" ] || fail "node_modules/ is in the clone (it must be git-ignored)"
say "ok: empty DENO_DIR, npm and Bun caches, no .tools/ or node_modules/, PATH without deno" \
  "or bun ($path)"

# Starts the run command in the background; sets pid (the launched process) and port.
start_server() {
  log="$work/server-$1.log"
  # A subshell that execs env, which execs the launcher, which execs Deno: $! is the server.
  (cd "$clone" && exec "${clone_env[@]}" "${run_cmd[@]}" --port 0) >"$log" 2>&1 &
  pid=$!
  local started=$SECONDS
  port=""
  while [ -z "$port" ]; do
    port=$(sed -n 's/.*listening addr=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log" | head -n 1)
    if [ -n "$port" ]; then break; fi
    kill -0 "$pid" 2>/dev/null || fail "the run command exited before logging \`listening\`"
    [ $((SECONDS - started)) -lt 300 ] || fail "no \`listening\` line within 300 s"
    sleep 0.2
  done
  say "ok: \`${run_cmd[*]} --port 0\` listens on 127.0.0.1:$port after $((SECONDS - started)) s"
}

# Sends $1 to the launched PID; it must exit 0 within 5 s and leave nothing listening.
stop_server() {
  local signal=$1 exe
  exe=$(readlink -f "/proc/$pid/exe")
  [ "$exe" = "$clone/.tools/node_modules/deno/deno" ] ||
    fail "the launched PID $pid runs $exe, not the Deno from .tools/ (launcher did not exec)"
  ss -ltnp | grep -q "pid=$pid," || fail "PID $pid does not own a listening socket"
  # shellcheck disable=SC2016 # JavaScript, not shell
  in_clone node -e '
    fetch(`http://127.0.0.1:${process.argv[1]}/healthz`).then((r) => r.json()).then((j) => {
      if (j.status !== "ok") throw new Error(JSON.stringify(j));
    }).catch((e) => { console.error(e); process.exit(1); });' "$port" ||
    fail "GET /healthz failed"
  say "ok: the launched PID $pid is the Deno binary itself and answers /healthz"
  kill "-$signal" "$pid"
  local sent=$SECONDS code=0
  while kill -0 "$pid" 2>/dev/null && [ $((SECONDS - sent)) -lt 6 ]; do sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then fail "still running 5 s after $signal"; fi
  wait "$pid" || code=$?
  [ "$code" -eq 0 ] || fail "exit code $code after $signal (expected 0)"
  pid=""
  if ss -ltn "( sport = :$port )" | grep -q LISTEN; then fail "port $port still listening"; fi
  local left
  left=$(clone_pids)
  [ -z "$left" ] || fail "processes from the clone still running after $signal: $left"
  say "ok: $signal -> exit 0 within 5 s; nothing listening on $port, no process left"
}

start_server first
stop_server TERM
start_server again
stop_server INT
log=""

# What the run command downloaded into the empty DENO_DIR: runtime packages only.
npm_dir="$work/deno-dir/npm/registry.npmjs.org"
fetched=""
for d in "$npm_dir"/*/; do
  [ -d "$d" ] || continue
  d=${d%/}
  case "${d##*/}" in
  @*)
    for s in "$d"/*/; do
      if [ -d "$s" ]; then s=${s%/} && fetched+="${d##*/}/${s##*/} "; fi
    done
    ;;
  *) fetched+="${d##*/} " ;;
  esac
done
say "npm packages the run command downloaded: ${fetched:-none}"
if [ -e "$npm_dir/playwright-core" ] || grep -q playwright "$work"/server-*.log; then
  fail "the run command downloaded playwright-core (a test-only package)"
fi
say "ok: no playwright-core in DENO_DIR"

log="$work/help.log"
in_clone bin/wasmnet --help >"$log" 2>&1 || fail "bin/wasmnet --help exited non-zero"
grep -q '^Usage:' "$log" || fail "bin/wasmnet --help printed no usage"
say "ok: bin/wasmnet --help"

log="$work/check.log"
in_clone bin/wasmnet check-policy policy.example.toml --explain 10.0.0.5:22 >"$log" 2>&1 ||
  fail "bin/wasmnet check-policy exited non-zero"
grep -q '^denied: 10\.0\.0\.5:22 ' "$log" || fail "check-policy did not explain 10.0.0.5:22"
code=0
in_clone bin/wasmnet check-policy policy.example.toml --explain nope:x >"$log" 2>&1 || code=$?
[ "$code" -eq 2 ] || fail "check-policy with a malformed --explain exited $code (expected 2)"
say "ok: bin/wasmnet check-policy FILE --explain ... passes its arguments (exit 0, and 2 for a bad target)"

log="$work/link.log"
ln -s "$clone/bin/wasmnet" "$work/bin/wasmnet"
(cd / && exec env PATH="$work/bin:$path" DENO_DIR="$work/deno-dir" NO_COLOR=1 \
  wasmnet --version) >"$log" 2>&1 || fail "wasmnet --version through a symlink on PATH failed"
grep -q '^wasmnet [0-9]' "$log" || fail "wasmnet --version printed no version"
say "ok: \`ln -s \"\$PWD/bin/wasmnet\" DIR/wasmnet\` makes \`wasmnet\` work from / ($(cat "$log"))"

# Bun: the launcher fetches the pinned Bun from npm and the dependencies of bun.lock, then runs.
log="$work/bun-help.log"
started=$SECONDS
in_clone bin/wasmnet-bun --help >"$log" 2>&1 || fail "bin/wasmnet-bun --help exited non-zero"
grep -q '^Usage:' "$log" || fail "bin/wasmnet-bun --help printed no usage"
[ -x "$clone/.tools/bun/node_modules/.bin/bun" ] ||
  fail "no Bun in .tools/bun/ after bin/wasmnet-bun"
[ -d "$clone/node_modules/hono" ] || fail "bin/wasmnet-bun did not install node_modules/"
say "ok: bin/wasmnet-bun --help (Bun 1.4.5 from npm into .tools/bun/, node_modules/ from" \
  "bun.lock) in $((SECONDS - started)) s"

# The single binary: `deno task binary` with the Deno the launcher installed (no deno on PATH).
log="$work/binary.log"
started=$SECONDS
in_clone "$clone/.tools/node_modules/deno/deno" task binary >"$log" 2>&1 ||
  fail "deno task binary failed"
[ -x "$clone/dist/wasmnet" ] || fail "deno task binary wrote no dist/wasmnet"
(cd / && exec env -i PATH=/usr/bin:/bin "$clone/dist/wasmnet" --version) >"$log" 2>&1 ||
  fail "dist/wasmnet --version failed from / with PATH=/usr/bin:/bin"
grep -q '^wasmnet [0-9].* bun 1\.4\.5' "$log" ||
  fail "dist/wasmnet --version: not wasmnet on Bun 1.4.5"
mib=$(($(wc -c <"$clone/dist/wasmnet") / 1048576))
say "ok: deno task binary built dist/wasmnet ($mib MiB) in $((SECONDS - started)) s; it runs" \
  "from / without deno or bun ($(cat "$log"))"
log=""

changed=$(git -C "$clone" status --porcelain)
[ -z "$changed" ] || fail "the runs changed files in the clone: $changed"
say "ok: the clone's files are unchanged (deno.lock and bun.lock not rewritten; .tools/," \
  "node_modules/ and dist/ are ignored)"
say "all checks passed"
