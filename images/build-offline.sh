#!/usr/bin/env bash
# Builds the workspace image localhost/playbook-workspace:latest without a
# container registry: a Debian base from debootstrap (once), then
# images/Containerfile with node and the npm-installed code-server copied
# in. Idempotent and quiet when done: the base is kept, and the image is
# rebuilt only when its inputs (their hash is a label on it) changed.
#
#   REQUIRE_EXTENSION=1   fail when .cache/playbook-agent.vsix is missing
#   DEBIAN_MIRROR=URL     instead of the mirror apt's sources already use
#   IMAGE=REF             another tag (default localhost/playbook-workspace:latest)
#   VSIX=FILE             the extension (default .cache/playbook-agent.vsix)
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=${IMAGE:-localhost/playbook-workspace:latest}
BASE=localhost/workspace-base:bookworm
SUITE=bookworm
VSIX=${VSIX:-.cache/playbook-agent.vsix}
: "${CONTAINERS_CONF:=$PWD/images/containers.conf}"
export CONTAINERS_CONF

say() { printf 'image: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# Debian packages this needs, installed when missing.
need=()
for pair in podman:podman runc:runc debootstrap:debootstrap; do
	command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
	sudo=(); [ "$(id -u)" -eq 0 ] || sudo=(sudo)
	say "installing Debian packages: ${need[*]}"
	"${sudo[@]}" apt-get update -qq >/dev/null
	# netavark, aardvark-dns and catatonit are only recommended by podman.
	DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
		"${need[@]}" netavark aardvark-dns catatonit iptables >/dev/null
fi

if [ "${REQUIRE_EXTENSION:-0}" = 1 ] && [ ! -f "$VSIX" ]; then
	die "$VSIX is missing and REQUIRE_EXTENSION=1: build the extension first (its build writes $VSIX)"
fi

scripts/install-code-server.sh
CS=.cache/code-server
NODE=$(command -v node) || die "node is required (Node.js 20)"
command -v go >/dev/null || die "go is required (it builds the guard, images/guard)"
NODE=$(readlink -f "$NODE")

# debian_mirror prints the Debian mirror apt already uses for $SUITE, from
# deb822 .sources files or one-line .list files (disabled files ignored).
debian_mirror() {
	local f
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		awk -v suite="$SUITE" '
			function flush() {
				if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " suite " ") && enabled != "no" && uris != "") {
					split(uris, u, " "); print u[1]; found = 1; exit
				}
				types = suites = uris = enabled = ""
			}
			/^[[:space:]]*#/ { next }
			/^[[:space:]]*$/ { flush(); next }
			/^Types:/   { sub(/^Types:[[:space:]]*/, "");   types = $0 }
			/^Suites:/  { sub(/^Suites:[[:space:]]*/, "");  suites = $0 }
			/^URIs:/    { sub(/^URIs:[[:space:]]*/, "");    uris = $0 }
			/^Enabled:/ { sub(/^Enabled:[[:space:]]*/, ""); enabled = tolower($0) }
			END { if (!found) flush() }
		' "$f"
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		awk -v suite="$SUITE" '
			$1 == "deb" {
				i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
				if ($(i + 1) == suite) { print $i; exit }
			}
		' "$f"
	done
}

# 1. The base image: a minimal Debian with what code-server's native
#    modules link against, python3 and git.
if ! podman image exists "$BASE"; then
	mirror=${DEBIAN_MIRROR:-$(debian_mirror | head -n1)}
	[ -n "$mirror" ] || die "no Debian $SUITE mirror found in /etc/apt/sources.list{,.d/}; set DEBIAN_MIRROR"
	say "building $BASE with debootstrap from $mirror (about a minute, once)"
	root=$(mktemp -d /var/tmp/pbs-rootfs.XXXXXX)
	trap 'rm -rf "$root"' EXIT
	log=$(mktemp)
	if ! debootstrap --variant=minbase \
		--include=ca-certificates,python3,git,procps,libsecret-1-0,libkrb5-3,libx11-6,libxkbfile1 \
		"$SUITE" "$root" "$mirror" >"$log" 2>&1; then
		tail -n 30 "$log" >&2
		die "debootstrap failed (log above)"
	fi
	rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
	tar -C "$root" -c . | podman import --quiet \
		--change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' - "$BASE" >/dev/null
	rm -rf "$root" "$log"
	trap - EXIT
