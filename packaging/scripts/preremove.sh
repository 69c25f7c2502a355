#!/bin/sh
# galera-supervisor preremove. On removal (deb: "remove"; rpm: $1 = 0) stop
# the nodes of galera-supervisor.service and its instances: their ExecStart
# is about to disappear. Upgrades (deb: "upgrade"; rpm: $1 = 1) leave
# running nodes alone. A mariadb.service run by the supervisor through the
# drop-in route keeps running: its unit stays, and postremove puts it back
# to the stock ExecStart for its next start.
set -e

case "$1" in
remove | 0) ;;
*) exit 0 ;;
esac
if [ -d /run/systemd/system ]; then
	systemctl stop galera-supervisor.service 'galera-supervisor@*.service' >/dev/null 2>&1 || true
	pid=$(systemctl show -P MainPID mariadb.service 2>/dev/null || true)
	if [ -n "$pid" ] && [ "$pid" != 0 ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = galera-supervis ]; then
		echo "galera-supervisor: mariadb.service (pid $pid) runs on under galera-supervisor until it is restarted; then it runs the stock mariadbd" >&2
	fi
fi
exit 0
