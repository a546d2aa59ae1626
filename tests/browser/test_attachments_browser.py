"""Uploaded HTML and SVG never run in the site's origin: a real Chromium against a real `serve`.

Each file holds a script that, should it run, leaves a mark in the site's localStorage. Opened
as served, the browser downloads it. Opened with only `Content-Disposition` taken away (as if a
browser ignored it), `Content-Security-Policy: sandbox` still keeps the script from running. The
negative control takes the three headers away, and the script runs and leaves its mark.
"""

import pytest

from tests.support.attachments import upload
from tests.support.processes import Server

FILES = {
    "page.html": (
        "text/html",
        b"<!doctype html><title>uploaded</title>"
        b"<script>localStorage.setItem('ran', 'page.html')</script>",
    ),
    "image.svg": (
        "image/svg+xml",
        b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
        b"<script>localStorage.setItem('ran', 'image.svg')</script></svg>",
    ),
}
PROTECTIONS = ("content-disposition", "content-security-policy", "x-content-type-options")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("uploads") / "data", WEB_CONCURRENCY="1")
    token = server.token()
    _, note = server.request("POST", "/api/v1/notes", {"title": "uploads"}, token=token)
    urls = {}
    for name, (content_type, content) in FILES.items():
        made = upload(server.port, token, note["id"], content, name=name, content_type=content_type)
        assert made.status == 201, made.body
        path = f"/api/v1/notes/{note['id']}/attachments/{made.json()['id']}/content"
        urls[name] = f"http://127.0.0.1:{server.port}{path}"
    yield server, token, urls
    server.stop()


@pytest.fixture
def open_as(browser, served):
    """Open a file's URL in a new context with the caller's token, its answer's headers
    stripped of `taken`; returns what the site's localStorage then holds, and the page."""
    server, token, _ = served
    contexts = []

    def open_url(url: str, taken: tuple[str, ...] = ()):
        context = browser.new_context(
            extra_http_headers={"Authorization": f"Bearer {token}"}, accept_downloads=True
        )
        contexts.append(context)
        page = context.new_page()

        def strip(route):
            answer = route.fetch()
            headers = {k: v for k, v in answer.headers.items() if k.lower() not in taken}
            route.fulfill(response=answer, headers=headers)

        page.route(url, strip)
        downloads = []
        page.on("download", lambda download: downloads.append(download))
        try:
            page.goto(url, wait_until="load")
            page.wait_for_timeout(300)  # a script that runs at load has run by now
        except Exception as error:  # Chromium turns the navigation into a download
            assert "Download is starting" in str(error), error
        page.unroute(url)
        page.goto(f"http://127.0.0.1:{server.port}/healthz")
        return page.evaluate("localStorage.getItem('ran')"), downloads

    yield open_url
    for context in contexts:
        context.close()


@pytest.mark.parametrize("name", list(FILES))
def test_as_served_the_file_is_downloaded_and_its_script_never_runs(served, open_as, name):
    mark, downloads = open_as(served[2][name])
    assert mark is None
    assert [download.suggested_filename for download in downloads] == [name]


@pytest.mark.parametrize("name", list(FILES))
def test_shown_inline_the_sandbox_still_keeps_its_script_from_running(served, open_as, name):
    mark, downloads = open_as(served[2][name], taken=("content-disposition",))
    assert downloads == [], "shown, not downloaded"
    assert mark is None


@pytest.mark.parametrize("name", list(FILES))
def test_control_without_the_protections_the_script_runs_in_the_sites_origin(served, open_as, name):
    mark, _ = open_as(served[2][name], taken=PROTECTIONS)
    assert mark == name
