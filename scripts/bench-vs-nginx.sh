#!/usr/bin/env bash
# Full and resumed TLS handshakes per second, Portcullis against nginx, side
# by side in one run: same certificate, same load generator (`portcullis
# bench handshakes`, pinned to CPU 1), each server with one worker pinned to
# CPU 0, repetitions interleaved (Portcullis, nginx, Portcullis, ...).
#
#   scripts/bench-vs-nginx.sh [--reps N] [--secs S] [--out DIR]
#
# Prints one line per run and a median table; with --out, appends rows to
# DIR/vs-nginx.csv. Needs nginx (Debian: nginx-light). Servers started here
# are stopped by PID on exit; everything runs on 127.0.0.1.
#
# Environment:
#   CARGO_TARGET_DIR  where the release build goes and is run from
#                     (default: target/ in the repository)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
reps=5
secs=3
out=""
while [[ $# -gt 0 ]]; do
  case $1 in
    --reps) reps=$2; shift ;;
    --secs) secs=$2; shift ;;
    --out) out=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-vs-nginx.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
nginx=$(command -v nginx || true)
[[ -x $nginx ]] || nginx=/usr/sbin/nginx
if [[ ! -x $nginx ]]; then
  echo "bench-vs-nginx.sh: nginx not installed (apt-get install nginx-light)" >&2
  exit 3
fi
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$here/target}
(cd "$here" && cargo build --release --quiet)
bin=$CARGO_TARGET_DIR/release/portcullis
bench_cpu=$(( $(nproc) > 1 ? 1 : 0 ))
work=$(mktemp -d)
owned=()
cleanup() {
  local pid
  for pid in "${owned[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${owned[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_portcullis CERT KEY: sets pid, addr.
start_portcullis() {
  cat >"$work/p.toml" <<TOML
[[domains]]
names = ["localhost"]
cert = "$1"
key = "$2"
TOML
  RUST_LOG=error taskset -c 0 "$bin" serve --listen 127.0.0.1:0 --service echo \
    --config "$work/p.toml" >"$work/p.out" 2>"$work/p.err" &
  pid=$!
  owned+=("$pid")
  addr=""
  for _ in $(seq 1 200); do
    addr=$(grep -o 'listening on [^ ]*' "$work/p.out" 2>/dev/null | cut -d' ' -f3 || true)
    [[ -n $addr ]] && return 0
    sleep 0.05
  done
  echo "bench-vs-nginx.sh: portcullis did not start: $(cat "$work/p.err")" >&2
  exit 1
}

# start_nginx CERT KEY: sets pid (the worker), addr.
start_nginx() {
  local port
  port=$(free_port)
  mkdir -p "$work/nginx/logs"
  cat >"$work/nginx/nginx.conf" <<CONF
worker_processes 1;
worker_cpu_affinity 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log error;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  server {
    listen 127.0.0.1:$port ssl;
    ssl_certificate $1;
    ssl_certificate_key $2;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:SSL:10m;
    ssl_session_tickets on;
    location / { return 200 "ok\n"; }
  }
}
CONF
  taskset -c 0 "$nginx" -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' \
    2>"$work/nginx/stderr" &
  local master=$!
  owned+=("$master")
  pid=""
  for _ in $(seq 1 100); do
    pid=$(pgrep -P "$master" | head -n1 || true)
    [[ -n $pid ]] && break
    sleep 0.05
  done
  [[ -n $pid ]] || { echo "bench-vs-nginx.sh: nginx did not start: $(cat "$work/nginx/stderr")" >&2; exit 1; }
  sleep 0.2
  addr=127.0.0.1:$port
  server_main=$master
}

stop_pid() {
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

field() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p" | head -n1; }

results=$work/results.tsv
: >"$results"
for rep in $(seq 1 "$reps"); do
  for cert in rsa ecdsa; do
    case $cert in
      rsa) c=$here/certs/server.pem; k=$here/certs/server.key ;;
      ecdsa) c=$here/certs/server-ecdsa.pem; k=$here/certs/server-ecdsa.key ;;
    esac
    for server in portcullis nginx; do
      if [[ $server == portcullis ]]; then start_portcullis "$c" "$k"; main=$pid
      else start_nginx "$c" "$k"; main=$server_main; fi
      report=$("$bin" bench handshakes --addr "$addr" --concurrency 16 --duration "$secs" \
        --server-pid "$pid" --pin "$bench_cpu" 2>"$work/bench.err" || true)
      line=$(grep '^RESULT ' <<<"$report" || true)
      cc_full=$(sed -n 's/^full client CPU: *\([0-9.]*\) .*/\1/p' <<<"$report")
      cc_res=$(sed -n 's/^resumed client CPU: *\([0-9.]*\) .*/\1/p' <<<"$report")
      stop_pid "$main"
      full=$(field "$line" handshakes_per_s); resumed=$(field "$line" resumed_per_s)
      us_full=$(field "$line" server_cpu_us_per_full); us_res=$(field "$line" server_cpu_us_per_resumed)
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rep" "$cert" "$server" "$full" "$us_full" \
        "$resumed" "$us_res" "$cc_full" "$cc_res" >>"$results"
      printf 'rep %s %-5s %-10s full %6s/s %7s us/hs client %5s%%   resumed %6s/s %7s us/hs client %5s%%\n' \
        "$rep" "$cert" "$server" "$full" "$us_full" "$cc_full" "$resumed" "$us_res" "$cc_res" >&2
      if [[ -n $out ]]; then
        printf 'vs-nginx,%s,%s,%s,%s,%s,%s,%s,%s,%s\n' "$rep" "$cert" "$server" "$full" "$us_full" \
          "$resumed" "$us_res" "$cc_full" "$cc_res" >>"$out/vs-nginx.csv"
      fi
    done
  done
done

python3 - "$results" <<'PY'
import statistics, sys
rows = [l.rstrip('\n').split('\t') for l in open(sys.argv[1]) if l.strip()]
def med(cert, server, col):
    vals = [float(r[col]) for r in rows if r[1] == cert and r[2] == server and r[col]]
    return statistics.median(vals) if vals else float('nan')
print("| cert | kind | portcullis /s | nginx /s | ratio | portcullis server us/hs | nginx server us/hs | ratio | client CPU % (p / n) |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
for cert in ("rsa", "ecdsa"):
    for kind, rate, us, cc in (("full", 3, 4, 7), ("resumed", 5, 6, 8)):
        p, n = med(cert, "portcullis", rate), med(cert, "nginx", rate)
        pu, nu = med(cert, "portcullis", us), med(cert, "nginx", us)
        pc, nc = med(cert, "portcullis", cc), med(cert, "nginx", cc)
        print(f"| {cert} | {kind} | {p:.0f} | {n:.0f} | {p/n:.2f} | {pu:.0f} | {nu:.0f} | {pu/nu:.2f} | {pc:.0f} / {nc:.0f} |")
PY
