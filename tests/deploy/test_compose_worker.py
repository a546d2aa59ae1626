"""compose.yaml's `worker` service: task workers from the app's image, after its migrations."""

from django.conf import settings

from tests.support.container_files import environment_items, load_compose


def test_the_worker_runs_task_worker_from_the_apps_image_once_the_app_is_migrated():
    services = load_compose("compose.yaml")["services"]
    app, worker = services["app"], services["worker"]

    assert worker["build"] == app["build"]
    assert worker["command"] == ["python", "manage.py", "task_worker"]
    # The app is healthy once /readyz answers: the database migrated by its start sequence.
    assert worker["depends_on"] == {"app": {"condition": "service_healthy"}}
    assert "ports" not in worker
    database = {"DB_HOST", "DB_PORT", "DB_NAME", "DB_USER", "DB_PASS", "DJANGO_SECRET_KEY"}
    app_environment, worker_environment = (
        dict(environment_items(app)),
        dict(environment_items(worker)),
    )
    for key in database:
        assert worker_environment[key] == app_environment[key], key
    assert worker["restart"] == "unless-stopped"
    assert worker["init"] is True
    assert worker["cap_drop"] == ["ALL"]


def test_compose_waits_for_the_running_task_to_finish_on_stop():
    worker = load_compose("compose.yaml")["services"]["worker"]
    grace = worker["stop_grace_period"]
    assert grace.endswith("s") and int(grace[:-1]) > settings.TASK_DRAIN_SECONDS
