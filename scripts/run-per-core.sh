#!/usr/bin/env bash
# Starts N portcullis processes on the same port behind SO_REUSEPORT (default:
# one per core) and stops them all on Ctrl-C or SIGTERM.
#
#   scripts/run-per-core.sh [N] [serve args...]
#   scripts/run-per-core.sh 8 --service echo --no-tls --listen 127.0.0.1:9000
#
# Why processes and not `--workers`: the open-file limit is per process, so
# holding more connections than one process's limit takes several processes.
# The kernel spreads new connections across the sockets sharing the port.
# Port 0 cannot be shared between processes: the first process picks the
# port, and the others are started on the port it announced.
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
count=$(nproc)
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

pids=()
stop_all() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop_all INT TERM EXIT

# The first process decides the port (it may have been 0).
first_out=$(mktemp)
"$bin" serve "${args[@]}" --reuse-port >"$first_out" &
pids+=($!)
addr=""
for _ in $(seq 1 200); do
  addr=$(grep -o 'listening on [^ ]*' "$first_out" | head -n1 | cut -d' ' -f3 || true)
  [[ -n $addr ]] && break
  sleep 0.05
done
[[ -n $addr ]] || { echo "run-per-core: the first process did not start" >&2; cat "$first_out" >&2; exit 1; }
cat "$first_out"

# The others join the announced address.
rest=()
skip=0
for a in "${args[@]}"; do
  if (( skip )); then skip=0; continue; fi
  if [[ $a == --listen ]]; then skip=1; continue; fi
  rest+=("$a")
done
for _ in $(seq 2 "$count"); do
  "$bin" serve "${rest[@]}" --listen "$addr" --reuse-port &
  pids+=($!)
done
echo "run-per-core: $count processes on $addr (pids ${pids[*]}); Ctrl-C stops them all"
wait -n "${pids[@]}" || true
