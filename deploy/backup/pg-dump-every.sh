#!/bin/sh
# The backup service of compose.production.yaml: a pg_dump of the database every BACKUP_INTERVAL
# seconds (0: one, then exit) into BACKUP_DIR, the newest BACKUP_KEEP kept (0: all). The same
# variables and files as compose.yaml's `backup` service.
#
# Files are named as `manage.py backup` names them, <database>-<UTC time>.dump with its sha256
# beside it (<name>.dump.sha256, as `sha256sum -c` reads), so `manage.py restore` takes them.
# A dump is written as .partial and renamed only once complete: a crash or a full disk never
# leaves a truncated file that looks like a backup. Mode 600: dumps hold password hashes.
# Connection: libpq's PGHOST, PGUSER, PGDATABASE, and PGPASSWORD or PGPASSWORD_FILE.
set -eu

interval="${BACKUP_INTERVAL:-86400}"
keep="${BACKUP_KEEP:-14}"
: "${PGHOST:?}" "${PGUSER:?}" "${PGDATABASE:?}"
if [ -n "${PGPASSWORD_FILE:-}" ]; then
  PGPASSWORD="$(cat "$PGPASSWORD_FILE")"
  export PGPASSWORD
fi
umask 077
cd "${BACKUP_DIR:-/backups}"

backup_once() {
  name="${PGDATABASE}-$(date -u +%Y%m%d-%H%M%SZ).dump"
  while [ -e "$name" ]; do # two backups within one second
    sleep 1
    name="${PGDATABASE}-$(date -u +%Y%m%d-%H%M%SZ).dump"
  done
  if ! pg_dump --format=custom --no-password --lock-wait-timeout=120s --file="${name}.partial"; then
    rm -f "${name}.partial"
    echo "backup: pg_dump failed; the previous backups are untouched" >&2
    return 1
  fi
  sha256sum "${name}.partial" | sed "s/\.partial\$//" >"${name}.sha256"
  sync
  mv "${name}.partial" "$name"
  sync
  echo "backup: wrote $(pwd)/$name ($(du -h "$name" | cut -f1))"
  [ "$keep" -gt 0 ] || return 0
  # The names sort by time: all but the newest $keep go.
  ls -1 | grep -E "^${PGDATABASE}-[0-9]{8}-[0-9]{6}Z[.]dump\$" | sort -r | tail -n "+$((keep + 1))" |
    while read -r old; do
      rm -f "$old" "${old}.sha256"
      echo "backup: deleted $old (keeping the newest $keep)"
    done
}

if [ "$interval" -eq 0 ]; then
  backup_once
  exit
fi
while true; do
  backup_once || true
  sleep "$interval"
done
