"""HTTP for the container tests: a small browser (cookies, CSRF, no proxy, no redirects)."""

from __future__ import annotations

import email.message
import html
import http.cookiejar
import json
import re
import socket
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass


@dataclass
class Response:
    status: int
    # Case-insensitive, as HTTP field names are: a server may send `location`, not `Location`.
    headers: email.message.Message
    body: str

    def json(self):
        return json.loads(self.body)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a 3xx comes back as the response, to be checked


class Browser:
    """Cookies and CSRF like a browser; no proxy, whatever the environment says."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.cookies = http.cookiejar.CookieJar()
        self._opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}),
            urllib.request.HTTPCookieProcessor(self.cookies),
            _NoRedirects(),
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        form: dict[str, str] | None = None,
        json_body=None,
        token: str | None = None,
        timeout: float = 15,
    ) -> Response:
        headers = {"Accept": "*/*"}
        data = None
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers["Origin"] = self.base_url
            headers["Referer"] = self.base_url + path
        elif json_body is not None:
            data = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(  # noqa: S310 - http://127.0.0.1 only
            self.base_url + path, data=data, headers=headers, method=method
        )
        try:
            with self._opener.open(request, timeout=timeout) as answer:
                return Response(answer.status, answer.headers, answer.read().decode())
        except urllib.error.HTTPError as error:
            return Response(error.code, error.headers, error.read().decode())

    def csrf_token(self, path: str) -> str:
        page = self.request("GET", path)
        assert page.status == 200, f"GET {path}: {page.status}"
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.body)
        assert match, f"no CSRF token in {path}"
        return match.group(1)

    def admin_login(self, username: str, password: str) -> Response:
        path = "/admin/login/?next=/admin/"
        token = self.csrf_token(path)
        return self.request(
            "POST",
            path,
            form={
                "csrfmiddlewaretoken": token,
                "username": username,
                "password": password,
                "next": "/admin/",
            },
        )

    def admin_add_note(self, owner_id: int, title: str, body: str, tags: list[str]) -> Response:
        path = "/admin/notes/note/add/"
        token = self.csrf_token(path)
        return self.request(
            "POST",
            path,
            form={
                "csrfmiddlewaretoken": token,
                "owner": str(owner_id),
                "title": title,
                "body": body,
                "tags": ",".join(tags),
                "_save": "Save",
            },
        )


def form_errors(page: str) -> list[str]:
    return [html.unescape(error) for error in re.findall(r"<li>([^<]{1,300})</li>", page)][:10]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
