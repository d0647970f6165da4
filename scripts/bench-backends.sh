#!/usr/bin/env bash
# The backend comparison: what each I/O model costs. Writes, into OUT
# (default benches/results/backends):
#
#   pingpong.csv, pingpong.svg  server CPU per message in ping-pong (one
#       32-byte message in flight per client) against 1, 10, 100 and 1,000
#       clients, one line per driver, with the server's context switches
#       per message;
#   wait.csv, wait.svg  the cost of one wake-up round (write a byte, wait,
#       read, re-arm) against 0 .. 19,000 idle registered descriptors, one
#       line per driver (benches/wait_cost.rs);
#   idle.csv  RSS and context switches of the server holding 1,000 and
#       10,000 idle connections, threads against epoll.
#
#   scripts/bench-backends.sh                 # 3 repetitions, 2 s cells
#   scripts/bench-backends.sh --quick         # 1 repetition, 1 s cells
#   scripts/bench-backends.sh --reps 5 --secs 3 --out DIR
#   scripts/bench-backends.sh --parts wait,idle   # some of the three only
#
# Drivers: every line of `portcullis backends` that says it runs here
# (readiness backends, threads, and uring-completion when the build has it).
# The server is pinned to CPU 0 and the load generator to CPU 1; repetitions
# are interleaved across drivers; charts show medians. Loopback only; every
# process started here is stopped by PID on exit.
#
# Environment:
#   CARGO_TARGET_DIR  where the release build goes (default: target/)
#   DRIVERS           drivers to measure, space-separated (default: all that run)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
reps=3
secs=2
out=$here/benches/results/backends
parts=pingpong,wait,idle
while [[ $# -gt 0 ]]; do
  case $1 in
    --quick) reps=1; secs=1 ;;
    --reps) reps=$2; shift ;;
    --secs) secs=$2; shift ;;
    --out) out=$2; shift ;;
    --parts) parts=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-backends.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$here/target}
echo "bench-backends.sh: building release into $CARGO_TARGET_DIR ..." >&2
cargo build --release --quiet
bin=$CARGO_TARGET_DIR/release/portcullis
if [[ -n ${DRIVERS:-} ]]; then
  read -ra drivers <<<"$DRIVERS"
else
  mapfile -t drivers < <("$bin" backends | awk '$3 == "yes" { print $1 }')
fi
mkdir -p "$out"
logs=$(mktemp -d)
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
pin_server=(taskset -c 0)
bench_cpu=$(( $(nproc) > 1 ? 1 : 0 ))
command -v taskset >/dev/null || pin_server=()

