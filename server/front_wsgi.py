"""The WSGI application as served behind the front door (server/front_door.py).

granian hears only the front, on a Unix socket in a private folder, so REMOTE_ADDR would be
empty; the front writes the client's address into X-Real-IP on every request, replacing
whatever the client sent there, and that is the peer Django should see.
"""

from django.core.wsgi import get_wsgi_application

django_application = get_wsgi_application()


def application(environ, start_response):
    environ["REMOTE_ADDR"] = environ.pop("HTTP_X_REAL_IP", "")
    return django_application(environ, start_response)
