#!/usr/bin/env bash
# Builds localhost/playbook-gateway:latest (images/gateway.Containerfile)
# from a static build of ./cmd/gateway. Quick; no registry needed.
#   IMAGE=REF   another tag
#   CONTAINER_CLI=docker   use Docker instead of Podman
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=${IMAGE:-localhost/playbook-gateway:latest}
CLI=${CONTAINER_CLI:-podman}
if [ "$CLI" = podman ]; then
	: "${CONTAINERS_CONF:=$PWD/images/containers.conf}"
	export CONTAINERS_CONF
fi
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$ctx/gateway" ./cmd/gateway
cp /etc/ssl/certs/ca-certificates.crt "$ctx/"
mkdir "$ctx/data"
"$CLI" build --quiet --file images/gateway.Containerfile --tag "$IMAGE" "$ctx" >/dev/null
printf 'image: built %s\n' "$IMAGE" >&2
