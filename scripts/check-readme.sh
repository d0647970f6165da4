#!/usr/bin/env bash
# Runs every shell example in README.md the way the README says to run it,
# so that the README cannot drift from the code.
#
#   scripts/check-readme.sh [README]
#
# Every ```sh block in the README must follow a marker comment that says how
# to check it; a block without one is an error:
#
#   <!-- check: run -->       each command is run; it must exit 0
#   <!-- check: server -->    the first command starts a server, which must
#                             print "listening on"; the other commands run
#                             against it, then the server gets SIGTERM
#   <!-- check: skip WHY -->  not run (WHY is printed: say what covers it)
#
# A command may end in "# prints: TEXT": its output must then contain TEXT.
# One that ends in "# fails with: TEXT" must exit non-zero, and its output
# must contain TEXT (a refusal the README promises).
# Lines ending in a backslash continue on the next line; comment lines and
# blank lines are skipped.
#
# As root, where unshare(1) works, the whole check runs in its own network
# and PID namespaces: port 8443 and `pidof portcullis` see only the
# processes it started, whatever else the machine runs.
#
# Environment:
#   CHECK_README_TIMEOUT  seconds each command may take (default 300; the
#                         first `cargo run --release` builds the binary)
#   CARGO_TARGET_DIR      honoured, as by cargo itself
set -euo pipefail

case ${1:-} in
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
esac
here=$(cd "$(dirname "$0")/.." && pwd)
readme=$(realpath "${1:-$here/README.md}")
timeout_s=${CHECK_README_TIMEOUT:-300}
cd "$here"

if [[ ${CHECK_README_INSIDE:-} != 1 && $(id -u) == 0 ]] && command -v ip >/dev/null &&
  unshare --net --pid --fork --mount-proc true 2>/dev/null; then
  exec env CHECK_README_INSIDE=1 unshare --net --pid --fork --mount-proc \
    bash -c 'ip link set lo up && exec "$0" "$1"' "$0" "$readme"
fi

work=$(mktemp -d)
server_pid=
cleanup() {
  stop_server
  rm -rf "$work"
}
trap cleanup EXIT

# stop_server: SIGTERM to the server's process group (cargo and the server
# it started), then SIGKILL if it lingers.
stop_server() {
  [[ -n $server_pid ]] || return 0
  kill -TERM -- "-$server_pid" 2>/dev/null || true
  for _ in $(seq 50); do
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.2
  done
  kill -KILL -- "-$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=
}

failures=0
checked=0
fail() {
  echo "FAIL $1" >&2
  failures=$((failures + 1))
}

# run_command WHERE COMMAND: runs one README command; checks its status
# and its "# prints:" expectation.
run_command() {
  local where=$1 cmd=$2 expect= must_fail=0 status=0
  if [[ $cmd == *"# prints: "* ]]; then
    expect=${cmd##*# prints: }
  elif [[ $cmd == *"# fails with: "* ]]; then
    expect=${cmd##*# fails with: }
    must_fail=1
  fi
  echo "  \$ $cmd"
  timeout "$timeout_s" bash -o pipefail -c "$cmd" >"$work/out" 2>&1 || status=$?
  if ((must_fail == 0 && status != 0)); then
    fail "$where: exit status $status from: $cmd"
  elif ((must_fail && (status == 0 || status == 124))); then
    fail "$where: expected a refusal, got exit status $status from: $cmd"
  elif [[ -n $expect ]] && ! grep -qF -- "$expect" "$work/out"; then
    fail "$where: output lacks \"$expect\": $cmd"
  else
    checked=$((checked + 1))
    return
  fi
  sed 's/^/    | /' "$work/out" | tail -n 20 >&2
}

# start_server WHERE COMMAND: starts COMMAND in its own process group and
# waits for its "listening on" line.
start_server() {
  local where=$1 cmd=$2
  echo "  \$ $cmd &"
  setsid bash -c "exec $cmd" >"$work/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq $((timeout_s * 5))); do
    grep -q 'listening on' "$work/server.log" && return 0
    if ! kill -0 "$server_pid" 2>/dev/null; then
      fail "$where: the server exited before listening: $cmd"
      sed 's/^/    | /' "$work/server.log" | tail -n 20 >&2
      server_pid=
      return 1
    fi
    sleep 0.2
  done
  fail "$where: no \"listening on\" within ${timeout_s}s: $cmd"
  stop_server
  return 1
}

# check_block MODE LINE COMMANDS...: checks one block.
check_block() {
  local mode=$1 line=$2
  shift 2
  local where="README.md:$line"
  echo "== $where ($mode)"
  case $mode in
    skip*)
      echo "  skipped: ${mode#skip }"
      ;;
    run)
      for cmd in "$@"; do run_command "$where" "$cmd"; done
      ;;
    server)
      start_server "$where" "$1" || return 0
      shift
      for cmd in "$@"; do run_command "$where" "$cmd"; done
      stop_server
      ;;
    *)
      fail "$where: unknown check mode \"$mode\""
      ;;
  esac
}

marker=
in_block=0
block_line=0
commands=()
pending=
number=0
while IFS= read -r text || [[ -n $text ]]; do
  number=$((number + 1))
  if ((in_block)); then
    if [[ $text == '```' ]]; then
      in_block=0
      [[ -z $pending ]] || commands+=("$pending")
      pending=
      check_block "$marker" "$block_line" "${commands[@]}"
      marker=
      continue
    fi
    line=${text#"${text%%[![:space:]]*}"}
    [[ -n $pending || ( -n $line && $line != \#* ) ]] || continue
    if [[ $line == *\\ ]]; then
      pending+="${line%\\} "
    else
      commands+=("$pending$line")
      pending=
    fi
    continue
  fi
  if [[ $text =~ ^\<\!--\ check:\ (.*)\ --\>$ ]]; then
    marker=${BASH_REMATCH[1]}
  elif [[ $text == '```sh' ]]; then
    in_block=1
    block_line=$number
    commands=()
    if [[ -z $marker ]]; then
      fail "README.md:$number: a sh block without a <!-- check: … --> marker"
      marker="skip (unmarked)"
    fi
  elif [[ -n $text && -n $marker && $text != '```'* ]]; then
    fail "README.md:$number: a check marker not followed by a sh block"
    marker=
  fi
done <"$readme"

echo "check-readme: $checked commands passed, $failures failed"
((failures == 0))
