#!/usr/bin/env bash
# Builds the portal's bundles, mermaid and the Markdown renderer
# (src/markdown.js with markdown-it), into web/static/assets/vendor/
# (gitignored; the gateway embeds it). Idempotent and quiet: it does nothing
# when the bundles match their inputs.
set -euo pipefail
cd "$(dirname "$0")/../web"

outs=(static/assets/vendor/mermaid.js static/assets/vendor/markdown.js)
stamp=static/assets/vendor/.inputs-sha256
inputs=$(cat package.json package-lock.json build.mjs src/*.js ../scripts/build-web.sh | sha256sum | cut -d' ' -f1)
if [ -f "${outs[0]}" ] && [ -f "${outs[1]}" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$inputs" ]; then
	exit 0
fi

command -v node >/dev/null 2>&1 || { echo "build-web: Node.js 20 and npm are required" >&2; exit 1; }
installed=node_modules/.installed-lock
if [ ! -f "$installed" ] || ! cmp -s package-lock.json "$installed"; then
	echo "build-web: installing the portal's npm packages (mermaid, markdown-it, esbuild, typescript)" >&2
	npm ci --silent --no-audit --no-fund >/dev/null
	cp package-lock.json "$installed"
fi
node build.mjs
printf '%s\n' "$inputs" >"$stamp"
