#!/bin/sh
# PostgreSQL for agentwire's query store, configured like the official image:
#   POSTGRES_USER (default postgres), POSTGRES_PASSWORD (required), POSTGRES_DB (default: the user's name).
# The first start of an empty $PGDATA runs initdb (password authentication for every network client) and
# creates the database; later starts only run the server. "ready to accept connections" on stdout means it
# serves. The store is an index derived from Kafka (docs/state.md), so synchronous_commit=off is safe.
set -eu

: "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"
user="${POSTGRES_USER:-postgres}"
database="${POSTGRES_DB:-$user}"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  password_file=$(mktemp)
  printf '%s' "$POSTGRES_PASSWORD" > "$password_file"
  initdb -D "$PGDATA" -U "$user" --pwfile="$password_file" --auth-local=trust --auth-host=scram-sha-256 \
    --encoding=UTF8 >/dev/null
  rm -f "$password_file"
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  # the database, created on a server that listens on the local socket only (its log stays off stdout)
  pg_ctl -D "$PGDATA" -w -s -l "$PGDATA/initdb-server.log" -o "-c listen_addresses=''" start
  if [ "$database" != postgres ]; then
    createdb -U "$user" "$database"
  fi
  pg_ctl -D "$PGDATA" -w -s stop
fi

exec postgres -D "$PGDATA" -c listen_addresses='*' -c synchronous_commit=off
