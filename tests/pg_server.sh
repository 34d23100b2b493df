#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests: loopback only, a free port, a temporary
# folder. Prints shell `export` lines to eval:
#
#   eval "$(bash tests/pg_server.sh start)"   # sets TASKITO_TEST_PG_URL and friends
#   bash tests/pg_server.sh stop "$TASKITO_TEST_PG_DIR"
#
# Needs the Debian `postgresql` package. initdb refuses to run as root, so as root the
# server runs as the `postgres` system user.
set -euo pipefail

bindir() {
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    if [ -z "$d" ] || [ ! -x "$d/initdb" ]; then
        echo "pg_server.sh: PostgreSQL is not installed (apt-get install -y postgresql)" >&2
        exit 1
    fi
    echo "$d"
}

as_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() {
    local bin dir port password
    bin=$(bindir)
    dir=$(mktemp -d /tmp/taskito-pg.XXXXXX)
    chmod 755 "$dir"
    password="taskito-test-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
    printf '%s\n' "$password" >"$dir/pwfile"
    if [ "$(id -u)" = 0 ]; then chown -R postgres "$dir"; fi
    as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=scram-sha-256 \
        --pwfile="$dir/pwfile" -E UTF8 >"$dir/initdb.log" 2>&1
    port=$(free_port)
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 start \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c max_connections=100" \
        >/dev/null
    echo "export TASKITO_TEST_PG_URL='postgresql://postgres:$password@127.0.0.1:$port/postgres'"
    echo "export TASKITO_TEST_PG_DIR='$dir'"
    echo "export TASKITO_TEST_PG_CTL='$bin/pg_ctl'"
}

stop() {
    local dir=${1:-${TASKITO_TEST_PG_DIR:-}}
    [ -n "$dir" ] && [ -d "$dir/data" ] || return 0
    as_owner "$(bindir)/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$dir"
}

case "${1:-}" in
start) start ;;
stop) stop "${2:-}" ;;
*)
    echo "usage: $0 start | stop DIR" >&2
    exit 2
    ;;
esac
