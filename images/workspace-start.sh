#!/bin/sh
# The workspace image's command (/usr/local/bin/pbs-workspace-start), run
# by the guard (pbs-guard, the container's first process) as the workspace
# user. The root file system is read-only and the home a fresh tmpfs for
# every start (the project folder below it is the workspace's volume), so
# the home is seeded from the image first: the workbench settings and the
# preinstalled extensions. code-server then listens only on a unix socket
# in /run (a tmpfs), mode 0600: the guard's upstream (PBS_GUARD_UPSTREAM),
# and no TCP port at all. The gateway authenticates users; the guard lets
# only the gateway in.
set -eu
seed=/usr/share/playbook-studio/home
if [ -d "$seed" ]; then
	cp -R -n "$seed/." "$HOME/"
fi
exec code-server --auth none \
	--socket /run/code-server/code-server.sock --socket-mode 600 \
	--disable-telemetry --disable-update-check --disable-workspace-trust \
	--disable-getting-started-override \
	/home/coder/project
