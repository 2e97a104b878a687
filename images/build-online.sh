#!/usr/bin/env bash
# Builds the workspace image FROM the official code-server image, for
# machines that reach a container registry (not these: see build-offline.sh).
# Same Containerfile, same result: code-server 4.100.3, the agent extension,
# python3 and git, user coder (uid 1000).
#
#   CONTAINER_CLI=docker  use Docker instead of Podman
#   BASE=REF              another code-server image (default docker.io/codercom/code-server:4.100.3)
#   REQUIRE_EXTENSION=1   fail when .cache/playbook-agent.vsix is missing
#   IMAGE=REF             another tag (default localhost/playbook-workspace:latest)
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=${IMAGE:-localhost/playbook-workspace:latest}
BASE=${BASE:-docker.io/codercom/code-server:4.100.3}
VSIX=${VSIX:-.cache/playbook-agent.vsix}
CLI=${CONTAINER_CLI:-podman}
if [ "$CLI" = podman ]; then
	: "${CONTAINERS_CONF:=$PWD/images/containers.conf}"
	export CONTAINERS_CONF
fi

say() { printf 'image: %s\n' "$*" >&2; }
command -v "$CLI" >/dev/null || { say "$CLI is not installed"; exit 1; }
if [ "${REQUIRE_EXTENSION:-0}" = 1 ] && [ ! -f "$VSIX" ]; then
	say "$VSIX is missing and REQUIRE_EXTENSION=1: build the extension first (its build writes $VSIX)"
	exit 1
fi

# The official image has code-server and node: rootfs/ holds the
# workbench settings every workspace starts with, the guard and the start
# script.
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/rootfs/home/coder/.local/share/code-server/User" "$ctx/rootfs/usr/local/bin" "$ctx/extension"
# The guard, the container's first process and only way in (images/guard),
# and the start script it runs.
CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags='-s -w' -o "$ctx/rootfs/usr/local/bin/pbs-guard" ./images/guard
install -m 755 images/workspace-start.sh "$ctx/rootfs/usr/local/bin/pbs-workspace-start"
cp internal/workspace/settings.json "$ctx/rootfs/home/coder/.local/share/code-server/User/settings.json"
if [ -f "$VSIX" ]; then
	cp "$VSIX" "$ctx/extension/playbook-agent.vsix"
else
	say "note: $VSIX not found; the image has no agent extension"
fi
say "building $IMAGE from $BASE"
"$CLI" build --file images/Containerfile --build-arg BASE="$BASE" --tag "$IMAGE" "$ctx"
