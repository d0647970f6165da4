#!/usr/bin/env bash
# Starts N portcullis processes on the same port behind SO_REUSEPORT (default:
# one per core) and stops them all on Ctrl-C or SIGTERM. A thin wrapper over
# `portcullis serve --processes N`, whose supervisor restarts a process that
# crashes, forwards SIGHUP (reload) and drains them all on SIGTERM.
#
#   scripts/run-per-core.sh [N] [serve args...]
#   scripts/run-per-core.sh 8 --service echo --no-tls --listen 127.0.0.1:9000
#
# Why processes and not `--workers`: the open-file limit is per process, so
# holding more connections than one process's limit takes several processes.
# The kernel spreads new connections across the sockets sharing the port.
# The supervisor prints `portcullis: N processes on ADDR (pids ...)`.
#
# Environment:
#   PORTCULLIS_BIN    the binary to run (default: the release build,
#                     $CARGO_TARGET_DIR/release/portcullis, built if missing)
#   CARGO_TARGET_DIR  where cargo builds (default: target/ in the repository)
set -euo pipefail

case ${1:-} in
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
esac
here=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$here/target}
bin=${PORTCULLIS_BIN:-"$CARGO_TARGET_DIR/release/portcullis"}
count=auto
if [[ $# -gt 0 && $1 =~ ^[0-9]+$ ]]; then
  count=$1
  shift
fi
if [[ ! -x $bin ]]; then
  (cd "$here" && cargo build --release --quiet)
fi

args=("$@")
has_listen=0
for a in "${args[@]}"; do [[ $a == --listen ]] && has_listen=1; done
(( has_listen )) || args+=(--listen 127.0.0.1:8443)

exec "$bin" serve --processes "$count" "${args[@]}"
