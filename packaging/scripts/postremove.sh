#!/bin/sh
# galera-supervisor postremove: forget the removed units.
set -e

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
