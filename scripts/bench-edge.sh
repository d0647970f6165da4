#!/usr/bin/env bash
# The PROXY protocol's cost per message, side by side: the stream echo cell
# (bench echo, cppserver-v2) through HAProxy in front of Portcullis, with
# the protocol off (HAProxy forwards bytes only) and with it on
# (send-proxy-v2, proxy_protocol = "v2"). The two arms alternate, A B then
# B A, for every round, and the report gives each arm's median server CPU
# per message and messages per second, and their ratio.
#
#   scripts/bench-edge.sh [--rounds N] [--seconds S] [--clients C]
#
# HAProxy is in both arms so that the only difference is the header (and
# the stage that reads it). Loopback only; each run is bounded in time.
#
# Environment:
#   PORTCULLIS_BIN    the binary to run (default: the release build,
#                     $CARGO_TARGET_DIR/release/portcullis, built if missing)
#   CARGO_TARGET_DIR  where cargo builds (default: target/ in the repository)
set -euo pipefail

rounds=5
seconds=3
clients=20
while (($#)); do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-edge: unknown argument $1" >&2; exit 2 ;;
  esac
done
here=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$here/target}
bin=${PORTCULLIS_BIN:-"$CARGO_TARGET_DIR/release/portcullis"}
command -v haproxy >/dev/null || { echo "bench-edge: haproxy is not installed" >&2; exit 1; }
[[ -x $bin ]] || (cd "$here" && cargo build --release --quiet)

dir=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
}
trap 'cleanup; rm -rf "$dir"' EXIT INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# One run of ARM (off or v2): prints "cpu_ns msgs_per_s".
run_arm() {
  local arm=$1 keys="" options=""
  if [[ $arm == v2 ]]; then
    keys=$'proxy_protocol = "v2"\ntrusted_proxies = ["127.0.0.1"]'
    options="send-proxy-v2"
  fi
  printf 'service = "echo"\n[[listeners]]\naddress = "127.0.0.1:0"\ntls = false\ndefer_accept = false\n%s\n' \
    "$keys" >"$dir/$arm.toml"
  "$bin" serve --config "$dir/$arm.toml" >"$dir/$arm.out" 2>"$dir/$arm.err" &
  local server=$!
  pids+=("$server")
  local addr=""
  for _ in $(seq 1 200); do
    addr=$(grep -o 'listening on [^ ]*' "$dir/$arm.out" | head -n1 | cut -d' ' -f3 || true)
    [[ -n $addr ]] && break
    sleep 0.05
  done
  [[ -n $addr ]] || { cat "$dir/$arm.err" >&2; exit 1; }
  local front
  front=$(free_port)
  printf 'global\n  maxconn 1000\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\nfrontend f\n  bind 127.0.0.1:%s\n  default_backend b\nbackend b\n  server s %s %s\n' \
    "$front" "$addr" "$options" >"$dir/$arm.cfg"
  haproxy -db -f "$dir/$arm.cfg" >"$dir/$arm.haproxy" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$front") 2>/dev/null && break
    sleep 0.05
  done
  local result
  result=$("$bin" bench echo --addr "127.0.0.1:$front" --clients "$clients" --duration "$seconds" \
    --server-pid "$server" | grep '^RESULT')
  cleanup
  local cpu rate errors
  cpu=$(grep -o 'server_cpu_ns_per_msg=[0-9.]*' <<<"$result" | cut -d= -f2)
  rate=$(grep -o 'msgs_per_s=[0-9.]*' <<<"$result" | cut -d= -f2)
  errors=$(grep -o 'errors=[0-9]*' <<<"$result" | cut -d= -f2)
  [[ $errors == 0 ]] || { echo "bench-edge: $arm counted $errors errors" >&2; exit 1; }
  echo "$cpu $rate"
}

declare -a off_cpu off_rate v2_cpu v2_rate
for round in $(seq 1 "$rounds"); do
  order="off v2"
  ((round % 2 == 0)) && order="v2 off"
  for arm in $order; do
    read -r cpu rate < <(run_arm "$arm")
    echo "round $round $arm: server ${cpu} ns/msg, ${rate} msg/s"
    if [[ $arm == off ]]; then off_cpu+=("$cpu"); off_rate+=("$rate"); else v2_cpu+=("$cpu"); v2_rate+=("$rate"); fi
  done
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
a_cpu=$(median "${off_cpu[@]}"); b_cpu=$(median "${v2_cpu[@]}")
a_rate=$(median "${off_rate[@]}"); b_rate=$(median "${v2_rate[@]}")
echo "median server CPU per message: off ${a_cpu} ns, v2 ${b_cpu} ns (ratio $(awk -v a="$a_cpu" -v b="$b_cpu" 'BEGIN {printf "%.3f", b/a}'))"
echo "median messages per second:    off ${a_rate}, v2 ${b_rate} (ratio $(awk -v a="$a_rate" -v b="$b_rate" 'BEGIN {printf "%.3f", b/a}'))"
