#!/usr/bin/env bash
# Portcullis side by side with the servers a user would pick instead, in one
# run, with the same load generators, pinned the same way.
#
#   scripts/compare.sh [--quick] [--reps N] [--secs S] [--install]
#                      [--cppserver DIR] [--out DIR]
#
#   --quick          1 repetition of 1 s per cell (well under 3 minutes)
#   --reps N         repetitions, interleaved (default 3)
#   --secs S         seconds per cell (default 5)
#   --install        apt-get install the peers that are missing (nginx-light,
#                    haproxy, wrk); without it a missing peer is skipped
#                    with a line saying so
#   --cppserver DIR  also run CppServer's own clients and servers, from a
#                    CppServer checkout built in DIR (see below)
#   --out DIR        where to write (default bench-results/compare-<date>)
#
# Scenarios (one table each; a server missing is a skipped column):
#   echo-v1, echo-v2, echo-pingpong   `portcullis bench echo --mode ...`, 100
#        clients (1 for pingpong), 32-byte messages: Portcullis, the C epoll
#        echo server and the tokio echo server (benches/peers/), CppServer's
#        tcp_echo_server
#   echo-v1-tls, echo-v2-tls          the same over TLS: Portcullis, HAProxy
#        (TCP mode, TLS terminated in front of the C echo server), CppServer's
#        ssl_echo_server
#   http1, http1-tls   wrk -t1 -c100, GET /healthz: Portcullis, nginx
#   handshakes, handshakes-s_time     full TLS handshakes (portcullis bench
#        handshakes, 16 at a time; openssl s_time -new, one at a time):
#        Portcullis, nginx, HAProxy
#   cppserver-*        with --cppserver: CppServer's tcp_echo_client,
#        ssl_echo_client and tcp_multicast_client against Portcullis and
#        CppServer's own servers (and the other echo peers)
#
# How it keeps the numbers honest: every server runs one worker pinned to
# CPU 0, every load generator runs on CPU 1; repetitions are interleaved
# and the order of the servers rotates each repetition; tables show medians
# and, per repetition, the peer's figure over Portcullis's (paired ratios).
# Each cell reports the generator's own CPU; a cell whose generator used
# over 95 % of its core is marked "limited by the client".
#
# Output in DIR: results.md (one table per scenario, peers side by side,
# ratios to the best), results.csv (one row per cell and repetition),
# scenarios.csv, chart.svg (scripts/compare/report.py). Exits 1 when a cell
# counted errors or produced no figure (the tables are written anyway).
#
# Building CppServer (its sources are not part of this repository):
#   git clone https://github.com/chronoxor/CppServer.git && cd CppServer
#   pip3 install gil && gil update        # its submodules
#   cd build && ./unix.sh                 # cmake; needs libssl-dev, cmake, g++
# then pass --cppserver path/to/CppServer. Its programs are found anywhere
# below DIR by name (cppserver-performance-*); they run from DIR/performance
# so that their ../tools/certificates paths resolve.
#
# Environment:
#   CARGO_TARGET_DIR  where the release build and the peers (peers/) go
#                     (default: target/ in the repository)
#
# Everything runs on 127.0.0.1; every process started here is stopped by PID
# on exit.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
reps=3 secs=5 install=0 cppserver="" out=""
while (($#)); do
  case $1 in
    --quick) reps=1; secs=1 ;;
    --reps) reps=$2; shift ;;
    --secs) secs=$2; shift ;;
    --install) install=1 ;;
    --cppserver) cppserver=$(cd "$2" && pwd); shift ;;
    --out) out=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "compare.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done
started=$(date +%s)