fi

# 2. The inputs' hash: unchanged inputs mean the image is up to date.
hash_inputs() {
	{
		podman image inspect --format '{{.Id}}' "$BASE"
		sha256sum images/Containerfile images/build-offline.sh images/workspace-start.sh images/guard/*.go go.mod internal/workspace/settings.json "$NODE" "$CS/package-lock.json"
		go version
		ls "$CS"/.installed-*
		if [ -f "$VSIX" ]; then sha256sum "$VSIX"; else echo "no extension"; fi
	} | sha256sum | cut -c1-32
}
inputs=$(hash_inputs)
if podman image exists "$IMAGE" &&
	[ "$(podman image inspect --format '{{index .Labels "io.playbookstudio.inputs"}}' "$IMAGE")" = "$inputs" ]; then
	exit 0
fi

# 3. The build context: node, the npm tree (hard links: no 300 MB copy),
#    a launcher, the guard and the start script, the extension.
say "building $IMAGE"
ctx=.cache/image-context
rm -rf "$ctx"
mkdir -p "$ctx/rootfs/usr/bin" "$ctx/rootfs/usr/local/bin" "$ctx/rootfs/usr/lib/code-server" "$ctx/extension"
# The guard, the container's first process and only way in (images/guard),
# and the start script it runs.
CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags='-s -w' -o "$ctx/rootfs/usr/local/bin/pbs-guard" ./images/guard
install -m 755 images/workspace-start.sh "$ctx/rootfs/usr/local/bin/pbs-workspace-start"
cp "$NODE" "$ctx/rootfs/usr/bin/node"
cp -al "$CS/node_modules" "$ctx/rootfs/usr/lib/code-server/node_modules" 2>/dev/null ||
	cp -a "$CS/node_modules" "$ctx/rootfs/usr/lib/code-server/node_modules"
cat >"$ctx/rootfs/usr/bin/code-server" <<'EOF'
#!/bin/sh
exec /usr/bin/node /usr/lib/code-server/node_modules/code-server/out/node/entry.js "$@"
EOF
chmod 755 "$ctx/rootfs/usr/bin/code-server"
[ -f "$VSIX" ] && cp "$VSIX" "$ctx/extension/playbook-agent.vsix"
# The workbench settings every workspace starts with (one file, shared
# with the local runtime).
mkdir -p "$ctx/rootfs/home/coder/.local/share/code-server/User"
cp internal/workspace/settings.json "$ctx/rootfs/home/coder/.local/share/code-server/User/settings.json"
[ -f "$VSIX" ] || say "note: $VSIX not found; the image has no agent extension"

old=$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
log=$(mktemp)
start=$(date +%s)
# --network=none: the build fetches nothing, so it needs no network stack.
if ! podman build --network=none --file images/Containerfile --build-arg BASE="$BASE" \
	--label io.playbookstudio.inputs="$inputs" --tag "$IMAGE" "$ctx" >"$log" 2>&1; then
	tail -n 40 "$log" >&2
	rm -f "$log"
	die "podman build failed (log above)"
fi
rm -rf "$log" "$ctx"
# The previous build, now untagged, goes unless a container still uses it.
new=$(podman image inspect --format '{{.Id}}' "$IMAGE")
if [ -n "$old" ] && [ "$old" != "$new" ]; then
	podman rmi "$old" >/dev/null 2>&1 || true
fi
say "built $IMAGE in $(($(date +%s) - start))s ($(podman image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%d MB", $1/1e6}'))"
