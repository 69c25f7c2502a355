#!/bin/sh
# galera-supervisor postremove: forget the removed units and catalog texts
# (on an upgrade too: then the new package's files are already in place).
set -e

if command -v journalctl >/dev/null 2>&1; then
	journalctl --update-catalog >/dev/null 2>&1 || true
fi
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
