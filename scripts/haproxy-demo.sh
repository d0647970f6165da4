#!/usr/bin/env bash
# Starts HAProxy on one port in front of N portcullis processes that share
# another port (SO_REUSEPORT), HAProxy passing each client's address with
# the PROXY protocol (send-proxy-v2); stops everything on Ctrl-C or SIGTERM.
#
#   scripts/haproxy-demo.sh [N]
#   curl http://127.0.0.1:8080/          # client_addr= is you, peer_addr= HAProxy
#   curl -k https://localhost:8080/      # TLS passes through HAProxy
#
# This is the scale-out shape: an L4 balancer in front, one process per core
# behind it, the real client address carried in the PROXY header and
# believed only from trusted_proxies (here 127.0.0.1). Loopback only.
#
# Environment:
#   HAPROXY_PORT      HAProxy's port (default 8080)
#   BACKEND_PORT      the port the portcullis processes share (default 9080)
#   PORTCULLIS_BIN    the binary to run (default: the release build,
#                     $CARGO_TARGET_DIR/release/portcullis, built if missing)
#   CARGO_TARGET_DIR  where cargo builds (default: target/ in the repository)
set -euo pipefail

case ${1:-} in
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
esac
here=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$here/target}
bin=${PORTCULLIS_BIN:-"$CARGO_TARGET_DIR/release/portcullis"}
count=${1:-$(nproc)}
[[ $count =~ ^[1-9][0-9]*$ ]] || { echo "haproxy-demo: N must be a positive number, not '$count'" >&2; exit 2; }
front=${HAPROXY_PORT:-8080}
back=${BACKEND_PORT:-9080}
command -v haproxy >/dev/null || { echo "haproxy-demo: haproxy is not installed (apt-get install haproxy)" >&2; exit 1; }
if [[ ! -x $bin ]]; then
  (cd "$here" && cargo build --release --quiet)
fi

dir=$(mktemp -d)
pids=()
stop_all() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap stop_all INT TERM EXIT

cat >"$dir/portcullis.toml" <<TOML
service = "http"
[[listeners]]
address = "127.0.0.1:$back"
reuse_port = true
proxy_protocol = "v2"
trusted_proxies = ["127.0.0.1"]
[[domains]]
names = ["localhost", "*.localhost"]
cert = "$here/certs/server.pem"
key = "$here/certs/server.key"
client_auth = "optional"
client_ca = "$here/certs/ca.pem"
TOML

for i in $(seq 1 "$count"); do
  "$bin" serve --config "$dir/portcullis.toml" >"$dir/out-$i" 2>"$dir/err-$i" &
  pids+=($!)
done
for i in $(seq 1 "$count"); do
  for _ in $(seq 1 200); do
    grep -q 'listening on' "$dir/out-$i" 2>/dev/null && break
    sleep 0.05
  done
  grep -q 'listening on' "$dir/out-$i" || { echo "haproxy-demo: portcullis $i did not start:" >&2; cat "$dir/err-$i" >&2; exit 1; }
done

cat >"$dir/haproxy.cfg" <<CFG
global
  # Each connection holds two descriptors (client and server side).
  maxconn 4000
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend edge
  bind 127.0.0.1:$front
  default_backend portcullis
backend portcullis
  server local 127.0.0.1:$back send-proxy-v2
CFG
haproxy -db -f "$dir/haproxy.cfg" >"$dir/haproxy.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$front") 2>/dev/null && break
  sleep 0.05
done
(exec 3<>"/dev/tcp/127.0.0.1/$front") 2>/dev/null || { echo "haproxy-demo: haproxy did not start:" >&2; cat "$dir/haproxy.log" >&2; exit 1; }
echo "haproxy-demo: HAProxy on 127.0.0.1:$front in front of $count portcullis processes on 127.0.0.1:$back (pids ${pids[*]}); Ctrl-C stops them all"
wait -n "${pids[@]}" || true
