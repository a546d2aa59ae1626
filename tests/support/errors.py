def json_error(response, status: int | None = None) -> dict:
    """The response is an error (of this status, if given), in JSON, with a `detail` string."""
    if status is None:
        assert 400 <= response.status_code < 500, response.content
    else:
        assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["detail"], str) and body["detail"]
    return body
