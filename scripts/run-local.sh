#!/usr/bin/env bash
# `make run`: the dev OpenID provider and the gateway on embedded defaults
# (in-memory state, local workspaces), until Ctrl-C. Settings from the
# environment pass through to the gateway (see the README's table).
set -euo pipefail
cd "$(dirname "$0")/.."

export DATA_DIR=${DATA_DIR:-$PWD/data}
mkdir -p "$DATA_DIR"
portal=${PUBLIC_URL:-http://playbooks.localhost:8080}
issuer=${OIDC_ISSUER:-http://localhost:8081}

pids=()
cleanup() {
	trap - INT TERM EXIT
	for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

# The dev provider only runs when the gateway is pointed at it.
if [ "$issuer" = "http://localhost:8081" ]; then
	DEVIDP_ADDR=127.0.0.1:8081 DEVIDP_ISSUER=$issuer \
	DEVIDP_REDIRECT_URIS=$portal/auth/callback DEVIDP_POST_LOGOUT_REDIRECT_URIS=$portal/ \
		bin/devidp 2> >(sed -u 's/^/devidp  | /' >&2) &
	pids+=($!)
fi
bin/gateway > >(sed -u 's/^/gateway | /') &
pids+=($!)

listen=${LISTEN_ADDR:-127.0.0.1:8080}
for _ in $(seq 100); do
	if curl -fsS -o /dev/null "http://127.0.0.1:${listen##*:}/readyz" 2>/dev/null; then
		printf '\n  Playbook Studio is up: %s  (sign in as alice/alice or bob/bob; Ctrl-C stops)\n\n' "$portal"
		break
	fi
	sleep 0.1
done
wait -n "${pids[@]}"
