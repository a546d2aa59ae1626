"""The admin lists the background tasks (django-tasks-db's admin), for staff only."""

import pytest
from django.test import Client

from idempotency.tasks import purge_expired_idempotency_keys

pytestmark = pytest.mark.django_db

TASKS_PAGE = "/admin/django_tasks_database/dbtaskresult/"


def test_the_admin_lists_tasks(make_user):
    result = purge_expired_idempotency_keys.enqueue()
    browser = Client()
    browser.force_login(make_user("root", is_staff=True, is_superuser=True))

    page = browser.get(TASKS_PAGE)

    assert page.status_code == 200
    assert str(result.id) in page.content.decode()
    assert "purge_expired_idempotency_keys" in page.content.decode()


def test_the_task_list_is_not_for_anyone_else(make_user):
    browser = Client()
    browser.force_login(make_user("plain"))

    assert browser.get(TASKS_PAGE).status_code == 302  # to the admin's login
