#!/usr/bin/env bash
# HTTP/2 throughput, portcullis beside nginx, in one run: h2load with
# 100 connections x 10 concurrent streams against each server, over h2c
# (prior knowledge) and over TLS (ALPN h2), rounds alternating between the
# servers so both see the same machine.
#
#   scripts/h2-vs-nginx.sh [--seconds N] [--rounds N] [--connections N]
#                          [--streams N] [--path PATH] [--help]
#
#   --seconds N      measured seconds per cell and round (default 10)
#   --rounds N       rounds; the table shows medians (default 3)
#   --connections N  h2load -c (default 100)
#   --streams N      h2load -m, concurrent streams per connection (default 10)
#   --path PATH      what is requested (default /healthz: "ok\n" from both)
#
# Both servers run one worker pinned to CPU 0 (taskset), h2load runs on
# CPU 1, with the same certificate (certs/server.pem). nginx is Debian's
# nginx-light ("listen ... http2"; the 1.22 spelling of "http2 on"), with
# access logs off. Per cell: requests/s from h2load, the server's CPU time
# per request (utime+stime from /proc/PID/stat, master and worker summed
# for nginx), and h2load's own CPU per request (bash `time`). Traffic stays
# on 127.0.0.1. Needs: h2load (nghttp2-client), nginx (nginx-light),
# taskset.
#
# Environment:
#   PORTCULLIS_BIN    the binary to run (default: the release build,
#                     $CARGO_TARGET_DIR/release/portcullis, built if missing)
#   CARGO_TARGET_DIR  where cargo builds (default: target/ in the repository)
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
seconds=10 rounds=3 connections=100 streams=10 path=/healthz
while (($#)); do
  case $1 in
    --help|-h) usage; exit 0 ;;
    --seconds) seconds=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --streams) streams=$2; shift 2 ;;
    --path) path=$2; shift 2 ;;
    *) echo "h2-vs-nginx: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
for tool in h2load nginx taskset; do
  command -v "$tool" >/dev/null || { echo "h2-vs-nginx: $tool not found (apt-get install nghttp2-client nginx-light util-linux)" >&2; exit 1; }
done

here=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$here/target}
bin=${PORTCULLIS_BIN:-"$CARGO_TARGET_DIR/release/portcullis"}
[[ -x $bin ]] || (cd "$here" && cargo build --release --quiet)
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# --- portcullis: one worker, h2c and TLS on one port ---
taskset -c 0 "$bin" serve --listen 127.0.0.1:0 --workers 1 >"$work/portcullis.out" 2>/dev/null &
p_pid=$!
pids+=("$p_pid")
p_addr=""
for _ in $(seq 1 200); do
  p_addr=$(grep -o 'listening on [^ ]*' "$work/portcullis.out" | head -n1 | cut -d' ' -f3 || true)
  [[ -n $p_addr ]] && break
  sleep 0.05
done
[[ -n $p_addr ]] || { echo "h2-vs-nginx: portcullis did not start" >&2; exit 1; }
p_port=${p_addr##*:}

# --- nginx: one worker, an h2c port and a TLS port ---
n_plain=$(free_port)
n_tls=$(free_port)
mkdir -p "$work/nginx"
cat >"$work/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  default_type text/plain;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  keepalive_requests 1000000;
  http2_max_requests 1000000;
  server {
    listen 127.0.0.1:$n_plain http2;
    listen 127.0.0.1:$n_tls ssl http2;
    ssl_certificate $here/certs/server.pem;
    ssl_certificate_key $here/certs/server.key;
    location / { return 200 "ok\n"; }
  }
}
CONF
taskset -c 0 nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" 2>"$work/nginx/start.err" &
n_pid=$!
pids+=("$n_pid")
for _ in $(seq 1 100); do
  curl -s --http2-prior-knowledge "http://127.0.0.1:$n_plain/" >/dev/null 2>&1 && break
  sleep 0.05
done

# CPU ticks (utime + stime) of a process and its children's threads.
ticks() {
  local total=0 pid
  for pid in "$@"; do
    [[ -r /proc/$pid/stat ]] || continue
    local fields
    read -r -a fields < <(sed 's/^.*) //' "/proc/$pid/stat")
    total=$((total + fields[11] + fields[12]))
  done
  echo "$total"
}
server_pids() { # $1: portcullis|nginx
  if [[ $1 == portcullis ]]; then echo "$p_pid"; else echo "$n_pid $(pgrep -P "$n_pid" | tr '\n' ' ')"; fi
}
hz=$(getconf CLK_TCK)

# One cell: prints "req_per_s server_us_per_req client_us_per_req".
cell() { # $1 server, $2 url
  local pids_now before after client out reqs rps
  read -r -a pids_now <<<"$(server_pids "$1")"
  before=$(ticks "${pids_now[@]}")
  TIMEFORMAT='%U %S'
  { time taskset -c 1 h2load -c "$connections" -m "$streams" -D "$seconds" --warm-up-time 1 "$2" >"$work/h2load.out" 2>&1 ; } 2>"$work/time.out"
  after=$(ticks "${pids_now[@]}")
  out=$(cat "$work/h2load.out")
  reqs=$(grep -o '[0-9]* succeeded' <<<"$out" | head -n1 | cut -d' ' -f1)
  rps=$(grep -o 'finished in [^,]*, [0-9.]* req/s' <<<"$out" | grep -o '[0-9.]* req/s' | cut -d' ' -f1)
  client=$(awk '{print $1 + $2}' "$work/time.out")
  if [[ -z $reqs || $reqs -eq 0 ]]; then echo "0 0 0"; echo "h2load failed against $1 $2:" >&2; cat "$work/h2load.out" >&2; return; fi
  # h2load counts requests of the measured seconds only; the CPU times
  # cover the warm-up second too, so both are divided by the requests of
  # d + 1 seconds at the measured rate.
  awk -v r="$rps" -v s=$((after - before)) -v hz="$hz" -v c="$client" -v d="$seconds" \
    'BEGIN { n = r * (d + 1); printf "%.0f %.2f %.2f\n", r, s / hz * 1e6 / n, c * 1e6 / n }'
}

declare -A results
for round in $(seq 1 "$rounds"); do
  for proto in h2c tls; do
    for server in portcullis nginx; do
      case $server/$proto in
        portcullis/h2c) url="http://127.0.0.1:$p_port$path" ;;
        portcullis/tls) url="https://localhost:$p_port$path" ;;
        nginx/h2c) url="http://127.0.0.1:$n_plain$path" ;;
        nginx/tls) url="https://localhost:$n_tls$path" ;;
      esac
      results[$server/$proto/$round]=$(cell "$server" "$url")
      echo "round $round $server $proto: ${results[$server/$proto/$round]} (req/s, server us/req, client us/req)" >&2
    done
  done
done

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
echo
echo "h2load -c $connections -m $streams -D $seconds, $rounds rounds (medians); servers on CPU 0, h2load on CPU 1"
printf '| %-7s | %-10s | %10s | %16s | %16s |\n' "cell" "server" "req/s" "server CPU/req" "client CPU/req"
printf '|---------|------------|-----------:|-----------------:|-----------------:|\n'
for proto in h2c tls; do
  for server in portcullis nginx; do
    col() { for round in $(seq 1 "$rounds"); do awk -v i="$1" '{ print $i }' <<<"${results[$server/$proto/$round]}"; done | median; }
    printf '| %-7s | %-10s | %10s | %13s us | %13s us |\n' "$proto" "$server" "$(col 1)" "$(col 2)" "$(col 3)"
  done
done
