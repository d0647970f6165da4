#!/usr/bin/env bash
# Runs the benchmark matrix of `portcullis bench` against `portcullis serve`
# and writes bench-results/<timestamp>/{results.csv,results.md,chart.svg}.
#
#   scripts/bench.sh            # full run, 3 repetitions per cell (< 15 min)
#   scripts/bench.sh --quick    # 1 repetition, short cells (< 2 min)
#   scripts/bench.sh --reps 5   # more repetitions
#
# What it measures:
#   echo        cppserver-v2 (1,000 messages in flight per client): every
#               compiled backend x {1, 100 clients} x {plain, TLS}
#               x {0, 10,000 idle connections held open alongside};
#               cppserver-v1 (one message per write, never waiting for
#               echoes): every backend x {1, 100 clients} x {plain, TLS}
#   latency     ping-pong round trips (one message in flight per client):
#               every backend x {1, 100 clients}, plaintext
#   multicast   every backend, 100 receivers
#   handshakes  full and resumed, RSA and ECDSA certificates
#   udp         UDP echo {1, 100 clients} and multicast {1, 100 receivers},
#               every backend, server CPU per datagram, datagrams per system
#               call, next to a minimal C recvmmsg/sendmmsg echo loop and to
#               one call per datagram: udp.md (scripts/bench-udp.sh)
#   vs nginx    the same handshakes against nginx (when installed), side by
#               side, interleaved: vs-nginx.md (scripts/bench-vs-nginx.sh)
#   memory      server RSS per idle connection, plain and TLS
#   19k         19,000 connections to one server process
#   100k        100,000 connections to 8 server processes sharing one port
#               through SO_REUSEPORT (scripts/run-per-core.sh)
#
# How it keeps the numbers honest:
#   * The server is pinned to one core (taskset) and the load generator to
#     another (--pin), so they do not fight over a core.
#   * Each cell is repeated and reported as the median with min-max, and the
#     backends are interleaved (repetition 1 of every backend, then 2, ...)
#     so that drift in the machine hits every backend alike.
#   * The server's CPU time per message is reported next to throughput: on a
#     2-core machine the load generator saturates its core, and ns/msg is
#     the figure that compares servers.
#
# Everything runs on loopback (127.0.0.0/8), bounded in time and count.
# Server and holder processes started here are stopped by PID on exit.
#
# Environment:
#   CARGO_TARGET_DIR  where the release build goes and is run from
#                     (default: target/ in the repository)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

quick=0
reps=3
while [[ $# -gt 0 ]]; do
  case $1 in
    --quick) quick=1; reps=1 ;;
    --reps) reps=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done

if (( quick )); then
  echo_secs=1; multicast_secs=1; handshake_secs=1
  mem_plain=10000; mem_tls=1000; mem_backends=best
else
  echo_secs=3; multicast_secs=3; handshake_secs=3
  mem_plain=10000; mem_tls=2000; mem_backends=all
fi
idle_conns=10000
big_conns=19000

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$here/target}
echo "bench.sh: building release into $CARGO_TARGET_DIR ..." >&2
cargo build --release --quiet
bin=$CARGO_TARGET_DIR/release/portcullis

mapfile -t backends < <("$bin" backends | awk '$3 == "available" { print $1 }')
best=${backends[0]}

# Server on core 0, load generator on core 1 (or both on 0 on one core).
server_cpu=0
bench_cpu=$(( $(nproc) > 1 ? 1 : 0 ))
pin_server=(taskset -c "$server_cpu")
if ! command -v taskset >/dev/null; then
  echo "bench.sh: taskset not found: the server runs unpinned" >&2
  pin_server=()
fi

out=bench-results/$(date +%Y%m%d-%H%M%S)
mkdir -p "$out/logs"
csv=$out/results.csv
echo "kind,variant,backend,clients,transport,idle,rep,msgs_per_s,mib_per_s,server_ns_per_unit,errors,exit,extra" >"$csv"

# ----- processes we own ---------------------------------------------------

