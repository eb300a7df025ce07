#!/usr/bin/env bash
# Start / stop a throwaway PostgreSQL + PostGIS cluster on 127.0.0.1 for the test suite.
#   scripts/pg.sh start   -> prints the database URL on stdout (last line)
#   scripts/pg.sh stop
#   scripts/pg.sh restart -> a fresh cluster (start reuses one of ours that is running)
# Installs postgresql + postgis with apt when missing (needs root); says so plainly when it can't.
set -euo pipefail
STATE=${CITYOPS_PG_STATE:-/tmp/cityops-pg}
PORT=${CITYOPS_PG_PORT:-54329}
cmd=${1:-start}

find_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
have_postgis() { ls /usr/share/postgresql/*/extension/postgis.control >/dev/null 2>&1; }

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if [ "$cmd" = stop ]; then
  BIN=$(find_bin)
  if [ -n "$BIN" ] && [ -f "$STATE/data/postmaster.pid" ]; then
    as_pg "$BIN/pg_ctl" -D "$STATE/data" -m fast stop >/dev/null 2>&1 || true
  fi
  rm -rf "$STATE"
  exit 0
fi

BIN=$(find_bin)
if [ -z "$BIN" ] || ! have_postgis; then
  if [ "$(id -u)" != 0 ]; then
    echo "cityops: PostgreSQL/PostGIS missing and not root: cannot install it; the PostgreSQL half is skipped" >&2
    exit 3
  fi
  echo "cityops: installing PostgreSQL + PostGIS with apt ..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql postgresql-postgis >&2 || apt-get install -y -qq postgresql-15 postgresql-15-postgis-3 >&2
  BIN=$(find_bin)
fi

# a cluster of ours already running here is reused (several checkouts and helpers share one; every
# test module makes its own database); `restart` makes a fresh one
if [ "$cmd" = start ] && [ -f "$STATE/data/postmaster.pid" ] && "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT"; then
  echo "postgresql+psycopg://cityops@127.0.0.1:$PORT/cityops"
  exit 0
fi
# stop a leftover cluster from an earlier run
if [ -f "$STATE/data/postmaster.pid" ]; then as_pg "$BIN/pg_ctl" -D "$STATE/data" -m immediate stop >/dev/null 2>&1 || true; fi
rm -rf "$STATE"; mkdir -p "$STATE"
if [ "$(id -u)" = 0 ]; then chown postgres "$STATE"; fi
as_pg "$BIN/initdb" -D "$STATE/data" -U cityops --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
cat >> "$STATE/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$STATE'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 256MB
CONF
as_pg "$BIN/pg_ctl" -D "$STATE/data" -l "$STATE/log" -w start >/dev/null
as_pg "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U cityops cityops
as_pg "$BIN/psql" -q -h 127.0.0.1 -p "$PORT" -U cityops -d cityops -c "CREATE EXTENSION IF NOT EXISTS postgis" >/dev/null
echo "postgresql+psycopg://cityops@127.0.0.1:$PORT/cityops"
