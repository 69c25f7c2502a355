#!/usr/bin/env bash
# make deps: installs the Debian packages named as arguments that are
# missing, with apt's output in the log file LOG, and prints one line.
# Then it makes sure no stock mariadb.service runs beside the tests, the
# demo and the benchmark, without harming one that holds data.
#   scripts/deps.sh LOG PKG...
set -euo pipefail
log=$1
shift

missing=()
for p in "$@"; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
	start=$SECONDS
	export DEBIAN_FRONTEND=noninteractive
	ok=
	for _ in 1 2 3; do # apt can fail once (a mirror sync): retry
		if { apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; } >>"$log" 2>&1; then
			ok=1
			break
		fi
		sleep 5
	done
	if [ -z "$ok" ]; then
		echo "deps: apt-get could not install ${missing[*]}; the end of $log:" >&2
		tail -n 20 "$log" >&2
		exit 1
	fi
	echo "deps: installed ${#missing[@]} Debian packages in $((SECONDS - start)) s (${missing[*]}); apt's output is in $log"
else
	echo "deps: the $# Debian packages are installed"
fi

# haproxy and prometheus are there for the endpoint's tests (HAProxy in
# front of real nodes, promtool check metrics): their services are not.
for s in haproxy prometheus; do
	if systemctl is-active --quiet "$s.service" 2>/dev/null; then
		systemctl disable --now "$s.service" >/dev/null 2>&1 || true
		echo "deps: stopped and disabled $s.service (its package is for the tests)"
	fi
done

# The mariadb-server package's postinst starts mariadb.service on its empty
# initial datadir; that one is stopped and disabled. One with data (a
# database besides mysql, performance_schema and sys, or a Galera node's
# grastate.dat) is left alone unless GS_STOP_MARIADB=1.
if ! systemctl is-active --quiet mariadb.service 2>/dev/null; then
	exit 0
fi
datadir=$(my_print_defaults --mysqld 2>/dev/null | sed -n 's/^--datadir=//p' | tail -n 1)
datadir=${datadir:-/var/lib/mysql}
data=$(find "$datadir" -mindepth 1 -maxdepth 1 -type d ! -name mysql ! -name performance_schema \
	! -name sys ! -name '#*' ! -name lost+found -printf '%f ' 2>/dev/null || true)
if [ -s "$datadir/grastate.dat" ] && ! grep -q '^uuid:[[:space:]]*00000000-0000-0000-0000-000000000000' "$datadir/grastate.dat"; then
	data="${data}grastate.dat of a Galera node"
fi
if [ -n "$data" ] && [ "${GS_STOP_MARIADB:-}" != 1 ]; then
	echo "deps: mariadb.service is running with data in $datadir: $data" >&2
	echo "deps: the tests, the demo and the benchmark would stop and disable it, so they stop here; stop it yourself, or run again with GS_STOP_MARIADB=1" >&2
	exit 1
fi
systemctl disable --now mariadb.service >/dev/null 2>&1 || true
echo "deps: stopped and disabled mariadb.service (${data:-its datadir $datadir held no data})"