owned=()   # PIDs started by this script, stopped on exit
unit=""    # the name of the per-unit figure of the current row, for printing
cleanup() {
  local pid
  for pid in "${owned[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${owned[@]}"; do wait "$pid" 2>/dev/null || true; done
  owned=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

forget() {  # forget PID: no longer ours to stop
  local keep=() pid
  for pid in "${owned[@]}"; do [[ $pid == "$1" ]] || keep+=("$pid"); done
  owned=("${keep[@]}")
}

stop() {  # stop PID, started by us
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  forget "$1"
}

# start_server LOGNAME BACKEND SERVE-ARGS...: sets server_pid, server_addr.
start_server() {
  local log=$out/logs/$1 backend=$2
  shift 2
  # Use the whole descriptor allowance: the 19k run needs it.
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  RUST_LOG=warn "${pin_server[@]}" "$bin" serve --listen 127.0.0.1:0 \
    --backend "$backend" "$@" >"$log.out" 2>"$log.err" &
  server_pid=$!
  owned+=("$server_pid")
  server_addr=""
  for _ in $(seq 1 200); do
    server_addr=$(grep -o 'listening on [^ ]*' "$log.out" 2>/dev/null | head -n1 | cut -d' ' -f3 || true)
    [[ -n $server_addr ]] && return 0
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.05
  done
  echo "bench.sh: the server did not start; see $log.err" >&2
  exit 1
}

# start_holder ADDR COUNT: holds COUNT idle connections; sets holder_pid.
start_holder() {
  local log=$out/logs/holder-$RANDOM
  "$bin" bench connections --addr "$1" --count "$2" --hold 3600 \
    --pin "$bench_cpu" >"$log.out" 2>"$log.err" &
  holder_pid=$!
  owned+=("$holder_pid")
  for _ in $(seq 1 1200); do
    grep -q 'holding' "$log.err" 2>/dev/null && return 0
    kill -0 "$holder_pid" 2>/dev/null || break
    sleep 0.05
  done
  echo "bench.sh: the idle-connection holder did not get ready; see $log.err" >&2
  exit 1
}

# ----- running the bench and recording rows --------------------------------

# field LINE KEY: the value of KEY=... in a RESULT line (empty if absent).
field() {
  tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p" | head -n1
}

# bench KIND VARIANT BACKEND CLIENTS TRANSPORT IDLE REP NSKEY -- ARGS...
# Runs `portcullis bench ARGS`, prints a one-line summary and appends a row.
bench() {
  local kind=$1 variant=$2 backend=$3 clients=$4 transport=$5 idle=$6 rep=$7 nskey=$8
  shift 9
  local log=$out/logs/$kind-$variant-$backend-$clients-$transport-$idle-$rep
  local code=0
  timeout 300 "$bin" bench "$@" --pin "$bench_cpu" >"$log.out" 2>"$log.err" || code=$?
  local line
  line=$(grep '^RESULT ' "$log.out" | tail -n1 || true)
  if [[ -z $line ]]; then
    echo "bench.sh: no RESULT from: portcullis bench $* (exit $code); see $log.err" >&2
    line="RESULT scenario=$kind msgs_per_s=0 mib_per_s=0 errors=1"
  fi
  unit=$nskey
  row "$kind" "$variant" "$backend" "$clients" "$transport" "$idle" "$rep" "$code" "$line" \
    "$(field "$line" msgs_per_s)" "$(field "$line" "$nskey")"
  last_line=$line
}

# row ... CODE LINE MSGS NS: appends one CSV row and prints it.
row() {
  local kind=$1 variant=$2 backend=$3 clients=$4 transport=$5 idle=$6 rep=$7 code=$8 line=$9
  local msgs=${10} ns=${11}
  local extra
  extra=$(tr ' ' '\n' <<<"$line" | grep '=' | grep -v -E '^(scenario|msgs_per_s|mib_per_s|errors)=' | paste -sd';' -)
  printf '%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,"%s"\n' "$kind" "$variant" "$backend" "$clients" \
    "$transport" "$idle" "$rep" "$msgs" "$(field "$line" mib_per_s)" "$ns" \
    "$(field "$line" errors)" "$code" "$extra" >>"$csv"
  printf '  %-11s %-7s %-5s %5s clients %-5s idle %-5s rep %s: %11s /s  %s=%s  errors %s\n' \
    "$kind" "$variant" "$backend" "$clients" "$transport" "$idle" "$rep" "$msgs" "$unit" \
    "${ns:--}" "$(field "$line" errors)" >&2
}

# ----- the matrix ----------------------------------------------------------

ecdsa_config=$out/ecdsa.toml
cat >"$ecdsa_config" <<EOF
# Written by scripts/bench.sh: the ECDSA P-256 development certificate.
[[domains]]
names = ["localhost"]
cert = "$here/certs/server-ecdsa.pem"
key = "$here/certs/server-ecdsa.key"
EOF

started=$(date +%s)
echo "bench.sh: backends ${backends[*]}; $reps repetition(s); results in $out" >&2

for rep in $(seq 1 "$reps"); do
  echo "bench.sh: repetition $rep of $reps" >&2
  for backend in "${backends[@]}"; do
    start_server "echo-$backend-$rep" "$backend" --service echo
    for idle in 0 "$idle_conns"; do
      holder_pid=""
      if (( idle > 0 )); then start_holder "$server_addr" "$idle"; fi
      for transport in plain tls; do
        tls_flag=()
        if [[ $transport == tls ]]; then tls_flag=(--tls); fi
        for clients in 1 100; do
          bench echo cppserver-v2 "$backend" "$clients" "$transport" "$idle" "$rep" server_cpu_ns_per_msg -- \
            echo --mode cppserver-v2 --addr "$server_addr" --clients "$clients" \
            --duration "$echo_secs" --server-pid "$server_pid" "${tls_flag[@]}"
          if (( idle == 0 )); then
            bench echo cppserver-v1 "$backend" "$clients" "$transport" "$idle" "$rep" server_cpu_ns_per_msg -- \
              echo --mode cppserver-v1 --addr "$server_addr" --clients "$clients" \
              --duration "$echo_secs" --server-pid "$server_pid" "${tls_flag[@]}"
          fi
        done
      done
      if [[ -n $holder_pid ]]; then stop "$holder_pid"; fi
    done
    for clients in 1 100; do
      bench latency pingpong "$backend" "$clients" plain 0 "$rep" p99_us -- \
        echo --mode pingpong --addr "$server_addr" --clients "$clients" \
        --duration "$echo_secs" --server-pid "$server_pid"
    done
    stop "$server_pid"

    start_server "multicast-$backend-$rep" "$backend" --service multicast --no-tls
    bench multicast stream "$backend" 100 plain 0 "$rep" server_cpu_ns_per_msg -- \
      multicast --addr "$server_addr" --clients 100 --duration "$multicast_secs" \
      --server-pid "$server_pid"
    stop "$server_pid"
  done

  # Handshakes are public-key arithmetic, not readiness: the best backend
  # is enough. Both phases run in one invocation; each gets its own row.
  for cert in rsa ecdsa; do
    config=()
    if [[ $cert == ecdsa ]]; then config=(--config "$ecdsa_config"); fi
    start_server "handshakes-$cert-$rep" "$best" --service echo "${config[@]}"
    bench handshakes full "$best" 16 "$cert" 0 "$rep" server_cpu_us_per_full -- \
      handshakes --addr "$server_addr" --concurrency 16 --duration "$handshake_secs" \
      --server-pid "$server_pid"
    # The same run's resumed figures, as a row of their own.
    unit=server_cpu_us_per_resumed
    row handshakes resumed "$best" 16 "$cert" 0 "$rep" 0 "$last_line" \
      "$(field "$last_line" resumed_per_s)" "$(field "$last_line" server_cpu_us_per_resumed)"
    stop "$server_pid"
  done
done

# Handshakes against nginx, same certificate and load generator, when nginx
# is installed (Debian: nginx-light).
if command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]]; then
  echo "bench.sh: handshakes vs nginx" >&2
  "$here/scripts/bench-vs-nginx.sh" --reps "$reps" --secs "$handshake_secs" --out "$out" \
    >"$out/vs-nginx.md" 2>"$out/logs/vs-nginx.err" \
    || echo "bench.sh: the nginx comparison failed; see $out/logs/vs-nginx.err" >&2
