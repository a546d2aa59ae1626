"""How an exception is shown to a person: its first line, never a traceback."""


def first_line(error: BaseException, default: str = "no details") -> str:
    """The first non-empty line of an error's message (libpq's carry hints on later lines)."""
    for line in str(error).splitlines():
        if line.strip():
            return line.strip()
    return default
