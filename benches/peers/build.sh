#!/usr/bin/env bash
# Builds the peer servers of scripts/compare.sh into $CARGO_TARGET_DIR/peers/:
#
#   epoll_echo   benches/peers/epoll-echo/epoll_echo.c, a minimal C epoll
#                echo server (cc -O2)
#   tokio-echo   benches/peers/tokio-echo, a small tokio echo server (its own
#                Cargo project, outside the main workspace; tokio comes from
#                crates.io on the first build)
#
#   benches/peers/build.sh          # prints the directory holding both
#
# Environment:
#   CARGO_TARGET_DIR  where cargo builds (default: target/ in the repository);
#                     the peers go to its peers/ subdirectory
#   CC                the C compiler (default: cc)
set -euo pipefail

case ${1:-} in
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
esac
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}/peers
mkdir -p "$target"
"${CC:-cc}" -O2 -Wall -Wextra -o "$target/epoll_echo" "$here/epoll-echo/epoll_echo.c"
CARGO_TARGET_DIR=$target cargo build --release --quiet --manifest-path "$here/tokio-echo/Cargo.toml"
cp "$target/release/tokio-echo" "$target/tokio-echo"
echo "$target"
