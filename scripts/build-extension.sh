#!/usr/bin/env bash
# Builds the workspace's VS Code extension (extensions/playbook-agent) into
# .cache/playbook-agent.vsix. Idempotent, and prints nothing when up to date:
# `npm ci` runs only when node_modules is missing or the lock changed, and the
# .vsix is rebuilt only when its inputs changed (their hash is kept beside it).
set -euo pipefail
cd "$(dirname "$0")/.."
ext=extensions/playbook-agent
out=.cache/playbook-agent.vsix
sumfile=$out.inputs-sha256

say() { printf 'build-extension: %s\n' "$*" >&2; }
command -v npm >/dev/null 2>&1 || { say "Node.js 20 and npm are required"; exit 1; }

# quiet CMD...: runs CMD without stdin and shows its output only if it fails.
quiet() {
	local log rc=0
	log=$(mktemp)
	"$@" </dev/null >"$log" 2>&1 || rc=$?
	[ "$rc" -eq 0 ] || cat "$log" >&2
	rm -f "$log"
	return "$rc"
}

stamp=$ext/node_modules/.installed-lock
if [ ! -f "$stamp" ] || ! cmp -s "$ext/package-lock.json" "$stamp"; then
	say "installing the extension's npm packages"
	(cd "$ext" && quiet npm ci --no-audit --no-fund)
	cp "$ext/package-lock.json" "$stamp"
fi

# Everything that goes into the .vsix or decides how it is built, with the
# Markdown renderer the extension shares with the portal (web/src/markdown.js).
inputs_hash() {
	find "$ext/src" "$ext/media" "$ext/package.json" "$ext/package-lock.json" "$ext/tsconfig.json" \
		"$ext/tsconfig.webview.json" "$ext/.vscodeignore" "$ext/README.md" "$ext/LICENSE" scripts/build-extension.sh \
		web/src/markdown.js \
		-type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1
}
want=$(inputs_hash)
if [ -f "$out" ] && [ -f "$sumfile" ] && [ "$(cat "$sumfile")" = "$want" ]; then
	exit 0
fi

say "building $out"
mkdir -p .cache
tmp=$PWD/$out.tmp.vsix
rm -f "$tmp"
(
	cd "$ext"
	quiet npm run --silent build
	quiet node_modules/.bin/vsce package --no-dependencies --allow-missing-repository --out "$tmp"
)
mv -f "$tmp" "$out"
printf '%s\n' "$want" >"$sumfile"
