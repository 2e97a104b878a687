#!/usr/bin/env bash
# Serves the Docker Engine API with Podman (no Docker daemon here), for
# running the gateway with WORKSPACE_RUNTIME=docker on this machine.
#   scripts/podman-service.sh start    start it unless it runs; prints DOCKER_HOST=…
#   scripts/podman-service.sh stop     stop the one this script started (by its PID)
#   scripts/podman-service.sh status
# The socket is data/podman/podman.sock (PODMAN_SERVICE_DIR to change).
# Tests do not use this: internal/testsvc starts a private one per test.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${PODMAN_SERVICE_DIR:-$PWD/data/podman}
sock=$dir/podman.sock
pidfile=$dir/service.pid
: "${CONTAINERS_CONF:=$PWD/images/containers.conf}"
export CONTAINERS_CONF

say() { printf 'podman-service: %s\n' "$*" >&2; }
running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }
answers() { curl -fsS --max-time 2 --unix-socket "$sock" http://podman/_ping >/dev/null 2>&1; }

case ${1:-start} in
start)
	command -v podman >/dev/null && command -v runc >/dev/null ||
		{ say "podman and runc are not installed: run make setup"; exit 1; }
	if running && answers; then
		echo "DOCKER_HOST=unix://$sock"
		exit 0
	fi
	mkdir -p "$dir"
	rm -f "$sock"
	setsid podman system service --time=0 "unix://$sock" >"$dir/service.log" 2>&1 </dev/null &
	echo $! >"$pidfile"
	for _ in $(seq 200); do
		answers && { echo "DOCKER_HOST=unix://$sock"; exit 0; }
		running || break
		sleep 0.05
	done
	say "the service did not answer on $sock; its log:"
	tail -n 20 "$dir/service.log" >&2
	exit 1
	;;
stop)
	if running; then
		pid=$(cat "$pidfile")
		kill "$pid"
		for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
		kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
	fi
	rm -f "$pidfile" "$sock"
	;;
status)
	if running && answers; then echo "running: DOCKER_HOST=unix://$sock"; else echo "not running"; exit 1; fi
	;;
*)
	echo "usage: $0 start|stop|status" >&2
	exit 2
	;;
esac
