"""The docs stand alone and agree with the CLI: no link leaves the repository, documented defaults are the parser's."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from cosmo.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
# a row of a defaults table: | `cosmo <command>` | `--option` | `value` ... |
DEFAULT_ROW = re.compile(r"^\| `cosmo ([a-z -]+)` \| `(--[a-z-]+)` \| `([^`]*)`", re.M)


def _commands(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    """'eval' -> its parser, 'data build' -> its parser, ... for every (sub)command."""
    found = {prefix.strip(): parser}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.update(_commands(sub, f"{prefix} {name}"))
    return found


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_links_stay_inside_the_repository_and_resolve(doc):
    for target in LINK.findall(doc.read_text(encoding="utf-8")):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):  # web pages and anchors in the same file
            continue
        path = (doc.parent / target.split("#")[0]).resolve()
        assert path.is_relative_to(ROOT), f"{doc.name}: {target} points outside the repository"
        assert path.exists(), f"{doc.name}: {target} does not exist"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_no_doc_refers_to_the_development_notes(doc):
    # ../shared/notes/ is the developers' workspace, not part of a clone
    text = doc.read_text(encoding="utf-8")
    assert "shared/notes" not in text and "learnability.md" not in text


def test_documented_defaults_are_the_parsers():
    commands = _commands(build_parser())
    rows = [row for doc in DOCS for row in DEFAULT_ROW.findall(doc.read_text(encoding="utf-8"))]
    assert len(rows) >= 9  # README's table of eval, data build and build-tiny defaults
    for command, option, documented in rows:
        (action,) = [a for a in commands[command]._actions if option in a.option_strings]
        assert documented == str(action.default), f"cosmo {command} {option}: docs say {documented}, " \
                                                  f"the parser {action.default}"
        assert "(default" in (action.help or ""), f"cosmo {command} {option}: --help does not show its default"


def test_submit_address_order_is_the_same_in_help_and_docs():
    (address,) = [a for a in _commands(build_parser())["submit"]._actions if "--address" in a.option_strings]
    assert "RAY_API_SERVER_ADDRESS, else RAY_ADDRESS, else http://127.0.0.1:8265" in address.help
    cluster = (ROOT / "docs" / "cluster.md").read_text(encoding="utf-8")
    assert "`--address`, else `RAY_API_SERVER_ADDRESS`, else `RAY_ADDRESS`, else `http://127.0.0.1:8265`" in cluster
