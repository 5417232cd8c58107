#!/usr/bin/env bash
# A throwaway PostgreSQL cluster on 127.0.0.1, for the production instance (deployments/production/).
#   scripts/postgres_local.sh start DIR PORT   initdb DIR (once), start on 127.0.0.1:PORT, create the db;
#                                               prints `export DAGSTER_POSTGRES_*=...` lines to eval
#   scripts/postgres_local.sh stop DIR          stop it (DIR stays; delete it to discard the data)
# PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres` user.
set -euo pipefail
cmd=${1:?usage: postgres_local.sh start DIR PORT | stop DIR}
dir=${2:?data directory}
bindir=$("$(dirname "$0")/ensure_postgres.sh")
user=${DAGSTER_POSTGRES_USER:-dagster}
db=${DAGSTER_POSTGRES_DB:-dagster}

as_owner() {
  if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$cmd" in
  start)
    port=${3:?port}
    mkdir -p "$dir"
    if [[ ! -f "$dir/data/PG_VERSION" ]]; then
      password=${DAGSTER_POSTGRES_PASSWORD:-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')}
      mkdir -p "$dir/data"
      printf '%s\n' "$password" > "$dir/password"
      chmod 600 "$dir/password"
      [[ $(id -u) -eq 0 ]] && chown -R postgres "$dir"
      as_owner "$bindir/initdb" -D "$dir/data" -U "$user" --pwfile="$dir/password" \
        --auth=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log"
    fi
    # Listen on loopback only, with the socket inside DIR (not /var/run/postgresql).
    as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-h 127.0.0.1 -p $port -k $dir" start >/dev/null
    password=$(cat "$dir/password")
    if ! PGPASSWORD=$password "$bindir/psql" -h 127.0.0.1 -p "$port" -U "$user" -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
      PGPASSWORD=$password "$bindir/createdb" -h 127.0.0.1 -p "$port" -U "$user" "$db"
    fi
    cat <<ENV
export DAGSTER_POSTGRES_HOST=127.0.0.1
export DAGSTER_POSTGRES_PORT=$port
export DAGSTER_POSTGRES_USER=$user
export DAGSTER_POSTGRES_PASSWORD=$password
export DAGSTER_POSTGRES_DB=$db
ENV
    ;;
  stop)
    as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    ;;
  *) echo "unknown command: $cmd" >&2; exit 2 ;;
esac
