"""A stored file's name: `<sha256[:2]>/<sha256>`, the same in the store and in the archive."""

import re

NAME = re.compile(r"^([0-9a-f]{2})/(\1[0-9a-f]{62})$")


def name_for(sha256: str) -> str:
    return f"{sha256[:2]}/{sha256}"


def is_name(text: str) -> bool:
    return NAME.match(text) is not None


def sha256_of_name(name: str) -> str:
    return name.rpartition("/")[2]
