"""The kill test: a bulk import survives SIGKILL of everything (web, worker, PostgreSQL).

3,000 notes are imported 10 per transaction; while the import runs, serve's whole process group
and the postmaster are killed. After a restart the import resumes (its task is queued again,
tasks/liveness.py, and skips the batches already in, notes/imports.py): it ends `done` with
every note there exactly once.
"""

import os
import signal
from collections import Counter

from pgembedded.postgres import EmbeddedPostgres
from tests.support.processes import Server, wait_until
from tests.support.task_queue import shell_json, worker_pids

NOTES = 3_000
SETTINGS = {"TASK_WORKERS": "1", "TASK_POLL_MILLISECONDS": "50", "IMPORT_BATCH_SIZE": "10"}

TITLES = """
import json
from notes.models import Note
print(json.dumps(list(Note.objects.values_list("title", flat=True))))
"""

WORKERS_OF_THE_IMPORT = """
import json
from django_tasks_db.models import DBTaskResult
print(json.dumps(DBTaskResult.objects.get(task_path="notes.imports.run_import").worker_ids))
"""


def test_an_import_killed_midway_resumes_and_imports_every_note_once(tmp_path, servers):
    data_dir = tmp_path / "data"
    servers.append(first := Server(data_dir, **SETTINGS))
    token = first.token()
    notes = [
        {"title": f"note {number}", "body": "x" * 200, "tags": ["bulk"]} for number in range(NOTES)
    ]
    status, accepted = first.request("POST", "/api/v1/imports", {"notes": notes}, token)
    assert status == 202, accepted
    path = f"/api/v1/imports/{accepted['id']}"

    def midway():
        job = first.request("GET", path, token=token)[1]
        return 0 < job["imported"] < NOTES and job

    progress = wait_until(midway, "the import started", timeout=30, every=0.01)
    # Everything at once, as a power cut would: web (serve's group), the task worker (a session
    # of its own, server/task_workers.py) and the postmaster.
    postmaster = EmbeddedPostgres(data_dir).running_pid()
    [worker] = worker_pids(first.process.pid)
    os.killpg(first.process.pid, signal.SIGKILL)
    os.kill(worker, signal.SIGKILL)
    os.kill(postmaster, signal.SIGKILL)
    first.process.wait(timeout=10)

    servers.append(second := Server(data_dir, **SETTINGS))
    token = second.token()
    done = wait_until(
        lambda: (job := second.request("GET", path, token=token)[1])["status"] == "done" and job,
        "the import finished after the restart",
        timeout=60,
    )
    assert done["imported"] == done["total"] == NOTES, (progress, done)
    # Killed mid-way, really: a second worker took the task over (tasks/liveness.py).
    assert len(shell_json(data_dir, WORKERS_OF_THE_IMPORT)) == 2
    titles = Counter(shell_json(data_dir, TITLES))
    assert {title for title, count in titles.items() if count > 1} == set(), "no note twice"
    assert set(titles) == {f"note {number}" for number in range(NOTES)}, "no note lost"
    assert second.stop() == 0


def test_stopping_serve_lets_the_running_import_finish(tmp_path, servers):
    data_dir = tmp_path / "data"
    servers.append(server := Server(data_dir, **{**SETTINGS, "IMPORT_BATCH_SIZE": "1"}))
    token = server.token()
    notes = [{"title": f"note {number}", "body": "", "tags": []} for number in range(400)]
    status, accepted = server.request("POST", "/api/v1/imports", {"notes": notes}, token)
    assert status == 202, accepted
    path = f"/api/v1/imports/{accepted['id']}"
    wait_until(
        lambda: 0 < server.request("GET", path, token=token)[1]["imported"] < len(notes),
        "the import started",
        timeout=30,
        every=0.01,
    )

    assert server.stop() == 0  # SIGTERM to the group, as Ctrl+C or `docker stop` would

    job = shell_json(
        data_dir,
        "import json; from notes.models import ImportJob; "
        f"job = ImportJob.objects.filter(pk={accepted['id']}); "
        "print(json.dumps(job.values('status', 'imported').get()))",
    )
    assert job == {"status": "done", "imported": len(notes)}
