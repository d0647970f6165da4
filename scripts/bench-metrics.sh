#!/usr/bin/env bash
# What the metrics cost the data path: server CPU per message in the echo
# cells, for three servers measured side by side, alternating within every
# repetition:
#
#   base  OLD_BIN, a build without the per-worker counters
#   off   NEW_BIN without --admin (its counters still count)
#   on    NEW_BIN with --admin, /metrics scraped by curl every second (on
#         the load generator's CPU)
#
#   scripts/bench-metrics.sh OLD_BIN NEW_BIN [--reps N] [--secs S]
#
# Cells: cppserver-v2 stream echo (plaintext 1 and 100 clients, TLS 100
# clients) and ping-pong (plaintext 100 clients, one message in flight each:
# a read and a write per message, where per-read counting costs most).
# Server CPU per message is the server's CPU share over the message rate.
# Server on CPU 0, load generator (OLD_BIN's `bench`) on CPU 1; medians of
# the repetitions, printed as a markdown table with on/base ratios. Every
# process started here is stopped by PID on exit.
set -euo pipefail

if [[ $# -lt 2 || $1 == -h || $1 == --help ]]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
  exit 0
fi
old=$(realpath "$1")
new=$(realpath "$2")
shift 2
reps=5
secs=4
while [[ $# -gt 0 ]]; do
  case $1 in
    --reps) reps=$2; shift ;;
    --secs) secs=$2; shift ;;
    *) echo "bench-metrics.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done
out=$(mktemp -d)
owned=()
cleanup() {
  local pid
  for pid in "${owned[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${owned[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$out"
}
trap cleanup EXIT

start_server() {  # BIN ARGS...: sets server_pid, server_addr, admin_addr
  local bin=$1
  shift
  : >"$out/server.out"
  RUST_LOG=warn taskset -c 0 "$bin" serve --listen 127.0.0.1:0 --service echo "$@" \
    >"$out/server.out" 2>"$out/server.err" &
  server_pid=$!
  owned+=("$server_pid")
  for _ in $(seq 1 200); do
    server_addr=$(grep -v admin "$out/server.out" 2>/dev/null | grep -o 'listening on [^ ]*' \
      | head -n1 | cut -d' ' -f3 || true)
    admin_addr=$(grep -o 'admin listening on [^ ]*' "$out/server.out" 2>/dev/null \
      | cut -d' ' -f4 || true)
    [[ -n $server_addr ]] && return 0
    sleep 0.05
  done
  echo "bench-metrics.sh: $bin did not start: $(cat "$out/server.err")" >&2
  exit 1
}

stop() { kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

measure() {  # CELL ARGS...: appends "CELL|VARIANT|VALUE" to the results
  local cell=$1
  shift
  local line value
  line=$(timeout 120 "$old" bench "$@" --pin 1 --server-pid "$server_pid" 2>/dev/null \
    | grep '^RESULT ' | tail -n1 || true)
  # From the CPU share and the message rate rather than the rounded
  # server_cpu_ns_per_msg, which is a whole number of nanoseconds.
  local pct rate
  pct=$(tr ' ' '\n' <<<"$line" | sed -n 's/^server_cpu_pct=//p' | head -n1)
  rate=$(tr ' ' '\n' <<<"$line" | sed -n 's/^msgs_per_s=//p' | head -n1)
  value=$(awk -v p="${pct:-nan}" -v r="${rate:-0}" \
    'BEGIN { if (r > 0 && p != "nan") printf "%.2f", p / 100 * 1e9 / r; else print "nan" }')
  echo "$cell|$variant|${value:-nan}" >>"$out/results"
  printf '  %-28s %-4s server_cpu_ns_per_msg=%s\n' "$cell" "$variant" "${value:-?}" >&2
}

variants=(base off on)
for rep in $(seq 1 "$reps"); do
  echo "bench-metrics.sh: repetition $rep of $reps" >&2
  # Rotate the order, so that drift favours no variant.
  shift_by=$(( (rep - 1) % 3 ))
  order=("${variants[@]:shift_by}" "${variants[@]:0:shift_by}")
  for variant in "${order[@]}"; do
    scraper=""
    case $variant in
      base) start_server "$old" ;;
      off) start_server "$new" ;;
      on)
        start_server "$new" --admin 127.0.0.1:0
        # The scraper runs beside the load generator, as a Prometheus would
        # run elsewhere: only the server's own work for a scrape is measured.
        ( while true; do
            taskset -c 1 curl -s "http://$admin_addr/metrics" >/dev/null || true
            sleep 1
          done ) &
        scraper=$!
        owned+=("$scraper")
        ;;
    esac
    for clients in 1 100; do
      measure "stream plain $clients" echo --addr "$server_addr" --clients "$clients" \
        --messages 1000000000 --duration "$secs"
    done
    measure "stream tls 100" echo --addr "$server_addr" --clients 100 \
      --messages 1000000000 --duration "$secs" --tls
    measure "pingpong plain 100" echo --mode pingpong --addr "$server_addr" --clients 100 \
      --messages 1000000000 --duration "$secs"
    [[ -n $scraper ]] && stop "$scraper"
    stop "$server_pid"
  done
done

python3 - "$out/results" "$old" "$new" <<'PY'
import statistics, sys
from collections import defaultdict
rows = defaultdict(lambda: defaultdict(list))
order = []
for line in open(sys.argv[1]):
    cell, variant, value = line.strip().split("|")
    if cell not in rows:
        order.append(cell)
    try:
        rows[cell][variant].append(float(value))
    except ValueError:
        pass
print(f"base = {sys.argv[2]}\n\noff, on = {sys.argv[3]}\n")
print("| cell | base ns/msg (min–max) | off ns/msg (min–max) | on ns/msg (min–max) | on/base |")
print("|---|---:|---:|---:|---:|")
def show(values):
    if not values:
        return "–"
    return f"{statistics.median(values):,.1f} ({min(values):,.1f}–{max(values):,.1f})"
for cell in order:
    b, f, n = (rows[cell][v] for v in ("base", "off", "on"))
    ratio = f"{statistics.median(n) / statistics.median(b):.2f}×" if b and n and statistics.median(b) else "–"
    print(f"| {cell} | {show(b)} | {show(f)} | {show(n)} | {ratio} |")
PY
