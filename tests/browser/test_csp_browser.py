"""The Content-Security-Policy in a real browser: the pages still work, and nothing is blocked.

One `manage.py serve` (gunicorn, whitenoise, the production settings) for the module; Chromium
loads the landing page, the API docs (Swagger UI) and the admin, with a listener for CSP
violations installed before any page script runs. The network is closed: anything the pages
tried to fetch from elsewhere (a CDN) would fail them too.
"""

import pytest
from playwright.sync_api import Page, expect

from tests.support.processes import SUPERUSER, Server

RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.violatedDirective} blocked ${event.blockedURI}`);
});
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    started = Server(tmp_path_factory.mktemp("csp") / "data")
    yield started
    started.stop()


@pytest.fixture
def page(new_page, server):
    """A page that records CSP violations, console errors and requests to other origins."""
    page = new_page()
    page.base = f"http://127.0.0.1:{server.port}"
    page.problems = []
    page.add_init_script(RECORD_VIOLATIONS)
    page.on(
        "console",
        lambda message: message.type == "error" and page.problems.append(message.text),
    )
    page.on(
        "response",
        lambda response: (
            response.status >= 400 and page.problems.append(f"{response.status} for {response.url}")
        ),
    )
    page.on(
        "request",
        lambda request: (
            request.url.startswith((page.base, "data:"))
            or page.problems.append(f"request to another origin: {request.url}")
        ),
    )
    return page


def problems(page: Page) -> list[str]:
    return page.problems + page.evaluate("window.__cspViolations")


def test_landing_page_is_styled_under_the_policy(page):
    response = page.goto(page.base + "/")

    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "'unsafe-inline'" not in policy
    expect(page.get_by_role("heading", name="keepnotes")).to_be_visible()
    # The inline <style> (with the nonce) applied: body { max-width: 44rem }.
    assert page.evaluate("getComputedStyle(document.body).maxWidth") == "704px"
    assert problems(page) == []


def test_swagger_ui_renders_from_local_files_under_the_policy(page):
    page.goto(page.base + "/api/docs")

    expect(page.locator(".swagger-ui .info .title")).to_contain_text("keepnotes API")
    expect(page.locator(".opblock-summary-path").first).to_be_visible()
    expect(page.get_by_text("/api/v1/notes/{note_id}").first).to_be_visible()
    assert problems(page) == []


def test_admin_logs_in_and_runs_its_scripts_under_the_policy(page):
    page.goto(page.base + "/admin/")
    page.get_by_label("Username").fill(SUPERUSER["username"])
    page.get_by_label("Password").fill(SUPERUSER["password"])
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Site administration")).to_be_visible()

    page.goto(page.base + "/admin/auth/user/")
    page.get_by_role("link", name=SUPERUSER["username"], exact=True).click()
    # The date and time shortcuts ("Today", "Now") are added by the admin's JavaScript.
    expect(page.locator(".datetimeshortcuts").first).to_be_visible()
    assert problems(page) == []


def test_control_the_listener_does_catch_what_the_policy_blocks(page):
    page.goto(page.base + "/")

    page.evaluate(
        """() => {
          const image = document.createElement("img");
          image.src = "http://example.invalid/tracker.png";
          document.body.append(image);
          const style = document.createElement("style");
          style.textContent = "body { background: red }";
          document.head.append(style);
        }"""
    )

    page.wait_for_function("window.__cspViolations.length >= 2")
    found = problems(page)
    assert any(text.startswith("img-src blocked http://example.invalid") for text in found)
    assert any(text.startswith("style-src-elem blocked inline") for text in found)
