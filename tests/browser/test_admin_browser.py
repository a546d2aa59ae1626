"""The tutorial's gotcha, in a real browser: the admin login must survive a restart.

Chromium logs into /admin/ as the superuser that `serve` created, edits that user through the
admin, the whole stack (gunicorn and PostgreSQL) is stopped and started again on the same data
folder without DJANGO_SUPERUSER_*, and a browser with no cookies logs in again and finds the edit.
The negative control: the same login on a fresh data folder is refused.
"""

import re

from playwright.sync_api import Page, expect

from tests.support.processes import SUPERUSER, postgres_running_in

FIRST_NAME = "Ada-survives-restarts"
NO_SUPERUSER = {"DJANGO_SUPERUSER_USERNAME": ""}  # start-up creates nobody


def log_in(page: Page, server) -> None:
    page.goto(f"http://127.0.0.1:{server.port}/admin/")
    page.get_by_label("Username").fill(SUPERUSER["username"])
    page.get_by_label("Password").fill(SUPERUSER["password"])
    page.get_by_role("button", name="Log in").click()


def superuser_row(page: Page, server):
    page.goto(f"http://127.0.0.1:{server.port}/admin/auth/user/")
    return page.get_by_role("row").filter(has_text=SUPERUSER["username"])


def test_the_admin_login_and_an_admin_edit_survive_a_restart(new_page, start_server, tmp_path):
    data_dir = tmp_path / "data"
    first = start_server(data_dir)
    page = new_page()
    log_in(page, first)
    expect(page.get_by_role("heading", name="Site administration")).to_be_visible()

    row = superuser_row(page, first)
    expect(row).to_have_count(1)
    row.get_by_role("link", name=SUPERUSER["username"], exact=True).click()
    page.get_by_label("First name").fill(FIRST_NAME)
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")

    assert first.stop() == 0, "a clean exit on SIGTERM"
    assert not postgres_running_in(data_dir), "the whole stack is down"

    second = start_server(data_dir, **NO_SUPERUSER)
    page = new_page()
    log_in(page, second)
    expect(page.get_by_role("heading", name="Site administration")).to_be_visible()
    expect(superuser_row(page, second)).to_contain_text(FIRST_NAME)
    assert second.stop() == 0


def test_negative_control_a_fresh_data_folder_refuses_the_login(new_page, start_server, tmp_path):
    fresh = start_server(tmp_path / "fresh", **NO_SUPERUSER)
    page = new_page()
    log_in(page, fresh)
    expect(page.locator(".errornote")).to_contain_text(
        "Please enter the correct username and password"
    )
    expect(page).to_have_url(re.compile(r"/admin/login/"))
    assert fresh.stop() == 0
