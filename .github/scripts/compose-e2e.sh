#!/usr/bin/env bash
# End-to-end steps for .github/workflows/compose-e2e.yml; run from the repository root.
#
#   compose-e2e.sh write-env          .env with freshly generated secrets
#   compose-e2e.sh check-containers   non-root app, unpublished db, db data in the named volume
#   compose-e2e.sh e2e                login, note, persistence across down/up, wipe by down -v
#
# The stack must be up (docker compose up -d --wait) before check-containers and e2e.
set -euo pipefail

BASE_URL="http://127.0.0.1:${APP_PORT:-3003}"
ADMIN_USER="e2e-admin"
ADMIN_EMAIL="e2e-admin@example.com"
STATE_DIR="$(mktemp -d)"
trap 'rm -rf "$STATE_DIR"' EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "--- $*"; }

generate_secret() {
    python3 -c 'import secrets; print(secrets.token_urlsafe(50))'
}

mask() {
    # Hide a generated secret in the GitHub Actions log.
    if [[ -n "${GITHUB_ACTIONS:-}" ]]; then echo "::add-mask::$1"; fi
}

write_env() {
    local db_password secret_key
    db_password="$(generate_secret)"
    secret_key="$(generate_secret)"
    mask "$db_password"
    mask "$secret_key"
    # No DJANGO_SUPERUSER_* here on purpose: the superuser is created by hand below, so that
    # after `down -v` nothing re-creates it and the failing login proves the data is gone.
    umask 077
    cat > .env <<EOF
POSTGRES_PASSWORD=${db_password}
DJANGO_SECRET_KEY=${secret_key}
EOF
}

compose_up() {
    docker compose up -d --wait --wait-timeout 180
    curl -fsS --retry 30 --retry-delay 2 --retry-all-errors --max-time 5 \
        "$BASE_URL/readyz" > /dev/null || fail "/readyz never answered 200"
}

check_containers() {
    step "the app image runs as a non-root user"
    local uid
    uid="$(docker compose run --rm --no-deps -T app id -u | tr -d '[:space:]')"
    [[ "$uid" =~ ^[0-9]+$ ]] || fail "could not read the app's uid (got '$uid')"
    [[ "$uid" != 0 ]] || fail "the app runs as root"
    echo "uid $uid"

    step "db publishes no port"
    local db_container published
    db_container="$(docker compose ps -q db)"
    [[ -n "$db_container" ]] || fail "db is not running"
    published="$(docker port "$db_container")"
    [[ -z "$published" ]] || fail "db publishes ports: $published"
    docker compose config --format json | jq -e '.services.db.ports == null' > /dev/null \
        || fail "compose config gives db a ports: section"

    step "db keeps its data in the named volume only (no anonymous volume)"
    local mounts
    mounts="$(docker inspect -f '{{range .Mounts}}{{.Type}} {{.Name}} {{.Destination}};{{end}}' "$db_container")"
    echo "$mounts"
    [[ "$mounts" == "volume keepnotes_pgdata /var/lib/postgresql;" ]] \
        || fail "unexpected db mounts: $mounts"
}

create_superuser() {
    docker compose run --rm -T \
        -e DJANGO_SUPERUSER_USERNAME="$ADMIN_USER" \
        -e DJANGO_SUPERUSER_PASSWORD="$ADMIN_PASSWORD" \
        -e DJANGO_SUPERUSER_EMAIL="$ADMIN_EMAIL" \
        app python manage.py createsuperuser --noinput
}

