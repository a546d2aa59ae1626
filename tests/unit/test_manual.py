"""The manual holds together: what its pages render to, what its indexes link, what it names.

`mkdocs build --strict` checks links and anchors, not how a page renders nor what it leaves out.
"""

import functools
import re
import tomllib
from pathlib import Path

import markdown
import pytest
from mkdocs.config import load_config

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
# A paragraph line that starts like a list item: Python-Markdown (mkdocs) starts no list inside a
# paragraph, unlike GitHub, so a list without a blank line before it renders as running text.
LIST_LINE_IN_PARAGRAPH = re.compile(r"<p>(?:(?!</p>).)*\n\s*(?:[-*+]|\d+\.)\s", re.DOTALL)


@functools.cache
def mkdocs_config():
    return load_config(str(ROOT / "mkdocs.yml"))


def rendered(text: str) -> str:
    """`text` as mkdocs renders it, with the manual's own Markdown extensions."""
    config = mkdocs_config()
    return markdown.markdown(
        text,
        extensions=config["markdown_extensions"],
        extension_configs=config["mdx_configs"],
    )


def lists_glued_to_a_paragraph(text: str) -> list[str]:
    """The start of each paragraph that swallowed a list."""
    return [match.group(0)[3:60] for match in LIST_LINE_IN_PARAGRAPH.finditer(rendered(text))]


def test_the_check_finds_a_list_glued_to_a_paragraph_and_nothing_else():
    assert lists_glued_to_a_paragraph("Two things:\n- one;\n- two.\n")
    assert lists_glued_to_a_paragraph("Steps:\n1. one\n2. two\n")
    assert not lists_glued_to_a_paragraph("Two things:\n\n- one;\n- two,\n  wrapped.\n")
    assert not lists_glued_to_a_paragraph("A command:\n\n```sh\nls\n- not a list\n```\n")
    assert not lists_glued_to_a_paragraph("- one\n  - nested\n- two\n")


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_no_list_on_the_page_renders_as_a_paragraph(page):
    glued = lists_glued_to_a_paragraph(page.read_text())
    assert not glued, f"{page.name}: put a blank line before the list in: {glued}"


def test_every_page_is_linked_from_the_index_and_the_readme():
    index = (DOCS / "index.md").read_text()
    readme = (ROOT / "README.md").read_text()
    pages = [page.name for page in PAGES if page.name != "index.md"]
    assert not [page for page in pages if f"]({page})" not in index], "missing in docs/index.md"
    assert not [page for page in pages if f"](docs/{page})" not in readme], "missing in README"


def import_contract_packages() -> set[str]:
    """Every package the import-linter contracts in pyproject.toml name."""
    settings = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    named = set(settings["root_packages"])
    for contract in settings["contracts"]:
        for key in ("layers", "modules", "source_modules", "forbidden_modules"):
            for entry in contract.get(key, []):
                named |= {name.strip() for name in entry.split("|")}
    return {name.split(".")[0] for name in named}


@pytest.mark.parametrize("listing", ["docs/layout.md", "README.md"])
def test_every_package_the_import_contracts_name_is_in_the_package_list(listing):
    listed = set(re.findall(r"^(\w+)/ ", (ROOT / listing).read_text(), re.MULTILINE))
    missing = import_contract_packages() - listed
    assert not missing, f"{listing} does not describe {sorted(missing)}"


def test_the_layers_in_the_layout_page_are_the_contracts_layers():
    settings = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    [contract] = [contract for contract in settings["contracts"] if contract["type"] == "layers"]
    page = (ROOT / "docs" / "layout.md").read_text()
    block = page.split("do not import each other:\n\n")[1].split("\n\n")[0]
    assert [line.strip() for line in block.splitlines()] == contract["layers"]
