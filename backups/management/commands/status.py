import json
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Model

from backups.continuous.archive import Archive
from backups.continuous.archive_status import archive_report, django_fetchone
from backups.database import connect
from backups.errors import BackupError
from backups.folder import default_folder
from backups.inventory import inventory, inventory_lines
from core.errors import first_line
from core.files import folder_size, human_size, usage_per_file_system
from core.health import low_disk_space
from core.status_reports import STATUS_PARTS
from pgembedded.backend.base import embedded_server
from pgembedded.programs import MAJOR_VERSION


class Command(BaseCommand):
    help = (
        "Where the data lives, the PostgreSQL version, database size, notes and users, the "
        "base backups, the point-in-time window, the pg_dump files, and free disk space."
    )

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="print one JSON object")
        parser.add_argument(
            "--dir",
            type=Path,
            help="backups folder (default: $BACKUP_DIR, else DATA_DIR/backups)",
        )

    def handle(self, *args, **options):
        folder = (options["dir"] or default_folder()).resolve()
        report = self.database_report()
        for part in STATUS_PARTS.values():  # other apps' parts: the tasks' queue
            report |= part.gather(report)
        report |= inventory(folder)
        report |= self.continuous_report(folder)
        report |= self.disk_report(folder)
        # Below DISK_FREE_WARN_BYTES free where the data or the backups are.
        data = [settings.DATA_DIR] if settings.EMBEDDED_DATABASE else []
        report["disk_warnings"] = low_disk_space([*data, folder])
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2, default=str))
        else:
            self.print_report(report)
        if report.get("error"):
            raise CommandError(report["error"])

    # -- gathering ------------------------------------------------------------------------------

    def database_report(self) -> dict:
        report: dict = {}
        if settings.EMBEDDED_DATABASE:
            server = embedded_server()
            report["kind"] = "embedded"
            report["location"] = str(server.pgdata)
            report["data_folder_bytes"] = folder_size(server.pgdata)
            if not server.is_initialised():
                report["state"] = (
                    "not created yet: `serve`, or any command that needs the database, creates it"
                )
                return report
            if server.data_version() != MAJOR_VERSION:
                report["state"] = (
                    f"holds PostgreSQL {server.data_version()} data, but this project runs "
                    f"PostgreSQL {MAJOR_VERSION}: see `manage.py upgrade_data --help`"
                )
                return report
            pid = server.running_pid()
            report["state"] = f"running (pid {pid})" if pid else "stopped (started for this check)"
        else:
            where = connection.settings_dict
            report["kind"] = "configured"
            report["location"] = f"{where['HOST']}:{where['PORT']}/{where['NAME']}"
        try:
            connect(connection)
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT current_setting('server_version'), current_database(), "
                    "pg_database_size(current_database())"
                )
                version, name, size = cursor.fetchone()
        except (BackupError, DatabaseError) as error:
            report["error"] = first_line(error)
            return report
        report |= {"server_version": version, "database": name, "database_bytes": size}
        try:
            report["rows"] = {
                model._meta.label_lower: model._default_manager.count()
                for model in content_models()
            }
        except DatabaseError:
            report["rows"] = None  # tables not created yet
        executor = MigrationExecutor(connection)
        report["pending_migrations"] = len(
            executor.migration_plan(executor.loader.graph.leaf_nodes())
        )
        return report

    def continuous_report(self, folder: Path) -> dict:
        archive = Archive(folder)
        if settings.EMBEDDED_DATABASE:
            server = embedded_server()
            running, disk = server.running_pid() is not None, server.pgdata
        elif archive.current_chain() is not None:
            # A configured server protected into this folder (compose: `status` run in the
            # backup service, which mounts the archive). One that does not answer is an error.
            running, disk = True, folder
        else:
            return {}  # protected elsewhere, if at all (its own archiving: docs/data-safety.md)
        if not settings.BACKUP_PROTECTION:
            return {"continuous": {"state": "off (BACKUP_PROTECTION=off)"}}
        try:
            report = archive_report(archive, django_fetchone, running=running, disk=disk)
        except (BackupError, DatabaseError) as error:
            return {"continuous": {"error": first_line(error)}}
        return {"continuous": report}

    def disk_report(self, folder: Path) -> dict:
        places = {"disk_data": settings.DATA_DIR} if settings.EMBEDDED_DATABASE else {}
        places["disk_backups"] = folder
        return {  # one line per file system
            key: {"path": str(places[key]), "free_bytes": usage.free, "total_bytes": usage.total}
            for key, usage in usage_per_file_system(places).items()
        }

    # -- printing ---------------------------------------------------------------------------------

    def print_report(self, report: dict) -> None:
        size = human_size
        lines = []
        if report["kind"] == "embedded":
            lines.append(("Data", f"embedded PostgreSQL in {report['location']}"))
            lines.append(("Server", report["state"]))
        else:
            lines.append(("Data", f"configured PostgreSQL at {report['location']}"))
        if "server_version" in report:
            lines.append(("PostgreSQL", report["server_version"]))
            lines.append(("Database", f"{report['database']}, {size(report['database_bytes'])}"))
        if report.get("data_folder_bytes"):
            lines.append(("On disk", f"{size(report['data_folder_bytes'])} (data folder)"))
        if "rows" in report:
            if report["rows"] is None:
                lines.append(("Contents", "no tables yet (run `manage.py migrate` or `serve`)"))
            else:
                counts = [
                    f"{report['rows'][model._meta.label_lower]} {model._meta.verbose_name_plural}"
                    for model in content_models()
                ]
                lines.append(("Contents", ", ".join(counts)))
            pending = report["pending_migrations"]
            lines.append(("Schema", f"{pending} migrations pending" if pending else "up to date"))
        for part in STATUS_PARTS.values():
            lines += part.lines(report)
        lines += continuous_lines(report.get("continuous"))
        lines += inventory_lines(report)
        for key in ("disk_data", "disk_backups"):
            if key in report:
                disk = report[key]
                lines.append(
                    (
                        "Free disk",
                        f"{size(disk['free_bytes'])} of {size(disk['total_bytes'])} "
                        f"where {disk['path']} is",
                    )
                )
        lines += [("WARNING", f"disk space low: {w}") for w in report.get("disk_warnings", [])]
        if report.get("error"):
            lines.append(("Error", report["error"]))
        width = max(len(label) for label, _ in lines) + 2
        for label, value in lines:
            self.stdout.write(f"{label + ':':<{width}}{value}")


