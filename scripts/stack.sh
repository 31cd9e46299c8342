#!/usr/bin/env bash
# `make stack`: the service on 127.0.0.1:8080 and nginx (./nginx.conf) caching in front of it
# on 127.0.0.1:8000. nginx keeps its pid, logs, cache and temp files under ./.stack/nginx.
# Ctrl-C (or either process exiting) stops both.
#
#   scripts/stack.sh [CONFIG]      CONFIG defaults to ./config.yaml
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
CONFIG=${1:-config.yaml}
PROGIMAGE=${PROGIMAGE:-$REPO/.venv/bin/progimage}
PREFIX=$REPO/.stack/nginx

if [ ! -x "$PROGIMAGE" ]; then
    echo "stack: $PROGIMAGE not found: run \`make stack\` (it installs the project first)" >&2
    exit 1
fi

NAME=stack
# shellcheck source=scripts/nginx-lib.sh
source scripts/nginx-lib.sh

mkdir -p "$PREFIX"
"$NGINX" -p "$PREFIX" -c "$REPO/nginx.conf" -g "$GLOBALS" -t -q


"$PROGIMAGE" serve --config "$CONFIG" --host 127.0.0.1 --port 8080 &
pids+=($!)
"$NGINX" -p "$PREFIX" -c "$REPO/nginx.conf" -g "$GLOBALS" &
pids+=($!)

echo "stack: http://127.0.0.1:8000 (nginx, cache in $PREFIX/cache) -> http://127.0.0.1:8080 (service)"
echo "stack: Ctrl-C stops both"
# Whichever exits first (or Ctrl-C) brings the other down.
wait -n