# Log into /admin/ like a browser; prints the HTTP status of the login POST (302 = success).
admin_login_status() {
    local jar="$STATE_DIR/cookies" page="$STATE_DIR/login.html" csrf_cookie form_token
    rm -f "$jar"
    curl -fsS -c "$jar" -b "$jar" -o "$page" "$BASE_URL/admin/login/?next=/admin/"
    csrf_cookie="$(awk '$6 == "csrftoken" { print $7 }' "$jar")"
    form_token="$(grep -o 'name="csrfmiddlewaretoken" value="[^"]*"' "$page" \
        | sed 's/.*value="//; s/"$//')"
    [[ -n "$csrf_cookie" ]] || fail "no csrftoken cookie from the login page"
    [[ -n "$form_token" ]] || fail "no csrfmiddlewaretoken in the login form"
    curl -sS -c "$jar" -b "$jar" -o /dev/null -w '%{http_code}' \
        -H "Referer: $BASE_URL/admin/login/" -H "Origin: $BASE_URL" \
        --data-urlencode "csrfmiddlewaretoken=$form_token" \
        --data-urlencode "username=$ADMIN_USER" \
        --data-urlencode "password=$ADMIN_PASSWORD" \
        --data-urlencode "next=/admin/" \
        "$BASE_URL/admin/login/?next=/admin/"
}

# POST /api/v1/auth/token; prints "<status> <body>".
request_token() {
    local body="$STATE_DIR/token.json" status
    status="$(curl -sS -o "$body" -w '%{http_code}' -H 'Content-Type: application/json' \
        --data "$(jq -n --arg u "$ADMIN_USER" --arg p "$ADMIN_PASSWORD" '{username: $u, password: $p}')" \
        "$BASE_URL/api/v1/auth/token")"
    echo "$status $(cat "$body")"
}

api_token() {
    local status body
    read -r status body < <(request_token)
    [[ "$status" == 200 || "$status" == 201 ]] || fail "token request: HTTP $status $body"
    jq -er '.token' <<< "$body"
}

e2e() {
    ADMIN_PASSWORD="$(generate_secret)"
    mask "$ADMIN_PASSWORD"
    local status token note_id title
    title="e2e note $(date +%s)"

    step "create a superuser with createsuperuser --noinput"
    create_superuser

    step "log into the admin"
    status="$(admin_login_status)"
    [[ "$status" == 302 ]] || fail "admin login answered $status, expected 302"
    curl -fsS -b "$STATE_DIR/cookies" -o "$STATE_DIR/users.html" "$BASE_URL/admin/auth/user/"
    grep -qF "$ADMIN_USER" "$STATE_DIR/users.html" \
        || fail "the admin's user list does not show $ADMIN_USER"

    step "create a note through the API"
    token="$(api_token)"
    status="$(curl -sS -o "$STATE_DIR/note.json" -w '%{http_code}' \
        -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
        --data "$(jq -n --arg t "$title" '{title: $t, body: "written before down/up", tags: ["e2e"]}')" \
        "$BASE_URL/api/v1/notes")"
    [[ "$status" == 201 ]] || fail "note create answered $status: $(cat "$STATE_DIR/note.json")"
    note_id="$(jq -er '.id' "$STATE_DIR/note.json")"
    echo "note $note_id"

    step "docker compose down (volumes kept), up again: the note is still there"
    docker compose down
    compose_up
    token="$(api_token)"
    curl -fsS -H "Authorization: Bearer $token" "$BASE_URL/api/v1/notes/$note_id" \
        -o "$STATE_DIR/note-after.json" || fail "GET note $note_id failed after down/up"
    jq -e --arg t "$title" '.title == $t' "$STATE_DIR/note-after.json" > /dev/null \
        || fail "note $note_id came back different: $(cat "$STATE_DIR/note-after.json")"

    step "negative control: docker compose down -v, up again: the login must now fail"
    docker compose down -v
    compose_up
    local admin_status api_status
    admin_status="$(admin_login_status)"
    [[ "$admin_status" == 200 ]] \
        || fail "admin login after down -v answered $admin_status, expected 200 (form with an error)"
    read -r api_status _ < <(request_token)
    [[ "$api_status" == 4?? ]] \
        || fail "token request after down -v answered $api_status, expected 4xx"
    echo "OK: login refused after down -v (admin $admin_status, API $api_status)"
}

case "${1:-}" in
    write-env) write_env ;;
    check-containers) check_containers ;;
    e2e) e2e ;;
    *) echo "usage: $0 write-env|check-containers|e2e" >&2; exit 2 ;;
esac
