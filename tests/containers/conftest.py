"""Container tests: opt-in with CONTAINER_TESTS=1; they build the image and drive compose.

See README.md beside this file; the engine and the base images come from sandbox/. Missing
prerequisites skip the tests on a developer's machine and fail them in CI (CI is set), so CI
can never pass by running nothing.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import pytest

from sandbox.cache import Cache
from sandbox.engine import start_engine
from sandbox.images import base_images as find_base_images
from sandbox.process import REPO, Unavailable, log, sigterm_as_keyboard_interrupt
from sandbox.settings import Settings
from tests.support.container_stack import Stack, write_results

ENABLED = os.environ.get("CONTAINER_TESTS", "").lower() not in {"", "0", "false", "no"}
_results: dict = {}


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "containers: builds the image and runs the compose stack (CONTAINER_TESTS=1)"
    )


def pytest_collection_modifyitems(config, items):
    if ENABLED:
        return
    skip = pytest.mark.skip(
        reason="container end-to-end tests are opt-in: CONTAINER_TESTS=1 "
        "(see tests/containers/README.md)"
    )
    for item in items:
        if "containers" in item.keywords:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter):
    if not _results:
        return
    terminalreporter.section("container end-to-end figures")
    for key in sorted(_results):
        terminalreporter.write_line(f"{key}: {_results[key]}")


def unavailable(message: str):
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI must provide it)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def container_results():
    _results.clear()
    _results["date"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    try:
        yield _results
    finally:
        path = write_results(_results)
        _results["results_file"] = str(path.relative_to(REPO))


@pytest.fixture(scope="session")
def container_settings() -> Settings:
    return Settings.from_environment()


@pytest.fixture(scope="session")
def container_cache(container_settings):
    cache = Cache(container_settings.cache_dir)
    try:
        yield cache
    finally:
        cache.close()


@pytest.fixture(scope="session")
def engine(container_settings, container_cache, container_results):
    with sigterm_as_keyboard_interrupt():
        started = time.monotonic()
        try:
            engine = start_engine(container_settings, container_cache)
        except Unavailable as error:
            unavailable(str(error))
        try:
            container_results["engine"] = engine.description
            container_results["engine_start_seconds"] = round(time.monotonic() - started, 1)
            log(f"engine: {engine.description}")
            yield engine
        finally:
            engine.close()


@pytest.fixture(scope="session")
def base_images(engine, container_settings, container_cache, container_results):
    started = time.monotonic()
    try:
        images = find_base_images(engine, container_settings, container_cache)
    except Unavailable as error:
        unavailable(str(error))
    container_results["base_images"] = f"{images.python}, {images.postgres} ({images.kind})"
    container_results["base_images_seconds"] = round(time.monotonic() - started, 1)
    return images


@pytest.fixture(scope="module")
def stack(engine, container_settings, base_images, container_results):
    """Built and up, /readyz answering 200 and compose's healthchecks green."""
    with tempfile.TemporaryDirectory(prefix="keepnotes-e2e-") as work:
        stack = Stack(engine, container_settings, base_images, Path(work))
        container_results["compose_file"] = str(stack.compose_file)
        container_results["ca_bundle_secret"] = str(container_settings.ca_bundle)
        try:
            log(f"docker compose build ({stack.project})")
            container_results["build_seconds"] = round(stack.build(), 1)
            size = engine.image_size(stack.app_image)
            base = engine.image_size(base_images.python)
            container_results["image_size_mb"] = round(size / 1e6, 1)
            container_results["image_size_over_base_mb"] = round((size - base) / 1e6, 1)
            log("docker compose up")
            container_results["up_to_ready_seconds_first_start"] = round(stack.up(), 1)
            container_results["ready_to_app_healthy_seconds"] = round(stack.wait_healthy("app"), 1)
            yield stack
        finally:
            stack.close()
