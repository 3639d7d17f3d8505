#!/bin/sh
# Like the official image's entrypoint, in short: initialise PGDATA once (user, password and
# database from POSTGRES_*, then /docker-entrypoint-initdb.d/*.sql), then run the server on
# PGPORT, on loopback only. Passwords over TCP; the socket (inside the container) is trusted.
set -eu
# The marker is written last: an initialisation cut short starts over.
if [ ! -f "$PGDATA/.initialised" ]; then
    find "$PGDATA" -mindepth 1 -delete
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
    initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pwfile" \
        --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    rm -f "$pwfile"
    pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -k /tmp" -w start >/dev/null
    createdb -h /tmp -U "$POSTGRES_USER" "$POSTGRES_DB"
    for script in /docker-entrypoint-initdb.d/*.sql; do
        if [ -f "$script" ]; then
            psql -q -h /tmp -U "$POSTGRES_USER" -d "$POSTGRES_DB" -f "$script"
        fi
    done
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    touch "$PGDATA/.initialised"
fi
exec postgres -D "$PGDATA" -p "${PGPORT:-5432}" -k /tmp -c listen_addresses=127.0.0.1
