from rest_framework.pagination import CursorPagination


class NotePagination(CursorPagination):
    """The app's page contract: 20 by default, `?limit=` up to 100 (the benchmark asks for 50)."""

    page_size = 20
    page_size_query_param = "limit"
    max_page_size = 100
    ordering = ["-created", "-id"]
