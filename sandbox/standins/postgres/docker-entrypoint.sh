#!/usr/bin/env bash
# Entrypoint of the postgres:18 STAND-IN (tests only). It implements the official image's
# documented contract; see the Dockerfile beside it for the list.
set -Eeuo pipefail

PGDATA="${PGDATA:-/var/lib/postgresql/18/docker}"
export PGDATA

log() { printf 'stand-in entrypoint: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# NAME from NAME or from the file named by NAME_FILE (Docker secrets); both set is an error.
env_or_file() {
    local name="$1" default="${2:-}" file_name="${1}_FILE"
    local value="${!name:-}" file="${!file_name:-}"
    if [[ -n "$value" && -n "$file" ]]; then
        die "both $name and $file_name are set (but are exclusive)"
    fi
    if [[ -n "$file" ]]; then
        value="$(<"$file")"
    fi
    export "$name=${value:-$default}"
    unset "$file_name"
}

# The pre-18 data path: a volume mounted there would hold nothing PostgreSQL 18 uses, and the
# data would silently live in the image's anonymous volume instead.
refuse_pre_18_mount() {
    if [[ "$PGDATA" != /var/lib/postgresql/data* ]] && mountpoint -q /var/lib/postgresql/data; then
        die "something is mounted at /var/lib/postgresql/data, but PostgreSQL 18+ images keep" \
            "their data in $PGDATA: mount the volume at /var/lib/postgresql instead"
    fi
}

# As root: own the directories, then start again as the postgres user.
prepare_as_root_and_drop() {
    mkdir -p "$PGDATA"
    if [[ "$(stat -c %U "$PGDATA")" != postgres ]]; then
        chown -R postgres:postgres "$PGDATA"
    fi
    chmod 0700 "$PGDATA"
    if [[ -n "${POSTGRES_INITDB_WALDIR:-}" ]]; then
        mkdir -p "$POSTGRES_INITDB_WALDIR"
        chown -R postgres:postgres "$POSTGRES_INITDB_WALDIR"
        chmod 0700 "$POSTGRES_INITDB_WALDIR"
    fi
    exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
}

psql_init() {
    psql -v ON_ERROR_STOP=1 --no-psqlrc --no-password --username "$POSTGRES_USER" "$@"
}

run_init_scripts() {
    local script
    shopt -s nullglob
    for script in /docker-entrypoint-initdb.d/*; do
        case "$script" in
            *.sh)
                if [[ -x "$script" ]]; then
                    log "running $script"
                    "$script"
                else
                    log "sourcing $script"
                    # shellcheck disable=SC1090
                    . "$script"
                fi
                ;;
            *.sql)
                log "running $script"
                psql_init --dbname "$POSTGRES_DB" -f "$script"
                ;;
            *.sql.gz)
                log "running $script"
                gzip -dc "$script" | psql_init --dbname "$POSTGRES_DB"
                ;;
            *) log "ignoring $script" ;;
        esac
    done
}

initialise() {
    env_or_file POSTGRES_PASSWORD
    env_or_file POSTGRES_USER postgres
    env_or_file POSTGRES_DB "$POSTGRES_USER"
    env_or_file POSTGRES_INITDB_ARGS
    local auth_method="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
    if [[ -z "$POSTGRES_PASSWORD" && "$auth_method" != trust ]]; then
        die "the database is uninitialised and no superuser password is set:" \
            "set POSTGRES_PASSWORD (or POSTGRES_PASSWORD_FILE)"
    fi

    log "initialising $PGDATA for user $POSTGRES_USER"
    local password_file
    password_file="$(mktemp)"
    printf '%s' "$POSTGRES_PASSWORD" >"$password_file"
    local -a initdb_args=(--username "$POSTGRES_USER" --auth trust)
    if [[ -n "$POSTGRES_PASSWORD" ]]; then
        initdb_args+=(--pwfile "$password_file")
    fi
    if [[ -n "${POSTGRES_INITDB_WALDIR:-}" ]]; then
        initdb_args+=(--waldir "$POSTGRES_INITDB_WALDIR")
    fi
    # Word splitting on purpose: a space-separated list of initdb arguments.
    # shellcheck disable=SC2086
    initdb "${initdb_args[@]}" $POSTGRES_INITDB_ARGS
    rm -f "$password_file"

    # Local connections inside the container are trusted (initdb's lines above); every other
    # host must authenticate.
    printf '\nhost all all all %s\n' "$auth_method" >>"$PGDATA/pg_hba.conf"

    # A temporary server on the Unix socket only: nothing outside sees a half-made database.
    pg_ctl --pgdata "$PGDATA" --wait --silent --options "-c listen_addresses=''" start
    if [[ "$POSTGRES_DB" != postgres ]]; then
        psql_init --dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
    fi
    run_init_scripts
    pg_ctl --pgdata "$PGDATA" --wait --silent --mode fast stop
    log "initialisation done"
}

main() {
    if [[ "${1:-}" == -* ]]; then
        set -- postgres "$@"
    fi
    if [[ "${1:-}" != postgres ]]; then
        exec "$@"
    fi
    refuse_pre_18_mount
    if [[ "$(id -u)" == 0 ]]; then
        prepare_as_root_and_drop "$@"
    fi
    if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
        initialise
    else
        log "$PGDATA holds a database already: initialisation skipped"
    fi
    unset POSTGRES_PASSWORD
    exec "$@"
}

main "$@"