else
  echo "bench.sh: nginx not installed: no vs-nginx cell" >&2
fi

# UDP: echo and multicast for every backend, beside a C recvmmsg/sendmmsg
# echo loop (built with gcc) and one system call per datagram.
echo "bench.sh: UDP echo and multicast" >&2
udp_flags=()
if (( quick )); then udp_flags=(--quick); fi
"$here/scripts/bench-udp.sh" --reps "$reps" --secs "$echo_secs" --out "$out" "${udp_flags[@]}" \
  >/dev/null 2>"$out/logs/udp.err" \
  || echo "bench.sh: the UDP benchmarks failed; see $out/logs/udp.err" >&2

# Memory per idle connection: a fresh server per measurement, since freed
# memory is not given back to the system and would hide the next growth.
echo "bench.sh: memory per idle connection" >&2
mem_list=("${backends[@]}")
if [[ $mem_backends == best ]]; then mem_list=("$best"); fi
for backend in "${mem_list[@]}"; do
  for transport in plain tls; do
    count=$mem_plain
    tls_flag=()
    if [[ $transport == tls ]]; then count=$mem_tls; tls_flag=(--tls); fi
    start_server "memory-$backend-$transport" "$backend" --service echo
    bench memory idle "$backend" "$count" "$transport" "$count" 1 rss_bytes_per_conn -- \
      connections --addr "$server_addr" --count "$count" --hold 1 \
      --server-pid "$server_pid" "${tls_flag[@]}"
    stop "$server_pid"
  done
