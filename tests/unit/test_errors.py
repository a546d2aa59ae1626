"""core.errors.first_line: one line for a person, whatever the exception holds."""

import pytest

from core.errors import first_line


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("connection refused\nIs the server running?", "connection refused"),
        ("\n\n  timeout expired  \nmore", "timeout expired"),
        ("", "no details"),
        ("   \n  ", "no details"),
    ],
)
def test_the_first_non_blank_line_or_a_default(message, expected):
    assert first_line(RuntimeError(message)) == expected


def test_the_default_can_be_chosen():
    assert first_line(OSError(), "no answer") == "no answer"
