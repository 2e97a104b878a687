#!/usr/bin/env bash
# Installs code-server (pinned) from npm into .cache/code-server, offline
# apart from the npm registry and Debian's packages. Idempotent and quiet
# when already installed.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=4.100.3 # the newest code-server whose engines accept Node 20
dest=.cache/code-server
stamp=$dest/.installed-$VERSION
[ -f "$stamp" ] && exit 0

say() { printf 'code-server: %s\n' "$*" >&2; }
need=()
for pkg in build-essential pkg-config python3 libkrb5-dev libsecret-1-dev libx11-dev libxkbfile-dev ripgrep; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
	sudo=(); [ "$(id -u)" -eq 0 ] || sudo=(sudo)
	say "installing build dependencies: ${need[*]}"
	"${sudo[@]}" apt-get update -qq >/dev/null
	DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# @vscode/ripgrep downloads ripgrep in its postinstall; it looks in its
# cache first, so give it Debian's rg there.
cache="$(node -p 'require("os").tmpdir()')/vscode-ripgrep-cache-1.15.11"
tarball="$cache/ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz"
if [ ! -f "$tarball" ]; then
	mkdir -p "$cache"
	tmp=$(mktemp -d)
	cp /usr/bin/rg "$tmp/rg"
	tar -C "$tmp" -czf "$tarball" rg
	rm -rf "$tmp"
fi

say "installing code-server $VERSION from npm (about a minute, once)"
mkdir -p "$dest"
[ -f "$dest/package.json" ] || printf '{"name":"code-server-install","private":true}\n' > "$dest/package.json"
(
	cd "$dest"
	# node-pty's postinstall runs `npx node-gyp`, which would wait for a yes.
	npm_config_yes=true npm install --unsafe-perm --no-audit --no-fund --silent \
		--omit=dev "code-server@$VERSION" >/dev/null
)
"$dest/node_modules/.bin/code-server" --version >/dev/null
touch "$stamp"
