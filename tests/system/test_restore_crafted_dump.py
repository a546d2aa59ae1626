"""A dump is code: `load FILE` refuses one that would run a command in the database, and one
with objects outside the app's schema, before touching anything."""

import shutil

import pytest

from backups.dumps.dump import dump
from backups.dumps.validate import validate
from backups.errors import BackupError
from pgembedded.postgres import EmbeddedPostgres
from tests.support.processes import manage

# A CHECK constraint that calls a function whose body runs a shell command: restoring the row
# evaluates it, as the superuser the restore connects as.
CRAFTED = """
CREATE FUNCTION public.looks_harmless(integer) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    COPY (SELECT 1) TO PROGRAM 'touch {marker}';
    RETURN true;
END $$;
CREATE TABLE public.crafted (x integer CHECK (public.looks_harmless(x)));
INSERT INTO public.crafted VALUES (1);
"""


@pytest.fixture
def server(tmp_path):
    data_dir = tmp_path / "data"
    result = manage(data_dir, "migrate", "--noinput")
    assert result.returncode == 0, result.stderr
    server = EmbeddedPostgres(data_dir)
    server.ensure_running()
    yield server
    server.leave()
    server.stop()


def test_a_dump_that_runs_a_command_on_restore_is_refused_and_nothing_runs(server, tmp_path):
    # In the data folder: PostgreSQL's own user (nobody, or root mapped in a namespace) can write.
    marker = server.pgdata / "restore-ran-a-command"
    with server.connect(autocommit=True) as connection:
        connection.execute(CRAFTED.format(marker=marker))
    assert marker.exists(), "the function does run a command (the insert checked the row)"
    marker.unlink()
    settings_dict = {**server.connection_settings(), "OPTIONS": {}}
    path = dump(settings_dict=settings_dict, folder=tmp_path / "backups").path

    refused = manage(server.data_dir, "load", str(path), "--force", "--no-backup-first")
    assert not marker.exists(), "restoring ran the dump's command"
    assert refused.returncode == 1, refused.stdout
    assert "FUNCTION public looks_harmless(integer)" in refused.stderr
    assert refused.stderr.strip().endswith("Nothing was changed.")

    # The same command in a string a constraint hands to query_to_xml: no function to see.
    with server.connect(autocommit=True) as connection:
        connection.execute(
            "DROP TABLE public.crafted; DROP FUNCTION public.looks_harmless;"
            "CREATE TABLE public.crafted (x integer CHECK (query_to_xml("
            f"'COPY (SELECT 1) TO PROGRAM ''touch {marker}''', true, true, '') IS NOT NULL))"
        )
    shutil.rmtree(tmp_path / "backups")
    hidden = dump(settings_dict=settings_dict, folder=tmp_path / "backups").path
    with pytest.raises(BackupError, match=r"holds COPY \.\.\. TO PROGRAM.*Nothing was changed\.$"):
        validate(hidden)


def test_a_dump_with_objects_outside_the_apps_schema_is_refused(server, tmp_path):
    with server.connect(autocommit=True) as connection:
        connection.execute("CREATE SCHEMA elsewhere; CREATE TABLE elsewhere.t (x integer)")
    settings_dict = {**server.connection_settings(), "OPTIONS": {}}
    path = dump(settings_dict=settings_dict, folder=tmp_path / "backups").path
    with pytest.raises(BackupError, match=r"holds SCHEMA - elsewhere.*Nothing was changed\.$"):
        validate(path)

    # Negative control: without it, the same database's dump passes.
    with server.connect(autocommit=True) as connection:
        connection.execute("DROP SCHEMA elsewhere CASCADE")
    clean = dump(settings_dict=settings_dict, folder=tmp_path / "clean").path
    assert {"django_migrations", "notes_note"} <= set(validate(clean).tables)
