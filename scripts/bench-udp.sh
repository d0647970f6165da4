#!/usr/bin/env bash
# UDP benchmarks: echo and multicast for every backend, the cost of one
# system call per datagram, and a minimal C recvmmsg/sendmmsg echo loop
# (benches/peers/udp_echo.c) measured side by side.
#
#   scripts/bench-udp.sh [--reps N] [--secs S] [--out DIR] [--quick]
#
# --quick measures the best backend only (bench.sh --quick).
#
# What it measures (`portcullis bench udp-echo` / `udp-multicast`, pinned to
# CPU 1; each server pinned to CPU 0, a fresh one per cell):
#   echo        every backend x {1, 100 clients}, batched (recvmmsg/sendmmsg)
#   per-datagram  the best backend with [udp] io = "per_datagram": one system
#               call per datagram, to show what batching saves
#   c-peer      benches/peers/udp_echo.c (built here with gcc), batch 32
#   multicast   every backend x {1, 100 receivers}, as fast as possible
# For each: messages/s, server CPU ns per datagram (the figure that compares
# servers when the load generator saturates its core), loss, and the
# datagrams each system call carried (from the server's shutdown summary;
# `syscalls/datagram` adds one epoll_wait and one re-arm per wakeup).
# Repetitions are interleaved (every server once, then again ...), and the
# table reports medians; `vs C` is the server's ns/datagram over the C
# loop's, from the same run.
#
# Writes DIR/udp.csv and DIR/udp.md with --out (default: a temporary
# directory, table on stdout). Servers started here are stopped by PID on
# exit; everything runs on 127.0.0.1, bounded in time.
#
# Environment:
#   PORTCULLIS_BIN    the binary to run (default: the release build,
#                     $CARGO_TARGET_DIR/release/portcullis, built when unset)
#   CARGO_TARGET_DIR  where cargo builds (default: target/ in the repository)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
reps=3
secs=3
out=""
quick=0
while [[ $# -gt 0 ]]; do
  case $1 in
    --quick) quick=1 ;;
    --reps) reps=$2; shift ;;
    --secs) secs=$2; shift ;;
    --out) out=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-udp.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$here/target}
[[ -n ${PORTCULLIS_BIN:-} ]] || (cd "$here" && cargo build --release --quiet)
bin=${PORTCULLIS_BIN:-$CARGO_TARGET_DIR/release/portcullis}
work=$(mktemp -d)
[[ -n $out ]] || out=$work
mkdir -p "$out/logs"
peer=$work/udp_echo
gcc -O2 -o "$peer" "$here/benches/peers/udp_echo.c"
mapfile -t backends < <("$bin" backends | awk '$2 == "readiness" && $3 == "available" { print $1 }')
best=${backends[0]}
if (( quick )); then backends=("$best"); fi
bench_cpu=$(( $(nproc) > 1 ? 1 : 0 ))
pin_server=(taskset -c 0)
command -v taskset >/dev/null || pin_server=()

owned=()
cleanup() {
  local pid
  for pid in "${owned[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${owned[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

per_datagram=$work/per-datagram.toml
printf '[udp]\nio = "per_datagram"\n' >"$per_datagram"
csv=$out/udp.csv
echo "kind,server,backend,clients,rep,msgs_per_s,server_ns_per_datagram,loss_pct,errors,per_receive_call,per_send_call,syscalls_per_datagram" >"$csv"

# start LOG CMD...: starts a server printing `udp listening on ADDR`; sets
# pid and addr.
start() {
  local log=$out/logs/$1
  shift
  RUST_LOG=info "${pin_server[@]}" "$@" >"$log.out" 2>"$log.err" &
  pid=$!
  owned+=("$pid")
  addr=""
  for _ in $(seq 1 200); do
    addr=$(grep -o 'udp listening on [^ ]*' "$log.out" 2>/dev/null | head -n1 | cut -d' ' -f4 || true)
    [[ -n $addr ]] && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  echo "bench-udp.sh: the server did not start; see $log.err" >&2
  exit 1
}

# stop LOG: stops the server and waits, so its summary is in LOG.err.
stop() {
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  local keep=() p
  for p in "${owned[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
  owned=("${keep[@]}")
}

field() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p" | head -n1; }

# calls LOG: "per_receive per_send syscalls_per_datagram" from the log.
calls() {
  local err=$out/logs/$1.err line
  if line=$(grep -o 'udp_echo: .*' "$err" 2>/dev/null); then
    local n r s
    n=$(field "$line" datagrams); r=$(field "$line" receive_calls); s=$(field "$line" send_calls)
    awk -v n="$n" -v r="$r" -v s="$s" 'BEGIN { if (n > 0) printf "%.1f %.1f %.3f", n/r, n/s, (r+s)/n; else print "- - -" }'
    return
  fi
  line=$(grep -o '] udp: .*' "$err" | tail -n1 || true)
  local n r s w sent
  n=$(field "$line" received); r=$(field "$line" receive_calls); s=$(field "$line" send_calls)
  w=$(field "$line" wakeups); sent=$(field "$line" sent)
  awk -v n="${n:-0}" -v r="${r:-0}" -v s="${s:-0}" -v w="${w:-0}" -v sent="${sent:-0}" 'BEGIN {
    d = n > 0 ? n : sent
    printf "%s %s %.3f", (r > 0 ? sprintf("%.1f", n/r) : "-"), (s > 0 ? sprintf("%.1f", sent/s) : "-"), (d > 0 ? (r+s+2*w)/d : 0) }'
}

