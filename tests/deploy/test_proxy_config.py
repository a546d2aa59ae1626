"""What the production proxy and PgBouncer are configured to do.

Caddy must read a request's whole body before the app sees it and bound how long a client may
take to send it; every image is pinned to a release; PgBouncer's password comes from a secret
file, not from its environment. tests/system/test_slow_clients.py runs this Caddyfile for real.
"""

import os
import stat
import subprocess
from pathlib import Path

import pytest
import yaml
from django.conf import settings

from server import front_door
from tests.support.caddy import adapted_caddyfile
from tests.support.container_files import (
    REPO,
    environment_items,
    interpolate,
    load_compose,
)

COMPOSE_FILES = sorted(
    str(path.relative_to(REPO))
    for path in [*REPO.glob("compose*.yaml"), *REPO.glob("deploy/**/compose*.yaml")]
)
KUBERNETES = REPO / "deploy" / "kubernetes"
OWN_IMAGE = "keepnotes-app"  # built from this repository; the overlays give it its tag
PGBOUNCER = "deploy/compose.pgbouncer.yaml"


def handlers(route_or_routes) -> list[dict]:
    """Every handler in Caddy's JSON config, however deep in subroutes."""
    found = []
    for route in route_or_routes:
        for handler in route.get("handle", []):
            found.append(handler)
            found.extend(handlers(handler.get("routes", [])))
    return found


def unpinned(image: str) -> bool:
    """No tag (so `latest`), or the tag `latest`. A registry's :port is not a tag."""
    if "@sha256:" in image:
        return False  # pinned by digest
    tag = image.rpartition("/")[2].partition(":")[2]
    return tag in {"", "latest"}


def test_unpinned_tells_a_release_from_latest():
    assert unpinned("edoburu/pgbouncer:latest") and unpinned("edoburu/pgbouncer")
    assert unpinned("registry.example.com:5000/keepnotes")
    assert not unpinned("edoburu/pgbouncer:v1.25.2-p0") and not unpinned("caddy:2")
    assert not unpinned("registry.example.com:5000/keepnotes:1.0.0")
    assert not unpinned("caddy@sha256:" + "0" * 64)


def test_caddy_buffers_whole_bodies_and_bounds_how_long_a_client_takes():
    config = adapted_caddyfile()
    (server,) = config["apps"]["http"]["servers"].values()
    # Caddyfile `read_header` and `read_body` (Go's ReadHeaderTimeout and ReadTimeout).
    assert server["read_header_timeout"] > 0 and server["read_timeout"] > 0
    (proxy,) = [h for h in handlers(server["routes"]) if h["handler"] == "reverse_proxy"]
    # At least the largest body the app takes: anything longer it refuses from its length.
    assert proxy["request_buffers"] >= settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    assert proxy["transport"]["dial_timeout"] > 0
    assert proxy["transport"]["response_header_timeout"] > 0
    # Idle upstream connections end on Caddy's side first (nanoseconds), not the app's.
    app_keepalive_ns = front_door.KEEPALIVE_SECONDS * 1_000_000_000
    assert 0 < proxy["transport"]["keep_alive"]["idle_timeout"] < app_keepalive_ns


def test_every_compose_image_is_a_pinned_release():
    images = {
        f"{name}: {service['image']}": interpolate(service["image"], {})
        for compose in COMPOSE_FILES
        for name, service in load_compose(compose)["services"].items()
        if "image" in service
    }
    assert any("pgbouncer" in image for image in images.values()), "the scan reads the overlay"
    assert [where for where, image in images.items() if unpinned(image)] == []


def test_every_kubernetes_image_is_a_pinned_release():
    images, own_tags, overlays = [], [], 0
    for path in sorted(KUBERNETES.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            images += [*values_of(doc, "image"), *values_of(doc, "imageName")]
            if path.name == "kustomization.yaml" and path.parent.parent.name == "overlays":
                overlays += 1
                own_tags += [
                    i.get("newTag") for i in doc.get("images", []) if i["name"] == OWN_IMAGE
                ]
    assert images, "the scan found the manifests' images"
    assert [image for image in images if image != OWN_IMAGE and unpinned(image)] == []
    # The base's tag for the app's own image is a placeholder: every overlay sets a real one.
    assert len(own_tags) == overlays >= 2
    assert None not in own_tags and "latest" not in own_tags, own_tags


def values_of(doc, key: str) -> list[str]:
    """Every string under `key` anywhere in a YAML document."""
    if isinstance(doc, list):
        return [value for item in doc for value in values_of(item, key)]
    if not isinstance(doc, dict):
        return []
    found = [doc[key]] if isinstance(doc.get(key), str) else []
    return found + [value for item in doc.values() for value in values_of(item, key)]


@pytest.fixture
def pgbouncer() -> dict:
    return load_compose(PGBOUNCER)["services"]["pgbouncer"]


def test_pgbouncer_has_no_password_in_its_environment(pgbouncer):
    environment = dict(environment_items(pgbouncer))
    assert [key for key in environment if "PASSWORD" in key.upper()] == []
    assert not any("PASSWORD" in value for value in environment.values())
    assert "db_password" in pgbouncer["secrets"]


def test_pgbouncer_entrypoint_reads_the_password_from_the_secret_file(pgbouncer, tmp_path):
    """The compose entrypoint, run by a real shell, with the image's entrypoint stood in for."""
    secret = tmp_path / "db_password"
    secret.write_text("a pass with spaces & $igns")
    image_entrypoint = tmp_path / "entrypoint.sh"
    image_entrypoint.write_text('#!/bin/sh\nprintf "%s|" "$DB_PASSWORD" "$@"\n')
    image_entrypoint.chmod(image_entrypoint.stat().st_mode | stat.S_IXUSR)

    def run(secret_path: Path) -> subprocess.CompletedProcess:
        command = [
            interpolate(part, {})  # compose's own step: $$ becomes $
            .replace("/run/secrets/db_password", str(secret_path))
            .replace("/entrypoint.sh", str(image_entrypoint))
            for part in [*pgbouncer["entrypoint"], *pgbouncer["command"]]
        ]
        environ = {key: value for key, value in os.environ.items() if key != "DB_PASSWORD"}
        return subprocess.run(command, capture_output=True, text=True, env=environ, timeout=30)

    started = run(secret)
    assert started.returncode == 0, started.stderr
    assert started.stdout == (
        "a pass with spaces & $igns|/usr/bin/pgbouncer|/etc/pgbouncer/pgbouncer.ini|"
    )
    # Negative control: without the secret file, PgBouncer does not start with no password.
    missing = run(tmp_path / "absent")
    assert missing.returncode != 0 and missing.stdout == ""
