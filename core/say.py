"""How long-running steps tell the user what they do: one line at a time, to any sink.

`serve` passes its command's `stdout.write`, a test a list's `append`, the default is `print`.
"""

from collections.abc import Callable

Say = Callable[[str], None]
