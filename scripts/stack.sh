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

if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "stack: nginx is not installed; run: sudo apt-get install -y nginx" >&2
        exit 1
    fi
    echo "stack: installing nginx" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y nginx || { apt-get update && apt-get install -y nginx; }
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

mkdir -p "$PREFIX"
# Workers run as the compiled-in user (nobody, www-data…) when the master is root; they may not
# be able to reach a repository under a private home directory, so keep them as root here.
GLOBALS='daemon off;'
if [ "$(id -u)" -eq 0 ]; then
    GLOBALS="$GLOBALS user root;"
fi
"$NGINX" -p "$PREFIX" -c "$REPO/nginx.conf" -g "$GLOBALS" -t -q

pids=()
stop() {
    trap - INT TERM EXIT
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
}
trap stop INT TERM EXIT

"$PROGIMAGE" serve --config "$CONFIG" --host 127.0.0.1 --port 8080 &
pids+=($!)
"$NGINX" -p "$PREFIX" -c "$REPO/nginx.conf" -g "$GLOBALS" &
pids+=($!)

echo "stack: http://127.0.0.1:8000 (nginx, cache in $PREFIX/cache) -> http://127.0.0.1:8080 (service)"
echo "stack: Ctrl-C stops both"
# Whichever exits first (or Ctrl-C) brings the other down.
wait -n
