"""A real Chromium (Debian's, not a Playwright download) and real `manage.py serve` processes."""

import os
import shutil

import pytest
from playwright.sync_api import sync_playwright

from tests.support.processes import Server

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # root in a container or CI box
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # No calls home: this network is closed, and the tests need none of them.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call" and report.failed:
        item.stash[FAILED] = True
    return report


@pytest.fixture(scope="session")
def browser():
    chromium = shutil.which("chromium")
    if not chromium:
        message = "Chromium not found; install it with: apt-get install -y chromium"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def new_page(browser, request, tmp_path):
    """A page in a new browser context: no cookies, like another browser. Screenshots on failure."""
    contexts = []

    def make():
        contexts.append(browser.new_context())
        return contexts[-1].new_page()

    yield make
    for number, context in enumerate(contexts):
        if request.node.stash.get(FAILED, False):
            for page in context.pages:
                page.screenshot(path=tmp_path / f"page-{number}.png", full_page=True)
        context.close()


@pytest.fixture
def start_server():
    """`Server(data_dir, **env)`, stopped with SIGTERM at teardown if the test left it running."""
    servers = []

    def start(data_dir, **env):
        servers.append(Server(data_dir, **env))
        return servers[-1]

    yield start
    for server in servers:
        if server.process.poll() is None:
            server.stop()
