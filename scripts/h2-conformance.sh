#!/usr/bin/env bash
# Runs the httpwg-cli HTTP/2 conformance suite (RFC 9113 and RFC 7541 cases,
# a Rust successor of h2spec) against portcullis over h2c, on every backend
# compiled in. Exits non-zero if any case fails.
#
#   scripts/h2-conformance.sh [--backend NAME] [--filter TEXT] [--help]
#
#   --backend NAME   test only this backend (default: every one compiled in)
#   --filter TEXT    run only cases whose name contains TEXT (httpwg -f)
#
# Needs `httpwg` on PATH: cargo install --locked httpwg-cli (about 80 s).
# The server listens on 127.0.0.1 port 0; nothing leaves loopback. See
# docs/http2.md for what each case checks.
#
# Environment:
#   PORTCULLIS_BIN    the binary to test (default: the debug build,
#                     $CARGO_TARGET_DIR/debug/portcullis, built if missing)
#   CARGO_TARGET_DIR  where cargo builds (default: target/ in the repository)
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
backend_only=""
filter=()
while (($#)); do
  case $1 in
    --help|-h) usage; exit 0 ;;
    --backend) backend_only=$2; shift 2 ;;
    --filter) filter=(-f "$2"); shift 2 ;;
    *) echo "h2-conformance: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

here=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$here/target}
bin=${PORTCULLIS_BIN:-"$CARGO_TARGET_DIR/debug/portcullis"}
command -v httpwg >/dev/null || { echo "h2-conformance: httpwg not found; cargo install --locked httpwg-cli" >&2; exit 1; }
[[ -x $bin ]] || (cd "$here" && cargo build --quiet)

backends=${backend_only:-$("$bin" backends | awk '$3 == "available" { print $1 }')}
status=0
for backend in $backends; do
  out=$(mktemp)
  "$bin" serve --no-tls --listen 127.0.0.1:0 --backend "$backend" >"$out" 2>/dev/null &
  pid=$!
  addr=""
  for _ in $(seq 1 200); do
    addr=$(grep -o 'listening on [^ ]*' "$out" | head -n1 | cut -d' ' -f3 || true)
    [[ -n $addr ]] && break
    sleep 0.05
  done
  if [[ -z $addr ]]; then
    echo "h2-conformance: portcullis ($backend) did not start" >&2
    kill "$pid" 2>/dev/null || true
    exit 1
  fi
  log=$(mktemp)
  if timeout 300 httpwg -a "$addr" "${filter[@]}" >"$log" 2>&1; then
    echo "h2-conformance: $backend: $(grep -a 'Passed' "$log" | sed 's/\x1b\[[0-9;]*m//g')"
  else
    status=1
    echo "h2-conformance: $backend: FAILED" >&2
    grep -a -E 'Test failed|panicked|Message:|Passed' "$log" | sed 's/\x1b\[[0-9;]*m//g' >&2 || true
  fi
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -f "$out" "$log"
done
exit $status
