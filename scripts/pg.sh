#!/usr/bin/env bash
# pg.sh starts and stops a throwaway PostgreSQL 15 cluster for tests.
#
#   scripts/pg.sh start DIR   init a cluster in DIR, start it on a free port on
#                             127.0.0.1 and print its URL on stdout
#   scripts/pg.sh restart DIR crash-restart the cluster in DIR (immediate
#                             stop, then start on the same port)
#   scripts/pg.sh stop DIR    stop the cluster in DIR and remove DIR
#
# The server runs as the postgres user (initdb refuses root), with fsync and
# synchronous_commit off: the data is thrown away (PGSH_DURABLE=1 keeps
# synchronous_commit on). If initdb is missing, postgresql-15 is installed
# with apt-get.
set -euo pipefail

find_bindir() {
	local d
	for d in /usr/lib/postgresql/15/bin; do
		[[ -x $d/initdb ]] && { echo "$d"; return; }
	done
	if dpkg -L postgresql-15 >/dev/null 2>&1; then
		d=$(dpkg -L postgresql-15 | grep '/bin/initdb$' | head -n1 || true)
		[[ -n $d ]] && { dirname "$d"; return; }
	fi
	return 1
}

install_pg() {
	echo "pg.sh: installing postgresql-15 with apt-get" >&2
	export DEBIAN_FRONTEND=noninteractive
	if [[ -z ${APT_UPDATED:-} ]]; then
		apt-get update -qq >&2
	fi
	apt-get install -y -qq --no-install-recommends postgresql-15 >&2
}

free_port() {
	python3 - <<'PY' 2>/dev/null || echo $((20000 + RANDOM % 20000))
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

as_postgres() {
	if [[ $(id -u) -eq 0 ]]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

start() {
	local dir=$1 bindir port sync_commit=off
	# PGSH_DURABLE=1 keeps synchronous_commit on, so a crash-restart of the
	# server (restart) loses no acknowledged commit; fsync stays off (the
	# data survives a server crash, not a machine crash).
	if [[ ${PGSH_DURABLE:-} == 1 ]]; then
		sync_commit=on
	fi
	bindir=$(find_bindir) || { install_pg; bindir=$(find_bindir); }
	mkdir -p "$dir"
	if [[ $(id -u) -eq 0 ]]; then
		chown postgres "$dir"
	fi
	as_postgres "$bindir/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 ||
		{ cat "$dir/initdb.log" >&2; return 1; }
	for _ in 1 2 3 4 5; do
		port=$(free_port)
		if as_postgres "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
			-o "-h 127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=$sync_commit -c full_page_writes=off -c max_connections=500" \
			start >&2; then
			echo "postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
			return 0
		fi
		tail -n 5 "$dir/server.log" >&2 || true
	done
	echo "pg.sh: could not start PostgreSQL" >&2
	return 1
}

restart() {
	local dir=$1 bindir
	bindir=$(find_bindir)
	as_postgres "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -m immediate -w -t 30 restart >/dev/null
}

stop() {
	local dir=$1 bindir
	if [[ -d $dir/data ]] && bindir=$(find_bindir); then
		as_postgres "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
	fi
	rm -rf "$dir"
}

case ${1:-} in
start) start "$2" ;;
restart) restart "$2" ;;
stop) stop "$2" ;;
*)
	echo "usage: $0 start|restart|stop DIR" >&2
	exit 2
	;;
esac
