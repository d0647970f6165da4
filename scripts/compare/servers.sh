# Starting the servers scripts/compare.sh compares (sourced by it, not run).
#
# Every server runs one worker pinned to CPU 0 ($pin_server), listens on
# 127.0.0.1 and is stopped by PID when the script exits. Each start_* sets
# the server's address in addr[NAME] and the PIDs whose CPU time is the
# server's in pids[NAME] (nginx: master and worker; haproxy in front of the
# C echo server: both, since both work for every message).
#
# The one idea: every peer gets the same conditions as Portcullis (one
# core, the same certificate, TCP_NODELAY, logging off), so a difference
# in the table is a difference in the server.

declare -A addr pids

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_listening NAME LOGFILE PID: reads "listening on ADDR" from LOGFILE.
wait_listening() {
  local name=$1 log=$2 pid=$3 found=""
  for _ in $(seq 1 400); do
    found=$(grep -o 'listening on [^ ]*' "$log" 2>/dev/null | head -n1 | cut -d' ' -f3 || true)
    [[ -n $found ]] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  if [[ -z $found ]]; then
    echo "compare.sh: $name did not start; its output:" >&2
    cat "$log" >&2
    exit 1
  fi
  addr[$name]=$found
  pids[$name]=$pid
}

# wait_port NAME PORT PIDS...: waits until 127.0.0.1:PORT accepts.
wait_port() {
  local name=$1 port=$2
  shift 2
  for _ in $(seq 1 200); do
    if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$port),0.2)" 2>/dev/null; then
      addr[$name]=127.0.0.1:$port
      pids[$name]="$*"
      return 0
    fi
    sleep 0.05
  done
  echo "compare.sh: $name did not start listening on port $port; its output:" >&2
  cat "$work/$name.out" 2>/dev/null >&2 || true
  exit 1
}

# start_portcullis NAME SERVE-ARGS...
start_portcullis() {
  local name=$1
  shift
  RUST_LOG=error "${pin_server[@]}" "$bin" serve --listen 127.0.0.1:0 --workers 1 "$@" \
    >"$work/$name.out" 2>&1 &
  owned+=($!)
  wait_listening "$name" "$work/$name.out" $!
}

# start_peer_binary NAME PATH: epoll_echo and tokio-echo print their address.
start_peer_binary() {
  "${pin_server[@]}" "$2" 127.0.0.1:0 >"$work/$1.out" 2>&1 &
  owned+=($!)
  wait_listening "$1" "$work/$1.out" $!
}

# start_nginx: one process serving HTTP/1.1 on a plain port and a TLS port
# (names nginx-http, nginx-https), "ok\n" for every path, as Portcullis's
# /healthz answers.
start_nginx() {
  local plain tls dir=$work/nginx
  plain=$(free_port)
  tls=$(free_port)
  mkdir -p "$dir"
  cat >"$dir/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log error;
events { worker_connections 8192; }
http {
  access_log off;
  default_type text/plain;
  client_body_temp_path $dir/body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  keepalive_requests 1000000;
  tcp_nodelay on;
  server {
    listen 127.0.0.1:$plain;
    listen 127.0.0.1:$tls ssl;
    ssl_certificate $here/certs/server.pem;
    ssl_certificate_key $here/certs/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / { return 200 "ok\n"; }
  }
}
CONF
  "${pin_server[@]}" "$nginx" -p "$dir" -c "$dir/nginx.conf" >"$work/nginx.out" 2>&1 &
  local master=$!
  owned+=("$master")
  local worker=""
  for _ in $(seq 1 100); do
    worker=$(pgrep -P "$master" | head -n1 || true)
    [[ -n $worker ]] && break
    sleep 0.05
  done
  [[ -n $worker ]] || { echo "compare.sh: nginx did not start: $(cat "$work/nginx.out")" >&2; exit 1; }
  wait_port nginx-http "$plain" "$master" "$worker"
  wait_port nginx-https "$tls" "$master" "$worker"
}

# start_haproxy: TLS termination in TCP mode in front of the C epoll echo
# server (name haproxy-tls), the way HAProxy fits an echo service.
start_haproxy() {
  local port dir=$work/haproxy
  port=$(free_port)
  mkdir -p "$dir"
  cat "$here/certs/server.pem" "$here/certs/server.key" >"$dir/server.pem"
  cat >"$dir/haproxy.cfg" <<CONF
global
  nbthread 1
  maxconn 8000
  tune.ssl.default-dh-param 2048
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend tls
  bind 127.0.0.1:$port ssl crt $dir/server.pem
  default_backend echo
backend echo
  server c ${addr[epoll-c]}
CONF
  "${pin_server[@]}" "$haproxy" -f "$dir/haproxy.cfg" -db >"$work/haproxy-tls.out" 2>&1 &
  owned+=($!)
  wait_port haproxy-tls "$port" $! "${pids[epoll-c]}"
}

# CppServer's servers read stdin until an empty line or EOF: give them a
# FIFO held open by this shell so they run until stopped.
cppserver_stdin() {
  if [[ -z ${cpp_fd:-} ]]; then
    mkfifo "$work/cppserver.stdin"
    exec {cpp_fd}<>"$work/cppserver.stdin"
  fi
}

# start_cppserver NAME PROGRAM [ARGS...]: one of CppServer's performance
# servers, one thread, run from its performance/ directory so its relative
# certificate paths (../tools/certificates) resolve.
start_cppserver() {
  local name=$1 program=$2 port
  shift 2
  port=$(free_port)
  cppserver_stdin
  (cd "$cppserver/performance" && exec "${pin_server[@]}" "$(cppserver_program "$program")" \
    -p "$port" -t 1 "$@" <&"$cpp_fd" >"$work/$name.out" 2>&1) &
  owned+=($!)
  wait_port "$name" "$port" $!
}

# The path of CppServer's program NAME (cppserver-performance-NAME) in the
# build directory, wherever the build put it.
cppserver_program() {
  find "$cppserver" -type f -perm -u+x -name "cppserver-performance-$1" -print -quit
}

# portcullis_with_cppserver_certificate: a Portcullis echo server showing
# CppServer's server certificate, which CppServer's ssl_echo_client
# verifies against its own CA (the key is stored encrypted, password
# "qwerty", as CppServer's ssl_echo_server reads it).
start_portcullis_with_cppserver_certificate() {
  local certs=$cppserver/tools/certificates dir=$work/cppserver-cert
  mkdir -p "$dir"
  openssl x509 -in "$certs/server.pem" -out "$dir/cert.pem"
  openssl pkey -in "$certs/server.pem" -passin pass:qwerty -out "$dir/key.pem"
  # CppServer's client sends no server name (SNI): serve it as localhost.
  cat >"$dir/portcullis.toml" <<TOML
[tls]
no_sni = "localhost"
unknown_sni = "localhost"

[[domains]]
names = ["localhost"]
cert = "$dir/cert.pem"
key = "$dir/key.pem"
TOML
  start_portcullis portcullis-cppcert --service echo --config "$dir/portcullis.toml"
}
