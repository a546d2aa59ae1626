"""Hypothesis strategies for search text: any text, weighted towards websearch syntax."""

from hypothesis import strategies as st

# What websearch_to_tsquery gives a meaning to, or passes over, and a few words it stems.
SYNTAX = [
    "-", "--", " -", "- ", "-" * 40, '"', "'", " or ", "or", "OR", "(", ")", "!", "&", "|", "<",
    "<->", ">", ":", ":*", "*", "\\", "_", ".", " ", "\t", "\n", "x", "run", "note", "é",
]  # fmt: skip

# Text a query string can carry: no lone surrogates (not UTF-8), and no NUL (refused with 422).
_CHARACTERS = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")


def search_texts(max_size: int = 200) -> st.SearchStrategy[str]:
    """Up to `max_size` characters of operators, runs of minus signs, words and anything else."""
    piece = st.one_of(st.sampled_from(SYNTAX), st.text(_CHARACTERS, min_size=1, max_size=4))
    return st.lists(piece, min_size=1, max_size=80).map(lambda pieces: "".join(pieces)[:max_size])
