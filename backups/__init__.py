"""Data safety: the continuous archive (`continuous/`) and logical pg_dump files (`dumps/`).

Beside them, what both use: the folder they share (`folder.py`), PostgreSQL's programs
(`tools.py`), progress reporting, Django's connection, the one error type, and the inventory
that names each kind of copy for `status` and `backup --list`. docs/data-safety.md is the manual.
"""
