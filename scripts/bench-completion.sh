#!/usr/bin/env bash
# The completion driver (io_uring) against the epoll backend, side by side:
# the cells of the io_uring issue's goals, each run for both backends in the
# same repetition, repetitions interleaved, reported as medians and ratios.
#
#   scripts/bench-completion.sh             # 5 repetitions, 3 s per cell
#   scripts/bench-completion.sh --reps 3 --secs 2
#   scripts/bench-completion.sh --backends "epoll uring-completion uring"
#
# Cells (32-byte messages, plaintext unless said):
#   pingpong-100      ping-pong, 100 clients (one message in flight each)
#   stream-100        cppserver-v2, 100 clients (1,000 in flight each)
#   pingpong-1        ping-pong, 1 client
#   stream-1          cppserver-v2, 1 client
#   tls-pingpong-100  ping-pong over TLS, 100 clients
#
# The server is pinned to core 0 and the load generator to core 1. The
# server's CPU time per message comes from /proc (`--server-pid`). Writes
# bench-results/completion-<timestamp>/{results.csv,summary.md}; the
# summary is printed too. Loopback only; servers are stopped by PID.
#
# Environment:
#   CARGO_TARGET_DIR  where the release build goes (default: target/)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

reps=5
secs=3
backends_list="epoll uring-completion"
while [[ $# -gt 0 ]]; do
  case $1 in
    --reps) reps=$2; shift ;;
    --secs) secs=$2; shift ;;
    --backends) backends_list=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-completion.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done
read -r -a backends <<<"$backends_list"

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$here/target}
echo "bench-completion.sh: building release into $CARGO_TARGET_DIR ..." >&2
cargo build --release --quiet
bin=$CARGO_TARGET_DIR/release/portcullis
listing=$("$bin" backends)
for backend in "${backends[@]}"; do
  if ! grep -q "^$backend [a-z]* available" <<<"$listing"; then
    echo "bench-completion.sh: backend $backend cannot run here:" >&2
    grep "^$backend " <<<"$listing" >&2 || echo "  (not in this build)" >&2
    exit 1
  fi
done

server_cpu=0
bench_cpu=$(( $(nproc) > 1 ? 1 : 0 ))
out=bench-results/completion-$(date +%Y%m%d-%H%M%S)
mkdir -p "$out/logs"
csv=$out/results.csv
echo "cell,backend,rep,msgs_per_s,server_ns_per_msg,errors" >"$csv"

server_pid=""
cleanup() {
  if [[ -n $server_pid ]]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_server() {  # start_server LOG BACKEND: sets server_pid, server_addr
  local log=$out/logs/$1
  RUST_LOG=warn taskset -c "$server_cpu" "$bin" serve --listen 127.0.0.1:0 \
    --backend "$2" --service echo >"$log.out" 2>"$log.err" &
  server_pid=$!
  server_addr=""
  for _ in $(seq 1 200); do
    server_addr=$(grep -o 'listening on [^ ]*' "$log.out" 2>/dev/null | head -n1 | cut -d' ' -f3 || true)
    [[ -n $server_addr ]] && return 0
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.05
  done
  echo "bench-completion.sh: the server did not start; see $log.err" >&2
  exit 1
}

field() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p" | head -n1; }

cell() {  # cell NAME BACKEND REP BENCH-ARGS...
  local name=$1 backend=$2 rep=$3
  shift 3
  local log=$out/logs/$name-$backend-$rep line
  timeout 120 "$bin" bench echo --addr "$server_addr" --server-pid "$server_pid" \
    --pin "$bench_cpu" --duration "$secs" "$@" >"$log.out" 2>"$log.err" || true
  line=$(grep '^RESULT ' "$log.out" | tail -n1 || true)
  local msgs ns errors
  msgs=$(field "$line" msgs_per_s); ns=$(field "$line" server_cpu_ns_per_msg)
  errors=$(field "$line" errors)
  echo "$name,$backend,$rep,${msgs:-0},${ns:-},${errors:-1}" >>"$csv"
  printf '  %-17s %-17s rep %s: %10s msgs/s  %6s ns/msg  errors %s\n' \
    "$name" "$backend" "$rep" "${msgs:-0}" "${ns:--}" "${errors:-?}" >&2
}

for rep in $(seq 1 "$reps"); do
  echo "bench-completion.sh: repetition $rep of $reps" >&2
  # Alternate which backend goes first, so drift within a repetition
  # does not always favour the same one.
  order=("${backends[@]}")
  if (( rep % 2 == 0 )); then
    order=(); for (( i=${#backends[@]}-1; i>=0; i-- )); do order+=("${backends[i]}"); done
  fi
  for backend in "${order[@]}"; do
    start_server "server-$backend-$rep" "$backend"
    cell pingpong-100 "$backend" "$rep" --mode pingpong --clients 100
    cell stream-100 "$backend" "$rep" --mode cppserver-v2 --clients 100
    cell pingpong-1 "$backend" "$rep" --mode pingpong --clients 1
    cell stream-1 "$backend" "$rep" --mode cppserver-v2 --clients 1
    cell tls-pingpong-100 "$backend" "$rep" --mode pingpong --clients 100 --tls
    kill -TERM "$server_pid"; wait "$server_pid" 2>/dev/null || true
    server_pid=""
  done
done

python3 - "$csv" "${backends[0]}" >"$out/summary.md" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
base = sys.argv[2]
cells = list(dict.fromkeys(r["cell"] for r in rows))
backends = list(dict.fromkeys(r["backend"] for r in rows))
def med(cell, backend, key):
    vals = [float(r[key]) for r in rows if r["cell"] == cell and r["backend"] == backend and r[key]]
    return statistics.median(vals) if vals else None
print("| cell | backend | msgs/s (median) | server ns/msg (median) | msgs/s ratio | ns/msg ratio | errors |")
print("|---|---|---:|---:|---:|---:|---:|")
for cell in cells:
    for backend in backends:
        m, n = med(cell, backend, "msgs_per_s"), med(cell, backend, "server_ns_per_msg")
        bm, bn = med(cell, base, "msgs_per_s"), med(cell, base, "server_ns_per_msg")
        errs = sum(int(r["errors"] or 0) for r in rows if r["cell"] == cell and r["backend"] == backend)
        rm = f"{m / bm:.2f}×" if m and bm else "-"
        rn = f"{n / bn:.2f}×" if n and bn else "-"
        print(f"| {cell} | {backend} | {m:,.0f} | {n:,.0f} | {rm} | {rn} | {errs} |" if n else
              f"| {cell} | {backend} | {m or 0:,.0f} | - | {rm} | - | {errs} |")
print(f"\nRatios are against {base}; medians of {len(set(r['rep'] for r in rows))} interleaved repetitions.")
PY
cat "$out/summary.md"
echo "bench-completion.sh: results in $out" >&2
