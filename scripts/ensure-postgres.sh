#!/usr/bin/env bash
# ensure-postgres.sh [DBNAME] — make sure a PostgreSQL server is reachable on
# loopback with trust auth for user postgres, and print its URL (database
# DBNAME, default postgres) on stdout. Logs go to stderr.
#
#   1. If a server answers on 127.0.0.1:$PGPORT_PROBE (default 5432), use it.
#   2. Otherwise use a project-local cluster in ./var/pg on port
#      $MEDIMINT_PG_LOCAL_PORT (default 5433): install Debian's postgresql if
#      the binaries are missing, initdb it once, start it if it is not running.
#
# Idempotent; safe to run concurrently (flock). Stops nothing system-wide.
#   ensure-postgres.sh --stop   stops the project-local cluster, if running.
# Set PGPORT_PROBE to a closed port (e.g. 1) to skip step 1 on purpose.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PGROOT="$ROOT/var/pg"
DATA="$PGROOT/data"
SOCK="$PGROOT/run"
LOG="$PGROOT/log/postgres.log"
PROBE_PORT="${PGPORT_PROBE:-5432}"
LOCAL_PORT="${MEDIMINT_PG_LOCAL_PORT:-5433}"

log() { echo "ensure-postgres: $*" >&2; }
die() { log "error: $*"; exit 1; }

url() { echo "postgres://postgres@127.0.0.1:$1/${DBNAME}?sslmode=disable"; }

# usable PORT: accepting connections and letting user postgres in.
usable() {
	local port=$1
	if command -v pg_isready >/dev/null 2>&1; then
		pg_isready -q -h 127.0.0.1 -p "$port" -t 3 || return 1
	fi
	if command -v psql >/dev/null 2>&1; then
		PGCONNECT_TIMEOUT=3 psql -w -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -Atc 'SELECT 1' >/dev/null 2>&1 || return 1
	else
		# Without client tools we cannot tell more than "a port is open".
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || return 1
	fi
}

pgbin() {
	local d
	d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)"
	if [ -n "$d" ] && [ -x "$d/initdb" ]; then echo "$d"; fi
}

# as_pg CMD...: run as the postgres OS user when root (postgres refuses to
# run as root), as ourselves otherwise.
as_pg() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

install_postgres() {
	[ "$(id -u)" -eq 0 ] || die "PostgreSQL is not installed and we are not root: apt-get install postgresql, or set DATABASE_URL / MEDIMINT_TEST_PG"
	log "installing Debian's postgresql"
	if ! apt-cache show postgresql >/dev/null 2>&1; then
		apt-get update >&2
	fi
	# We only want the binaries; if the package also starts its own cluster
	# on 5432, the next run will simply find and use it.
	DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql >&2 \
		|| { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql >&2; }
}

# detached CMD...: run CMD with only stdin/stdout/stderr open, so that the
# server it starts holds neither our lock (fd 9) nor a caller's pipe, which
# would keep `$(ensure-postgres.sh)` waiting for ever.
detached() {
	(
		for fd in /proc/$BASHPID/fd/*; do
			fd=${fd##*/}
			if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi
		done
		"$@" </dev/null
	)
}

stop_local() {
	local bin
	bin="$(pgbin)"
	if [ -z "$bin" ] || [ ! -f "$DATA/postmaster.pid" ]; then
		log "local cluster not running"
		return 0
	fi
	log "stopping local cluster in $DATA"
	as_pg "$bin/pg_ctl" -D "$DATA" -m fast -w stop >&2
}

DBNAME=postgres
case "${1:-}" in
--stop) stop_local; exit 0 ;;
-h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
-*) die "unknown option $1" ;;
"") ;;
*) DBNAME="$1" ;;
esac

if usable "$PROBE_PORT"; then
	log "using the Postgres on 127.0.0.1:$PROBE_PORT"
	url "$PROBE_PORT"
	exit 0
fi
log "no usable Postgres on 127.0.0.1:$PROBE_PORT; using the project-local cluster (port $LOCAL_PORT)"

mkdir -p "$PGROOT"
exec 9>"$PGROOT/.lock"
flock 9

if usable "$LOCAL_PORT"; then
	log "local cluster already running"
	url "$LOCAL_PORT"
	exit 0
fi

BIN="$(pgbin)"
if [ -z "$BIN" ]; then
	install_postgres
	BIN="$(pgbin)"
	[ -n "$BIN" ] || die "postgresql installed but no initdb under /usr/lib/postgresql/*/bin"
fi
log "PostgreSQL binaries: $BIN"

mkdir -p "$SOCK" "$(dirname "$LOG")"
if [ "$(id -u)" -eq 0 ]; then
	id postgres >/dev/null 2>&1 || die "no postgres OS user (is Debian's postgresql-common installed?)"
	chown postgres:postgres "$PGROOT" "$SOCK" "$(dirname "$LOG")"
	[ ! -d "$DATA" ] || chown -R postgres:postgres "$DATA"
	as_pg test -w "$PGROOT" \
		|| die "the postgres OS user cannot reach $PGROOT (a parent directory is not world-searchable); set DATABASE_URL/MEDIMINT_TEST_PG to another server"
fi

if [ ! -f "$DATA/PG_VERSION" ]; then
	log "initialising a cluster in $DATA"
	as_pg "$BIN/initdb" -D "$DATA" -U postgres --auth=trust --encoding=UTF8 --locale=C >&2
fi

if [ "$(as_pg "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; echo $?)" -ne 0 ]; then
	log "starting the local cluster (log: $LOG)"
	detached as_pg "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 \
		-o "-p $LOCAL_PORT -k $SOCK -c listen_addresses=127.0.0.1" start >&2 \
		|| { tail -n 20 "$LOG" >&2 || true; die "the local cluster did not start"; }
fi

for _ in $(seq 1 60); do
	if usable "$LOCAL_PORT"; then
		url "$LOCAL_PORT"
		exit 0
	fi
	sleep 1
done
die "the local cluster is running but does not answer on 127.0.0.1:$LOCAL_PORT (see $LOG)"
