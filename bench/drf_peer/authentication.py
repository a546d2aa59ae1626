from rest_framework.authentication import TokenAuthentication


class BearerTokenAuthentication(TokenAuthentication):
    """DRF's token check, with the header the benchmark's clients send (as DRF's docs suggest)."""

    keyword = "Bearer"
