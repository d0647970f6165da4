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
# The servers are pinned to core 0 and the load generator to core 1. Each
# repetition starts one server per backend and runs every cell on each,
# back to back, alternating which goes first; ratios are taken within a
# repetition, then their median is reported. The server's CPU time per
# message comes from /proc (`--server-pid`). Writes
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

declare -A pid_of addr_of
cleanup() {
  local pid
  for pid in "${pid_of[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pid_of[@]}"; do wait "$pid" 2>/dev/null || true; done
  pid_of=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_server() {  # start_server LOG BACKEND: sets pid_of[BACKEND], addr_of[BACKEND]
  local log=$out/logs/$1 backend=$2 pid addr=""
  RUST_LOG=warn taskset -c "$server_cpu" "$bin" serve --listen 127.0.0.1:0 \
    --backend "$backend" --service echo >"$log.out" 2>"$log.err" &
  pid=$!
  pid_of[$backend]=$pid
  for _ in $(seq 1 200); do
    addr=$(grep -o 'listening on [^ ]*' "$log.out" 2>/dev/null | head -n1 | cut -d' ' -f3 || true)
    if [[ -n $addr ]]; then addr_of[$backend]=$addr; return 0; fi
    kill -0 "$pid" 2>/dev/null || break
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
  timeout 120 "$bin" bench echo --addr "${addr_of[$backend]}" --server-pid "${pid_of[$backend]}" \
    --pin "$bench_cpu" --duration "$secs" "$@" >"$log.out" 2>"$log.err" || true
  line=$(grep '^RESULT ' "$log.out" | tail -n1 || true)
  local msgs ns errors
  msgs=$(field "$line" msgs_per_s); ns=$(field "$line" server_cpu_ns_per_msg)
  errors=$(field "$line" errors)
  echo "$name,$backend,$rep,${msgs:-0},${ns:-},${errors:-1}" >>"$csv"
  printf '  %-17s %-17s rep %s: %10s msgs/s  %6s ns/msg  errors %s\n' \
    "$name" "$backend" "$rep" "${msgs:-0}" "${ns:--}" "${errors:-?}" >&2
}

cells=(
  "pingpong-100 --mode pingpong --clients 100"
  "stream-100 --mode cppserver-v2 --clients 100"
  "pingpong-1 --mode pingpong --clients 1"
  "stream-1 --mode cppserver-v2 --clients 1"
  "tls-pingpong-100 --mode pingpong --clients 100 --tls"
)

for rep in $(seq 1 "$reps"); do
  echo "bench-completion.sh: repetition $rep of $reps" >&2
  # Every backend's server runs for the whole repetition (idle while the
  # other is measured), so that the two runs of a cell are seconds apart.
  for backend in "${backends[@]}"; do start_server "server-$backend-$rep" "$backend"; done
  # Alternate which backend goes first, so that drift within a cell does
  # not always favour the same one.
  order=("${backends[@]}")
  if (( rep % 2 == 0 )); then
    order=(); for (( i=${#backends[@]}-1; i>=0; i-- )); do order+=("${backends[i]}"); done
  fi
  for spec in "${cells[@]}"; do
    read -r -a args <<<"$spec"
    for backend in "${order[@]}"; do
      cell "${args[0]}" "$backend" "$rep" "${args[@]:1}"
    done
  done
  cleanup
done

python3 - "$csv" "${backends[0]}" >"$out/summary.md" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
base = sys.argv[2]
cells = list(dict.fromkeys(r["cell"] for r in rows))
backends = list(dict.fromkeys(r["backend"] for r in rows))
reps = sorted(set(r["rep"] for r in rows), key=int)
def get(cell, backend, rep, key):
    for r in rows:
        if (r["cell"], r["backend"], r["rep"]) == (cell, backend, rep) and r[key]:
            return float(r[key])
    return None
def med(vals):
    vals = [v for v in vals if v]
    return statistics.median(vals) if vals else None
def paired(cell, backend, key):
    # The ratio within each repetition (the two runs seconds apart), then
    # the median of those: drift between repetitions cancels out.
    ratios = []
    for rep in reps:
        a, b = get(cell, backend, rep, key), get(cell, base, rep, key)
        if a and b:
            ratios.append(a / b)
    return (med(ratios), min(ratios), max(ratios)) if ratios else None
def fmt_ratio(r):
    return f"{r[0]:.2f}× ({r[1]:.2f}–{r[2]:.2f})" if r else "-"
print(f"| cell | backend | msgs/s median | server ns/msg median | msgs/s vs {base} | ns/msg vs {base} | errors |")
print("|---|---|---:|---:|---:|---:|---:|")
for cell in cells:
    for backend in backends:
        m = med([get(cell, backend, rep, "msgs_per_s") for rep in reps])
        n = med([get(cell, backend, rep, "server_ns_per_msg") for rep in reps])
        errs = sum(int(r["errors"] or 0) for r in rows if r["cell"] == cell and r["backend"] == backend)
        rm, rn = paired(cell, backend, "msgs_per_s"), paired(cell, backend, "server_ns_per_msg")
        print(f"| {cell} | {backend} | {m or 0:,.0f} | {n or 0:,.0f} | {fmt_ratio(rm)} | {fmt_ratio(rn)} | {errs} |")
print(f"\nRatios: the median (min–max) over {len(reps)} repetitions of the ratio within each repetition, "
      f"where the backends' runs of a cell are seconds apart and alternate in order.")
PY
cat "$out/summary.md"
echo "bench-completion.sh: results in $out" >&2
