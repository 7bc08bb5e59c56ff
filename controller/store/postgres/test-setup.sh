#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests that need one (FERRUM_PG_DSN).
#
#   test-setup.sh install     install Debian's postgresql (sudo when not root); idempotent
#   test-setup.sh start DIR   create a cluster in DIR (owned by the postgres user when run as
#                             root: postgres refuses root), start it on 127.0.0.1 on a free
#                             port, print its DSN on stdout
#   test-setup.sh stop DIR    stop it and remove DIR
#
# `make test` runs start before the tests and stop after them. The cluster is tuned for tests
# (fsync off); every test creates its own database in it.
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

bindir() {
	local d
	d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
	[ -n "$d" ] || { echo "test-setup: no PostgreSQL server under /usr/lib/postgresql" >&2; exit 1; }
	echo "$d"
}

# as runs a command as the cluster's owner: postgres when we are root, else ourselves.
as() {
	if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "${1:-}" in
install)
	dpkg-query -W -f='${Status}' postgresql 2>/dev/null | grep -q "install ok installed" && exit 0
	echo "test-setup: installing postgresql" >&2
	export DEBIAN_FRONTEND=noninteractive
	inst() { $SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null; }
	inst || { $SUDO apt-get update -qq && inst; }
	;;
start)
	dir=${2:?usage: test-setup.sh start DIR}
	bin=$(bindir)
	mkdir -p "$dir"
	[ "$(id -u)" -eq 0 ] && chown postgres: "$dir" && chmod 700 "$dir"
	as "$bin/initdb" -D "$dir/data" -U ferrum --auth=trust --locale=C.UTF-8 --encoding=UTF8 >"$dir/initdb.log" 2>&1 ||
		{ cat "$dir/initdb.log" >&2; exit 1; }
	# A random port; another one when it is taken.
	for attempt in 1 2 3 4 5; do
		port=$((20000 + RANDOM % 40000))
		if as "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start -o \
			"-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400 -c shared_buffers=128MB" >/dev/null; then
			echo "postgres://ferrum@127.0.0.1:$port/postgres?sslmode=disable"
			exit 0
		fi
	done
	cat "$dir/server.log" >&2
	exit 1
	;;
stop)
	dir=${2:?usage: test-setup.sh stop DIR}
	[ -d "$dir/data" ] && as "$(bindir)/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
	rm -rf "$dir"
	;;
*)
	echo "usage: $0 install | start DIR | stop DIR" >&2
	exit 2
	;;
esac