owned=()
cleanup() {
  local pid
  for pid in "${owned[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${owned[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$logs"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stop() {
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  local keep=() pid
  for pid in "${owned[@]}"; do [[ $pid == "$1" ]] || keep+=("$pid"); done
  owned=("${keep[@]}")
}

# start_server DRIVER: sets server_pid and server_addr.
start_server() {
  local log=$logs/server-$1-$RANDOM
  RUST_LOG=warn "${pin_server[@]}" "$bin" serve --listen 127.0.0.1:0 --backend "$1" \
    --service echo --no-tls >"$log.out" 2>"$log.err" &
  server_pid=$!
  owned+=("$server_pid")
  server_addr=""
  for _ in $(seq 1 200); do
    server_addr=$(grep -o 'listening on [^ ]*' "$log.out" 2>/dev/null | head -n1 | cut -d' ' -f3 || true)
    [[ -n $server_addr ]] && return 0
    sleep 0.05
  done
  echo "bench-backends.sh: the $1 server did not start: $(cat "$log.err")" >&2
  exit 1
}

# switches PID: voluntary+involuntary context switches of all its threads.
# Threads that end between the listing and the read are skipped, so sample
# while the connections are open (a thread's count leaves with it).
switches() {
  { cat /proc/"$1"/task/*/status 2>/dev/null || true; } \
    | awk '/^(voluntary|nonvoluntary)_ctxt_switches/ { n += $2 } END { print n + 0 }'
}

now() { date +%s.%N; }

field() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p" | head -n1; }

part() { [[ ,$parts, == *,$1,* ]]; }

# ----- (a) ping-pong: server CPU per message against clients ---------------
if part pingpong; then
echo "driver,clients,rep,msgs_per_s,server_ns_per_msg,switches_per_msg" >"$out/pingpong.csv"
for rep in $(seq 1 "$reps"); do
  for driver in "${drivers[@]}"; do
    start_server "$driver"
    for clients in 1 10 100 1000; do
      log=$logs/pingpong-$driver-$clients-$rep
      timeout 120 "$bin" bench echo --mode pingpong --addr "$server_addr" \
        --clients "$clients" --duration "$secs" --server-pid "$server_pid" \
        --pin "$bench_cpu" >"$log.out" 2>"$log.err" &
      client=$!
      owned+=("$client")
      # Context switches over the middle of the run, while every
      # connection (and, for threads, its thread) is alive.
      sleep 0.5
      s1=$(switches "$server_pid"); t1=$(now)
      sleep "$(awk -v s="$secs" 'BEGIN { print (s > 1 ? s - 1 : s / 2) }')"
      s2=$(switches "$server_pid"); t2=$(now)
      wait "$client" || true
      line=$(grep '^RESULT ' "$log.out" | tail -n1 || true)
      msgs=$(field "$line" msgs_per_s)
      ns=$(field "$line" server_cpu_ns_per_msg)
      per=$(awk -v d=$((s2 - s1)) -v m="${msgs:-0}" -v t1="$t1" -v t2="$t2" \
        'BEGIN { if (m > 0) printf "%.3f", d / (m * (t2 - t1)); }')
      echo "$driver,$clients,$rep,${msgs:-},${ns:-},$per" >>"$out/pingpong.csv"
      printf '  pingpong %-16s %5s clients rep %s: %10s msg/s  %6s ns/msg  %s switches/msg\n' \
        "$driver" "$clients" "$rep" "${msgs:--}" "${ns:--}" "${per:--}" >&2
    done
    stop "$server_pid"
  done
done
fi

# ----- (b) the cost of one wait against idle descriptors -------------------
if part wait; then
echo "bench-backends.sh: wait cost (benches/wait_cost.rs) ..." >&2
wait_drivers=$(printf '%s\n' "${drivers[@]}" | grep -v -x 'uring-completion' | paste -sd, -)
taskset -c 0 cargo bench --quiet --bench wait_cost -- --reps "$reps" \
  --rounds $(( secs * 10000 )) --drivers "$wait_drivers" >"$out/wait.csv"
fi

# ----- idle connections: memory and context switches, threads vs epoll -----
if part idle; then
echo "driver,connections,rep,rss_bytes_per_conn,rss_hold_kib,threads,switches_setup,switches_idle_5s" >"$out/idle.csv"
for rep in $(seq 1 "$reps"); do
  for driver in epoll threads; do
    for count in 1000 10000; do
      start_server "$driver"
      before=$(switches "$server_pid")
      log=$logs/idle-$driver-$count-$rep
      "$bin" bench connections --addr "$server_addr" --count "$count" --hold 8 \
        --server-pid "$server_pid" --pin "$bench_cpu" >"$log.out" 2>"$log.err" &
      holder=$!
      owned+=("$holder")
      for _ in $(seq 1 600); do grep -q holding "$log.err" 2>/dev/null && break; sleep 0.05; done
      sleep 1
      held=$(switches "$server_pid")
      tasks=$(ls /proc/"$server_pid"/task | wc -l)
      sleep 5
      idle=$(switches "$server_pid")
      wait "$holder" || true
      line=$(grep '^RESULT ' "$log.out" | tail -n1 || true)
      echo "$driver,$count,$rep,$(field "$line" rss_bytes_per_conn),$(field "$line" rss_hold_kib),$tasks,$((held - before)),$((idle - held))" >>"$out/idle.csv"
      printf '  idle %-8s %6s connections rep %s: %s bytes/conn, %s threads, %s switches setting up, %s in 5 s idle\n' \
        "$driver" "$count" "$rep" "$(field "$line" rss_bytes_per_conn)" "$tasks" \
        "$((held - before))" "$((idle - held))" >&2
      stop "$server_pid"
    done
  done
done
fi

python3 "$here/scripts/bench-backends-chart.py" "$out"
echo "bench-backends.sh: $out/pingpong.svg, $out/wait.svg, $out/idle.csv" >&2
