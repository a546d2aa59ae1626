from django.shortcuts import render

from .throttle import LoginThrottled


class LoginThrottleMiddleware:
    """Answer a throttled login outside the API (the admin's form) with 429 and Retry-After."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, LoginThrottled):
            return None
        response = render(request, "429.html", {"retry_after": exception.retry_after}, status=429)
        response["Retry-After"] = str(exception.retry_after)
        return response
