"""Probes from Docker, Kubernetes or a load balancer are answered whatever Host they send."""

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes_answer_for_a_host_name_the_site_does_not_serve(client, path):
    response = client.get(path, HTTP_HOST="10.42.0.17:3003")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    # Negative control: the same unknown host is refused everywhere else.
    assert client.get("/", HTTP_HOST="10.42.0.17:3003").status_code == 400


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes_are_not_redirected_to_https(client, settings, path):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get(path).status_code == 200
    assert client.get("/").status_code == 301
