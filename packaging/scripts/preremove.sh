#!/bin/sh
# galera-supervisor preremove. On removal (deb: "remove"; rpm: $1 = 0) stop
# the nodes it runs: their ExecStart is about to disappear. Upgrades
# (deb: "upgrade"; rpm: $1 = 1) leave running nodes alone.
set -e

case "$1" in
remove | 0) ;;
*) exit 0 ;;
esac
if [ -d /run/systemd/system ]; then
	systemctl stop galera-supervisor.service 'galera-supervisor@*.service' >/dev/null 2>&1 || true
fi
exit 0