# ----- peers: found, installed on request, or skipped with a reason --------
find_tool() { command -v "$1" 2>/dev/null || { [[ -x /usr/sbin/$1 ]] && echo "/usr/sbin/$1"; } || true; }
declare -A package=([nginx]=nginx-light [haproxy]=haproxy [wrk]=wrk)
missing=()
for tool in nginx haproxy wrk; do [[ -n $(find_tool "$tool") ]] || missing+=("${package[$tool]}"); done
if ((${#missing[@]})) && ((install)); then
  echo "compare.sh: installing ${missing[*]}" >&2
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
fi
nginx=$(find_tool nginx) haproxy=$(find_tool haproxy) wrk=$(find_tool wrk)
skipped=()
skip() { skipped+=("$1"); echo "compare.sh: skipping $1" >&2; }
[[ -n $nginx ]] || skip "nginx: not installed (apt-get install nginx-light, or pass --install)"
[[ -n $haproxy ]] || skip "HAProxy: not installed (apt-get install haproxy, or pass --install)"
[[ -n $wrk ]] || skip "the HTTP/1.1 tables: wrk is not installed (apt-get install wrk, or pass --install)"
if [[ -n $cppserver && -z $(find "$cppserver" -type f -name 'cppserver-performance-tcp_echo_server' -print -quit) ]]; then
  echo "compare.sh: --cppserver $cppserver holds no built cppserver-performance-* programs (see --help)" >&2
  exit 2
fi
[[ -n $cppserver ]] || skip "CppServer: no --cppserver DIR given"
for tool in taskset python3 openssl; do
  command -v "$tool" >/dev/null || { echo "compare.sh: $tool is required" >&2; exit 2; }
done

# ----- builds --------------------------------------------------------------
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$here/target}
echo "compare.sh: building portcullis (release) and the peers ..." >&2
(cd "$here" && cargo build --release --quiet)
bin=$CARGO_TARGET_DIR/release/portcullis
peers=$("$here/benches/peers/build.sh")

# ----- processes we own ----------------------------------------------------
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

server_cpu=0
client_cpu=$(( $(nproc) > 1 ? 1 : 0 ))
pin_server=(taskset -c "$server_cpu")
pin_client=(taskset -c "$client_cpu")
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

out=${out:-$here/bench-results/compare-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"
csv=$out/results.csv
echo "scenario,rep,server,rate,server_cpu_per_unit,client_cpu_pct,errors,extra" >"$csv"
echo "id,title,rate_unit,cpu_unit,generator" >"$out/scenarios.csv"
printf '%s\n' "${skipped[@]}" >"$out/skipped.txt"

# shellcheck source=compare/servers.sh
source "$here/scripts/compare/servers.sh"
# shellcheck source=compare/cells.sh
source "$here/scripts/compare/cells.sh"

# ----- servers: started once, idle between their cells ---------------------
start_portcullis portcullis --service echo
start_portcullis portcullis-http
start_peer_binary epoll-c "$peers/epoll_echo"
start_peer_binary tokio "$peers/tokio-echo"
[[ -n $nginx ]] && start_nginx
[[ -n $haproxy ]] && start_haproxy
if [[ -n $cppserver ]]; then
  start_cppserver cppserver tcp_echo_server
  start_cppserver cppserver-ssl ssl_echo_server
  start_cppserver cppserver-multicast tcp_multicast_server -m 100000000 -s 32
  start_portcullis_with_cppserver_certificate
  start_portcullis portcullis-multicast --service multicast --no-tls
fi
have() { [[ -n ${addr[$1]:-} ]]; }
# The order of the servers in one table, rotated by one each repetition.
rotate() { (($#)) || return 0; local list=("$@") k=$(( (rep - 1) % $# )); echo "${list[@]:k}" "${list[@]:0:k}"; }
present() { local s; for s in "$@"; do if have "$s"; then echo "$s"; fi; done; }
echo_plain=($(present portcullis epoll-c tokio cppserver))
echo_tls=($(present portcullis haproxy-tls cppserver-ssl))
http_plain=($(present portcullis-http nginx-http))
http_tls=($(present portcullis-http nginx-https))
handshake_peers=($(present portcullis nginx-https haproxy-tls))

# ----- the matrix, interleaved ---------------------------------------------
for rep in $(seq 1 "$reps"); do
  echo "compare.sh: repetition $rep of $reps" >&2
  scenario echo-v1 "Echo, cppserver-v1: 100 clients, one 32-byte message per write" msg/s ns/msg \
    "portcullis bench echo --mode cppserver-v1 --clients 100"
  for s in $(rotate "${echo_plain[@]}"); do run_bench_echo echo-v1 "$s" --mode cppserver-v1; done
  scenario echo-v2 "Echo, cppserver-v2: 100 clients, 1,000 32-byte messages in flight each" msg/s ns/msg \
    "portcullis bench echo --mode cppserver-v2 --clients 100 --window 1000"
  for s in $(rotate "${echo_plain[@]}"); do run_bench_echo echo-v2 "$s" --mode cppserver-v2; done
  scenario echo-pingpong "Echo round trips, pingpong: 1 client, one 32-byte message in flight" msg/s ns/msg \
    "portcullis bench echo --mode pingpong --clients 1"
  for s in $(rotate "${echo_plain[@]}"); do run_bench_echo echo-pingpong "$s" --mode pingpong --clients 1; done
  scenario echo-v1-tls "TLS echo, cppserver-v1: 100 clients, one 32-byte message per write" msg/s ns/msg \
    "portcullis bench echo --tls --mode cppserver-v1 --clients 100"
  for s in $(rotate "${echo_tls[@]}"); do
    [[ $s == cppserver-ssl ]] && continue # CppServer's certificate is not the dev CA's
    run_bench_echo echo-v1-tls "$s" --tls --mode cppserver-v1
  done
  scenario echo-v2-tls "TLS echo, cppserver-v2: 100 clients, 1,000 messages in flight each" msg/s ns/msg \
    "portcullis bench echo --tls --mode cppserver-v2 --clients 100"
  for s in $(rotate "${echo_tls[@]}"); do
    [[ $s == cppserver-ssl ]] && continue
    run_bench_echo echo-v2-tls "$s" --tls --mode cppserver-v2
  done
  if [[ -n $wrk ]]; then
    scenario http1 "HTTP/1.1, keep-alive: wrk -t1 -c100, GET /healthz" req/s us/req "wrk -t1 -c100 -d${secs}s"
    for s in $(rotate "${http_plain[@]}"); do
      run_external http1 "$s" parse_wrk 1e6 "$wrk" -t1 -c100 -d"${secs}s" "http://${addr[$s]}/healthz"
    done
    scenario http1-tls "HTTP/1.1 over TLS, keep-alive: wrk -t1 -c100, GET /healthz" req/s us/req \
      "wrk -t1 -c100 -d${secs}s https://..."
    for s in $(rotate "${http_tls[@]}"); do
      run_external http1-tls "$s" parse_wrk 1e6 "$wrk" -t1 -c100 -d"${secs}s" "https://${addr[$s]}/healthz"
    done
  fi
  scenario handshakes "Full TLS handshakes (RSA 2048), 16 at a time" handshakes/s us/handshake \
    "portcullis bench handshakes --phases full --concurrency 16"
  for s in $(rotate "${handshake_peers[@]}"); do run_bench_handshakes handshakes "$s"; done
  scenario handshakes-s_time "Full TLS handshakes (RSA 2048), one at a time: openssl s_time -new" \
    handshakes/s us/handshake "openssl s_time -new -time $secs"
  for s in $(rotate "${handshake_peers[@]}"); do
    run_external handshakes-s_time "$s" parse_s_time 1e6 openssl s_time -connect "${addr[$s]}" -new -time "$secs"
  done
  if [[ -n $cppserver ]]; then
    client_dir=$cppserver/performance
    scenario cppserver-tcp "CppServer's tcp_echo_client: 100 clients, 1,000 messages in flight each" msg/s ns/msg \
      "tcp_echo_client -t 1 -c 100 -m 1000 -s 32 -z $secs"
    for s in $(rotate "${echo_plain[@]}"); do
      run_external cppserver-tcp "$s" parse_cppserver 1e9 bash -c 'cd "$1" && shift && exec "$@"' _ "$client_dir" \
        "$(cppserver_program tcp_echo_client)" -a 127.0.0.1 -p "${addr[$s]##*:}" -t 1 -c 100 -m 1000 -s 32 -z "$secs"
    done
    scenario cppserver-ssl "CppServer's ssl_echo_client: 100 clients, 1,000 messages in flight each" msg/s ns/msg \
      "ssl_echo_client -t 1 -c 100 -m 1000 -s 32 -z $secs"
    for s in $(rotate portcullis-cppcert cppserver-ssl); do
      run_external cppserver-ssl "$s" parse_cppserver 1e9 bash -c 'cd "$1" && shift && exec "$@"' _ "$client_dir" \
        "$(cppserver_program ssl_echo_client)" -a 127.0.0.1 -p "${addr[$s]##*:}" -t 1 -c 100 -m 1000 -s 32 -z "$secs"
    done
    scenario cppserver-multicast "CppServer's tcp_multicast_client: 100 receivers, 32-byte messages" msg/s ns/msg \
      "tcp_multicast_client -t 1 -c 100 -z $secs"
    for s in $(rotate portcullis-multicast cppserver-multicast); do
      run_external cppserver-multicast "$s" parse_cppserver 1e9 bash -c 'cd "$1" && shift && exec "$@"' _ \
        "$client_dir" "$(cppserver_program tcp_multicast_client)" -a 127.0.0.1 -p "${addr[$s]##*:}" \
        -t 1 -c 100 -z "$secs"
    done
  fi
done

# ----- what the tables say about the machine and the versions --------------
{
  echo "date=$(date -u +%Y-%m-%dT%H:%MZ)"
  echo "machine=$(nproc) CPUs, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n1), $(uname -sr)"
  echo "load=$(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min) at the end"
  echo "portcullis=$(cd "$here" && git describe --always --dirty 2>/dev/null || echo unknown)"
  [[ -n $nginx ]] && echo "nginx=$("$nginx" -v 2>&1 | sed 's/.*version: //')"
  [[ -n $haproxy ]] && echo "haproxy=$("$haproxy" -v | head -n1 | awk '{print $3}')"
  [[ -n $wrk ]] && echo "wrk=$("$wrk" -v 2>&1 | head -n1 | awk '{print $2}')"
  echo "openssl=$(openssl version | awk '{print $2}')"
  echo "tokio=$(sed -n '/^name = "tokio"$/{n;s/version = "\(.*\)"/\1/p}' "$here/benches/peers/tokio-echo/Cargo.lock")"
  echo "reps=$reps"
  echo "secs=$secs"
  echo "seconds_total=$(( $(date +%s) - started ))"
} >"$out/run.txt"
status=0
python3 "$here/scripts/compare/report.py" "$out" || status=$?
echo "compare.sh: done in $(( $(date +%s) - started )) s: $out/results.md" >&2
exit "$status"
