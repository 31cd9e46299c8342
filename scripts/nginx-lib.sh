# Sourced by stack.sh and cluster.sh: nginx (installed if missing), its -g globals, and one
# trap that stops every process started in "${pids[@]}". Set NAME before sourcing.

if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "$NAME: nginx is not installed; run: sudo apt-get install -y nginx" >&2
        exit 1
    fi
    echo "$NAME: installing nginx" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y nginx || { apt-get update && apt-get install -y nginx; }
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

# Workers run as the compiled-in user (nobody, www-data…) when the master is root; they may not
# be able to reach a repository under a private home directory, so keep them as root here.
GLOBALS='daemon off;'
if [ "$(id -u)" -eq 0 ]; then
    GLOBALS="$GLOBALS user root;"
fi

pids=()
stop() {
    trap - INT TERM EXIT
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
}
trap stop INT TERM EXIT
