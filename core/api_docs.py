"""Who may read the API's docs (/api/docs, /api/openapi.json), by API_DOCS (config/settings.py):
the docs' own guard (config/api.py) and the landing page's links ask the same question."""

from django.conf import settings
from django.http import HttpRequest


def api_docs_visible(request: HttpRequest) -> bool:
    """public: anyone; staff: a signed-in admin session of an active staff user; off: nobody."""
    if settings.API_DOCS == "public":
        return True
    user = request.user
    return settings.API_DOCS == "staff" and user.is_active and user.is_staff