def continuous_lines(report: dict | None) -> list[tuple[str, str]]:
    """The continuous archive's lines: RPO, last base backup, window, target, last error."""
    if report is None:
        return []
    if "state" in report:
        return [("Archive", report["state"])]
    if "error" in report and "target" not in report:
        return [("Archive", f"cannot tell: {report['error']}")]
    lines = [("Archive", f"{report['target']} (WAL streamed by pg_receivewal)")]
    if report.get("unarchived_bytes", 0) is None:
        lines.append(("RPO", "no replication slot yet: the next `serve` makes one"))
    elif "rpo_seconds" in report:
        rpo = report["rpo_seconds"]
        streaming = "streaming" if report["streaming"] else "NOT streaming"
        lag = report.get("unarchived_bytes")
        rpo_text = "unknown" if rpo is None else f"{rpo * 1000:.0f} ms"
        lines.append(("RPO", f"{rpo_text} ({streaming}, {lag} bytes of WAL not archived yet)"))
    else:
        lines.append(("RPO", "server stopped: nothing unarchived is being written"))
    # Its base backups and window are printed with the inventory, from the folder itself.
    if report.get("offsite_waiting_segments") is not None:
        lines.append(("Off-site", f"{report['offsite_waiting_segments']} WAL segments waiting"))
    lines.append(("Last error", report["last_error"] or "none (archive)"))
    if report.get("wal_queue_warning"):
        lines.append(("WARNING", report["wal_queue_warning"]))
    return lines


def content_models() -> list[type[Model]]:
    """The user model, then every model of this project's own apps, found through the registry
    (so that removing or adding an app needs no change here)."""
    user_model = get_user_model()
    project = settings.BASE_DIR
    models: list[type[Model]] = [user_model]
    for app in apps.get_app_configs():
        if Path(app.path).is_relative_to(project):
            models += [model for model in app.get_models() if model is not user_model]
    return models
