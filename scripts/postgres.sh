#!/usr/bin/env bash
# A throwaway PostgreSQL server on 127.0.0.1 for the golden-record store's tests.
#
#   scripts/postgres.sh start   install PostgreSQL if needed (Debian's package), create the
#                               cluster once, start it, wait until it answers, print the URL
#                               (a server of ours that is already running is left alone)
#   scripts/postgres.sh stop    stop it (fast shutdown); the data is kept
#   scripts/postgres.sh url     print the URL: postgres://hub@127.0.0.1:<port>/hub_test
#
# The cluster lives in target/postgres/data (repo-relative), listens on 127.0.0.1 only (no
# Unix socket), trusts local connections, and has the superuser `hub` and the database
# `hub_test`. PostgreSQL refuses to run as root: as root the server runs as the system user
# `hub-pg` (created if missing), which owns the data directory.
#
# Environment (all optional):
#   HUB_PG_PORT            55432   the port
#   HUB_PG_START_TIMEOUT   60      seconds to wait for the server to answer
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PORT="${HUB_PG_PORT:-55432}"
START_TIMEOUT="${HUB_PG_START_TIMEOUT:-60}"
BASE="$ROOT/target/postgres"
DATA="$BASE/data"
LOG_FILE="$BASE/postgres.log"
DB_USER=hub
DB_NAME=hub_test
RUN_AS=hub-pg
URL="postgres://$DB_USER@127.0.0.1:$PORT/$DB_NAME"

log() { echo "postgres.sh: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Serialise start/stop so parallel test jobs cannot create or start two servers.
take_lock() {
    mkdir -p "$BASE"
    exec 9>"$BASE/.lock"
    if command -v flock >/dev/null 2>&1; then
        flock -w 300 9 || die "timed out waiting for $BASE/.lock"
    fi
}

# The directory holding initdb and pg_ctl: PATH first, then Debian's versioned directories
# (newest version first).
find_bindir() {
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(readlink -f "$(command -v pg_ctl)")"
        return 0
    fi
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
            echo "$dir"
            return 0
        fi
    done
    return 1
}

install_postgres() {
    log "installing PostgreSQL (Debian package postgresql)"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q postgresql
}

bindir() {
    local dir
    if ! dir="$(find_bindir)"; then
        install_postgres
        dir="$(find_bindir)" || die "initdb/pg_ctl still not found after installing postgresql"
    fi
    echo "$dir"
}

# Runs a server command as the owner of the data directory.
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u "$RUN_AS" -- "$@"
    else
        "$@"
    fi
}

ensure_user() {
    [ "$(id -u)" -eq 0 ] || return 0
    if ! id -u "$RUN_AS" >/dev/null 2>&1; then
        log "creating system user $RUN_AS to run the server"
        useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
            "$RUN_AS"
    fi
}

# The server must reach its data directory: every directory above it needs search permission
# for the server's user.
check_path_access() {
    [ "$(id -u)" -eq 0 ] || return 0
    if ! runuser -u "$RUN_AS" -- test -x "$BASE"; then
        die "user $RUN_AS cannot reach $BASE; give the directories above it o+x"
    fi
}

init_cluster() {
    local bin="$1"
    [ -f "$DATA/PG_VERSION" ] && return 0
    log "creating the cluster in $DATA"
    rm -rf "$DATA"
    mkdir -p "$DATA"
    chmod 700 "$DATA"
    if [ "$(id -u)" -eq 0 ]; then
        chown "$RUN_AS" "$DATA"
    fi
    # Locale C (byte order, no OS locale needed) with UTF-8 text.
    as_owner "$bin/initdb" -D "$DATA" -U "$DB_USER" --auth=trust --encoding=UTF8 \
        --locale=C >"$BASE/initdb.log" 2>&1 ||
        die "initdb failed (see $BASE/initdb.log)"
    cat >>"$DATA/postgresql.conf" <<EOF

# scripts/postgres.sh: test server on the loopback interface only.
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
max_connections = 200
EOF
}

running() {
    local bin="$1"
    [ -f "$DATA/PG_VERSION" ] && as_owner "$bin/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

ready() {
    local bin="$1"
    "$bin/pg_isready" -q -h 127.0.0.1 -p "$PORT" -U "$DB_USER" -d postgres >/dev/null 2>&1
}

# pg_ctl -w checks the server's own status file; this checks it answers on the port.
wait_ready() {
    local bin="$1" deadline=$((SECONDS + START_TIMEOUT))
    until ready "$bin"; do
        if ((SECONDS >= deadline)); then
            tail -n 20 "$LOG_FILE" >&2 || true
            die "PostgreSQL did not answer on 127.0.0.1:$PORT within ${START_TIMEOUT}s"
        fi
        sleep 0.2
    done
}

ensure_database() {
    local bin="$1"
    local psql=("$bin/psql" -h 127.0.0.1 -p "$PORT" -U "$DB_USER" -v ON_ERROR_STOP=1 -qAt)
    local exists
    exists="$("${psql[@]}" -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")"
    if [ "$exists" != 1 ]; then
        "${psql[@]}" -d postgres -c "CREATE DATABASE $DB_NAME" >/dev/null
    fi
}

cmd_start() {
    take_lock
    local bin
    bin="$(bindir)"
    ensure_user
    mkdir -p "$BASE"
    check_path_access
    init_cluster "$bin"
    if running "$bin"; then
        log "already running (data $DATA)"
        ready "$bin" || die "the server in $DATA runs but does not answer on port $PORT (started with another HUB_PG_PORT?)"
    else
        if ready "$bin"; then
            die "port $PORT answers but the server in $DATA is not running: another PostgreSQL? set HUB_PG_PORT"
        fi
        touch "$LOG_FILE"
        [ "$(id -u)" -ne 0 ] || chown "$RUN_AS" "$LOG_FILE"
        # -w polls until the server accepts connections (at most the timeout). 9>&-: the
        # server must not inherit the lock, or it would hold it for its whole life.
        if ! as_owner "$bin/pg_ctl" -D "$DATA" -l "$LOG_FILE" -o "-p $PORT" -w -t "$START_TIMEOUT" start \
            >/dev/null 9>&-; then
            tail -n 20 "$LOG_FILE" >&2 || true
            die "PostgreSQL did not start within ${START_TIMEOUT}s (see $LOG_FILE)"
        fi
    fi
    wait_ready "$bin"
    ensure_database "$bin"
    echo "$URL"
}

cmd_stop() {
    take_lock
    local bin
    bin="$(find_bindir)" || { log "PostgreSQL is not installed; nothing to stop"; return 0; }
    if running "$bin"; then
        as_owner "$bin/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >/dev/null
        log "stopped"
    else
        log "not running"
    fi
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    url) echo "$URL" ;;
    *)
        echo "usage: $0 start|stop|url" >&2
        exit 2
        ;;
esac
