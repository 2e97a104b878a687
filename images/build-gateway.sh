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
old=$("$CLI" image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
"$CLI" build --quiet --file images/gateway.Containerfile --tag "$IMAGE" "$ctx" >/dev/null
new=$("$CLI" image inspect --format '{{.Id}}' "$IMAGE")
# The previous build, now untagged, goes unless a container still uses it.
if [ -n "$old" ] && [ "$old" != "$new" ]; then "$CLI" rmi "$old" >/dev/null 2>&1 || true; fi
printf 'image: built %s\n' "$IMAGE" >&2
