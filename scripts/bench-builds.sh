#!/usr/bin/env bash
# Compares two builds of the server side by side: the echo cells of
# scripts/bench.sh (every backend both builds have, x {1, 100 clients} x
# {plain, TLS} x {0, 10,000 idle}), ping-pong latency and multicast,
# alternating the builds within every repetition, with one load generator
# for both. Prints a markdown table of medians and the NEW/OLD ratio of
# server CPU per message.
#
#   scripts/bench-builds.sh OLD_BIN NEW_BIN [--reps N] [--secs S] [--quick]
#
# Typical use, to check a change for regressions against the commit before:
#   git worktree add /tmp/before HEAD~1 && (cd /tmp/before && cargo build --release)
#   cargo build --release
#   scripts/bench-builds.sh /tmp/before/target/release/portcullis target/release/portcullis
#
# Environment:
#   BENCH_BIN   the load generator (`portcullis bench`); default: OLD_BIN, so
#               a change to the bench client cannot move the figures
#   BACKENDS    backends to measure, space-separated; default: those both
#               builds list in `portcullis backends`
#
# The server is pinned to CPU 0 and the load generator to CPU 1; medians of
# the repetitions; every process started here is stopped by PID on exit.
set -euo pipefail

if [[ $# -lt 2 || $1 == -h || $1 == --help ]]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
  exit 0
fi
old=$(realpath "$1")
new=$(realpath "$2")
shift 2
reps=3
secs=3
idle_conns=10000
while [[ $# -gt 0 ]]; do
  case $1 in
    --reps) reps=$2; shift ;;
    --secs) secs=$2; shift ;;
    --quick) reps=1; secs=1; idle_conns=0 ;;
    *) echo "bench-builds.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done
here=$(cd "$(dirname "$0")/.." && pwd)
bench_bin=${BENCH_BIN:-$old}
# A build's drivers that run here; an older build lists bare names.
names() { "$1" backends | awk 'NF == 1 || $3 == "yes" { print $1 }'; }
if [[ -n ${BACKENDS:-} ]]; then
  read -ra backends <<<"$BACKENDS"
else
  mapfile -t backends < <(comm -12 <(names "$old" | sort) <(names "$new" | sort))
fi
out=$(mktemp -d)
owned=()
cleanup() {
  local pid
  for pid in "${owned[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${owned[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$out"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

start_server() {  # BIN BACKEND ARGS...: sets server_pid, server_addr
  local bin=$1 backend=$2
  shift 2
  RUST_LOG=warn taskset -c 0 "$bin" serve --listen 127.0.0.1:0 --backend "$backend" "$@" \
    >"$out/server.out" 2>"$out/server.err" &
  server_pid=$!
  owned+=("$server_pid")
  for _ in $(seq 1 200); do
    server_addr=$(grep -o 'listening on [^ ]*' "$out/server.out" 2>/dev/null | head -n1 | cut -d' ' -f3 || true)
    [[ -n $server_addr ]] && return 0
    sleep 0.05
  done
  echo "bench-builds.sh: $bin did not start: $(cat "$out/server.err")" >&2
  exit 1
}

stop() { kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# measure CELL ARGS...: runs the bench, appends "CELL BUILD VALUE" to results.
measure() {
  local cell=$1 key=$2
  shift 2
  local line
  line=$(timeout 120 "$bench_bin" bench "$@" --pin 1 --server-pid "$server_pid" 2>/dev/null \
    | grep '^RESULT ' | tail -n1 || true)
  local value
  value=$(tr ' ' '\n' <<<"$line" | sed -n "s/^$key=//p" | head -n1)
  echo "$cell|$build|${value:-nan}" >>"$out/results"
  printf '  %-40s %-4s %s=%s\n' "$cell" "$build" "$key" "${value:-?}" >&2
}

for rep in $(seq 1 "$reps"); do
  echo "bench-builds.sh: repetition $rep of $reps" >&2
  for backend in "${backends[@]}"; do
    # Alternate which build goes first, so drift favours neither.
    order=(old new)
    if (( rep % 2 == 0 )); then order=(new old); fi
    for build in "${order[@]}"; do
      bin=$old
      [[ $build == new ]] && bin=$new
      start_server "$bin" "$backend" --service echo
      idles=(0)
      (( idle_conns > 0 )) && idles+=("$idle_conns")
      for idle in "${idles[@]}"; do
        holder=""
        if (( idle > 0 )); then
          "$bench_bin" bench connections --addr "$server_addr" --count "$idle" --hold 3600 \
            --pin 1 >/dev/null 2>"$out/holder.err" &
          holder=$!
          owned+=("$holder")
          until grep -q holding "$out/holder.err" 2>/dev/null; do sleep 0.05; done
        fi
        for transport in plain tls; do
          tls=()
          [[ $transport == tls ]] && tls=(--tls)
          for clients in 1 100; do
            measure "echo $backend $clients $transport idle=$idle" server_cpu_ns_per_msg \
              echo --addr "$server_addr" --clients "$clients" --messages 1000000000 \
              --duration "$secs" "${tls[@]}"
          done
        done
        [[ -n $holder ]] && stop "$holder"
      done
      for clients in 1 100; do
        measure "pingpong $backend $clients" server_cpu_ns_per_msg \
          echo --mode pingpong --addr "$server_addr" --clients "$clients" \
          --messages 1000000000 --duration "$secs"
      done
      stop "$server_pid"
      start_server "$bin" "$backend" --service multicast --no-tls
      measure "multicast $backend 100" server_cpu_ns_per_msg \
        multicast --addr "$server_addr" --clients 100 --duration "$secs"
      stop "$server_pid"
    done
  done
done

python3 - "$out/results" "$old" "$new" <<'PY'
import statistics, sys
from collections import defaultdict
rows = defaultdict(lambda: defaultdict(list))
order = []
for line in open(sys.argv[1]):
    cell, build, value = line.strip().split("|")
    if cell not in rows:
        order.append(cell)
    try:
        rows[cell][build].append(float(value))
    except ValueError:
        pass
print(f"OLD = {sys.argv[2]}\n\nNEW = {sys.argv[3]}\n")
print("| cell | OLD server CPU ns/msg (min–max) | NEW server CPU ns/msg (min–max) | NEW/OLD |")
print("|---|---:|---:|---:|")
def show(values):
    if not values:
        return "–"
    return f"{statistics.median(values):,.0f} ({min(values):,.0f}–{max(values):,.0f})"
for cell in order:
    o, n = rows[cell]["old"], rows[cell]["new"]
    ratio = f"{statistics.median(n) / statistics.median(o):.2f}×" if o and n and statistics.median(o) else "–"
    print(f"| {cell} | {show(o)} | {show(n)} | {ratio} |")
PY
