#!/bin/sh
# galera-supervisor postinstall (deb: configure; rpm: $1 >= 1).
# The units are not enabled or started: galera-supervisor.service replaces
# mariadb.service on the same datadir, and a DBA decides when to switch.
set -e

# The journal catalog works without a running systemd (a chroot, an image
# build): it only rebuilds /var/lib/systemd/catalog/database.
if command -v journalctl >/dev/null 2>&1; then
	journalctl --update-catalog >/dev/null 2>&1 || true
fi
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
	# An upgrade restarts nothing either: a restart of a Galera node may
	# cost an SST. "systemctl restart galera-supervisor" picks the new binary.
fi
exit 0
