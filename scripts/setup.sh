#!/usr/bin/env bash
# Installs what building, running and testing need, on a fresh Debian 12
# machine as root. Idempotent: it does nothing, quietly, when all is there.
#   scripts/setup.sh run    what `make run` needs (Go modules, code-server, the extension)
#   scripts/setup.sh test   plus Redis, Chromium, Podman and the browser tests' npm packages
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-test}

say() { printf 'setup: %s\n' "$*" >&2; }

need_cmd() {
	command -v "$1" >/dev/null 2>&1 || { say "$1 is required but not installed; $2"; exit 1; }
}
need_cmd go "install Go 1.26 (https://go.dev/doc/install)"

# apt_install PKG... installs the Debian packages that are not installed.
apt_install() {
	local missing=() pkg
	for pkg in "$@"; do
		dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	local sudo=()
	[ "$(id -u)" -eq 0 ] || sudo=(sudo)
	say "installing Debian packages: ${missing[*]}"
	"${sudo[@]}" apt-get update -qq >/dev/null
	DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# check_cmds CMD:PACKAGE... fails, naming the package, for any command
# still missing after the install step (a failed or partial apt-get).
check_cmds() {
	local pair missing=()
	for pair in "$@"; do
		command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair%%:*} (Debian package ${pair#*:})")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	say "missing after installing: ${missing[*]}; install them with apt-get and run make again"
	exit 1
}

# Go modules: quiet and quick when the module cache has them.
go mod download

# The local runtime sandboxes every workspace with bubblewrap, switching
# to the workspace's uid with setpriv and limiting it with prlimit.
apt_install bubblewrap util-linux
check_cmds bwrap:bubblewrap setpriv:util-linux prlimit:util-linux

# Debian's Python 3 checks saved playbooks and runs them (RUN_PYTHON is
# /usr/bin/python3: the run's sandbox binds /usr only, so a python from
# pyenv or /usr/local would not be found inside it).
apt_install python3
check_cmds python3:python3
[ -x /usr/bin/python3 ] || { say "/usr/bin/python3 is missing: install Debian's python3"; exit 1; }

# What every workspace runs: code-server (from npm) and the agent extension.
need_cmd node "install Node.js 20 and npm"
scripts/install-code-server.sh
scripts/build-extension.sh

if [ "$what" = test ]; then
	# Redis for the lock and session tests, Chromium for the browser tests,
	# Podman (with the network stack it only recommends) serving the Docker
	# API for the Docker runtime's tests, debootstrap for the offline image.
	# Podman's network backend (netavark) needs iptables, which a new
	# Debian 12 machine lacks. nsenter lets tests act inside a workspace.
	apt_install redis-server chromium podman runc netavark aardvark-dns catatonit iptables debootstrap
	check_cmds redis-server:redis-server chromium:chromium podman:podman runc:runc \
		iptables:iptables debootstrap:debootstrap nsenter:util-linux
	# The browser tests' packages, reinstalled only when the lock file changes.
	stamp=e2e/node_modules/.installed-lock
	if [ ! -f "$stamp" ] || ! cmp -s e2e/package-lock.json "$stamp"; then
		say "installing the browser tests' npm packages"
		(cd e2e && npm ci --silent --no-audit --no-fund >/dev/null)
		cp e2e/package-lock.json "$stamp"
	fi
fi