# run KIND SERVER BACKEND CLIENTS REP LOG -- BENCH-ARGS...: one cell.
run() {
  local kind=$1 server=$2 backend=$3 clients=$4 rep=$5 log=$6
  shift 7
  local line code=0
  timeout 120 "$bin" bench "$@" --pin "$bench_cpu" --server-pid "$pid" \
    >"$out/logs/$log.bench" 2>&1 || code=$?
  stop
  line=$(grep '^RESULT ' "$out/logs/$log.bench" | tail -n1 || true)
  [[ -n $line ]] || line="RESULT msgs_per_s=0 errors=1"
  read -r per_receive per_send per_datagram_calls <<<"$(calls "$log")"
  local errors
  errors=$(field "$line" errors)
  (( code == 0 || errors > 0 )) || errors=1
  echo "$kind,$server,$backend,$clients,$rep,$(field "$line" msgs_per_s),$(field "$line" server_cpu_ns_per_msg),$(field "$line" loss_pct),$errors,$per_receive,$per_send,$per_datagram_calls" >>"$csv"
  printf '  %-9s %-12s %-5s %3s clients rep %s: %10s msg/s  %6s ns/datagram  loss %s%%  %s datagrams/receive call\n' \
    "$kind" "$server" "$backend" "$clients" "$rep" "$(field "$line" msgs_per_s)" \
    "$(field "$line" server_cpu_ns_per_msg)" "$(field "$line" loss_pct)" "$per_receive" >&2
}

echo_cell() {  # echo_cell SERVER BACKEND CLIENTS REP
  local server=$1 backend=$2 clients=$3 rep=$4 log=udp-echo-$1-$2-$3-$4
  case $server in
    batched) start "$log" "$bin" serve --service udp-echo --udp 127.0.0.1:0 --backend "$backend" ;;
    per-datagram) start "$log" "$bin" serve --service udp-echo --udp 127.0.0.1:0 --backend "$backend" --config "$per_datagram" ;;
    c-peer) start "$log" "$peer" 127.0.0.1 0 32 ;;
  esac
  run echo "$server" "$backend" "$clients" "$rep" "$log" -- udp-echo --addr "$addr" \
    --clients "$clients" --duration "$secs"
}

multicast_cell() {  # multicast_cell BACKEND RECEIVERS REP
  local backend=$1 clients=$2 rep=$3 log=udp-multicast-$1-$2-$3
  # A group of this run's own, so concurrent runs on one machine never mix.
  local group=239.255.$(( RANDOM % 250 + 1 )).$(( RANDOM % 250 + 1 )):$(( RANDOM % 20000 + 20000 ))
  start "$log" "$bin" serve --service udp-multicast --group "$group" --backend "$backend"
  run multicast batched "$backend" "$clients" "$rep" "$log" -- udp-multicast --group "$group" \
    --clients "$clients" --duration "$secs"
}

echo "bench-udp.sh: backends ${backends[*]}; $reps repetition(s) of $secs s; results in $out" >&2
for rep in $(seq 1 "$reps"); do
  for clients in 1 100; do
    for backend in "${backends[@]}"; do echo_cell batched "$backend" "$clients" "$rep"; done
    echo_cell per-datagram "$best" "$clients" "$rep"
    echo_cell c-peer c "$clients" "$rep"
    for backend in "${backends[@]}"; do multicast_cell "$backend" "$clients" "$rep"; done
  done
done

python3 - "$csv" >"$out/udp.md" <<'PY'
import csv, statistics, sys
from collections import OrderedDict
rows = list(csv.DictReader(open(sys.argv[1])))
cells = OrderedDict()
for r in rows:
    cells.setdefault((r["kind"], r["server"], r["backend"], r["clients"]), []).append(r)
def med(rs, k):
    v = [float(r[k]) for r in rs if r[k] not in ("", "-")]
    return statistics.median(v) if v else None
def fmt(x, d=0):
    return "–" if x is None else f"{x:,.{d}f}"
c_ns = {k[3]: med(v, "server_ns_per_datagram") for k, v in cells.items() if k[1] == "c-peer"}
batched = {}
print("# UDP: echo and multicast\n")
print(f"Medians of {max(int(r['rep']) for r in rows)} interleaved repetition(s); server on CPU 0, load generator on CPU 1.\n")
print("| kind | server | backend | clients | msgs/s | server CPU ns/datagram | vs C | loss % | datagrams/receive call | datagrams/send call | syscalls/datagram | errors |")
print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for (kind, server, backend, clients), rs in cells.items():
    ns = med(rs, "server_ns_per_datagram")
    ratio = f"{ns / c_ns[clients]:.2f}×" if kind == "echo" and ns and c_ns.get(clients) else "–"
    if kind == "echo" and server == "batched":
        batched.setdefault(clients, ns)
    errors = sum(int(float(r["errors"] or 0)) for r in rs)
    print(f"| {kind} | {server} | {backend} | {clients} | {fmt(med(rs, 'msgs_per_s'))} | {fmt(ns)} | {ratio} "
          f"| {fmt(med(rs, 'loss_pct'), 3)} | {fmt(med(rs, 'per_receive_call'), 1)} | {fmt(med(rs, 'per_send_call'), 1)} "
          f"| {fmt(med(rs, 'syscalls_per_datagram'), 3)} | {errors} |")
print()
for clients in ("1", "100"):
    single = [med(v, "server_ns_per_datagram") for k, v in cells.items() if k[1] == "per-datagram" and k[3] == clients]
    if single and single[0] and batched.get(clients):
        print(f"- {clients} client(s): one system call per datagram costs {single[0] / batched[clients]:.2f}× "
              f"the server CPU per datagram of batching.")
PY
cat "$out/udp.md"