done

# 19,000 connections to one server process (its descriptor limit is
# 20,000); the bench splits itself over two processes of 10,000.
echo "bench.sh: $big_conns connections to one server process" >&2
start_server "big-$best" "$best" --service echo --no-tls
bench connections 19k "$best" "$big_conns" plain "$big_conns" 1 rss_bytes_per_conn -- \
  connections --addr "$server_addr" --count "$big_conns" --hold 2 --per-process 10000 \
  --server-pid "$server_pid"
stop "$server_pid"

# 100,000 connections: more than one process may hold (the descriptor limit
# is per process), so 8 server processes share the port (SO_REUSEPORT) and
# the bench splits itself over processes and source addresses.
big_many=100000
echo "bench.sh: $big_many connections to 8 server processes" >&2
log=$out/logs/run-per-core
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
RUST_LOG=warn PORTCULLIS_BIN="$bin" "$here/scripts/run-per-core.sh" 8 --service echo --no-tls \
  --backend "$best" --listen 127.0.0.1:0 >"$log.out" 2>"$log.err" &
group_pid=$!
owned+=("$group_pid")
server_addr=""
for _ in $(seq 1 400); do
  server_addr=$(grep -o 'run-per-core: 8 processes on [^ ]*' "$log.out" 2>/dev/null | cut -d' ' -f5 || true)
  [[ -n $server_addr ]] && break
  sleep 0.05
done
if [[ -z $server_addr ]]; then
  echo "bench.sh: run-per-core.sh did not start; see $log.err" >&2
  exit 1
fi
sleep 0.5  # let the other seven processes join the port
# Memory per connection adds up all eight server processes.
group_pids=$(grep -o '(pids [0-9 ]*)' "$log.out" | tr -d '()' | cut -d' ' -f2-)
pid_flags=()
for pid in $group_pids; do pid_flags+=(--server-pid "$pid"); done
bench connections 100k "$best" "$big_many" plain "$big_many" 1 rss_bytes_per_conn -- \
  connections --addr "$server_addr" --count "$big_many" --hold 2 --per-process 15000 \
  "${pid_flags[@]}"
stop "$group_pid"

python3 "$here/scripts/bench-chart.py" "$out"
echo "bench.sh: done in $(( $(date +%s) - started )) s: $out/results.md, $out/chart.svg" >&2
