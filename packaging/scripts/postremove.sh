#!/bin/sh
# galera-supervisor postremove: forget the removed units and catalog texts
# (on an upgrade too: then the new package's files are already in place).
# On removal (deb: "remove", "purge"; rpm: $1 = 0) the drop-in route's link
# goes too, so that mariadb.service starts the stock way again.
set -e

case "$1" in
remove | purge | 0)
	link=/etc/systemd/system/mariadb.service.d/galera-supervisor.conf
	# Only the link the documented command made: an administrator's own
	# file there stays.
	if [ -L "$link" ] && [ ! -e "$link" ]; then
		rm -f "$link"
		rmdir /etc/systemd/system/mariadb.service.d 2>/dev/null || true
	elif [ -f "$link" ]; then
		echo "galera-supervisor: $link is a copy, not the link the package documents; mariadb.service will not start until you remove it" >&2
	fi
	;;
esac
if command -v journalctl >/dev/null 2>&1; then
	journalctl --update-catalog >/dev/null 2>&1 || true
fi
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
