# Running one cell of scripts/compare.sh (sourced by it, not run): one load
# generator against one server, pinned to CPU 1 ($pin_client), with the
# server's CPU time per unit and the generator's own CPU.
#
# Each run_* appends one row to $csv:
#   scenario,rep,server,rate,server_cpu_per_unit,client_cpu_pct,errors,extra
# where the units are the scenario's (scenarios.csv, written by scenario).
#
# The one idea: the server's CPU is read from /proc/PID/stat, the same way
# for every server and every generator: `portcullis bench` reads it at its
# start line and end (so connecting is not counted), the script around
# every other generator's whole run.

hz=$(getconf CLK_TCK)

# CPU ticks (utime + stime) of the given processes, added up.
ticks() {
  local total=0 pid fields
  for pid in "$@"; do
    [[ -r /proc/$pid/stat ]] || continue
    read -r -a fields < <(sed 's/^.*) //' "/proc/$pid/stat")
    total=$((total + fields[11] + fields[12]))
  done
  echo "$total"
}

# field LINE KEY: KEY=... of a RESULT line.
field() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p" | head -n1; }

# scenario ID TITLE RATE-UNIT CPU-UNIT GENERATOR: describes a table once.
scenario() {
  grep -q "^$1," "$out/scenarios.csv" 2>/dev/null && return 0
  printf '%s,"%s",%s,%s,"%s"\n' "$1" "$2" "$3" "$4" "$5" >>"$out/scenarios.csv"
}

row() { # scenario server rate cpu client errors extra
  printf '%s,%s,%s,%s,%s,%s,%s,"%s"\n' "$1" "$rep" "$2" "${3:-}" "${4:-}" "${5:-}" "${6:-}" "${7:-}" >>"$csv"
  printf '  rep %s %-14s %-22s %12s /s  server %8s  client %5s %%  errors %s\n' \
    "$rep" "$1" "$2" "${3:--}" "${4:--}" "${5:--}" "${6:--}" >&2
}

# timed CMD...: runs CMD on the client CPU, output in $work/cell.out; sets
# client_pct (its CPU over its wall time) and cell_ok.
timed() {
  local TIMEFORMAT='%R %U %S'
  cell_ok=1
  { time "${pin_client[@]}" timeout $((secs + 60)) "$@" >"$work/cell.out" 2>&1 || cell_ok=0; } 2>"$work/time.out"
  client_pct=$(awk '{ if ($1 > 0) printf "%.1f", 100 * ($2 + $3) / $1 }' "$work/time.out")
}

# pid_flags SERVER: --server-pid for each of the server's processes.
pid_flags() {
  local pid
  server_pids=()
  for pid in ${pids[$1]}; do server_pids+=(--server-pid "$pid"); done
}

# run_bench_echo SCENARIO SERVER ECHO-FLAGS...: `portcullis bench echo`.
run_bench_echo() {
  local scen=$1 server=$2
  shift 2
  pid_flags "$server"
  timed "$bin" bench echo --addr "${addr[$server]}" --duration "$secs" "${server_pids[@]}" "$@"
  local line
  line=$(grep '^RESULT ' "$work/cell.out" | tail -n1 || true)
  if [[ -z $line ]]; then
    echo "compare.sh: no result from bench echo against $server:" >&2
    tail -n 5 "$work/cell.out" >&2
    row "$scen" "$server" "" "" "" 1 ""
    return
  fi
  local extra=""
  for key in p50_us p99_us; do
    [[ -n $(field "$line" $key) ]] && extra+="$key=$(field "$line" $key);"
  done
  row "$scen" "$server" "$(field "$line" msgs_per_s)" "$(field "$line" server_cpu_ns_per_msg)" \
    "$(field "$line" client_cpu_pct)" "$(field "$line" errors)" "${extra%;}"
}

# run_bench_handshakes SCENARIO SERVER: full handshakes, 16 at a time.
run_bench_handshakes() {
  local scen=$1 server=$2
  pid_flags "$server"
  timed "$bin" bench handshakes --addr "${addr[$server]}" --phases full --concurrency 16 \
    --duration "$secs" "${server_pids[@]}"
  local line client
  line=$(grep '^RESULT ' "$work/cell.out" | tail -n1 || true)
  client=$(sed -n 's/^full client CPU: *\([0-9.]*\) .*/\1/p' "$work/cell.out")
  row "$scen" "$server" "$(field "$line" handshakes_per_s)" "$(field "$line" server_cpu_us_per_full)" \
    "$client" "$(field "$line" errors)" ""
}

# run_external SCENARIO SERVER PARSE SCALE CMD...: any other generator.
# PARSE is a function reading $work/cell.out and printing "UNITS RATE
# ERRORS"; SCALE turns seconds of server CPU per unit into the table's unit
# (1e6 for us, 1e9 for ns).
run_external() {
  local scen=$1 server=$2 parse=$3 cpu_scale=$4
  shift 4
  local before after parsed units rate errors
  read -r -a server_list <<<"${pids[$server]}"
  before=$(ticks "${server_list[@]}")
  timed "$@"
  after=$(ticks "${server_list[@]}")
  parsed=$($parse)
  read -r units rate errors <<<"$parsed"
  if [[ -z $units || $units == 0 ]]; then
    echo "compare.sh: $scen against $server produced nothing:" >&2
    tail -n 5 "$work/cell.out" >&2
    row "$scen" "$server" "" "" "$client_pct" 1 ""
    return
  fi
  (( cell_ok )) || errors=$((errors + 1))
  local cpu
  cpu=$(awk -v t=$((after - before)) -v hz="$hz" -v n="$units" -v scale="$cpu_scale" \
    'BEGIN { printf "%.2f", t / hz * scale / n }')
  row "$scen" "$server" "$rate" "$cpu" "$client_pct" "$errors" ""
}

# wrk: requests, requests/s, errors (socket errors and non-2xx responses).
parse_wrk() {
  local reqs rps bad sock
  reqs=$(sed -n 's/^ *\([0-9]*\) requests in .*/\1/p' "$work/cell.out")
  rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$work/cell.out")
  bad=$(sed -n 's/^ *Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' "$work/cell.out")
  sock=$(grep -o 'Socket errors:.*' "$work/cell.out" | grep -o '[0-9]\+' | awk '{ s += $1 } END { print s + 0 }')
  echo "${reqs:-0} ${rps:-0} $(( ${bad:-0} + ${sock:-0} ))"
}

# openssl s_time: "N connections in T real seconds".
parse_s_time() {
  local line n t
  line=$(grep 'connections in .* real seconds' "$work/cell.out" | head -n1)
  n=$(awk '{print $1}' <<<"$line")
  t=$(awk '{print $4}' <<<"$line")
  awk -v n="${n:-0}" -v t="${t:-0}" 'BEGIN { printf "%d %.0f 0\n", n, (t > 0 ? n / t : 0) }'
}

# CppServer's clients: "Total messages: N", "Message throughput: R msg/s".
parse_cppserver() {
  local n r e
  n=$(sed -n 's/^Total messages: *\([0-9]*\).*/\1/p' "$work/cell.out")
  r=$(sed -n 's/^Message throughput: *\([0-9]*\).*/\1/p' "$work/cell.out")
  e=$(sed -n 's/^Errors: *\([0-9]*\).*/\1/p' "$work/cell.out")
  echo "${n:-0} ${r:-0} ${e:-0}"
}
